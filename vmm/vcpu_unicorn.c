/*
 * vcpu_unicorn.c — the Unicorn CPU backend (vcpu_unicorn_ops).
 *
 * Runs the guest over the caller's RAM buffer (uc_mem_map_ptr on the same
 * bytes the KVM memslot uses) with exact instruction positions, as the
 * replayer needs (replayer/replayer.h defines the unit).  How counting
 * works is in vcpu_unicorn_int.h; what Unicorn reports but does not do
 * (IDT delivery, SYSCALL/SYSRET, MSRs, I/O permission, the paging check)
 * is in vcpu_unicorn_event.c; register state in vcpu_unicorn_state.c.
 *
 * Hooks, and what each one is for:
 *  - UC_HOOK_BLOCK on all code: position accounting, stops at block
 *    boundaries (targets, kicks, interrupt window, arming new hooks);
 *  - UC_HOOK_CODE on single addresses: the target instruction of a run,
 *    breakpoints, and "sites" (I/O, MSR, MOV CR, RDTSC-like instructions,
 *    instructions seen touching MMIO): a code hook makes Unicorn sync RIP
 *    and EFLAGS before the instruction, so io callbacks see the exact
 *    state, and gives a stop point right after it (a site's hook covers
 *    the next instruction too);
 *  - UC_HOOK_INTR, UC_HOOK_INSN_INVALID, SYSCALL: stop, then deliver or
 *    emulate outside Unicorn;
 *  - IN/OUT/CPUID instruction hooks; memory hooks on the MMIO space;
 *  - with watchpoints armed, a code hook on all code and a write hook on
 *    all RAM (see struct uni).
 *
 * MMIO: everything above RAM (up to 1 TiB) is one uc_mmio_map region plus
 * a memory hook on it.  The hook is where accesses are served, because
 * Unicorn reports the accessing RIP there (its MMIO callbacks do not, and
 * split 8-byte accesses in two); the region's read callback only hands
 * the served value to the load.  Unmapped-access hooks were not used:
 * Unicorn lets the rest of the block run after one, so the state at the
 * access is lost.
 *
 * Known limits:
 *  - the first access to MMIO from a given instruction happens before it
 *    has a site hook: RIP and position are exact but EFLAGS may be stale in
 *    that one callback, and a stop it asks for lands at the block's end;
 *  - flags the architecture leaves undefined follow QEMU, not the host
 *    CPU (AF after SHL differs from this AMD host's);
 *  - task gates, 16-bit gates and real-mode interrupts are not delivered
 *    (EMU_FAIL with a detail).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu_unicorn_int.h"

#define NO_TARGET UINT64_MAX
/* Never executed (non-canonical): Unicorn's `until` must be some address. */
#define UNTIL_NEVER 0x8000000000000000ull
/* Guest-physical space above RAM answered as MMIO. */
#define MMIO_TOP (1ull << 40)


/* ---- stops requested from hooks ----------------------------------------- */

void uni_request_stop(struct uni *u, enum ustop_kind k, enum ustop_why w,
                      uint64_t pos)
{
    /* Stopping from a hook leaves env->eip wherever TB chaining last
     * synced it; USTOP_AT stops set stop_rip first and RIP is rewritten
     * from it after uc_emu_start returns. */
    u->stopping = true;
    u->stop = k;
    u->why = w;
    u->stop_pos = pos;
    uc_emu_stop(u->uc);
}

static void commit(struct uni *u)
{
    struct ublk *b = u->cur;
    u->pos_base += u->cur_eff;
    u->last_insn = b->addr + b->off[b->ninsn - 1];
    u->cur = NULL;
}

/* Stop before instruction idx of the current block (from a code hook). */
static void stop_in_block(struct uni *u, int idx, enum ustop_why w)
{
    struct ublk *b = u->cur;
    u->stop_rip = b->addr + b->off[idx];
    if (idx > 0)
        u->last_insn = b->addr + b->off[idx - 1];
    uni_request_stop(u, USTOP_AT, w, u->pos_base + (uint64_t)idx);
}

/* ---- hook sets ---------------------------------------------------------- */

static bool site_known(struct uni *u, uint64_t addr)
{
    for (size_t i = 0; i < u->nsites; i++)
        if (u->sites[i].addr == addr)
            return true;
    return false;
}

static void on_code(uc_engine *uc, uint64_t addr, uint32_t size, void *ud);

static int add_code_hook(struct uni *u, uc_hook *h, uint64_t begin,
                         uint64_t end)
{
    if (uc_hook_add(u->uc, h, UC_HOOK_CODE, (void *)on_code, u, begin, end))
        return VMM_E_UNICORN;
    /* Blocks translated before the hook existed do not call it. */
    uc_ctl_remove_cache(u->uc, begin, end + 1);
    return 0;
}

static void del_code_hook(struct uni *u, uc_hook h, uint64_t begin,
                          uint64_t end)
{
    uc_hook_del(u->uc, h);
    uc_ctl_remove_cache(u->uc, begin, end + 1);
}

static int add_site(struct uni *u, uint64_t x, uint64_t next)
{
    if (u->nsites == UNI_MAX_SITES) {
        snprintf(u->detail, sizeof u->detail,
                 "more than %d special instructions", UNI_MAX_SITES);
        return VMM_E_UNSUPPORTED;
    }
    struct usite *s = &u->sites[u->nsites];
    /* [x, next]: the instruction and the one after it (stop point) */
    int rc = add_code_hook(u, &s->h, x, next);
    if (rc)
        return rc;
    s->addr = x;
    u->nsites++;
    return 0;
}

/* Installs code hooks on the block's special instructions.  Returns 1 when
 * a hook was added (the block must be translated again), 0, or <0. */
