/*
 * kv.c — the LMDB layer.  Three jobs:
 *
 * 1. Survive a damaged data.mdb.  LMDB does not checksum its B-tree pages
 *    and follows page numbers straight into its memory map, so a flipped
 *    byte can send it far outside the file (SIGBUS past the end, SIGSEGV
 *    past the map) or trip one of its internal assertions (which abort()).
 *    Every LMDB call here runs inside guarded(): a thread-local
 *    sigsetjmp target plus SIGSEGV/SIGBUS handlers installed while any
 *    trace is open (the previous handlers are restored after the last
 *    close, and faults outside a guarded region are passed on to them), and
 *    an LMDB assert callback that jumps out the same way.  Values are
 *    copied out of the map inside the guard, and their sizes are checked
 *    before the copy, so nothing outside this file touches mapped memory.
 *    The alternative — validating every B-tree page before use — would mean
 *    reimplementing LMDB's page format; the guard needs no knowledge of it.
 *
 * 2. One MDB_env per trace per process.  LMDB forbids opening an
 *    environment twice in one process (its lock-file logic would reset the
 *    reader table under the first handle), so handles on the same directory
 *    share one kv_env, found by (st_dev, st_ino).  A read-write lock
 *    serialises map resizes (which need no transaction active in the
 *    process) against every access.
 *
 * 3. Pending writes.  Nothing is written until a commit: puts queue in
 *    st->ops (hashed for exact lookups, merged into seeks), and kv_commit
 *    applies them sorted by key in one write transaction that is begun and
 *    committed inside the call.  No transaction spans API calls, so a store
 *    may move between threads, and a commit that hits MDB_MAP_FULL is simply
 *    retried after the map grows: the buffered writes are still here.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/store_int.h"

#define KV_RESIZED 1 /* internal: MDB_MAP_RESIZED, adopt and retry */
#define KV_GROW 2    /* internal: MDB_MAP_FULL, grow and retry */

/* Largest value we accept per database (checked before copying). */
static const size_t db_max_value[DB_COUNT] = {
    [DB_META] = (1u << 30) + 4096,    [DB_EVENTS] = 64u << 20,
    [DB_SNAPS] = 512u << 20,          [DB_PAGEVER] = 64,
    [DB_PAGES] = 2 * STORE_PAGE_SIZE, [DB_INDEX] = 64u << 20,
};

struct kv_env {
    struct kv_env *next;
    dev_t dev;
    ino_t ino;
    int refs;
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    bool rdonly;
    pthread_rwlock_t lock; /* shared: any LMDB use; exclusive: resize */
};

uint64_t store__default_map = STORE_DEFAULT_MAP;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kv_env *registry;

/* ------------------------------------------------------------------------ */
/* The fault guard                                                          */

static __thread sigjmp_buf *guard_jb;
static __thread int guard_signo;
static __thread char guard_assert_msg[160];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static int guard_users;
static struct sigaction old_segv, old_bus;

static void guard_handler(int sig, siginfo_t *si, void *ctx)
{
    sigjmp_buf *jb = guard_jb;
    if (jb) {
        guard_jb = NULL;
        guard_signo = sig;
        siglongjmp(*jb, 1);
    }
    /* Not a fault of ours: hand it to whoever was installed before. */
    const struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, ctx);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    } else {
        /* Default action: re-executing the faulting access kills us. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
    }
}

/* LMDB calls this on a failed internal assertion, then abort()s unless we
 * leave first. */
static void guard_assert(MDB_env *env, const char *msg)
{
    (void)env;
    sigjmp_buf *jb = guard_jb;
    if (jb) {
        snprintf(guard_assert_msg, sizeof guard_assert_msg, "%s", msg);
        guard_jb = NULL;
        guard_signo = 0;
        siglongjmp(*jb, 1);
    }
}

static void guard_install(void)
{
    pthread_mutex_lock(&guard_lock);
    if (guard_users++ == 0) {
        struct sigaction sa = {.sa_sigaction = guard_handler};
        /* SA_NODEFER: leaving by siglongjmp(jb, 0-mask) must not leave the
         * signal blocked, and sigsetjmp(jb, 0) then needs no syscall. */
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
    }
    pthread_mutex_unlock(&guard_lock);
}

static void guard_restore(int sig, const struct sigaction *old)
{
    struct sigaction cur;
    /* Someone installed a handler after us: leave theirs in place. */
    if (sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == guard_handler)
        sigaction(sig, old, NULL);
}

static void guard_remove(void)
{
    pthread_mutex_lock(&guard_lock);
    if (--guard_users == 0) {
        guard_restore(SIGSEGV, &old_segv);
        guard_restore(SIGBUS, &old_bus);
    }
    pthread_mutex_unlock(&guard_lock);
}

/* After a fault: drop whatever LMDB state the interrupted call held. */
static int guard_recover(struct store *st, const char *what)
{
    if (st->rcur) {
        mdb_cursor_close(st->rcur);
        st->rcur = NULL;
    }
    if (st->wtxn) {
        mdb_txn_abort(st->wtxn);
        st->wtxn = NULL;
    }
    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
    }
    if (guard_signo == 0)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: LMDB consistency check failed "
                          "while %s (%s)",
                          what, guard_assert_msg);
    return store_fail(st, STORE_E_CORRUPT,
                      "trace corrupt: invalid %s in data.mdb while %s "
                      "(file damaged or truncated)",
                      guard_signo == SIGBUS ? "page reference past the end"
                                            : "page reference",
                      what);
}

