/*
 * test_rsp.c — the RSP framing state machine (debugger/rsp.c) on its own:
 * bytes in, events and acks out, no socket, no target.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "debugger/debugger_int.h"

/* What the framing layer wrote back (acks, frames). */
struct sink {
    char out[65536];
    size_t len;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
    struct sink *s = ctx;
    cr_assert_lt(s->len + len, sizeof s->out);
    memcpy(s->out + s->len, buf, len);
    s->len += len;
    s->out[s->len] = '\0';
    return 0;
}

static struct rsp r;
static struct sink sink;

static void setup_max(size_t max)
{
    memset(&sink, 0, sizeof sink);
    cr_assert_eq(rsp_init(&r, max, sink_write, &sink), 0);
}

static void setup(void)
{
    setup_max(256);
}
static void teardown(void)
{
    rsp_fini(&r);
}

/* Feeds bytes; returns the last non-NONE event (NONE if none) and counts
 * events of each kind. */
static unsigned counts[8];
static enum rsp_event feed(const void *p, size_t n)
{
    enum rsp_event last = RSP_EV_NONE;
    for (size_t i = 0; i < n; i++) {
        enum rsp_event e = rsp_feed(&r, ((const uint8_t *)p)[i]);
        if (e != RSP_EV_NONE) {
            counts[e]++;
            last = e;
        }
    }
    return last;
}
static enum rsp_event feeds(const char *s)
{
    return feed(s, strlen(s));
}

/* "$payload#cs" with a correct checksum over the raw payload; returns
 * the frame's length (the payload may hold NULs). */
static size_t frame(char *out, size_t cap, const char *raw, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (uint8_t)raw[i];
    cr_assert_lt(n + 5, cap);
    out[0] = '$';
    memcpy(out + 1, raw, n);
    snprintf(out + 1 + n, cap - 1 - n, "#%02x", sum & 0xff);
    return n + 4;
}

static void expect_packet(const char *want, size_t n)
{
    size_t len;
    const uint8_t *p = rsp_packet(&r, &len);
    cr_assert_eq(len, n, "packet length %zu, want %zu", len, n);
    cr_assert_eq(memcmp(p, want, n), 0);
    cr_assert_eq(p[len], 0, "payload is NUL-terminated");
}

TestSuite(rsp, .init = setup, .fini = teardown);

Test(rsp, simple_packet_is_acked)
{
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET);
    expect_packet("g", 1);
    cr_assert_str_eq(sink.out, "+");
}

Test(rsp, packet_split_anywhere)
{
    char pkt[64];
    frame(pkt, sizeof pkt, "qSupported:swbreak+", 19);
    cr_assert_str_eq(pkt, "$qSupported:swbreak+#8b");
    for (size_t cut = 1; cut < strlen(pkt); cut++) {
        cr_assert_eq(feed(pkt, cut), RSP_EV_NONE, "cut %zu", cut);
        cr_assert_eq(feeds(pkt + cut), RSP_EV_PACKET, "cut %zu", cut);
        expect_packet("qSupported:swbreak+", 19);
    }
}

Test(rsp, bad_checksum_is_nacked_then_retry_works)
{
    cr_assert_eq(feeds("$g#68"), RSP_EV_BAD_CHECKSUM);
    cr_assert_str_eq(sink.out, "-");
    cr_assert_eq(feeds("$g#zz"), RSP_EV_BAD_CHECKSUM, "non-hex checksum");
    cr_assert_eq(feeds("$g#6"), RSP_EV_NONE, "incomplete checksum waits");
    cr_assert_eq(feeds("z"), RSP_EV_BAD_CHECKSUM);
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET);
    cr_assert_str_eq(sink.out, "---+");
}

Test(rsp, checksum_hex_digits_any_case)
{
    char buf[32];
    frame(buf, sizeof buf, "m1000,4", 7); /* sum 0x?? in lowercase */
    for (char *p = strchr(buf, '#'); *p; p++)
        *p = (char)toupper(*p);
    cr_assert_eq(feeds(buf), RSP_EV_PACKET);
}

Test(rsp, escapes_are_decoded_and_checksummed_raw)
{
    /* }\x03 -> '#', }] -> '}', }\x04 -> '$', }\x0a -> '*' */
    const char raw[] = "X1,4:}\x03}]}\x04}\x0a";
    char buf[64];
    frame(buf, sizeof buf, raw, sizeof raw - 1);
    cr_assert_eq(feeds(buf), RSP_EV_PACKET);
    expect_packet("X1,4:#}$*", 9);
}

Test(rsp, escaped_binary_can_hold_nul_and_0x03)
{
    const char raw[] = "X0,3:\x00\x03}\x20";
    char buf[64];
    size_t n = frame(buf, sizeof buf, raw, sizeof raw - 1);
    cr_assert_eq(feed(buf, n), RSP_EV_PACKET);
    expect_packet("X0,3:\x00\x03\x00", 8);
    cr_assert_eq(counts[RSP_EV_INTERRUPT], 0, "0x03 inside a packet is data");
}

Test(rsp, run_length_decoding)
{
    char buf[64];
    frame(buf, sizeof buf, "0* ", 3); /* ' ' = 32: 3 more */
    cr_assert_eq(feeds(buf), RSP_EV_PACKET);
    expect_packet("0000", 4);
    frame(buf, sizeof buf, "ab*\"c", 5); /* '"' = 34: 5 more b */
    cr_assert_eq(feeds(buf), RSP_EV_PACKET);
    expect_packet("abbbbbbc", 8);
}

