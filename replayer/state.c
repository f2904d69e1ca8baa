/*
 * state.c — the state at the current position as the debugger sees it:
 * registers and guest-virtual memory (read and written), and the lists of
 * breakpoints and watchpoints.  Writes change only this position: the
 * state before them is kept (restore.c) and put back when the position
 * changes.
 */
#include <errno.h>
#include <string.h>

#include "replayer/replayer_int.h"

int replay_get_state(struct replay *r, struct vmm_cpu_state *s)
{
    int rc = vcpu_get_state(r->cpu, s);
    return rc ? rp_fail(r, rc, "reading the state: %s", vmm_strerror(rc))
              : 0;
}

int replay_set_state(struct replay *r, const struct vmm_cpu_state *s)
{
    if (!s || s->version != VMM_STATE_VERSION || s->size != sizeof *s)
        return rp_fail(r, REPLAY_E_ARG, "bad CPU state");
    int rc = rp_user_save_cpu(r);
    if (rc)
        return rc;
    rc = vcpu_set_state(r->cpu, s);
    vcpu_set_icount(r->cpu, r->pos);
    if (rc == VMM_E_PAGING)
        return rp_fail(r, REPLAY_E_PAGING, "that state uses non-identity "
                       "paging, which Unicorn 2.0.1 cannot execute");
    return rc ? rp_fail(r, rc, "setting the state: %s", vmm_strerror(rc))
              : 0;
}

/* Transfers guest-virtual [gva, gva+len) page by page through the page
 * tables of the current state. */
static int access_mem(struct replay *r, uint64_t gva, uint8_t *buf,
                      size_t len, size_t *done, bool write)
{
    struct vmm_cpu_state s;
    size_t did = 0;
    int rc = vcpu_get_state(r->cpu, &s);
    if (rc)
        return rp_fail(r, rc, "reading the state: %s", vmm_strerror(rc));
    while (did < len) {
        uint64_t va = gva + did, gpa;
        size_t chunk = RP_PAGE - (va & (RP_PAGE - 1));
        if (chunk > len - did)
            chunk = len - did;
        if (vmm_gva_to_gpa(r->vm, &s.sregs, va, write, &gpa))
            break;
        uint8_t *p = vmm_gpa_ptr(r->vm, gpa, chunk);
        if (!p)
            break;
        if (write) {
            if ((rc = rp_user_save_page(r, gpa / RP_PAGE)))
                break;
            memcpy(p, buf + did, chunk);
            vcpu_ram_changed(r->cpu, gpa, chunk);
        } else {
            memcpy(buf + did, p, chunk);
        }
        did += chunk;
    }
    if (done)
        *done = did;
    if (rc)
        return rc;
    if (!did && len)
        return rp_fail(r, REPLAY_E_MEMORY, "address %#llx is not mapped to "
                       "guest RAM", (unsigned long long)gva);
    return 0;
}

int replay_read_mem(struct replay *r, uint64_t gva, void *buf, size_t len,
                    size_t *done)
{
    return access_mem(r, gva, buf, len, done, false);
}

int replay_write_mem(struct replay *r, uint64_t gva, const void *buf,
                     size_t len, size_t *done)
{
    return access_mem(r, gva, (uint8_t *)buf, len, done, true);
}

/* ---- breakpoints and watchpoints ------------------------------------------ */

int replay_break_add(struct replay *r, uint64_t addr)
{
    if (rp_is_break(r, addr))
        return 0;
    if (r->nbps == RP_MAX_BREAKS)
        return rp_fail(r, REPLAY_E_LIMIT, "at most %d breakpoints",
                       RP_MAX_BREAKS);
    r->bps[r->nbps++] = addr;
    return 0;
}

int replay_break_remove(struct replay *r, uint64_t addr)
{
    for (size_t i = 0; i < r->nbps; i++)
        if (r->bps[i] == addr) {
            r->bps[i] = r->bps[--r->nbps];
            return 0;
        }
    return rp_fail(r, REPLAY_E_ARG, "no breakpoint at %#llx",
                   (unsigned long long)addr);
}

static bool watch_eq(const struct vcpu_watch *w, uint64_t addr, uint32_t len,
                     enum vcpu_watch_kind kind)
{
    return w->addr == addr && w->len == len && w->kind == (uint32_t)kind;
}

int replay_watch_add(struct replay *r, uint64_t addr, uint32_t len,
                     enum vcpu_watch_kind kind)
{
    if (!len || addr + len < addr || kind < VCPU_WATCH_WRITE ||
        kind > VCPU_WATCH_ACCESS)
        return rp_fail(r, REPLAY_E_ARG, "bad watchpoint (%#llx, %u bytes)",
                       (unsigned long long)addr, len);
    for (size_t i = 0; i < r->nwatch; i++)
        if (watch_eq(&r->watches[i], addr, len, kind))
            return 0;
    if (r->nwatch == RP_MAX_WATCHES)
        return rp_fail(r, REPLAY_E_LIMIT, "at most %d watchpoints",
                       RP_MAX_WATCHES);
    r->watches[r->nwatch++] = (struct vcpu_watch){addr, len, kind};
    return 0;
}

int replay_watch_remove(struct replay *r, uint64_t addr, uint32_t len,
                        enum vcpu_watch_kind kind)
{
    for (size_t i = 0; i < r->nwatch; i++)
        if (watch_eq(&r->watches[i], addr, len, kind)) {
            r->watches[i] = r->watches[--r->nwatch];
            return 0;
        }
    return rp_fail(r, REPLAY_E_ARG, "no such watchpoint at %#llx",
                   (unsigned long long)addr);
}
