/*
 * server.c — the stub's transport: a TCP listener, and the loop that moves
 * bytes between one socket, the framing layer (rsp.c) and the stub
 * (gdbstub.c).
 *
 * While a resume runs, the main thread is inside the target and cannot read
 * the socket, yet gdb's Ctrl-C (a bare 0x03) must reach the target then.  A
 * watcher thread, alive only for the duration of such an operation, reads
 * the socket into the same input queue the main loop consumes and calls the
 * target's interrupt op when it sees 0x03 or the client goes away.  The
 * main thread joins it before touching the queue again, so the queue needs
 * no lock.  (rr and QEMU poll the socket from their run loops instead; our
 * target API is a blocking call, hence the thread.)
 *
 * Memory per connection is fixed: the framing buffer (DBG_PACKET_MAX) and
 * an input queue of QUEUE_CAP bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "debugger/debugger_int.h"

#define QUEUE_CAP 65536

struct conn {
    struct dbg_stub *s;
    int fd;
    int stop_fd;   /* server stop pipe (read end), or -1 */
    int listen_fd; /* extra clients are accepted and closed, or -1 */
    struct rsp rsp;
    uint8_t q[QUEUE_CAP];
    size_t head, tail;
    bool eof, stopped, closing;
    int err;
    pthread_t watcher;
    int wake[2];
    bool watching;
};

static int write_all(void *ctx, const void *buf, size_t len)
{
    struct conn *c = ctx;
    const char *p = buf;
    while (len && !c->err) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->err = n < 0 ? -errno : DBG_E_CLOSED;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    return c->err;
}

/* ---- the Ctrl-C watcher ------------------------------------------------- */

static void *watch_main(void *arg)
{
    struct conn *c = arg;
    for (;;) {
        struct pollfd p[3] = {
            {.fd = c->wake[0], .events = POLLIN},
            {.fd = c->tail < QUEUE_CAP ? c->fd : -1, .events = POLLIN},
            {.fd = c->stop_fd, .events = POLLIN},
        };
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        if (p[2].revents) {
            c->stopped = true;
            dbg_stub_interrupt(c->s);
            break;
        }
        if (!p[1].revents)
            continue;
        ssize_t n = recv(c->fd, c->q + c->tail, QUEUE_CAP - c->tail, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->eof = true;
            dbg_stub_interrupt(c->s);
            break;
        }
        if (memchr(c->q + c->tail, 0x03, (size_t)n))
            dbg_stub_interrupt(c->s);
        c->tail += (size_t)n;
    }
    return NULL;
}

static void long_begin(void *ctx)
{
    struct conn *c = ctx;
    memmove(c->q, c->q + c->head, c->tail - c->head);
    c->tail -= c->head;
    c->head = 0;
    c->watching = pthread_create(&c->watcher, NULL, watch_main, c) == 0;
    if (!c->watching)
        dbg_stub_log(c->s, "cannot watch for Ctrl-C: no thread");
}

static void long_end(void *ctx)
{
    struct conn *c = ctx;
    char b;
    if (!c->watching)
        return;
    while (write(c->wake[1], "w", 1) < 0 && errno == EINTR)
        ;
    pthread_join(c->watcher, NULL);
    while (read(c->wake[0], &b, 1) < 0 && errno == EINTR)
        ;
    c->watching = false;
}

/* ---- packets ------------------------------------------------------------ */

static void log_packet(struct conn *c, const char *dir, const void *p,
                       size_t len)
{
    if (!c->s->opts.log_packets)
        return;
    char text[200];
    size_t n = len < sizeof text - 4 ? len : sizeof text - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = ((const unsigned char *)p)[i];
        text[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
    }
    strcpy(text + n, n < len ? "..." : "");
    dbg_stub_log(c->s, "%s %s", dir, text);
}

static void send_reply(struct conn *c, const void *p, size_t len)
{
    log_packet(c, "->", p, len);
    rsp_send(&c->rsp, p, len);
}

/* Console text goes out as 'O' packets (hex) before the reply. */
static void send_console(struct conn *c, const char *text, size_t len)
{
    const size_t chunk = (DBG_PACKET_MAX - 2) / 2;
    struct dbg_buf o = {0};
    for (size_t off = 0; off < len && !c->err; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        dbg_buf_clear(&o);
        dbg_buf_putc(&o, 'O');
        dbg_buf_hex(&o, text + off, n);
        if (!o.oom)
            send_reply(c, o.p, o.len);
    }
    dbg_buf_free(&o);
}

static void on_packet(struct conn *c)
{
    size_t len;
    const uint8_t *p = rsp_packet(&c->rsp, &len);
    struct dbg_reply r;
    log_packet(c, "<-", p, len);
    dbg_stub_packet(c->s, p, len, &r);
    if (r.console_len)
        send_console(c, r.console, r.console_len);
    send_reply(c, r.data, r.len);
    if (r.noack)
        c->rsp.noack = true;
    if (r.close)
        c->closing = true;
}

static void on_byte(struct conn *c, uint8_t b)
{
    switch (rsp_feed(&c->rsp, b)) {
    case RSP_EV_PACKET:
        on_packet(c);
        break;
    case RSP_EV_DROPPED:
        dbg_stub_log(c->s, "dropped a packet: %s", c->rsp.why);
        send_reply(c, "E16", 3);
        break;
    case RSP_EV_BAD_CHECKSUM:
        dbg_stub_log(c->s, "bad checksum%s",
                     c->rsp.noack ? "; packet dropped" : "; asked again");
        break;
    default: /* acks; Ctrl-C while stopped has nothing to stop */
        break;
    }
}

