/*
 * serve.c — `ttvm replay TRACE`: the recording served to gdb over the GDB
 * remote protocol, and gdb started on it, the way `rr replay` does it.
 *
 * One process, two threads and a child: the server thread owns the replay
 * (every target call happens there), the main thread waits for gdb, and
 * gdb is a child in the same terminal.  A Ctrl-C typed at gdb reaches the
 * whole foreground process group, so ttvm ignores SIGINT while gdb runs:
 * gdb turns it into a 0x03 on the socket, which interrupts the replay.
 * When gdb exits the server is stopped and the symbol file removed.
 *
 * The symbol file is the guest image stored in the trace (so a trace debugs
 * on its own, without the build tree), written to a private temporary
 * directory under the name it was recorded with.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "debugger/debugger.h"
#include "replayer/replayer.h"

struct session {
    const struct cmd_serve *a;
    struct replay *r;
    struct dbg_stub *stub;
    struct dbg_server *srv;
    char dir[PATH_MAX - 160]; /* private temp dir, "" until made */
    char symfile[PATH_MAX]; /* the guest image, "" until written */
    char target[300];       /* what gdb's `target remote` takes */
    bool elf32;             /* the image is ELF32 (Multiboot) */
    pid_t gdb;
    int serve_rc;
};

/* For the signal handlers: the server to stop, gdb to pass SIGTERM on to. */
static struct dbg_server *volatile signal_srv;
static volatile pid_t signal_gdb;

/* No SA_RESTART: a blocking call returns with EINTR and sees the stop. */
static void install(int sig, void (*handler)(int))
{
    struct sigaction sa = { .sa_handler = handler };
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void on_stop_signal(int sig)
{
    if (signal_gdb > 0)
        kill(signal_gdb, sig);
    if (signal_srv)
        dbg_server_stop(signal_srv);
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "ttvm replay: %s\n", line);
}

/* ---- the trace and its symbol file ----------------------------------- */

static int open_trace(struct session *s)
{
    struct cmd_bar bar;
    cmd_bar_start(&bar, false);
    struct replay_opts o = {
        .key = s->a->key,
        .progress = cmd_bar_progress,
        .progress_ctx = &bar,
    };
    int rc = replay_open(s->a->trace, &o, &s->r);
    cmd_bar_clear(&bar);
    if (rc) {
        fprintf(stderr, "ttvm replay: %s: %s: %s\n", s->a->trace,
                replay_strerror(rc), replay_error_detail(NULL));
        return cmd_exit_for_replay(rc);
    }
    return 0;
}

/* The recorded name reduced to a safe file name. */
static void symfile_name(const char *recorded, char *out, size_t cap)
{
    const char *base = strrchr(recorded, '/');
    base = base ? base + 1 : recorded;
    size_t n = 0;
    for (; *base && n + 1 < cap; base++)
        out[n++] = (*base == '.' || *base == '-' || *base == '_' ||
                    (*base >= '0' && *base <= '9') ||
                    (*base >= 'a' && *base <= 'z') ||
                    (*base >= 'A' && *base <= 'Z'))
                       ? *base
                       : '_';
    out[n] = '\0';
    if (!n || !strcmp(out, ".") || !strcmp(out, ".."))
        snprintf(out, cap, "guest");
}

