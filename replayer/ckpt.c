/*
 * ckpt.c — in-memory checkpoints (rr's idea): states kept while the replay
 * re-executes, so that the next step backwards restores one a short way
 * back instead of a snapshot far away.
 *
 * A checkpoint holds the CPU state and the contents of its interval's
 * write set (the only pages that can differ from the interval's recorded
 * snapshot, replayer_int.h).  Contents are shared: a page equal to the
 * same page of a neighbouring checkpoint is taken by reference without
 * hashing, any other is looked up by content (hash, then memcmp), so a
 * hundred checkpoints of a loop that writes two pages cost two pages each.
 * The pool is bounded in bytes; the least recently used checkpoint goes
 * first.  No guest or vCPU here: unit-testable on its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"

#define DEFAULT_BUDGET (256ull << 20)
#define TAB_MIN 1024

struct cp_page {
    uint64_t hash;
    uint32_t refs;
    struct cp_page *next; /* hash chain */
    uint8_t data[RP_PAGE];
};

struct cp_pool {
    uint64_t budget, bytes, clock;
    struct cp **cps; /* ascending icount */
    size_t n, cap;
    struct cp_page **tab;
    size_t tab_size, unique;
};

static uint64_t page_hash(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t a = 0x9e3779b97f4a7c15ull, b = 0xc2b2ae3d27d4eb4full;
    for (size_t i = 0; i < RP_PAGE / 8; i += 2) {
        a = (a ^ w[i]) * 0xff51afd7ed558ccdull;
        b = (b ^ w[i + 1]) * 0xc4ceb9fe1a85ec53ull;
        a ^= a >> 29;
        b ^= b >> 31;
    }
    return a ^ (b * 0x94d049bb133111ebull);
}

int cp_pool_create(uint64_t budget, struct cp_pool **out)
{
    struct cp_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->budget = budget ? budget : DEFAULT_BUDGET;
    p->tab_size = TAB_MIN;
    p->tab = calloc(p->tab_size, sizeof *p->tab);
    if (!p->tab) {
        free(p);
        return -ENOMEM;
    }
    *out = p;
    return 0;
}

/* ---- shared pages ---- */

static int tab_grow(struct cp_pool *p)
{
    size_t size = p->tab_size * 2;
    struct cp_page **t = calloc(size, sizeof *t);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < p->tab_size; i++)
        for (struct cp_page *g = p->tab[i], *next; g; g = next) {
            next = g->next;
            g->next = t[g->hash & (size - 1)];
            t[g->hash & (size - 1)] = g;
        }
    free(p->tab);
    p->tab = t;
    p->tab_size = size;
    return 0;
}

static struct cp_page *page_intern(struct cp_pool *p, const uint8_t *src)
{
    uint64_t h = page_hash(src);
    for (struct cp_page *g = p->tab[h & (p->tab_size - 1)]; g; g = g->next)
        if (g->hash == h && !memcmp(g->data, src, RP_PAGE)) {
            g->refs++;
            return g;
        }
    if (p->unique >= p->tab_size && tab_grow(p))
        return NULL;
    struct cp_page *g = malloc(sizeof *g);
    if (!g)
        return NULL;
    g->hash = h;
    g->refs = 1;
    memcpy(g->data, src, RP_PAGE);
    g->next = p->tab[h & (p->tab_size - 1)];
    p->tab[h & (p->tab_size - 1)] = g;
    p->unique++;
    p->bytes += sizeof *g;
    return g;
}

static void page_release(struct cp_pool *p, struct cp_page *g)
{
    if (--g->refs)
        return;
    struct cp_page **pp = &p->tab[g->hash & (p->tab_size - 1)];
    while (*pp != g)
        pp = &(*pp)->next;
    *pp = g->next;
    p->unique--;
    p->bytes -= sizeof *g;
    free(g);
}

/* ---- checkpoints ---- */

static void cp_free(struct cp_pool *p, struct cp *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->pages[i])
            page_release(p, c->pages[i]);
    p->bytes -= c->bytes;
    free(c->gfns);
    free(c->pages);
    free(c);
}

static void remove_at(struct cp_pool *p, size_t i)
{
    cp_free(p, p->cps[i]);
    memmove(&p->cps[i], &p->cps[i + 1], (p->n - i - 1) * sizeof *p->cps);
    p->n--;
}

void cp_pool_destroy(struct cp_pool *p)
{
    if (!p)
        return;
    while (p->n)
        remove_at(p, p->n - 1);
    free(p->cps);
    free(p->tab);
    free(p);
}