typedef int (*guarded_fn)(struct store *st, void *arg);

/* Runs fn with LMDB faults turned into STORE_E_CORRUPT.  The only
 * sigsetjmp of the module: fn's locals die with the jump, so recovery uses
 * only what st records (cursor, transactions). */
static int guarded(struct store *st, const char *what, guarded_fn fn, void *arg)
{
    sigjmp_buf jb;
    sigjmp_buf *volatile outer = guard_jb;
    if (sigsetjmp(jb, 0)) {
        guard_jb = outer;
        return guard_recover(st, what);
    }
    guard_jb = &jb;
    int rc = fn(st, arg);
    guard_jb = outer;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

/* LMDB's own codes (and errno values, which it returns positive). */
static bool is_mdb_rc(int rc)
{
    return rc > 0 || (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE);
}

static int lmdb_err(struct store *st, int rc, const char *what)
{
    switch (rc) {
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
    case MDB_CURSOR_FULL:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_BAD_VALSIZE:
    case MDB_PANIC:
        return store_fail(st, STORE_E_CORRUPT, "trace corrupt: %s: %s", what,
                          mdb_strerror(rc));
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return store_fail(st, STORE_E_FULL, "%s: %s", what, mdb_strerror(rc));
    default:
        break;
    }
    if (rc > 0)
        return store_fail(st, -rc, "%s: %s", what, strerror(rc));
    return store_fail(st, STORE_E_LMDB, "%s: %s", what, mdb_strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* Environments                                                             */

struct open_args {
    const char *path;
    unsigned flags;
    bool create;
    struct kv_env *e;
};

static int open_dbis(struct store *st, struct open_args *a)
{
    static const char *const names[DB_COUNT] = {
        "meta", "events", "snapshots", "pagever", "pages", "index",
    };
    MDB_txn *txn;
    int rc = mdb_txn_begin(a->e->env, NULL, a->create ? 0 : MDB_RDONLY, &txn);
    if (rc)
        return lmdb_err(st, rc, "opening the trace");
    st->wtxn = txn; /* aborted by guard_recover on a fault */
    for (int i = 0; i < DB_COUNT && !rc; i++) {
        rc = mdb_dbi_open(txn, names[i], a->create ? MDB_CREATE : 0,
                          &a->e->dbi[i]);
        if (rc == MDB_NOTFOUND && i == DB_META)
            rc = store_fail(st, STORE_E_NOTTRACE,
                            "%s: not a ttvm trace (no 'meta' database)",
                            a->path);
        else if (rc == MDB_NOTFOUND)
            rc = store_fail(st, STORE_E_CORRUPT,
                            "trace corrupt: database '%s' missing", names[i]);
        else if (rc)
            rc = lmdb_err(st, rc, "opening the databases");
    }
    st->wtxn = NULL;
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? lmdb_err(st, rc, "opening the databases") : 0;
}

/* A file shorter than its last commit says was cut: reading its records
 * would find some missing (LMDB maps what is there) and call the trace
 * foreign, or fault.  Name it for what it is. */
static int check_length(struct store *st, const struct open_args *a)
{
    MDB_envinfo info;
    MDB_stat ms;
    char f[4096];
    struct stat s;
    snprintf(f, sizeof f, "%s/data.mdb", a->path);
    if (mdb_env_info(a->e->env, &info) || mdb_env_stat(a->e->env, &ms) ||
        stat(f, &s) < 0)
        return 0; /* nothing to compare with: let the reads decide */
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)s.st_size >= need)
        return 0;
    return store_fail(st, STORE_E_CORRUPT,
                      "trace corrupt: data.mdb truncated to %lld bytes (its "
                      "last commit needs %llu)",
                      (long long)s.st_size, (unsigned long long)need);
}

static int open_body(struct store *st, void *arg)
{
    struct open_args *a = arg;
    int rc = mdb_env_open(a->e->env, a->path, a->flags, 0644);
    if (rc == ENOENT)
        return store_fail(st, STORE_E_NOTTRACE,
                          "%s: not a ttvm trace (no data.mdb)", a->path);
    if (rc == MDB_INVALID)
        return store_fail(st, STORE_E_CORRUPT,
                          "%s: data.mdb header damaged (not a valid LMDB "
                          "file)",
                          a->path);
    if (rc == MDB_VERSION_MISMATCH)
        return store_fail(st, STORE_E_CORRUPT,
                          "%s: data.mdb has an unknown LMDB version", a->path);
    if (rc)
        return lmdb_err(st, rc, "opening data.mdb");
    if (!a->create && (rc = check_length(st, a)))
        return rc;
    if (!(a->flags & MDB_NOLOCK))
        mdb_reader_check(a->e->env, NULL); /* slots of killed processes */
    return open_dbis(st, a);
}

static int env_new(struct store *st, struct open_args *a, uint64_t map_size)
{
    int rc = mdb_env_create(&a->e->env);
    if (rc)
        return lmdb_err(st, rc, "mdb_env_create");
    mdb_env_set_maxdbs(a->e->env, DB_COUNT + 2);
    mdb_env_set_mapsize(a->e->env, map_size);
    mdb_env_set_assert(a->e->env, guard_assert);
    rc = guarded(st, "opening data.mdb", open_body, a);
    if (rc) {
        mdb_env_close(a->e->env);
        a->e->env = NULL;
    }
    return rc;
}

/* Read-only media: no lock file can be made, so read without one. */
static bool want_nolock_retry(int rc, unsigned flags)
{
    return (flags & MDB_RDONLY) && !(flags & MDB_NOLOCK) &&
           (rc == -EACCES || rc == -EROFS);
}

static int env_check_file(struct store *st, const char *path)
{
    char f[4096];
    struct stat s;
    snprintf(f, sizeof f, "%s/data.mdb", path);
    if (stat(f, &s) < 0)
        return store_fail(st, STORE_E_NOTTRACE,
                          "%s: not a ttvm trace (no data.mdb)", path);
    if (!S_ISREG(s.st_mode))
        return store_fail(st, STORE_E_NOTTRACE,
                          "%s: not a ttvm trace (data.mdb is not a file)",
                          path);
    if (s.st_size < 2 * 4096)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: data.mdb truncated to %lld bytes",
                          (long long)s.st_size);
    return 0;
}

