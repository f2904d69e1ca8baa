/*
 * store_testlib.h — helpers for the storage unit tests (header-only, all
 * static): scratch directories, file copies, event comparison.
 */
#ifndef TTVM_TESTS_STORE_TESTLIB_H
#define TTVM_TESTS_STORE_TESTLIB_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "storage/store.h"

/* Fails the test with the store's own explanation. */
#define ST_OK(st, expr)                                                        \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        cr_assert_eq(rc_, 0, "%s -> %s: %s", #expr, store_strerror(rc_),       \
                     store_error_detail(st));                                  \
    } while (0)

/* A fresh scratch directory; the trace goes to <dir>/t. */
static inline void st_scratch(char *dir, size_t cap, char *trace, size_t tcap)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, cap, "%s/ttvm-store-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(trace, tcap, "%s/t", dir);
}

static inline int st_rm_one(const char *p, const struct stat *s, int flag,
                            struct FTW *f)
{
    (void)s;
    (void)flag;
    (void)f;
    return remove(p);
}

static inline void st_rm_rf(const char *dir)
{
    nftw(dir, st_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void st_copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY), out;
    cr_assert(in >= 0, "open %s: %s", src, strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(out >= 0, "open %s: %s", dst, strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

static inline int st_event_cmp(const struct store_event *a,
                               const struct store_event *b)
{
    return a->kind != b->kind || a->size != b->size || a->flags != b->flags ||
           a->aux != b->aux || a->addr != b->addr || a->value != b->value ||
           memcmp(a->regs, b->regs, sizeof a->regs);
}

#endif /* TTVM_TESTS_STORE_TESTLIB_H */