Test(rsp, run_length_repeats_decoded_escape)
{
    char buf[64];
    frame(buf, sizeof buf, "}]* ", 4);
    cr_assert_eq(feeds(buf), RSP_EV_PACKET);
    expect_packet("}}}}", 4);
}

Test(rsp, malformed_run_length_is_dropped)
{
    char buf[64];
    frame(buf, sizeof buf, "* ", 2); /* nothing to repeat */
    cr_assert_eq(feeds(buf), RSP_EV_DROPPED);
    frame(buf, sizeof buf, "a*\x1f", 3); /* count below 3 */
    cr_assert_eq(feeds(buf), RSP_EV_DROPPED);
    frame(buf, sizeof buf, "a}", 2); /* escape cut by '#' */
    cr_assert_eq(feeds(buf), RSP_EV_DROPPED);
    cr_assert_str_eq(sink.out, "+++", "checksums were fine: acked");
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET, "recovers");
}

Test(rsp, oversized_packet_is_consumed_and_dropped)
{
    char raw[1000], buf[1100];
    memset(raw, 'a', sizeof raw);
    frame(buf, sizeof buf, raw, sizeof raw);
    cr_assert_eq(feeds(buf), RSP_EV_DROPPED);
    cr_assert_str_eq(r.why, "packet too long");
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET, "next packet fine");
    expect_packet("g", 1);
}

Test(rsp, exactly_max_fits)
{
    char raw[257], buf[300];
    memset(raw, 'q', sizeof raw);
    frame(buf, sizeof buf, raw, 256);
    cr_assert_eq(feeds(buf), RSP_EV_PACKET);
    expect_packet(raw, 256);
    frame(buf, sizeof buf, raw, 257);
    cr_assert_eq(feeds(buf), RSP_EV_DROPPED);
}

Test(rsp, run_length_cannot_overflow)
{
    /* 256 bytes max: 3 + 30 * 97 would be 2913 bytes decoded. */
    char raw[128] = "abc", buf[160];
    for (int i = 0; i < 30; i++)
        strcat(raw, "*~");
    frame(buf, sizeof buf, raw, strlen(raw));
    cr_assert_eq(feeds(buf), RSP_EV_DROPPED);
    cr_assert_str_eq(r.why, "packet too long");
}

Test(rsp, dollar_inside_packet_restarts)
{
    cr_assert_eq(feeds("$m100,"), RSP_EV_NONE);
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET);
    expect_packet("g", 1);
}

Test(rsp, interrupt_and_noise_between_packets)
{
    cr_assert_eq(feeds("\x03"), RSP_EV_INTERRUPT);
    cr_assert_eq(feeds("garbage\r\n"), RSP_EV_NONE);
    cr_assert_eq(feeds("+"), RSP_EV_ACK);
    cr_assert_eq(feeds("xx$g#67yy"), RSP_EV_PACKET);
    cr_assert_str_eq(sink.out, "+");
}

Test(rsp, nak_resends_last_frame)
{
    cr_assert_eq(rsp_send(&r, "OK", 2), 0);
    cr_assert_str_eq(sink.out, "$OK#9a");
    cr_assert_eq(feeds("-"), RSP_EV_NAK);
    cr_assert_str_eq(sink.out, "$OK#9a$OK#9a");
}

Test(rsp, noack_mode)
{
    r.noack = true;
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET);
    cr_assert_eq(feeds("$g#00"), RSP_EV_BAD_CHECKSUM);
    cr_assert_eq(sink.len, 0, "no + or - without acks");
    rsp_send(&r, "OK", 2);
    sink.len = 0;
    cr_assert_eq(feeds("-"), RSP_EV_NAK);
    cr_assert_eq(sink.len, 0, "no resend without acks");
    rsp_reset(&r);
    cr_assert_eq(feeds("$g#67"), RSP_EV_PACKET);
    cr_assert_str_eq(sink.out, "+", "reset: acks again");
}

Test(rsp, send_escapes_and_round_trips_every_byte)
{
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    cr_assert_eq(rsp_send(&r, all, sizeof all), 0);
    /* Only escaped forms of the four special bytes may appear raw. */
    const char *end = strrchr(sink.out, '#');
    for (const char *p = sink.out + 1; p < end; p++)
        if (*p == 0x7d)
            p++;
        else
            cr_assert(*p != '#' && *p != '$' && *p != '*', "unescaped %#x", *p);
    struct sink copy = sink;
    struct rsp r2;
    struct sink s2 = {0};
    cr_assert_eq(rsp_init(&r2, 512, sink_write, &s2), 0);
    enum rsp_event e = RSP_EV_NONE;
    for (size_t i = 0; i < copy.len; i++)
        e = rsp_feed(&r2, (uint8_t)copy.out[i]);
    cr_assert_eq(e, RSP_EV_PACKET);
    size_t len;
    const uint8_t *p = rsp_packet(&r2, &len);
    cr_assert_eq(len, 256);
    cr_assert_eq(memcmp(p, all, 256), 0);
    rsp_fini(&r2);
}