static struct kv_env *registry_find(dev_t dev, ino_t ino)
{
    for (struct kv_env *e = registry; e; e = e->next)
        if (e->dev == dev && e->ino == ino)
            return e;
    return NULL;
}

static int env_share(struct store *st, struct kv_env *e, bool create,
                     bool writable)
{
    if (create)
        return store_fail(st, STORE_E_EXISTS,
                          "%s: trace is open in this process", st->path);
    if (writable && e->rdonly)
        return store_fail(st, STORE_E_ARG,
                          "%s: trace already open read-only in this "
                          "process; open it writable first",
                          st->path);
    e->refs++;
    st->env = e;
    return 0;
}

static int env_fresh(struct store *st, const struct stat *s, bool create,
                     bool writable, uint64_t map_size)
{
    struct kv_env *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    struct open_args a = {.path = st->path, .create = create, .e = e};
    a.flags = MDB_NOTLS | (writable ? MDB_NOMETASYNC : MDB_RDONLY);
    int rc = create ? 0 : env_check_file(st, st->path);
    if (!rc)
        rc = env_new(st, &a, map_size ? map_size : store__default_map);
    if (rc && want_nolock_retry(rc, a.flags)) {
        a.flags |= MDB_NOLOCK;
        rc = env_new(st, &a, map_size ? map_size : store__default_map);
    }
    if (rc) {
        free(e);
        return rc;
    }
    e->dev = s->st_dev;
    e->ino = s->st_ino;
    e->refs = 1;
    e->rdonly = !writable;
    pthread_rwlock_init(&e->lock, NULL);
    e->next = registry;
    registry = e;
    st->env = e;
    return 0;
}