static int write_all_fd(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t n = write(fd, c, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_symfile(struct session *s)
{
    const void *img;
    size_t len;
    int rc = replay_guest_image(s->r, &img, &len);
    if (rc) {
        fprintf(stderr, "ttvm replay: %s: %s\n", s->a->trace,
                replay_error_detail(s->r));
        return TTVM_EXIT_TRACE;
    }
    const uint8_t *e = img;
    s->elf32 = len > 4 && !memcmp(e, "\177ELF", 4) && e[4] == 1;
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/ttvm-replay-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "ttvm replay: cannot make a directory for the "
                        "symbol file (%s): %s\n", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return TTVM_EXIT_ERROR;
    }
    char name[128]; /* dir, '/', name fit in symfile */
    symfile_name(replay_guest_name(s->r), name, sizeof name);
    snprintf(s->symfile, sizeof s->symfile, "%s/%s", s->dir, name);
    int fd = open(s->symfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    rc = fd < 0 ? -errno : write_all_fd(fd, img, len);
    if (fd >= 0 && close(fd) && !rc)
        rc = -errno;
    if (rc) {
        fprintf(stderr, "ttvm replay: writing the symbol file %s: %s\n",
                s->symfile, strerror(-rc));
        unlink(s->symfile);
        s->symfile[0] = '\0';
        return TTVM_EXIT_ERROR;
    }
    return 0;
}

/* ---- the server ------------------------------------------------------- */

/* Where gdb connects: the listening address, or loopback for a wildcard. */
static void set_target(struct session *s)
{
    const char *h = s->a->host;
    uint16_t port = dbg_server_port(s->srv);
    if (!h || !strcmp(h, "0.0.0.0"))
        h = "127.0.0.1";
    else if (!strcmp(h, "::"))
        h = "::1";
    if (strchr(h, ':'))
        snprintf(s->target, sizeof s->target, "[%s]:%u", h, port);
    else
        snprintf(s->target, sizeof s->target, "%s:%u", h, port);
}

static int start_server(struct session *s)
{
    const struct cmd_serve *a = s->a;
    struct dbg_stub_opts so = {
        .log = (a->verbose || a->no_launch) ? log_line : NULL,
        .log_packets = a->verbose,
    };
    int rc = dbg_stub_create(&dbg_replay_ops, s->r, &so, &s->stub);
    if (rc) {
        fprintf(stderr, "ttvm replay: %s\n", dbg_strerror(rc));
        return TTVM_EXIT_ERROR;
    }
    char err[256] = "";
    rc = dbg_server_listen(a->host, a->port, &s->srv, err, sizeof err);
    if (rc == DBG_E_ADDR && !a->port_given && !a->no_launch)
        /* We start gdb ourselves, so any port will do. */
        rc = dbg_server_listen(a->host, 0, &s->srv, err, sizeof err);
    if (rc) {
        fprintf(stderr, "ttvm replay: %s%s\n", *err ? err : dbg_strerror(rc),
                a->port_given || !a->no_launch
                    ? ""
                    : " (choose another with --gdb-port)");
        return TTVM_EXIT_HOST;
    }
    set_target(s);
    return 0;
}

static void *serve_thread(void *arg)
{
    struct session *s = arg;
    s->serve_rc = dbg_server_run(s->srv, s->stub, 0);
    return NULL;
}

/* ---- gdb ---------------------------------------------------------------- */

/* gdb [-nx -batch] -q -ex 'target remote T' [GDB-ARGS] [-x SCRIPT] SYMFILE
 * (gdb loads SYMFILE before it runs any -ex or -x). */
static char **gdb_argv(const struct session *s, char *target_cmd, size_t cap)
{
    const struct cmd_serve *a = s->a;
    char **v = calloc((size_t)a->gdb_argc + 14, sizeof *v);
    if (!v)
        return NULL;
    int n = 0;
    snprintf(target_cmd, cap, "target remote %s", s->target);
    v[n++] = (char *)a->gdb;
    v[n++] = "-q";
    if (a->batch) {
        v[n++] = "-nx";
        v[n++] = "-batch";
    }
    if (s->elf32) {
        /* A Multiboot image is ELF32 around 64-bit code: without this gdb
         * takes it for i386 and rejects the x86-64 registers. */
        v[n++] = "-iex";
        v[n++] = "set architecture i386:x86-64";
    }
    v[n++] = "-ex";
    v[n++] = target_cmd;
    for (int i = 0; i < a->gdb_argc; i++)
        v[n++] = a->gdb_argv[i];
    if (a->batch) {
        v[n++] = "-x";
        v[n++] = (char *)a->batch;
    }
    v[n++] = (char *)s->symfile;
    v[n] = NULL;
    return v;
}

/* Starts gdb.  An exec failure is reported through a close-on-exec pipe,
 * so "gdb is not installed" is a clear message, not a status 127. */
static int launch_gdb(struct session *s)
{
    char target_cmd[340];
    char **argv = gdb_argv(s, target_cmd, sizeof target_cmd);
    int p[2];
    if (!argv || pipe2(p, O_CLOEXEC)) {
        free(argv);
        fprintf(stderr, "ttvm replay: cannot start gdb: %s\n",
                strerror(errno ? errno : ENOMEM));
        return TTVM_EXIT_ERROR;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL); /* ignored dispositions survive exec */
        close(p[0]);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(p[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    int e = pid < 0 ? errno : 0;
    close(p[1]);
    if (pid > 0 && read(p[0], &e, sizeof e) != (ssize_t)sizeof e)
        e = 0;
    close(p[0]);
    free(argv);
    if (pid > 0 && e)
        waitpid(pid, NULL, 0);
    if (e) {
        fprintf(stderr, "ttvm replay: cannot run %s: %s (install gdb, or "
                        "serve with --no-launch and connect a gdb of your "
                        "own)\n", s->a->gdb, strerror(e));
        return TTVM_EXIT_HOST;
    }
    s->gdb = pid;
    return 0;
}

static int wait_gdb(struct session *s)
{
    int st;
    while (waitpid(s->gdb, &st, 0) < 0)
        if (errno != EINTR)
            return TTVM_EXIT_ERROR;
    s->gdb = 0;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

/* ---- the two ways to serve ---------------------------------------------- */

static int run_with_gdb(struct session *s)
{
    pthread_t th;
    if (pthread_create(&th, NULL, serve_thread, s)) {
        fprintf(stderr, "ttvm replay: cannot start the server thread\n");
        return TTVM_EXIT_ERROR;
    }
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_int;
    sigaction(SIGINT, &ign, &old_int);
    int status = launch_gdb(s);
    if (!status) {
        signal_gdb = s->gdb;
        status = wait_gdb(s);
        signal_gdb = 0;
    }
    sigaction(SIGINT, &old_int, NULL);
    dbg_server_stop(s->srv);
    pthread_join(th, NULL);
    return status;
}

static int run_served(struct session *s)
{
    printf("ttvm replay: %s: %llu instructions, %llu events, engine %s\n"
           "  serving on %s (Ctrl-C to stop); symbols in %s\n"
           "  connect with:  gdb %s -ex 'target remote %s'\n",
           s->a->trace, (unsigned long long)replay_end(s->r),
           (unsigned long long)replay_event_count(s->r), replay_engine(s->r),
           s->target, s->symfile, s->symfile, s->target);
    fflush(stdout);
    int rc = dbg_server_run(s->srv, s->stub, 0);
    if (rc) {
        fprintf(stderr, "ttvm replay: serving: %s\n", dbg_strerror(rc));
        return TTVM_EXIT_ERROR;
    }
    return TTVM_EXIT_OK;
}

static void session_end(struct session *s)
{
    signal_srv = NULL;
    dbg_server_close(s->srv);
    dbg_stub_destroy(s->stub);
    replay_close(s->r);
    if (*s->symfile)
        unlink(s->symfile);
    if (*s->dir)
        rmdir(s->dir);
}

int cmd_replay_serve(const struct cmd_serve *a)
{
    struct session s = { .a = a };
    int status = open_trace(&s);
    if (!status)
        status = write_symfile(&s);
    if (!status)
        status = start_server(&s);
    if (!status) {
        signal_srv = s.srv;
        install(SIGTERM, on_stop_signal);
        install(SIGHUP, on_stop_signal);
        if (a->no_launch)
            install(SIGINT, on_stop_signal);
        status = a->no_launch ? run_served(&s) : run_with_gdb(&s);
    }
    session_end(&s);
    return status;
}
