/*
 * debugger.h — the GDB remote stub: reverse debugging of a recorded run
 * over the GDB Remote Serial Protocol.
 *
 * Three layers, each usable on its own:
 *  - a *target* (struct dbg_target_ops): what the stub drives.  It mirrors
 *    replayer/replayer.h one to one; dbg_replay_ops adapts a struct replay,
 *    and tests bring a fake that keeps a tiny trace in memory;
 *  - the *stub* (struct dbg_stub): turns one RSP packet into exactly one
 *    reply by calling the target.  It holds all protocol state (no process
 *    globals), so a process can run several;
 *  - the *server*: a TCP listener (127.0.0.1:1234 by default) that serves
 *    one gdb at a time, successive connections one after another, and
 *    forwards gdb's Ctrl-C (0x03) to the target's interrupt op while a
 *    continue runs.
 *
 * Positions are instruction counts (icount), as in replayer.h.  Register
 * and memory writes change only the current replay state and are discarded
 * when the position changes.
 *
 * Errors: 0, -errno, DBG_E_* (-5400..), or the target's own codes
 * (REPLAY_E_* for the replayer); dbg_strerror() names ours and -errno.
 */
#ifndef TTVM_DEBUGGER_H
#define TTVM_DEBUGGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replayer/replayer.h"
#include "vmm/vmm.h"

enum {
    DBG_E_ARG = -5400,    /* invalid argument */
    DBG_E_ADDR = -5401,   /* host/port does not resolve or cannot be bound */
    DBG_E_CLOSED = -5402, /* the client went away */
};
const char *dbg_strerror(int err);

/* ------------------------------------------------------------------------ */
/* The target.  Every method is required unless marked optional; `t` is the
 * ctx given to dbg_stub_create.  Semantics are those of the replay_*
 * function of the same name (replayer.h): positions, stop structs, the
 * direction rules for watchpoints, clamping at both ends.                   */

struct dbg_target_ops {
    uint64_t (*icount)(void *t);
    uint64_t (*end)(void *t);
    int (*get_state)(void *t, struct vmm_cpu_state *s);
    int (*set_state)(void *t, const struct vmm_cpu_state *s);
    /* Guest-virtual addresses; *done bytes moved before the first
     * unmapped one (an error when 0). */
    int (*read_mem)(void *t, uint64_t gva, void *buf, size_t len, size_t *done);
    int (*write_mem)(void *t, uint64_t gva, const void *buf, size_t len,
                     size_t *done);
    int (*goto_icount)(void *t, uint64_t icount);
    int (*step)(void *t, int64_t n, bool honour_breaks, struct replay_stop *st);
    int (*cont)(void *t, bool backward, struct replay_stop *st);
    int (*break_add)(void *t, uint64_t addr);
    int (*break_remove)(void *t, uint64_t addr);
    int (*watch_add)(void *t, uint64_t addr, uint32_t len,
                     enum vcpu_watch_kind kind);
    int (*watch_remove)(void *t, uint64_t addr, uint32_t len,
                        enum vcpu_watch_kind kind);
    int (*events)(void *t, uint64_t first, struct replay_event *ev, size_t n,
                  size_t *got);
    uint64_t (*event_count)(void *t);
    uint64_t (*next_event)(void *t);
    int (*snapshots)(void *t, uint32_t first, struct replay_snapshot *s,
                     size_t n, size_t *got);
    uint32_t (*snapshot_count)(void *t);
    /* Cancels a running step/continue/goto from another thread; the
     * running call returns early (REPLAY_E_INTERRUPTED, or a stop with
     * REPLAY_STOP_INTERRUPTED).  A call that starts afterwards must not be
     * affected (the stub remembers a Ctrl-C that came too early itself). */
    void (*interrupt)(void *t);
    /* Optional: names the target's error codes (replay_strerror). */
    const char *(*strerror)(int err);
    /* Optional: more about the last error (replay_error_detail). */
    const char *(*error_detail)(void *t);
    /* Optional: engine serving the position ("unicorn", "kvm-step"). */
    const char *(*engine)(void *t);
};

/* The adapter over the replayer: ctx is a struct replay *. */
extern const struct dbg_target_ops dbg_replay_ops;

/* ------------------------------------------------------------------------ */
/* The stub.                                                                 */

struct dbg_stub; /* opaque */

/* Largest packet gdb may send us (advertised as PacketSize); longer ones
 * are dropped with an error reply. */
#define DBG_PACKET_MAX 16384

struct dbg_stub_opts {
    /* Log of connections and errors (NULL: silent). */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
    bool log_packets; /* also log every packet in and out */
};

/* Creates a stub driving target ops/t (both borrowed: they must outlive
 * the stub).  opts may be NULL.  Free with dbg_stub_destroy. */
int dbg_stub_create(const struct dbg_target_ops *ops, void *t,
                    const struct dbg_stub_opts *opts, struct dbg_stub **out);
void dbg_stub_destroy(struct dbg_stub *s);

/* The reply to one packet (unframed).  Pointers are owned by the stub and
 * valid until the next dbg_stub_packet or dbg_stub_destroy. */
struct dbg_reply {
    const char *data; /* payload; may hold any byte */
    size_t len;
    const char *console; /* text to show the user first ('O' packets) */
    size_t console_len;
    bool close; /* k or D: close the connection after replying */
    bool noack; /* QStartNoAckMode: no acks after this reply */
};

/* Handles one packet payload (without $, # and checksum; escapes already
 * removed) and produces exactly one reply.  Transport-free: this is what
 * the server calls for every packet, and what unit tests call directly. */
void dbg_stub_packet(struct dbg_stub *s, const void *pkt, size_t len,
                     struct dbg_reply *r);

/* Forgets per-connection state: removes every breakpoint and watchpoint a
 * client set.  The position is kept.  Called by the server between
 * clients. */
void dbg_stub_reset(struct dbg_stub *s);

/* Serves one client on a connected stream socket until it detaches, kills,
 * disconnects or the server is stopped.  Returns 0 after a clean end
 * (D, k), DBG_E_CLOSED when the client vanished, or -errno.  Does not close
 * fd. */
int dbg_stub_serve_fd(struct dbg_stub *s, int fd);

/* ------------------------------------------------------------------------ */
/* The TCP server.                                                           */

struct dbg_server; /* opaque */

#define DBG_DEFAULT_PORT 1234

/* Binds and listens on host:port (host NULL = "127.0.0.1"; port 0 = any
 * free port, see dbg_server_port).  Fails with DBG_E_ADDR (and a message
 * in err, if given, of errlen bytes) when the address does not resolve or
 * is taken. */
int dbg_server_listen(const char *host, uint16_t port, struct dbg_server **out,
                      char *err, size_t errlen);
uint16_t dbg_server_port(const struct dbg_server *srv);

/* Accepts clients one after another and serves each with s; while one is
 * served, further connections are accepted and closed at once.  Returns 0
 * after max_clients clients (0 = no limit) or dbg_server_stop, -errno on a
 * listening socket failure. */
int dbg_server_run(struct dbg_server *srv, struct dbg_stub *s,
                   unsigned max_clients);

/* Makes dbg_server_run return soon, ending the current client (the target
 * is interrupted).  Async-signal-safe; callable from any thread. */
void dbg_server_stop(struct dbg_server *srv);
void dbg_server_close(struct dbg_server *srv);

#endif /* TTVM_DEBUGGER_H */