int kv_env_open(struct store *st, const char *path, bool create, bool writable,
                uint64_t map_size)
{
    struct stat s;
    if (stat(path, &s) < 0)
        return store_fail(st, STORE_E_NOTTRACE, "%s: %s", path,
                          strerror(errno));
    if (!S_ISDIR(s.st_mode))
        return store_fail(st, STORE_E_NOTTRACE,
                          "%s: not a ttvm trace (not a directory)", path);
    guard_install();
    pthread_mutex_lock(&registry_lock);
    struct kv_env *e = registry_find(s.st_dev, s.st_ino);
    int rc = e ? env_share(st, e, create, writable)
               : env_fresh(st, &s, create, writable, map_size);
    pthread_mutex_unlock(&registry_lock);
    if (rc)
        guard_remove();
    return rc;
}

static int sync_body(struct store *st, void *arg)
{
    (void)arg;
    return mdb_env_sync(st->env->env, 1) ? -EIO : 0;
}

void kv_env_close(struct store *st)
{
    struct kv_env *e = st->env;
    if (!e)
        return;
    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
    }
    pthread_mutex_lock(&registry_lock);
    if (--e->refs == 0) {
        for (struct kv_env **p = &registry; *p; p = &(*p)->next)
            if (*p == e) {
                *p = e->next;
                break;
            }
        if (!e->rdonly)
            guarded(st, "syncing data.mdb", sync_body, NULL);
        mdb_env_close(e->env);
        pthread_rwlock_destroy(&e->lock);
        free(e);
    }
    pthread_mutex_unlock(&registry_lock);
    st->env = NULL;
    guard_remove();
}

/* Another process grew the map: adopt its size (no txn may be active in
 * this process, hence the exclusive lock). */
static int env_adopt_size(struct store *st)
{
    pthread_rwlock_wrlock(&st->env->lock);
    int rc = mdb_env_set_mapsize(st->env->env, 0);
    pthread_rwlock_unlock(&st->env->lock);
    return rc ? store_fail(st, STORE_E_CORRUPT,
                           "trace corrupt: cannot map data.mdb (%s)",
                           mdb_strerror(rc))
              : 0;
}

static int env_grow(struct store *st)
{
    MDB_envinfo info;
    if (st->map_limit)
        return store_fail(st, STORE_E_FULL,
                          "trace full: map size limit of %llu bytes reached",
                          (unsigned long long)st->map_limit);
    pthread_rwlock_wrlock(&st->env->lock);
    mdb_env_info(st->env->env, &info);
    size_t want = info.me_mapsize * 2;
    int rc = want > info.me_mapsize ? mdb_env_set_mapsize(st->env->env, want)
                                    : ENOMEM;
    pthread_rwlock_unlock(&st->env->lock);
    if (rc)
        return store_fail(st, STORE_E_FULL,
                          "trace full: cannot grow the map beyond %zu "
                          "bytes (%s)",
                          info.me_mapsize, mdb_strerror(rc));
    return 0;
}

bool kv_env_in_use(const char *path)
{
    struct stat s;
    if (stat(path, &s) < 0)
        return false;
    pthread_mutex_lock(&registry_lock);
    bool in_use = registry_find(s.st_dev, s.st_ino) != NULL;
    pthread_mutex_unlock(&registry_lock);
    return in_use;
}

int kv_sync(struct store *st)
{
    pthread_rwlock_rdlock(&st->env->lock);
    int rc = guarded(st, "syncing data.mdb", sync_body, NULL);
    pthread_rwlock_unlock(&st->env->lock);
    return rc ? store_fail(st, rc, "syncing data.mdb failed") : 0;
}

uint64_t kv_file_bytes(struct store *st)
{
    char f[4096];
    struct stat s;
    snprintf(f, sizeof f, "%s/data.mdb", st->path);
    return stat(f, &s) == 0 ? (uint64_t)s.st_size : 0;
}