static int arm_sites(struct uni *u, struct ublk *b)
{
    int added = 0;
    for (unsigned i = 0; i < b->ninsn; i++) {
        if (!b->kind[i])
            continue;
        uint64_t x = b->addr + b->off[i], next = b->addr + b->off[i + 1];
        if (site_known(u, x))
            continue;
        int rc = add_site(u, x, next);
        if (rc)
            return rc;
        added = 1;
    }
    b->flags |= UBLK_ARMED; /* sites armed */
    return added;
}

/* Hooks instructions seen accessing MMIO (on_mmio).  1 when any was
 * added, 0, or <0. */
static int arm_mmio_sites(struct uni *u)
{
    int added = 0;
    for (unsigned i = 0; i < u->nmmio_new; i++) {
        uint64_t x = u->mmio_new[i];
        unsigned len;
        if (site_known(u, x) ||
            ublk_insn_at(&u->blocks, u->cpu->ram, u->cpu->ram_size, x,
                         u->mode, &len, NULL, 0))
            continue;
        int rc = add_site(u, x, x + len);
        if (rc)
            return rc;
        added = 1;
    }
    u->nmmio_new = 0;
    return added;
}

static void disarm_stop(struct uni *u)
{
    if (!u->h_stop_on)
        return;
    del_code_hook(u, u->h_stop, u->stop_addr, u->stop_addr);
    u->h_stop_on = false;
    u->stop_addr = 0;
}

static int arm_stop(struct uni *u, uint64_t x)
{
    disarm_stop(u);
    int rc = add_code_hook(u, &u->h_stop, x, x);
    if (rc)
        return rc;
    u->h_stop_on = true;
    u->stop_addr = x;
    return 0;
}

bool uni_hit_stops(struct uni *u, uint64_t pos, uint64_t rip, uint64_t addr,
                   uint32_t len, uint32_t kind)
{
    if (!u->hit_fn)
        return true;
    struct vcpu_hit h = {.icount = pos, .addr = addr, .len = len,
                         .kind = kind};
    /* Inside the filter vcpu_icount() and RIP are the instruction's, as
     * in io callbacks (a code hook does not always sync RIP: not at the
     * first instruction after an iretq, for one). */
    bool was_in_io = u->in_io;
    uint64_t was_pos = u->io_pos, was_rip = u->io_rip;
    u->in_io = true;
    u->io_pos = pos;
    u->io_rip = rip;
    int rc = u->hit_fn(u->hit_ctx, &h);
    u->in_io = was_in_io;
    u->io_pos = was_pos;
    u->io_rip = was_rip;
    if (rc < 0 && !u->hit_err)
        u->hit_err = rc;
    return rc != 0;
}

static bool is_bp(struct uni *u, uint64_t addr)
{
    for (size_t i = 0; i < u->nbps; i++)
        if (u->bps[i].addr == addr)
            return true;
    return false;
}

/* ---- paging ------------------------------------------------------------- */

static bool on_pt_write(uc_engine *uc, uc_mem_type type, uint64_t addr,
                        int size, int64_t value, void *ud)
{
    struct uni *u = ud;
    (void)uc, (void)type, (void)addr, (void)size, (void)value;
    u->paging_check = true; /* before the next block or hooked insn */
    return true;
}

/* Checks paging now and watches the page tables it walked (a memory hook
 * on their span costs nothing measurable and takes effect at once). */
static int check_paging(struct uni *u)
{
    int rc = uni_check_paging(u);
    if (rc) {
        u->paging_bad = true;
        return rc;
    }
    uint64_t lo = u->pt_lo, hi = u->pt_hi;
    if (lo >= hi) {
        lo = hi = 0;
    }
    if (u->pt_hook_on && lo == u->pt_hook_lo && hi == u->pt_hook_hi)
        return 0;
    if (u->pt_hook_on)
        uc_hook_del(u->uc, u->h_pt);
    u->pt_hook_on = false;
    if (lo < hi) {
        if (uc_hook_add(u->uc, &u->h_pt, UC_HOOK_MEM_WRITE,
                        (void *)on_pt_write, u, lo, hi - 1))
            return VMM_E_UNICORN;
        u->pt_hook_on = true;
        u->pt_hook_lo = lo;
        u->pt_hook_hi = hi;
    }
    return 0;
}

/* ---- hooks -------------------------------------------------------------- */

static void fail_in_hook(struct uni *u, const char *why, uint64_t addr)
{
    snprintf(u->detail, sizeof u->detail, "%s at 0x%" PRIx64, why, addr);
    uni_request_stop(u, USTOP_ERROR, 0, u->pos_base);
}