/* True when the client has closed its end (its EOF is queued). */
static bool client_gone(struct conn *c)
{
    char b;
    return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void refuse_extra(struct conn *c)
{
    /* A client that dropped and reconnected at once: its EOF may be
     * queued behind data we just read.  Let the new connection wait in the
     * backlog; the EOF ends this session first. */
    if (client_gone(c))
        return;
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        dbg_stub_log(c->s, "refused a second gdb connection: one client "
                           "at a time");
        close(fd);
    }
}

/* Waits for input; false when the connection should end. */
static bool fill(struct conn *c)
{
    struct pollfd p[3] = {
        {.fd = c->fd, .events = POLLIN},
        {.fd = c->stop_fd, .events = POLLIN},
        {.fd = c->listen_fd, .events = POLLIN},
    };
    if (poll(p, 3, -1) < 0)
        return errno == EINTR;
    if (p[1].revents) {
        c->stopped = true;
        return false;
    }
    if (p[0].revents) {
        ssize_t n = recv(c->fd, c->q, QUEUE_CAP, 0);
        if (n < 0 && errno == EINTR)
            return true;
        if (n <= 0) {
            /* Noticed before looking at new connections, so that a client
             * reconnecting right after it dropped is not refused. */
            c->eof = true;
            if (n < 0)
                c->err = -errno;
            return false;
        }
        c->head = 0;
        c->tail = (size_t)n;
    }
    if (p[2].revents)
        refuse_extra(c);
    return true;
}

static int serve(struct conn *c)
{
    struct dbg_stub *s = c->s;
    int rc = rsp_init(&c->rsp, DBG_PACKET_MAX, write_all, c);
    if (rc < 0)
        return rc;
    if (pipe2(c->wake, O_CLOEXEC) < 0) {
        rsp_fini(&c->rsp);
        return -errno;
    }
    s->long_begin = long_begin;
    s->long_end = long_end;
    s->long_ctx = c;
    for (;;) {
        while (c->head < c->tail && !c->closing && !c->err && !c->stopped)
            on_byte(c, c->q[c->head++]);
        if (c->closing || c->err || c->stopped || c->eof)
            break;
        if (!fill(c))
            break;
    }
    s->long_begin = s->long_end = NULL;
    s->long_ctx = NULL;
    close(c->wake[0]);
    close(c->wake[1]);
    rsp_fini(&c->rsp);
    if (c->closing || c->stopped)
        return 0;
    return c->err && c->err != DBG_E_CLOSED ? c->err : DBG_E_CLOSED;
}

static int serve_fd(struct dbg_stub *s, int fd, int stop_fd, int listen_fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->s = s;
    c->fd = fd;
    c->stop_fd = stop_fd;
    c->listen_fd = listen_fd;
    int rc = serve(c);
    free(c);
    return rc;
}

int dbg_stub_serve_fd(struct dbg_stub *s, int fd)
{
    if (!s || fd < 0)
        return DBG_E_ARG;
    return serve_fd(s, fd, -1, -1);
}

/* ---- the listener ------------------------------------------------------- */

struct dbg_server {
    int lfd;
    int stop[2];
    uint16_t port;
};

static int bind_any(struct addrinfo *ai, int *out)
{
    int err = -EADDRNOTAVAIL;
    for (; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4) == 0) {
            *out = fd;
            return 0;
        }
        err = -errno;
        close(fd);
    }
    return err;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int dbg_server_listen(const char *host, uint16_t port, struct dbg_server **out,
                      char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    char portstr[8];
    char dummy[1];
    if (!err)
        err = dummy, errlen = sizeof dummy;
    if (!host)
        host = "127.0.0.1";
    snprintf(portstr, sizeof portstr, "%u", port);
    int g = getaddrinfo(host, portstr, &hints, &ai);
    if (g) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(g));
        return DBG_E_ADDR;
    }
    struct dbg_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        return -ENOMEM;
    }
    int rc = bind_any(ai, &srv->lfd);
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", host, port,
                 strerror(-rc));
        free(srv);
        return DBG_E_ADDR;
    }
    if (pipe2(srv->stop, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        close(srv->lfd);
        free(srv);
        return rc;
    }
    srv->port = bound_port(srv->lfd);
    *out = srv;
    return 0;
}

uint16_t dbg_server_port(const struct dbg_server *srv)
{
    return srv->port;
}

static void log_peer(struct dbg_stub *s, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0 &&
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        dbg_stub_log(s, "gdb connected from %s:%s", host, serv);
}

int dbg_server_run(struct dbg_server *srv, struct dbg_stub *s,
                   unsigned max_clients)
{
    unsigned served = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = srv->lfd, .events = POLLIN},
                              {.fd = srv->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[1].revents)
            return 0;
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            return -errno;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        log_peer(s, fd);
        int rc = serve_fd(s, fd, srv->stop[0], srv->lfd);
        dbg_stub_log(s, "gdb %s", rc == 0 ? "detached" : "disconnected");
        dbg_stub_reset(s);
        close(fd);
        if (max_clients && ++served >= max_clients)
            return 0;
    }
}

void dbg_server_stop(struct dbg_server *srv)
{
    ssize_t n = write(srv->stop[1], "s", 1);
    (void)n; /* a full pipe already says "stop" */
}

void dbg_server_close(struct dbg_server *srv)
{
    if (!srv)
        return;
    close(srv->lfd);
    close(srv->stop[0]);
    close(srv->stop[1]);
    free(srv);
}
