/*
 * fakestub — serves the fake debugger target (tests/support/dbg_fake.h)
 * over the real TCP server, so integration tests can drive gdb against the
 * stub before (and independently of) the replayer.
 *
 *   fakestub [--host H] [--port P] [--port-file F] [--clients N]
 *            [--end N] [--exit STATUS] [--delay-us N] [--fail-at N] [-v]
 *
 * Port 0 picks a free port; the port is printed on stdout ("port N") and
 * written to --port-file.  Serves N clients (0 = until SIGTERM/SIGINT).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/dbg_fake.h"

static struct dbg_server *server;

static void on_signal(int sig)
{
    (void)sig;
    if (server)
        dbg_server_stop(server);
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "fakestub: %s\n", line);
}

static int usage(void)
{
    fprintf(stderr, "usage: fakestub [--host H] [--port P] [--port-file F] "
                    "[--clients N] [--end N] [--exit STATUS] [--delay-us N] "
                    "[--fail-at N] [-v]\n");
    return 2;
}

static bool num(const char *s, unsigned long long *v)
{
    char *e;
    errno = 0;
    *v = strtoull(s, &e, 0);
    return !errno && e != s && !*e;
}

int main(int argc, char **argv)
{
    struct dbg_fake_config cfg = {0};
    const char *host = NULL, *port_file = NULL;
    unsigned long long port = DBG_DEFAULT_PORT, clients = 0, v;
    int verbose = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-v")) {
            verbose++;
            continue;
        }
        if (!val)
            return usage();
        i++;
        if (!strcmp(a, "--host"))
            host = val;
        else if (!strcmp(a, "--port-file"))
            port_file = val;
        else if (!strcmp(a, "--port") && num(val, &port) && port < 65536)
            ;
        else if (!strcmp(a, "--clients") && num(val, &clients))
            ;
        else if (!strcmp(a, "--end") && num(val, &v) && v > 0)
            cfg.end = v;
        else if (!strcmp(a, "--exit") && num(val, &v))
            cfg.exited = true, cfg.exit_status = (int)v;
        else if (!strcmp(a, "--delay-us") && num(val, &v))
            cfg.delay_us = (unsigned)v;
        else if (!strcmp(a, "--fail-at") && num(val, &v))
            cfg.fail_at = v;
        else
            return usage();
    }

    struct dbg_fake *fake;
    struct dbg_stub *stub;
    char err[256];
    struct dbg_stub_opts opts = {.log = log_line, .log_packets = verbose > 1};
    if (dbg_fake_create(&cfg, &fake) < 0 ||
        dbg_stub_create(&dbg_fake_ops, fake, verbose ? &opts : NULL, &stub) <
            0) {
        fprintf(stderr, "fakestub: out of memory\n");
        return 1;
    }
    if (dbg_server_listen(host, (uint16_t)port, &server, err, sizeof err) < 0) {
        fprintf(stderr, "fakestub: %s\n", err);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    printf("port %u\n", dbg_server_port(server));
    fflush(stdout);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%u\n", dbg_server_port(server)) < 0 ||
            fclose(f) != 0) {
            fprintf(stderr, "fakestub: cannot write %s\n", port_file);
            return 1;
        }
    }
    int rc = dbg_server_run(server, stub, (unsigned)clients);
    if (rc < 0)
        fprintf(stderr, "fakestub: %s\n", dbg_strerror(rc));
    dbg_server_close(server);
    dbg_stub_destroy(stub);
    dbg_fake_destroy(fake);
    return rc < 0 ? 1 : 0;
}