static void on_block(uc_engine *uc, uint64_t addr, uint32_t size, void *ud)
{
    struct uni *u = ud;
    (void)uc;
    if (u->stopping)
        return;
    if (u->watch_hit) {
        uni_request_stop(u, USTOP_AT, UWHY_WATCH, u->watch_pos);
        return;
    }
    if (u->cur) {
        bool chg = u->cur->flags & UBLK_MODE_CHG;
        commit(u);
        if (chg)
            uni_refresh_mode(u); /* a far jump, iret... may switch modes */
    }
    u->stop_rip = addr; /* for any stop requested below */
    const char *why = "";
    bool changed;
    struct ublk *b = ublk_get(&u->blocks, u->cpu->ram, u->cpu->ram_size,
                              addr, size, u->mode, &changed, &why);
    if (!b) {
        fail_in_hook(u, why, addr);
        return;
    }
    if (changed && !u->retranslated) {
        /* The bytes differ from the last time this block ran: either the
         * guest rewrote them (QEMU then retranslated) or they changed
         * behind Unicorn's back without ram_changed (the TB is stale).
         * Dropping the TB and running again is right in both cases. */
        uc_ctl_remove_cache(u->uc, addr, addr + size);
        u->retranslated = true;
        uni_request_stop(u, USTOP_AT, UWHY_RESTART, u->pos_base);
        return;
    }
    u->retranslated = false;
    if (u->cover_on && b->cover_epoch != u->cover_epoch)
        uni_cover_block(u, b);
    unsigned eff = b->ninsn;
    bool cont = (b->flags & UBLK_REP_FIRST) && u->last_insn == addr;
    if (cont) {
        uint64_t rcx = uni_reg(u, UC_X86_REG_RCX);
        if (b->flags & UBLK_REP_A32)
            rcx = (uint32_t)rcx;
        else if (b->flags & UBLK_REP_A16)
            rcx = (uint16_t)rcx;
        if (!rcx) { /* QEMU's extra pass that leaves a finished rep */
            u->cur = b;
            u->cur_eff = 0;
            return;
        }
    }
    if (u->paging_check) {
        u->paging_check = false;
        if (check_paging(u)) {
            uni_request_stop(u, USTOP_AT, UWHY_PAGING, u->pos_base);
            return;
        }
    }
    if (u->window_on && (uni_reg(u, UC_X86_REG_RFLAGS) & 0x200) &&
        uni_irq_shadow(u) == 0) {
        uni_request_stop(u, USTOP_AT, UWHY_WINDOW, u->pos_base);
        return;
    }
    if (u->io_stop_after) {
        uni_request_stop(u, USTOP_AT, UWHY_IOSTOP, u->pos_base);
        return;
    }
    if (u->kicked) {
        uni_request_stop(u, USTOP_AT, UWHY_KICK, u->pos_base);
        return;
    }
    if (u->nmmio_new) {
        int rc = arm_mmio_sites(u);
        if (rc < 0) {
            fail_in_hook(u, "cannot hook MMIO instructions", addr);
            return;
        }
        if (rc > 0) {
            uni_request_stop(u, USTOP_AT, UWHY_RESTART, u->pos_base);
            return;
        }
    }
    if (b->sites && !(b->flags & UBLK_ARMED)) {
        int rc = arm_sites(u, b);
        if (rc < 0) {
            fail_in_hook(u, "cannot hook special instructions", addr);
            return;
        }
        if (rc > 0) {
            uni_request_stop(u, USTOP_AT, UWHY_RESTART, u->pos_base);
            return;
        }
    }
    if (u->target != NO_TARGET && u->pos_base + eff > u->target) {
        uint64_t r = u->target - u->pos_base;
        if (r == 0) {
            uni_request_stop(u, USTOP_AT, UWHY_LIMIT, u->pos_base);
            return;
        }
        uint64_t x = b->addr + b->off[r];
        if (!(u->h_stop_on && u->stop_addr == x)) {
            if (arm_stop(u, x)) {
                fail_in_hook(u, "cannot arm a stop hook", x);
                return;
            }
            uni_request_stop(u, USTOP_AT, UWHY_RESTART, u->pos_base);
            return;
        }
    }
    u->cur = b;
    u->cur_eff = eff;
}

static void on_code(uc_engine *uc, uint64_t addr, uint32_t size, void *ud)
{
    struct uni *u = ud;
    (void)uc;
    (void)size;
    if (u->stopping || !u->cur || !u->cur_eff)
        return; /* not running, or QEMU's extra rep pass */
    if (u->watch_hit) {
        uni_request_stop(u, USTOP_AT, UWHY_WATCH, u->watch_pos);
        return;
    }
    int idx = ublk_index(u->cur, addr);
    if (idx < 0 || idx >= u->cur->ninsn)
        return;
    uint64_t pos = u->pos_base + (uint64_t)idx;
    if (u->paging_check && idx > 0) {
        u->paging_check = false;
        if (check_paging(u)) {
            stop_in_block(u, idx, UWHY_PAGING);
            return;
        }
    }
    if (u->io_stop_after) {
        stop_in_block(u, idx, UWHY_IOSTOP);
        return;
    }
    if (u->h_stop_on && addr == u->stop_addr && pos == u->target) {
        stop_in_block(u, idx, UWHY_LIMIT);
        return;
    }
    /* A breakpoint is before its instruction: before the stops that
     * execute it outside Unicorn (MSR access) or refuse it. */
    if (u->nbps && is_bp(u, addr)) {
        bool rep_again = idx == 0 && (u->cur->flags & UBLK_REP_FIRST) &&
                         u->last_insn == addr;
        if (u->skip_bp_on && pos == u->skip_pos) {
            u->skip_bp_on = false;
        } else if (!rep_again && uni_hit_stops(u, pos, addr, addr, 0, 0)) {
            stop_in_block(u, idx, UWHY_BREAK);
            return;
        }
    }
    unsigned kind = u->cur->kind[idx];
    if (kind & USITE_NOREPLAY) {
        stop_in_block(u, idx, UWHY_NOREPLAY);
        return;
    }
    if (kind & USITE_MSR) {
        stop_in_block(u, idx, UWHY_MSR);
        return;
    }
    if ((kind & USITE_IO) &&
        !uni_io_allowed(u, u->cur->bytes + u->cur->off[idx],
                        u->cur->off[idx + 1] - u->cur->off[idx])) {
        stop_in_block(u, idx, UWHY_IOGP);
        return;
    }
    /* for io callbacks of this instruction (port or MMIO) */
    u->io_rip = addr;
    u->io_pos = pos;
    u->io_valid = true;
    if (kind & USITE_CR)
        u->paging_check = true;
}

/* Position and RIP of the instruction an io callback comes from. */
static void io_enter(struct uni *u)
{
    if (!u->io_valid) {
        /* No site hook fired (should not happen): best effort. */
        u->io_rip = uni_reg(u, UC_X86_REG_RIP);
        u->io_pos = u->pos_base;
    }
    u->in_io = true;
}

static void io_leave(struct uni *u, int rc)
{
    u->in_io = false;
    u->io_valid = false;
    if (rc > 0)
        u->io_stop_after = true;
    else if (rc < 0) {
        u->io_err = rc;
        u->io_stop_after = true;
    }
}

