/*
 * vcpu_unicorn_watch.c — watchpoints of the Unicorn backend.
 *
 * Unicorn reports a data access to a memory hook in the middle of the
 * accessing instruction and cannot abort it.  So while any watchpoint is
 * armed, a code hook on every instruction keeps RIP and EFLAGS exact at
 * memory hooks and stops right after the instruction that hit, and a
 * write hook on all RAM logs what the current instruction overwrote; the
 * hit is then rolled back (registers captured at the access, writes
 * undone), and VCPU_EXIT_WATCH reports the position and state *before*
 * that instruction, as vmm.h asks.  Resuming runs that instruction once
 * without reporting it again.  Watch mode costs speed (72 vs 114 M
 * instr/s here, bench/unicorn_speed), nothing when no watchpoint is set.
 */
#include <stdio.h>
#include <string.h>

#include "vmm/vcpu_unicorn_int.h"

/* Every instruction while watchpoints are armed: a new undo log, or the
 * stop right after an instruction that hit. */
static void on_code_all(uc_engine *uc, uint64_t addr, uint32_t size,
                        void *ud)
{
    struct uni *u = ud;
    (void)uc, (void)size;
    if (u->stopping || !u->cur || !u->cur_eff)
        return;
    if (u->watch_hit) {
        uni_request_stop(u, USTOP_AT, UWHY_WATCH, u->watch_pos);
        return;
    }
    u->nundo = 0;
    u->undo_lost = false;
    if (u->skip_watch_on) {
        int idx = ublk_index(u->cur, addr);
        if (idx >= 0 && u->pos_base + (uint64_t)idx != u->skip_watch_pos)
            u->skip_watch_on = false;
    }
}

static void watch_check(struct uni *u, unsigned kind, uint64_t addr,
                        unsigned size, uint64_t value)
{
    if (u->watch_hit || u->stopping || !u->cur || !u->cur_eff)
        return;
    const struct vcpu_watch *w = NULL;
    for (size_t i = 0; i < u->nwatch && !w; i++)
        if ((u->watches[i].kind & kind) && addr < u->watches[i].addr +
            u->watches[i].len && u->watches[i].addr < addr + size)
            w = &u->watches[i];
    if (!w)
        return;
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP); /* exact in memory hooks */
    int idx = ublk_index(u->cur, rip);
    if (idx < 0 || idx >= u->cur->ninsn)
        return;
    uint64_t pos = u->pos_base + (uint64_t)idx;
    if (u->skip_watch_on && pos == u->skip_watch_pos)
        return;
    if (!uni_hit_stops(u, pos, rip, addr, size, kind))
        return;
    /* Registers are still those before the instruction (QEMU writes them
     * after its memory accesses, which is what makes faults precise). */
    uni_get_regs(u, &u->watch_regs);
    u->watch_regs.rip = rip;
    u->watch_hit = true;
    u->watch_pos = pos;
    u->watch_addr = addr;
    u->watch_len = size;
    u->watch_kind = kind;
    u->watch_value = value;
    if (kind == VCPU_WATCH_READ && addr < u->cpu->ram_size &&
        size <= 8 && size <= u->cpu->ram_size - addr) {
        u->watch_value = 0;
        memcpy(&u->watch_value, u->cpu->ram + addr, size);
    }
}

static bool on_write_all(uc_engine *uc, uc_mem_type type, uint64_t addr,
                         int size, int64_t value, void *ud)
{
    struct uni *u = ud;
    (void)uc, (void)type;
    if (addr < u->cpu->ram_size && (uint64_t)size <= u->cpu->ram_size - addr) {
        if (u->nundo < UNI_UNDO && size <= 16) {
            struct uundo *d = &u->undo[u->nundo++];
            d->addr = addr;
            d->len = (uint8_t)size;
            memcpy(d->old, u->cpu->ram + addr, (size_t)size);
        } else {
            u->undo_lost = true;
        }
    }
    watch_check(u, VCPU_WATCH_WRITE, addr, (unsigned)size, (uint64_t)value);
    return true;
}

static bool on_read_watch(uc_engine *uc, uc_mem_type type, uint64_t addr,
                          int size, int64_t value, void *ud)
{
    (void)uc, (void)type, (void)value;
    watch_check(ud, VCPU_WATCH_READ, addr, (unsigned)size, 0);
    return true;
}

/* Back to the state before the instruction that hit. */
int uni_watch_rollback(struct uni *u, struct vcpu_exit *e)
{
    for (unsigned i = u->nundo; i-- > 0;) {
        memcpy(u->cpu->ram + u->undo[i].addr, u->undo[i].old, u->undo[i].len);
        uni_mark_dirty(u, u->undo[i].addr, u->undo[i].len);
    }
    int rc = uni_set_regs(u, &u->watch_regs);
    if (rc)
        return rc;
    u->pos_base = u->watch_pos;
    u->last_insn = NO_INSN;
    u->skip_watch_on = true;
    u->skip_watch_pos = u->watch_pos;
    u->watch_hit = false;
    u->nundo = 0;
    e->reason = VCPU_EXIT_WATCH;
    e->watch.addr = u->watch_addr;
    e->watch.len = u->watch_len;
    e->watch.kind = u->watch_kind;
    e->watch.value = u->watch_value;
    if (u->undo_lost)
        snprintf(e->detail, sizeof e->detail,
                 "the instruction wrote more than %d times: memory it "
                 "wrote may not be rolled back", UNI_UNDO);
    return 1;
}

static int watch_mode(struct uni *u, bool on)
{
    if (on == u->watch_mode)
        return 0;
    if (on) {
        if (uc_hook_add(u->uc, &u->h_all_code, UC_HOOK_CODE,
                        (void *)on_code_all, u, 1, 0) ||
            uc_hook_add(u->uc, &u->h_all_write, UC_HOOK_MEM_WRITE,
                        (void *)on_write_all, u, 0, u->cpu->ram_size - 1))
            return VMM_E_UNICORN;
    } else {
        uc_hook_del(u->uc, u->h_all_code);
        uc_hook_del(u->uc, u->h_all_write);
    }
    u->watch_mode = on;
    /* translations made before must gain (or lose) the hook calls */
    return uni_retranslate_all(u);
}

int uni_op_set_watchpoints(struct vcpu *cpu, const struct vcpu_watch *w,
                           size_t n)
{
    struct uni *u = uni_of(cpu);
    if (n > UNI_MAX_WATCH)
        return VMM_E_ARG;
    for (size_t i = 0; i < n; i++)
        if (!w[i].len || w[i].addr + w[i].len < w[i].addr ||
            !(w[i].kind & VCPU_WATCH_ACCESS) || (w[i].kind & ~3u))
            return VMM_E_ARG;
    for (size_t i = 0; i < u->nwatch; i++)
        if (u->watches[i].kind & VCPU_WATCH_READ)
            uc_hook_del(u->uc, u->h_wread[i]);
    u->nwatch = 0;
    u->watch_hit = false;
    u->skip_watch_on = false;
    for (size_t i = 0; i < n; i++) {
        u->watches[i] = w[i];
        if ((w[i].kind & VCPU_WATCH_READ) &&
            uc_hook_add(u->uc, &u->h_wread[i], UC_HOOK_MEM_READ,
                        (void *)on_read_watch, u, w[i].addr,
                        w[i].addr + w[i].len - 1))
            return VMM_E_UNICORN;
        u->nwatch++;
    }
    return watch_mode(u, n > 0);
}