/* First index whose icount is >= icount. */
static size_t lower_bound(const struct cp_pool *p, uint64_t icount)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->cps[mid]->icount < icount)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const uint8_t *cp_page(const struct cp *c, uint64_t gfn)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->gfns[mid] < gfn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->gfns[lo] == gfn ? c->pages[lo]->data : NULL;
}

/* Fills c's pages from ram (by gfn) or pages (in order), sharing what
 * equals like's. */
static int fill_pages(struct cp_pool *p, struct cp *c, const uint8_t *ram,
                      const uint8_t *pages, const struct cp *like)
{
    size_t j = 0;
    for (size_t i = 0; i < c->n; i++) {
        const uint8_t *src = pages ? pages + i * RP_PAGE
                                   : ram + c->gfns[i] * RP_PAGE;
        while (like && j < like->n && like->gfns[j] < c->gfns[i])
            j++;
        if (like && j < like->n && like->gfns[j] == c->gfns[i] &&
            !memcmp(like->pages[j]->data, src, RP_PAGE)) {
            c->pages[i] = like->pages[j];
            c->pages[i]->refs++;
            continue;
        }
        if (!(c->pages[i] = page_intern(p, src)))
            return -ENOMEM;
    }
    return 0;
}

static void evict(struct cp_pool *p, const struct cp *keep)
{
    while (p->bytes > p->budget && p->n > 1) {
        size_t victim = SIZE_MAX;
        for (size_t i = 0; i < p->n; i++)
            if (p->cps[i] != keep &&
                (victim == SIZE_MAX || p->cps[i]->used < p->cps[victim]->used))
                victim = i;
        remove_at(p, victim);
    }
}

int cp_add(struct cp_pool *p, uint64_t icount, uint64_t ev_next,
           uint32_t interval, const struct vmm_cpu_state *cpu,
           const uint64_t *gfns, size_t n, const uint8_t *ram,
           const uint8_t *pages, const struct cp *like, struct cp **out)
{
    size_t at = lower_bound(p, icount);
    if (at < p->n && p->cps[at]->icount == icount) {
        if (p->cps[at] == like)
            like = NULL;
        remove_at(p, at);
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        struct cp **a = realloc(p->cps, cap * sizeof *a);
        if (!a)
            return -ENOMEM;
        p->cps = a;
        p->cap = cap;
    }
    struct cp *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->icount = icount;
    c->ev_next = ev_next;
    c->interval = interval;
    c->cpu = *cpu;
    c->n = n;
    c->gfns = malloc((n ? n : 1) * sizeof *c->gfns);
    c->pages = calloc(n ? n : 1, sizeof *c->pages);
    c->bytes = sizeof *c + n * (sizeof *c->gfns + sizeof *c->pages);
    p->bytes += c->bytes;
    int rc = c->gfns && c->pages ? 0 : -ENOMEM;
    if (!rc) {
        memcpy(c->gfns, gfns, n * sizeof *gfns);
        rc = fill_pages(p, c, ram, pages, like);
    }
    if (rc) {
        cp_free(p, c);
        return rc;
    }
    memmove(&p->cps[at + 1], &p->cps[at], (p->n - at) * sizeof *p->cps);
    p->cps[at] = c;
    p->n++;
    cp_touch(p, c);
    evict(p, c);
    *out = c;
    return 0;
}

void cp_touch(struct cp_pool *p, struct cp *c)
{
    c->used = ++p->clock;
}

struct cp *cp_find_le(struct cp_pool *p, uint64_t icount)
{
    size_t at = lower_bound(p, icount);
    if (at < p->n && p->cps[at]->icount == icount)
        at++;
    if (at == 0)
        return NULL;
    struct cp *c = p->cps[at - 1];
    cp_touch(p, c);
    return c;
}

struct cp *cp_find(struct cp_pool *p, uint64_t icount)
{
    size_t at = lower_bound(p, icount);
    return at < p->n && p->cps[at]->icount == icount ? p->cps[at] : NULL;
}

void cp_drop_range(struct cp_pool *p, uint64_t lo, uint64_t hi)
{
    size_t at = lower_bound(p, lo);
    while (at < p->n && p->cps[at]->icount < hi)
        remove_at(p, at);
}

struct cp *cp_nth(const struct cp_pool *p, size_t i)
{
    return i < p->n ? p->cps[i] : NULL;
}

size_t cp_count(const struct cp_pool *p)
{
    return p->n;
}

uint64_t cp_bytes(const struct cp_pool *p)
{
    return p->bytes;
}

size_t cp_unique_pages(const struct cp_pool *p)
{
    return p->unique;
}