/* One port access from an IN/OUT hook, served through the io ops. */
static uint32_t port_access(struct uni *u, uint32_t port, int size,
                            bool write, uint32_t v)
{
    io_enter(u);
    int rc = vcpu_io_pio(u->cpu, (uint16_t)port, (unsigned)size, write, &v);
    u->last_exit.io.port = (uint16_t)port;
    u->last_exit.io.size = (uint8_t)size;
    u->last_exit.io.write = write;
    u->last_exit.io.value = v;
    u->last_is_mmio = false;
    io_leave(u, rc);
    return v;
}

static uint32_t on_in(uc_engine *uc, uint32_t port, int size, void *ud)
{
    (void)uc;
    return port_access(ud, port, size, false, 0);
}

static void on_out(uc_engine *uc, uint32_t port, int size, uint32_t value,
                   void *ud)
{
    (void)uc;
    port_access(ud, port, size, true, value);
}

/* Memory hook on the MMIO space: RIP is exact here (Unicorn syncs it for
 * memory hooks), so this is where accesses are served; the uc_mmio_map
 * callbacks only hand the value to the load. */
static bool on_mmio(uc_engine *uc, uc_mem_type type, uint64_t addr, int size,
                    int64_t value, void *ud)
{
    struct uni *u = ud;
    (void)uc;
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    if (!u->io_valid || u->io_rip != rip) {
        /* no site hook before this instruction (yet): locate it, and hook
         * it from the next block on so later accesses see exact EFLAGS
         * and can stop right after it */
        int idx = u->cur ? ublk_index(u->cur, rip) : -1;
        u->io_rip = rip;
        u->io_pos = u->pos_base + (idx > 0 ? (uint64_t)idx : 0);
        u->io_valid = true;
        if (!site_known(u, rip) && u->nmmio_new < UNI_MAX_NEW_MMIO)
            u->mmio_new[u->nmmio_new++] = rip;
    }
    io_enter(u);
    uint64_t v = (uint64_t)value;
    bool write = type == UC_MEM_WRITE;
    int rc = vcpu_io_mmio(u->cpu, addr, (unsigned)size, write, &v);
    if (!write) {
        u->mmio_gpa = addr;
        u->mmio_len = (unsigned)size;
        memcpy(u->mmio_val, &v, 8);
    }
    u->last_exit.mmio.gpa = addr;
    u->last_exit.mmio.size = (uint8_t)size;
    u->last_exit.mmio.write = write;
    u->last_exit.mmio.value = v;
    u->last_is_mmio = true;
    io_leave(u, rc);
    u->io_valid = false;
    return true;
}

static uint64_t on_mmio_read(uc_engine *uc, uint64_t off, unsigned size,
                             void *ud)
{
    struct uni *u = ud;
    (void)uc;
    uint64_t gpa = u->cpu->ram_size + off, v = 0;
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint8_t byte = 0xff;
        if (gpa + i >= u->mmio_gpa && gpa + i < u->mmio_gpa + u->mmio_len)
            byte = u->mmio_val[gpa + i - u->mmio_gpa];
        v |= (uint64_t)byte << (8 * i);
    }
    return v;
}

static void on_mmio_write(uc_engine *uc, uint64_t off, unsigned size,
                          uint64_t v, void *ud)
{
    (void)uc, (void)off, (void)size, (void)v, (void)ud; /* served above */
}

static bool soft_int_at(const struct ublk *b, int idx, uint32_t intno)
{
    const uint8_t *p = b->bytes + b->off[idx];
    unsigned len = b->off[idx + 1] - b->off[idx];
    if (len == 2 && p[0] == 0xcd)
        return p[1] == intno;
    return len == 1 && ((p[0] == 0xcc && intno == 3) ||
                        (p[0] == 0xf1 && intno == 1) ||
                        (p[0] == 0xce && intno == 4));
}

static void on_intr(uc_engine *uc, uint32_t intno, void *ud)
{
    struct uni *u = ud;
    (void)uc;
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    struct ublk *b = u->cur;
    int idx = b ? ublk_index(b, rip) : -1;
    uint64_t after;
    bool soft = false;
    if (b && idx > 0 && soft_int_at(b, idx - 1, intno)) {
        soft = true;
        after = u->pos_base + (uint64_t)idx;
    } else if (b && idx >= 0 && idx < b->ninsn) {
        after = u->pos_base + (uint64_t)idx + 1; /* the fault counts */
    } else if (b) {
        /* fetch fault on the instruction after a completed block */
        after = u->pos_base + u->cur_eff + 1;
    } else {
        after = u->pos_base + 1;
    }
    if (intno == 8 && !soft) {
        /* Unicorn never delivers, so it cannot see a real double fault:
         * this is a fault promoted by a stale old_exception (QEMU sets it
         * on paths that raise nothing we see).  The fault is precise:
         * clear the marker and run the instruction again to learn the
         * real vector. */
        u->stop_rip = rip;
        uni_request_stop(u, USTOP_REFAULT, 0,
                     after - 1); /* position of the faulting insn */
        return;
    }
    u->exc_vector = intno;
    u->exc_soft = soft;
    u->soft_len = soft ? (unsigned)(b->off[idx] - b->off[idx - 1]) : 0;
    u->exc_err = (!soft && uni_vector_has_error(intno)) ? uni_error_code(u)
                                                        : 0;
    u->stop_rip = rip;
    uni_request_stop(u, USTOP_EXC, 0, after);
}

static bool on_invalid(uc_engine *uc, void *ud)
{
    struct uni *u = ud;
    (void)uc;
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    int idx = u->cur ? ublk_index(u->cur, rip) : -1;
    uint64_t pos = u->pos_base + (idx > 0 ? (uint64_t)idx : 0);
    if (u->cur && idx < 0)
        pos = u->pos_base + u->cur_eff;
    u->stop_rip = rip;
    uni_request_stop(u, USTOP_INVALID, 0, pos);
    return false;
}