/* ------------------------------------------------------------------------ */
/* Pending writes                                                           */

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static size_t op_slot_hash(int db, const void *key, size_t klen)
{
    uint8_t tag = (uint8_t)db;
    return crc32c(crc32c(0, &tag, 1), key, klen) * 2654435761u;
}

static struct kv_op *pend_find(struct store *st, int db, const void *key,
                               size_t klen, size_t *slot)
{
    if (!st->optab_size)
        return NULL;
    size_t mask = st->optab_size - 1;
    for (size_t i = op_slot_hash(db, key, klen) & mask;; i = (i + 1) & mask) {
        if (slot)
            *slot = i;
        if (!st->optab[i])
            return NULL;
        struct kv_op *o = &st->ops[st->optab[i] - 1];
        if (o->db == db && o->klen == klen && !memcmp(o->key, key, klen))
            return o;
    }
}

static int optab_rebuild(struct store *st, size_t size)
{
    uint32_t *t = calloc(size, sizeof *t);
    if (!t)
        return -ENOMEM;
    free(st->optab);
    st->optab = t;
    st->optab_size = size;
    for (size_t i = 0; i < st->nops; i++) {
        size_t slot;
        struct kv_op *o = &st->ops[i];
        pend_find(st, o->db, o->key, o->klen, &slot);
        t[slot] = (uint32_t)(i + 1);
    }
    return 0;
}

static int pend_grow(struct store *st)
{
    void *ops = st->ops;
    int rc = array_grow(&ops, &st->opcap, st->nops, sizeof *st->ops, 64);
    st->ops = ops;
    if (rc)
        return rc;
    if ((st->nops + 1) * 2 > st->optab_size)
        return optab_rebuild(st, st->optab_size ? st->optab_size * 2 : 128);
    return 0;
}

static int pend_add(struct store *st, int db, const void *key, size_t klen,
                    uint8_t *val, size_t vlen, bool del)
{
    size_t slot;
    if (klen > KV_KEY_MAX || klen == 0) {
        free(val);
        return store_fail(st, STORE_E_ARG, "bad key length %zu", klen);
    }
    struct kv_op *o = pend_find(st, db, key, klen, &slot);
    if (!o) {
        int rc = pend_grow(st);
        if (rc) {
            free(val);
            return rc;
        }
        pend_find(st, db, key, klen, &slot);
        o = &st->ops[st->nops++];
        memset(o, 0, sizeof *o);
        o->db = (uint8_t)db;
        o->klen = (uint8_t)klen;
        memcpy(o->key, key, klen);
        st->optab[slot] = (uint32_t)st->nops;
        st->npend_db[db]++;
    } else if (db == DB_PAGES) {
        st->pend_page_bytes -= o->vlen;
    }
    free(o->val);
    o->val = val;
    o->vlen = vlen;
    o->del = del;
    if (db == DB_PAGES)
        st->pend_page_bytes += vlen;
    return 0;
}

int kv_put(struct store *st, int db, const void *key, size_t klen, uint8_t *val,
           size_t vlen)
{
    return pend_add(st, db, key, klen, val, vlen, false);
}

int kv_del(struct store *st, int db, const void *key, size_t klen)
{
    return pend_add(st, db, key, klen, NULL, 0, true);
}

int kv_drop_if(struct store *st, bool (*drop)(const struct kv_op *, void *),
               void *arg)
{
    size_t j = 0;
    for (size_t i = 0; i < st->nops; i++) {
        struct kv_op *o = &st->ops[i];
        if (drop(o, arg)) {
            if (o->db == DB_PAGES)
                st->pend_page_bytes -= o->vlen;
            free(o->val);
            st->npend_db[o->db]--;
        } else {
            st->ops[j++] = *o;
        }
    }
    st->nops = j;
    return optab_rebuild(st, st->optab_size ? st->optab_size : 128);
}

static bool op_in_mask(const struct kv_op *o, void *arg)
{
    return *(unsigned *)arg & (1u << o->db);
}

/* Drops the ops of the databases in mask (after they were committed). */
static int pend_drop(struct store *st, unsigned mask)
{
    return kv_drop_if(st, op_in_mask, &mask);
}

