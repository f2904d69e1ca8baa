/*
 * rng — reads ttvm's random-number port (PORT_RNG 0x600: a 32-bit inl
 * returns 32 random bits; 8/16-bit reads return the low bits of a fresh
 * value) from a ring-3 task and says whether the values varied.
 *
 * Parameters: n=N 32-bit reads (default 1024; the first 8 are printed).
 * Output under ttvm (values differ from run to run; replay repeats them):
 *   rng: 1024 reads of port 0x600
 *   rng: 0x........ 0x........ ... (8 values)
 *   rng: 8-bit 0x.., 16-bit 0x....
 *   rng: distinct among the first 64: 64, bits set: 16384 of 32768
 *        (balanced: yes)                                  (one line)
 *   rng: varied=yes
 * QEMU has no such port (its pc machine puts the ACPI PM event registers
 * at 0x600), so there every value is the same and the last line is
 * "rng: varied=no (no random port)".
 * Exit value 0 (status 1) either way; 1 only when the port varies but is
 * far from balanced.
 */
#include "sdk.h"
#include "user.h"

#define N_SHOWN 8
#define N_DISTINCT 64

static unsigned popcount32(uint32_t v)
{
    unsigned n = 0;

    for (; v; v &= v - 1)
        n++;
    return n;
}

static unsigned count_distinct(const uint32_t *v, unsigned n)
{
    unsigned d = 0;

    for (unsigned i = 0; i < n; i++) {
        unsigned j = 0;

        while (j < i && v[j] != v[i])
            j++;
        d += j == i;
    }
    return d;
}

static long rng_task(void *arg)
{
    uint64_t n = *(const uint64_t *)arg, ones = 0, d;
    uint32_t first[N_DISTINCT];
    uint8_t b;
    uint16_t w;
    unsigned shown = n < N_SHOWN ? (unsigned)n : N_SHOWN;
    unsigned kept = n < N_DISTINCT ? (unsigned)n : N_DISTINCT, distinct;
    bool varied, balanced;

    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = inl(PORT_RNG);

        if (i < N_DISTINCT)
            first[i] = v;
        ones += popcount32(v);
    }
    b = inb(PORT_RNG);
    w = inw(PORT_RNG);
    user_printf("rng:");
    for (unsigned i = 0; i < shown; i++)
        user_printf(" %#010x", first[i]);
    user_printf("\nrng: 8-bit %#04x, 16-bit %#06x\n", b, w);
    distinct = count_distinct(first, kept);
    varied = distinct > 1;
    /* 32n fair bits: mean 16n, variance 8n.  Balanced: within 8 standard
     * deviations, i.e. d^2 <= 64 * 8n (n <= 1e8 keeps d^2 in range). */
    d = ones > 16 * n ? ones - 16 * n : 16 * n - ones;
    balanced = d * d <= 512 * n;
    user_printf("rng: distinct among the first %u: %u, bits set: %lu of "
                "%lu (balanced: %s)\n",
                kept, distinct, ones, 32 * n, balanced ? "yes" : "no");
    user_printf("rng: varied=%s\n", varied ? "yes" : "no (no random port)");
    return varied && !balanced ? 1 : 0;
}

int guest_main(void)
{
    uint64_t n = sdk_arg_u64("n", 1024);

    if (n > 100000000)
        n = 100000000;
    sdk_printf("rng: %lu reads of port %#x\n", n, PORT_RNG);
    sdk_io_allow(PORT_RNG, 4);
    return sdk_task_run(rng_task, &n) == 0 ? 0 : 1;
}