static void on_syscall(uc_engine *uc, void *ud)
{
    struct uni *u = ud;
    (void)uc;
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    int idx = u->cur ? ublk_index(u->cur, rip) : -1;
    u->stop_rip = rip;
    uni_request_stop(u, USTOP_SYSCALL, 0,
                 u->pos_base + (idx >= 0 ? (uint64_t)idx : 0) + 1);
}

static int on_cpuid(uc_engine *uc, void *ud)
{
    struct uni *u = ud;
    uint32_t leaf = (uint32_t)uni_reg(u, UC_X86_REG_RAX);
    uint32_t sub = (uint32_t)uni_reg(u, UC_X86_REG_RCX);
    uint32_t a, b, c, d;
    vmm_cpuid_lookup(&u->cpu->cpuid, leaf, sub, &a, &b, &c, &d);
    uint64_t v[4] = {a, b, c, d};
    uc_reg_write(uc, UC_X86_REG_RAX, &v[0]);
    uc_reg_write(uc, UC_X86_REG_RBX, &v[1]);
    uc_reg_write(uc, UC_X86_REG_RCX, &v[2]);
    uc_reg_write(uc, UC_X86_REG_RDX, &v[3]);
    return 1; /* Unicorn must not run its own CPUID */
}

/* ---- lifecycle ---------------------------------------------------------- */

static void uni_fini(struct vcpu *cpu)
{
    struct uni *u = uni_of(cpu);
    if (!u)
        return;
    if (u->ctx)
        uc_context_free(u->ctx);
    if (u->uc)
        uc_close(u->uc);
    ublk_cache_fini(&u->blocks);
    uni_cover_fini(u);
    if (u->dirty_own)
        free(u->dirty);
    free(u->sites);
    free(u);
    cpu->priv = NULL;
}

static int add_hooks(struct uni *u)
{
    uc_engine *uc = u->uc;
    uint64_t top = MMIO_TOP - 1;
    if (uc_hook_add(uc, &u->h_block, UC_HOOK_BLOCK, (void *)on_block, u, 1,
                    0) ||
        uc_hook_add(uc, &u->h_intr, UC_HOOK_INTR, (void *)on_intr, u, 1, 0) ||
        uc_hook_add(uc, &u->h_invalid, UC_HOOK_INSN_INVALID,
                    (void *)on_invalid, u, 1, 0) ||
        uc_hook_add(uc, &u->h_in, UC_HOOK_INSN, (void *)on_in, u, 1, 0,
                    UC_X86_INS_IN) ||
        uc_hook_add(uc, &u->h_out, UC_HOOK_INSN, (void *)on_out, u, 1, 0,
                    UC_X86_INS_OUT) ||
        uc_hook_add(uc, &u->h_syscall, UC_HOOK_INSN, (void *)on_syscall, u,
                    1, 0, UC_X86_INS_SYSCALL) ||
        uc_hook_add(uc, &u->h_cpuid, UC_HOOK_INSN, (void *)on_cpuid, u, 1, 0,
                    UC_X86_INS_CPUID) ||
        uc_hook_add(uc, &u->h_mmio, UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
                    (void *)on_mmio, u, u->cpu->ram_size, top))
        return VMM_E_UNICORN;
    return 0;
}

static int uni_init(struct vcpu *cpu)
{
    struct uni *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    cpu->priv = u;
    u->cpu = cpu;
    u->target = NO_TARGET;
    u->last_insn = NO_INSN;
    char why[200];
    int rc = ulayout_get(&u->lay, why, sizeof why);
    if (rc)
        goto fail;
    rc = VMM_E_UNICORN;
    u->sites = calloc(UNI_MAX_SITES, sizeof *u->sites);
    if (!u->sites || cpu->ram_size >= MMIO_TOP)
        goto fail;
    if (uc_open(UC_ARCH_X86, UC_MODE_64, &u->uc) ||
        uc_mem_map_ptr(u->uc, 0, cpu->ram_size, UC_PROT_ALL, cpu->ram) ||
        uc_mmio_map(u->uc, cpu->ram_size, MMIO_TOP - cpu->ram_size,
                    on_mmio_read, u, on_mmio_write, u) ||
        uc_context_alloc(u->uc, &u->ctx))
        goto fail;
    if ((rc = ublk_cache_init(&u->blocks)) || (rc = add_hooks(u)))
        goto fail;
    cpu->caps = VCPU_CAP_ICOUNT | VCPU_CAP_STEP | VCPU_CAP_STEP_CPL3 |
                VCPU_CAP_BREAK | VCPU_CAP_BREAK_CPL3 | VCPU_CAP_WATCH |
                VCPU_CAP_KICK | VCPU_CAP_DIRTY_LOG;
    return 0;
fail:
    uni_fini(cpu);
    return rc;
}

/* ---- state -------------------------------------------------------------- */

static int uni_op_get_regs(struct vcpu *cpu, struct vmm_regs *r)
{
    return uni_get_regs(uni_of(cpu), r);
}

static int uni_op_set_regs(struct vcpu *cpu, const struct vmm_regs *r)
{
    struct uni *u = uni_of(cpu);
    u->last_insn = NO_INSN;
    return uni_set_regs(u, r);
}

static int uni_op_get_state(struct vcpu *cpu, struct vmm_cpu_state *s)
{
    struct uni *u = uni_of(cpu);
    int rc = uni_get_state(u, s);
    if (rc)
        return rc;
    s->sregs.cr8 = u->cr8;
    s->sregs.apic_base = u->apic_base;
    s->xcr0 = u->xcr0;
    s->events.nmi_pending = u->events.nmi_pending;
    return 0;
}