void kv_pending_free(struct store *st)
{
    for (size_t i = 0; i < st->nops; i++)
        free(st->ops[i].val);
    free(st->ops);
    free(st->optab);
    st->ops = NULL;
    st->optab = NULL;
    st->nops = st->opcap = st->optab_size = 0;
    memset(st->npend_db, 0, sizeof st->npend_db);
    st->pend_page_bytes = 0;
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */

struct read_args {
    int db;
    const uint8_t *key;
    size_t klen;
    bool seek;  /* largest key <= key, else exact */
    bool next;  /* seek: also copy the entry SET_RANGE landed on */
    bool found; /* out */
};

static int copy_out(struct store *st, struct buf *b, const MDB_val *v,
                    size_t max)
{
    if (v->mv_size > max)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: implausible %zu-byte record",
                          v->mv_size);
    int rc = buf_reserve(b, v->mv_size + 1);
    if (rc)
        return rc;
    memcpy(b->p, v->mv_data, v->mv_size); /* may fault: inside the guard */
    b->len = v->mv_size;
    return 0;
}

static int read_exact(struct store *st, struct read_args *a, MDB_dbi dbi)
{
    MDB_val k = {a->klen, (void *)a->key}, v;
    int rc = mdb_get(st->rtxn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return lmdb_err(st, rc, "reading the trace");
    a->found = true;
    return copy_out(st, &st->vbuf, &v, db_max_value[a->db]);
}

/* MDB_SET_RANGE, then one MDB_PREV unless it landed exactly. */
static int read_seek(struct store *st, struct read_args *a, MDB_dbi dbi)
{
    MDB_val k = {a->klen, (void *)a->key}, v;
    int rc = mdb_cursor_open(st->rtxn, dbi, &st->rcur);
    if (rc)
        return lmdb_err(st, rc, "reading the trace");
    st->has_next = false;
    rc = mdb_cursor_get(st->rcur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(st->rcur, &k, &v, MDB_LAST);
    } else if (rc == 0 && key_cmp(k.mv_data, k.mv_size, a->key, a->klen) > 0) {
        if (a->next && (rc = copy_out(st, &st->nkbuf, &k, KV_KEY_MAX)) == 0 &&
            (rc = copy_out(st, &st->nvbuf, &v, db_max_value[a->db])) == 0)
            st->has_next = true;
        if (rc == 0)
            rc = mdb_cursor_get(st->rcur, &k, &v, MDB_PREV);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    else if (rc)
        rc = lmdb_err(st, rc, "reading the trace");
    else if (k.mv_size > KV_KEY_MAX ||
             key_cmp(k.mv_data, k.mv_size, a->key, a->klen) > 0)
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: %s keys out "
                        "of order",
                        db_name(a->db)); /* damaged B-tree */
    else if ((rc = copy_out(st, &st->kbuf, &k, KV_KEY_MAX)) == 0 &&
             (rc = copy_out(st, &st->vbuf, &v, db_max_value[a->db])) == 0)
        a->found = true;
    mdb_cursor_close(st->rcur);
    st->rcur = NULL;
    return rc;
}

static int read_body(struct store *st, void *arg)
{
    struct read_args *a = arg;
    int rc = st->rtxn
                 ? mdb_txn_renew(st->rtxn)
                 : mdb_txn_begin(st->env->env, NULL, MDB_RDONLY, &st->rtxn);
    if (rc == MDB_MAP_RESIZED) {
        if (st->rtxn) {
            mdb_txn_abort(st->rtxn);
            st->rtxn = NULL;
        }
        return KV_RESIZED;
    }
    if (rc) {
        if (st->rtxn) {
            mdb_txn_abort(st->rtxn);
            st->rtxn = NULL;
        }
        return lmdb_err(st, rc, "starting a read");
    }
    MDB_dbi dbi = st->env->dbi[a->db];
    rc = a->seek ? read_seek(st, a, dbi) : read_exact(st, a, dbi);
    mdb_txn_reset(st->rtxn);
    return rc;
}

static int kv_read(struct store *st, struct read_args *a)
{
    int rc = KV_RESIZED;
    for (int tries = 0; rc == KV_RESIZED && tries < 3; tries++) {
        if (tries && (rc = env_adopt_size(st)))
            break;
        pthread_rwlock_rdlock(&st->env->lock);
        rc = guarded(st, "reading the trace", read_body, a);
        pthread_rwlock_unlock(&st->env->lock);
    }
    if (rc == KV_RESIZED)
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: map size keeps changing");
    return rc;
}

int kv_get(struct store *st, int db, const void *key, size_t klen)
{
    struct kv_op *o = pend_find(st, db, key, klen, NULL);
    if (o) {
        if (o->del)
            return STORE_E_NOTFOUND;
        int rc = buf_reserve(&st->vbuf, o->vlen + 1);
        if (rc)
            return rc;
        memcpy(st->vbuf.p, o->val, o->vlen);
        st->vbuf.len = o->vlen;
        return 0;
    }
    struct read_args a = {.db = db, .key = key, .klen = klen};
    int rc = kv_read(st, &a);
    return rc ? rc : a.found ? 0 : STORE_E_NOTFOUND;
}

/* The largest pending key <= key in db (pending deletes never outlive a
 * call, see index.c, so only puts are here between calls). */
static struct kv_op *pend_seek(struct store *st, int db, const uint8_t *key,
                               size_t klen)
{
    struct kv_op *best = NULL;
    if (!st->npend_db[db])
        return NULL;
    for (size_t i = 0; i < st->nops; i++) {
        struct kv_op *o = &st->ops[i];
        if (o->db != db || o->del || key_cmp(o->key, o->klen, key, klen) > 0)
            continue;
        if (!best || key_cmp(o->key, o->klen, best->key, best->klen) > 0)
            best = o;
    }
    return best;
}

static int seek_le(struct store *st, int db, const void *key, size_t klen,
                   bool next)
{
    struct read_args a = {
        .db = db, .key = key, .klen = klen, .seek = 1, .next = next};
    int rc = kv_read(st, &a);
    if (rc)
        return rc;
    struct kv_op *o = pend_seek(st, db, key, klen);
    if (o &&
        (!a.found || key_cmp(o->key, o->klen, st->kbuf.p, st->kbuf.len) >= 0)) {
        if ((rc = buf_reserve(&st->kbuf, o->klen)) ||
            (rc = buf_reserve(&st->vbuf, o->vlen + 1)))
            return rc;
        memcpy(st->kbuf.p, o->key, o->klen);
        st->kbuf.len = o->klen;
        memcpy(st->vbuf.p, o->val, o->vlen);
        st->vbuf.len = o->vlen;
        st->has_next = false;
        return 0;
    }
    return a.found ? 0 : STORE_E_NOTFOUND;
}

int kv_seek_le(struct store *st, int db, const void *key, size_t klen)
{
    return seek_le(st, db, key, klen, false);
}

int kv_seek_le_next(struct store *st, int db, const void *key, size_t klen)
{
    return seek_le(st, db, key, klen, true);
}

/* ------------------------------------------------------------------------ */
/* Commit                                                                   */

struct commit_args {
    unsigned mask;
    size_t *order, n;     /* op indices sorted by (db, key) */
    struct stats_rec add; /* what this transaction adds to the stats */
};

static int op_order(const void *pa, const void *pb, void *arg)
{
    const struct store *st = arg;
    const struct kv_op *a = &st->ops[*(const size_t *)pa];
    const struct kv_op *b = &st->ops[*(const size_t *)pb];
    if (a->db != b->db)
        return a->db - b->db;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

static int put_one(struct store *st, struct commit_args *c, struct kv_op *o)
{
    MDB_dbi dbi = st->env->dbi[o->db];
    MDB_val k = {o->klen, o->key}, v = {o->vlen, o->val}, old;
    if (o->del) {
        int rc = mdb_del(st->wtxn, dbi, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (o->db == DB_PAGES) {
        /* Content-addressed: an existing key already holds this page. */
        int rc = mdb_put(st->wtxn, dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST)
            return 0;
        if (rc == 0) {
            c->add.unique_pages++;
            c->add.page_bytes_stored += o->vlen;
        }
        return rc;
    }
    if (o->db == DB_EVENTS) {
        int rc = mdb_get(st->wtxn, dbi, &k, &old);
        if (rc == 0)
            c->add.event_bytes -= old.mv_size;
        else if (rc != MDB_NOTFOUND)
            return rc;
        c->add.event_bytes += o->vlen;
    }
    return mdb_put(st->wtxn, dbi, &k, &v, 0);
}

static const char stats_key[] = "store.stats";

static int put_stats(struct store *st, struct commit_args *c)
{
    struct stats_rec s = {0};
    MDB_dbi dbi = st->env->dbi[DB_META];
    MDB_val k = {sizeof stats_key - 1, (void *)stats_key}, v;
    int rc = mdb_get(st->wtxn, dbi, &k, &v);
    if (rc == 0)
        rc = stats_decode(st, v.mv_data, v.mv_size, &s);
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    else
        return lmdb_err(st, rc, "reading the statistics");
    if (rc)
        return rc;
    stats_add(&s, &c->add);
    uint8_t *val;
    size_t vlen;
    if ((rc = stats_encode(st, &s, &val, &vlen)))
        return rc;
    v.mv_size = vlen;
    v.mv_data = val;
    rc = mdb_put(st->wtxn, dbi, &k, &v, 0); /* raw code: MAP_FULL grows */
    free(val);
    return rc;
}

static int commit_fail(struct store *st, int rc)
{
    mdb_txn_abort(st->wtxn);
    st->wtxn = NULL;
    if (rc == MDB_MAP_FULL)
        return KV_GROW;
    return is_mdb_rc(rc) ? lmdb_err(st, rc, "writing the trace") : rc;
}

static int commit_body(struct store *st, void *arg)
{
    struct commit_args *c = arg;
    struct stats_rec add = c->add; /* restored if we must retry */
    int rc = mdb_txn_begin(st->env->env, NULL, 0, &st->wtxn);
    if (rc == MDB_MAP_RESIZED)
        return KV_RESIZED;
    if (rc)
        return lmdb_err(st, rc, "starting a write");
    for (size_t i = 0; i < c->n && !rc; i++)
        rc = put_one(st, c, &st->ops[c->order[i]]);
    if (!rc)
        rc = put_stats(st, c);
    if (!rc) {
        rc = mdb_txn_commit(st->wtxn); /* frees the txn either way */
        st->wtxn = NULL;
        if (rc == MDB_MAP_FULL)
            rc = KV_GROW;
        else if (rc)
            rc = lmdb_err(st, rc, "committing");
    } else {
        rc = commit_fail(st, rc);
    }
    if (rc)
        c->add = add;
    return rc;
}

static int commit_order(struct store *st, struct commit_args *c)
{
    c->order = malloc((st->nops ? st->nops : 1) * sizeof *c->order);
    if (!c->order)
        return -ENOMEM;
    c->n = 0;
    for (size_t i = 0; i < st->nops; i++)
        if (c->mask & (1u << st->ops[i].db))
            c->order[c->n++] = i;
    qsort_r(c->order, c->n, sizeof *c->order, op_order, st);
    return 0;
}

static bool stats_zero(const struct stats_rec *s)
{
    static const struct stats_rec zero;
    return !memcmp(s, &zero, sizeof zero);
}

/* One attempt per loop; a resized or full map is dealt with outside the
 * transaction, then the same pending writes are applied again. */
int kv_commit(struct store *st, unsigned mask)
{
    struct commit_args c = {.mask = mask};
    bool full = mask == (1u << DB_COUNT) - 1;
    if (full)
        c.add = st->delta;
    int rc = commit_order(st, &c);
    if (rc || (c.n == 0 && stats_zero(&c.add))) {
        free(c.order);
        return rc;
    }
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&st->env->lock);
        rc = guarded(st, "writing the trace", commit_body, &c);
        pthread_rwlock_unlock(&st->env->lock);
        if (rc == KV_RESIZED && tries < 40)
            rc = env_adopt_size(st);
        else if (rc == KV_GROW && tries < 40)
            rc = env_grow(st);
        else
            break;
        if (rc)
            break;
    }
    free(c.order);
    if (rc == KV_RESIZED || rc == KV_GROW)
        rc = store_fail(st, STORE_E_FULL, "trace full: map keeps filling");
    if (rc)
        return rc;
    if (full)
        memset(&st->delta, 0, sizeof st->delta);
    return pend_drop(st, mask);
}

int store__raw_put(struct store *st, int db, const void *key, size_t klen,
                   const void *val, size_t vlen)
{
    uint8_t *v = malloc(vlen ? vlen : 1);
    if (!v)
        return -ENOMEM;
    memcpy(v, val, vlen);
    int rc = kv_put(st, db, key, klen, v, vlen);
    return rc ? rc : kv_commit(st, (1u << DB_COUNT) - 1);
}