static int uni_op_set_state(struct vcpu *cpu, const struct vmm_cpu_state *s)
{
    struct uni *u = uni_of(cpu);
    u->last_insn = NO_INSN;
    u->cur = NULL;
    u->shutdown = false;
    u->paging_bad = false;
    u->cr8 = s->sregs.cr8;
    u->apic_base = s->sregs.apic_base;
    u->xcr0 = s->xcr0;
    u->events = s->events;
    int rc = uni_set_state(u, s);
    if (rc)
        return rc;
    if (s->events.exc_pending || s->events.irq_pending) {
        /* Delivered now: nothing runs in between. */
        int d = s->events.exc_pending
                    ? uni_deliver(u, s->events.exc_vector, false,
                                  s->events.exc_has_error,
                                  s->events.exc_error)
                    : uni_deliver(u, s->events.irq_vector, false, false, 0);
        u->events.exc_pending = u->events.irq_pending = 0;
        if (d < 0)
            return d;
    }
    rc = check_paging(u);
    return rc == VMM_E_PAGING ? rc : rc ? rc : 0;
}

/* ---- running ------------------------------------------------------------ */

static void exit_detail(struct uni *u, struct vcpu_exit *e)
{
    snprintf(e->detail, sizeof e->detail, "%s", u->detail);
}

static void fill_emu(struct uni *u, struct vcpu_exit *e, uint64_t rip)
{
    struct vmm_sregs s;
    e->emu.cpl = uni_get_sregs(u, &s) ? -1 : s.cs.dpl;
    if (rip < u->cpu->ram_size) {
        size_t n = u->cpu->ram_size - rip < 16 ? u->cpu->ram_size - rip : 16;
        unsigned len = 0;
        memcpy(e->emu.insn, u->cpu->ram + rip, n);
        if (!ublk_insn_at(&u->blocks, u->cpu->ram, u->cpu->ram_size, rip,
                          u->mode, &len, NULL, 0))
            e->emu.len = (uint8_t)len;
    }
}

/* The instruction at RIP is RDTSC-like: report it, never run it (in the
 * KVM backend's fallback too, which passes this report on). */
static int stop_noreplay(struct uni *u, struct vcpu_exit *e)
{
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    struct vmm_sregs s;
    if (uni_get_sregs(u, &s))
        return VMM_E_UNICORN;
    e->reason = VCPU_EXIT_EMU_FAIL;
    fill_emu(u, e, rip);
    size_t n = rip < u->cpu->ram_size ? u->cpu->ram_size - rip : 0;
    char where[160];
    e->emu.len = (uint8_t)vmm_insn_describe(where, sizeof where, e->emu.insn,
                                            n < 16 ? n : 16, &s, e->emu.cpl,
                                            rip);
    snprintf(e->detail, sizeof e->detail,
             "cannot run the instruction at %.150s: it reads host state "
             "(time, randomness) that cannot be replayed", where);
    return 0;
}

static int handle_exception(struct uni *u, struct vcpu_exit *e)
{
    int rc = uni_clear_exception(u);
    if (rc)
        return rc;
    bool has_err = !u->exc_soft && uni_vector_has_error(u->exc_vector);
    rc = uni_deliver(u, u->exc_vector, u->exc_soft, has_err, u->exc_err);
    if (rc < 0) {
        e->reason = VCPU_EXIT_EMU_FAIL;
        fill_emu(u, e, u->stop_rip);
        exit_detail(u, e);
        return 1;
    }
    if (rc == 1) {
        e->reason = VCPU_EXIT_SHUTDOWN;
        exit_detail(u, e);
        return 1;
    }
    return 0;
}

static int handle_invalid(struct uni *u, struct vcpu_exit *e)
{
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    uint8_t b[3] = {0};
    if (rip < u->cpu->ram_size - 3)
        memcpy(b, u->cpu->ram + rip, 3);
    int rc = uni_clear_exception(u);
    if (rc)
        return rc;
    if (b[0] == 0x48 && b[1] == 0x0f && b[2] == 0x07)
        rc = uni_emulate_sysret(u, true);
    else if (b[0] == 0x0f && b[1] == 0x07)
        rc = uni_emulate_sysret(u, false);
    else
        rc = uni_deliver(u, 6, false, false, 0);
    if (rc < 0) {
        e->reason = VCPU_EXIT_EMU_FAIL;
        fill_emu(u, e, rip);
        exit_detail(u, e);
        return 1;
    }
    if (u->shutdown) {
        e->reason = VCPU_EXIT_SHUTDOWN;
        exit_detail(u, e);
        return 1;
    }
    return 0;
}

/* HLT leaves RIP after it and ends emulation with UC_ERR_OK. */
static bool stopped_at_hlt(struct uni *u, uint64_t rip)
{
    struct ublk *b = u->cur;
    if (!b || rip != b->addr + b->size)
        return false;
    unsigned last = b->off[b->ninsn - 1];
    return b->size - last == 1 && b->bytes[last] == 0xf4;
}

/* The hit filter failed: the run stops before the instruction that hit
 * and vcpu_run returns the filter's error. */
static int take_hit_err(struct uni *u, struct vcpu_exit *e)
{
    int rc = u->hit_err;
    u->hit_err = 0;
    snprintf(e->detail, sizeof e->detail, "hit filter failed: %s",
             vmm_strerror(rc));
    return rc;
}

/* Handles the end of one uc_emu_start.  Returns 1 to report *e, 0 to run
 * on, <0 on error. */
static int after_stop(struct uni *u, uc_err err, struct vcpu_exit *e)
{
    if (u->watch_hit) { /* whatever else happened after it */
        u->cur = NULL;
        int rc = uni_watch_rollback(u, e);
        return u->hit_err ? take_hit_err(u, e) : rc;
    }
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    switch (u->stop) {
    case USTOP_AT:
        u->cur = NULL;
        u->pos_base = u->stop_pos;
        rip = u->stop_rip;
        uni_set_reg(u, UC_X86_REG_RIP, rip);
        switch (u->why) {
        case UWHY_RESTART:
        case UWHY_WATCH: /* handled above while watch_hit is set */
            return 0;
        case UWHY_LIMIT:
            return 0; /* the loop sees pos == target */
        case UWHY_BREAK:
            e->reason = VCPU_EXIT_BREAKPOINT;
            return u->hit_err ? take_hit_err(u, e) : 1;
        case UWHY_KICK:
            u->kicked = 0;
            e->reason = VCPU_EXIT_KICK;
            return 1;
        case UWHY_NOREPLAY:
        {
            int rc = stop_noreplay(u, e);
            return rc ? rc : 1;
        }
        case UWHY_MSR: {
            bool wr = rip + 1 < u->cpu->ram_size &&
                      u->cpu->ram[rip + 1] == 0x30;
            int rc = uni_emulate_msr(u, wr);
            if (rc < 0)
                return rc;
            u->pos_base++;
            u->last_insn = NO_INSN;
            return 0;
        }
        case UWHY_IOGP:
            u->pos_base++; /* the faulting instruction counts */
            u->last_insn = NO_INSN;
            u->soft_len = 0;
            if (uni_clear_exception(u) < 0)
                return VMM_E_UNICORN;
            u->exc_vector = 13;
            u->exc_soft = false;
            u->exc_err = 0;
            u->stop_rip = rip;
            return handle_exception(u, e);
        case UWHY_WINDOW:
            e->reason = VCPU_EXIT_IRQ_WINDOW;
            return 1;
        case UWHY_PAGING:
            e->reason = VCPU_EXIT_EMU_FAIL;
            fill_emu(u, e, rip);
            exit_detail(u, e);
            return VMM_E_PAGING;
        case UWHY_IOSTOP:
            e->reason = u->io_err ? VCPU_EXIT_ERROR : VCPU_EXIT_STOP;
            e->is_mmio = u->last_is_mmio;
            if (u->last_is_mmio)
                e->mmio = u->last_exit.mmio;
            else
                e->io = u->last_exit.io;
            if (u->io_err) {
                /* vmm.h: vcpu_run returns the handler's error.  Unicorn
                 * cannot abandon the access: the instruction completed
                 * and the position is after it. */
                snprintf(e->detail, sizeof e->detail,
                         "io handler failed: %s", vmm_strerror(u->io_err));
                return u->io_err;
            }
            return 1;
        }
        return 0;
    case USTOP_EXC:
        u->cur = NULL;
        u->pos_base = u->stop_pos;
        u->last_insn = NO_INSN;
        u->refaults = 0;
        return handle_exception(u, e);
    case USTOP_REFAULT:
        u->cur = NULL;
        u->pos_base = u->stop_pos;
        if (u->refaults++ > 2) {
            e->reason = VCPU_EXIT_ERROR;
            snprintf(e->detail, sizeof e->detail,
                     "Unicorn keeps reporting #DF at rip 0x%" PRIx64, rip);
            return 1;
        }
        uni_set_reg(u, UC_X86_REG_RIP, u->stop_rip);
        return uni_clear_exception(u) ? VMM_E_UNICORN : 0;
    case USTOP_SYSCALL: {
        u->cur = NULL;
        u->pos_base = u->stop_pos;
        u->last_insn = NO_INSN;
        int rc = uni_emulate_syscall(u);
        return rc < 0 ? rc : 0;
    }
    case USTOP_INVALID:
        u->cur = NULL;
        u->pos_base = u->stop_pos + 1;
        u->last_insn = NO_INSN;
        return handle_invalid(u, e);
    case USTOP_ERROR:
        u->cur = NULL;
        e->reason = VCPU_EXIT_ERROR;
        exit_detail(u, e);
        return 1;
    case USTOP_NONE:
        break;
    }
    if (err == UC_ERR_OK && stopped_at_hlt(u, rip)) {
        commit(u);
        e->reason = VCPU_EXIT_HLT;
        return 1;
    }
    /* Anything else: Unicorn stopped on its own (unmapped access, QEMU's
     * own triple-fault path).  Position is where the block got to. */
    struct ublk *b = u->cur;
    int idx = b ? ublk_index(b, rip) : -1;
    if (b)
        u->pos_base += idx >= 0 ? (uint64_t)idx : 0;
    u->cur = NULL;
    if (err == UC_ERR_OK && uni_exception_marker(u) == 8 &&
        u->refaults++ < 2) {
        /* QEMU's "triple fault" from a stale marker (see on_intr): the
         * faulting instruction did nothing; run it again cleanly */
        u->last_insn = NO_INSN;
        return uni_clear_exception(u) ? VMM_E_UNICORN : 0;
    }
    e->reason = VCPU_EXIT_ERROR;
    snprintf(e->detail, sizeof e->detail,
             "Unicorn stopped at rip 0x%" PRIx64 ": %s", rip,
             err ? uc_strerror(err) : "no reason given");
    return 1;
}

static void run_begin(struct uni *u)
{
    u->stopping = false;
    u->stop = USTOP_NONE;
    u->why = 0;
    u->io_stop_after = false;
    u->io_err = 0;
    u->io_valid = false;
    u->detail[0] = 0;
}

static int uni_run(struct vcpu *cpu, const struct vcpu_run_opts *o,
                   struct vcpu_exit *e)
{
    struct uni *u = uni_of(cpu);
    int rc = 0;
    if (u->shutdown) {
        e->reason = VCPU_EXIT_SHUTDOWN;
        snprintf(e->detail, sizeof e->detail, "%s", u->detail);
        e->icount = u->pos_base;
        return 0;
    }
    if (u->paging_bad) {
        e->reason = VCPU_EXIT_EMU_FAIL;
        snprintf(e->detail, sizeof e->detail, "%s", u->detail);
        e->icount = u->pos_base;
        return VMM_E_PAGING;
    }
    uint64_t limit = o->single_step ? 1 : o->max_insns;
    u->target = limit ? u->pos_base + limit : NO_TARGET;
    uint64_t rip = uni_reg(u, UC_X86_REG_RIP);
    u->skip_bp_on = u->nbps && is_bp(u, rip);
    u->refaults = 0;
    u->skip_pos = u->pos_base;
    for (;;) {
        if (u->target != NO_TARGET && u->pos_base >= u->target) {
            e->reason = o->single_step ? VCPU_EXIT_STEP : VCPU_EXIT_LIMIT;
            break;
        }
        run_begin(u);
        /* a clean exception state for every start (see on_intr) */
        if (uni_clear_exception(u)) {
            rc = VMM_E_UNICORN;
            break;
        }
        rip = uni_reg(u, UC_X86_REG_RIP);
        uc_err err = uc_emu_start(u->uc, rip, UNTIL_NEVER, 0, 0);
        rc = after_stop(u, err, e);
        if (rc)
            break;
    }
    if (rc > 0)
        rc = 0;
    disarm_stop(u);
    u->target = NO_TARGET;
    u->cur = NULL;
    e->icount = u->pos_base;
    return rc;
}

static int uni_request_irq_window(struct vcpu *cpu, bool on)
{
    uni_of(cpu)->window_on = on;
    return 0;
}

static int uni_inject_irq(struct vcpu *cpu, uint8_t vector)
{
    struct uni *u = uni_of(cpu);
    u->last_insn = NO_INSN;
    u->soft_len = 0;
    int rc = uni_deliver(u, vector, false, false, 0);
    return rc < 0 ? rc : 0; /* a triple fault is reported by the next run */
}

static int uni_set_breakpoints(struct vcpu *cpu, const uint64_t *addr,
                               size_t n)
{
    struct uni *u = uni_of(cpu);
    if (n > UNI_MAX_BP)
        return VMM_E_ARG;
    for (size_t i = 0; i < u->nbps; i++)
        del_code_hook(u, u->bps[i].h, u->bps[i].addr, u->bps[i].addr);
    u->nbps = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = add_code_hook(u, &u->bps[i].h, addr[i], addr[i]);
        if (rc)
            return rc;
        u->bps[i].addr = addr[i];
        u->nbps++;
    }
    return 0;
}

static void drop_tb(void *ctx, const struct ublk *b)
{
    struct uni *u = ctx;
    uc_ctl_remove_cache(u->uc, b->addr, b->addr + b->size);
}

int uni_retranslate_all(struct uni *u)
{
    ublk_foreach(&u->blocks, drop_tb, u);
    return 0;
}

static bool on_dirty_write(uc_engine *uc, uc_mem_type type, uint64_t addr,
                           int size, int64_t value, void *ud)
{
    (void)uc, (void)type, (void)value;
    uni_mark_dirty(ud, addr, (uint64_t)size);
    return true;
}

/* The dirty log costs a hook on every store, so it starts at the first
 * call, which reports every page (nothing was tracked before).  Writes
 * the backend makes itself (interrupt frames, accessed bits) are marked
 * by uni_mark_dirty. */
static int uni_dirty_log(struct vcpu *cpu, uint64_t *bitmap)
{
    struct uni *u = uni_of(cpu);
    uint64_t pages = cpu->ram_size / 4096;
    size_t words = (pages + 63) / 64;
    if (!u->dirty_own) {
        u->dirty = calloc(words, sizeof *u->dirty);
        if (!u->dirty)
            return -ENOMEM;
        u->dirty_own = true;
        if (uc_hook_add(u->uc, &u->h_dirty, UC_HOOK_MEM_WRITE,
                        (void *)on_dirty_write, u, 0, cpu->ram_size - 1) ||
            uni_retranslate_all(u))
            return VMM_E_UNICORN;
        memset(bitmap, 0xff, words * sizeof *bitmap);
        if (pages % 64)
            bitmap[words - 1] = (1ull << (pages % 64)) - 1;
        return 0;
    }
    memcpy(bitmap, u->dirty, words * sizeof *bitmap);
    memset(u->dirty, 0, words * sizeof *u->dirty);
    return 0;
}

static int uni_set_hit_filter(struct vcpu *cpu, vcpu_hit_fn fn, void *ctx)
{
    struct uni *u = uni_of(cpu);
    u->hit_fn = fn;
    u->hit_ctx = ctx;
    u->hit_err = 0;
    return 0;
}

static void uni_ram_changed(struct vcpu *cpu, uint64_t gpa, uint64_t len)
{
    struct uni *u = uni_of(cpu);
    if (!len || gpa >= cpu->ram_size)
        return;
    if (len > cpu->ram_size - gpa)
        len = cpu->ram_size - gpa;
    /* Cached decodings check their bytes on use; only Unicorn's TBs need
     * dropping.  One call per page keeps each invalidation small. */
    for (uint64_t p = gpa & ~4095ull; p < gpa + len; p += 4096)
        uc_ctl_remove_cache(u->uc, p, p + 4096);
}

static uint64_t uni_icount(struct vcpu *cpu)
{
    struct uni *u = uni_of(cpu);
    return u->in_io ? u->io_pos : u->pos_base;
}

static void uni_set_icount(struct vcpu *cpu, uint64_t icount)
{
    uni_of(cpu)->pos_base = icount;
}

static void uni_kick(struct vcpu *cpu)
{
    struct uni *u = uni_of(cpu);
    if (u)
        u->kicked = 1;
}

const struct vcpu_ops vcpu_unicorn_ops = {
    .name = "unicorn",
    .init = uni_init,
    .fini = uni_fini,
    .get_regs = uni_op_get_regs,
    .set_regs = uni_op_set_regs,
    .get_state = uni_op_get_state,
    .set_state = uni_op_set_state,
    .run = uni_run,
    .inject_irq = uni_inject_irq,
    .request_irq_window = uni_request_irq_window,
    .set_breakpoints = uni_set_breakpoints,
    .set_watchpoints = uni_op_set_watchpoints,
    .ram_changed = uni_ram_changed,
    .icount = uni_icount,
    .set_icount = uni_set_icount,
    .kick = uni_kick,
    .set_hit_filter = uni_set_hit_filter,
    .dirty_log = uni_dirty_log,
    .coverage = uni_coverage,
    .coverage_take = uni_coverage_take,
};
