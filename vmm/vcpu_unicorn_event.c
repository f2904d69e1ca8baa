/*
 * vcpu_unicorn_event.c — what Unicorn 2.0.1 reports but does not do:
 * exception/interrupt delivery through the guest IDT, SYSCALL/SYSRET,
 * RDMSR/WRMSR (EFER.SCE cannot be set in Unicorn), and the check that the
 * guest's paging is the identity (Unicorn walks page tables but uses the
 * virtual address as the physical one).
 *
 * Delivery follows the Intel SDM (vol. 3, 6.14 "Exception and interrupt
 * handling in 64-bit mode"): 16-byte gates, interrupt gates clear IF, trap
 * gates do not, a CPL change or an IST index switches stacks through the
 * TSS, the new RSP is aligned to 16 bytes, the frame is SS, RSP, RFLAGS,
 * CS, RIP and the error code; a fault while delivering is combined with
 * the first as in table 6-5 (double fault), a fault while delivering #DF
 * is a triple fault.  Memory the CPU touches while delivering goes through
 * the guest's page tables (supervisor accesses, accessed/dirty bits set as
 * hardware does), so a missing stack page gives #PF then #DF, as on KVM.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vmm/vcpu_unicorn_int.h"

#define RF_IF (1ull << 9)
#define RF_TF (1ull << 8)
#define RF_NT (1ull << 14)
#define RF_RF (1ull << 16)
#define RF_VM (1ull << 17)

#define PTE_P 1ull
#define PTE_W 2ull
#define PTE_U 4ull
#define PTE_A 0x20ull
#define PTE_D 0x40ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull

enum { EXC_DE = 0, EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12,
       EXC_GP = 13, EXC_PF = 14, EXC_UD = 6 };

/* A fault raised by the CPU itself while delivering or emulating. */
struct fault {
    unsigned vector;
    uint32_t err;
    uint64_t cr2;
};

bool uni_vector_has_error(unsigned v)
{
    return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
}

/* ---- guest memory through the page tables ------------------------------ */

static bool phys_ok(struct uni *u, uint64_t pa, uint64_t len)
{
    return pa < u->cpu->ram_size && len <= u->cpu->ram_size - pa;
}

static uint64_t ld64(struct uni *u, uint64_t pa)
{
    uint64_t v;
    memcpy(&v, u->cpu->ram + pa, 8);
    return v;
}

static void st64(struct uni *u, uint64_t pa, uint64_t v)
{
    memcpy(u->cpu->ram + pa, &v, 8);
    uni_mark_dirty(u, pa, 8);
}

void uni_mark_dirty(struct uni *u, uint64_t gpa, uint64_t len)
{
    if (!u->dirty || !len)
        return;
    for (uint64_t p = gpa / 4096; p <= (gpa + len - 1) / 4096; p++)
        if (p < u->cpu->ram_size / 4096)
            u->dirty[p / 64] |= 1ull << (p % 64);
}

/* Translates a supervisor access in long mode (or identity without
 * paging).  Returns false and fills *f with the #PF on failure. */
static bool walk(struct uni *u, uint64_t va, bool write, uint64_t *pa,
                 struct fault *f)
{
    uint64_t cr0 = uni_reg(u, UC_X86_REG_CR0);
    if (!(cr0 & (1ull << 31))) {
        *pa = va & 0xffffffffull;
        return true;
    }
    if (!(uni_efer(u) & (1u << 10))) { /* legacy paging: identity only */
        *pa = va;
        return true;
    }
    uint64_t table = uni_reg(u, UC_X86_REG_CR3) & PTE_ADDR;
    bool wp = cr0 & (1ull << 16);
    uint32_t err = write ? 2 : 0;
    for (int level = 3; level >= 0; level--) {
        unsigned idx = (va >> (12 + 9 * level)) & 511;
        uint64_t ea = table + idx * 8ull;
        if (!phys_ok(u, ea, 8))
            goto pf;
        uint64_t e = ld64(u, ea);
        if (!(e & PTE_P))
            goto pf;
        if (write && !(e & PTE_W) && wp) {
            err |= 1;
            goto pf;
        }
        bool leaf = level == 0 || (level <= 2 && (e & PTE_PS));
        uint64_t ne = e | PTE_A | (leaf && write ? PTE_D : 0);
        if (ne != e)
            st64(u, ea, ne);
        if (leaf) {
            uint64_t psz = 1ull << (12 + 9 * level);
            *pa = (e & PTE_ADDR & ~(psz - 1)) | (va & (psz - 1));
            return true;
        }
        table = e & PTE_ADDR;
    }
pf:
    f->vector = EXC_PF;
    f->err = err;
    f->cr2 = va;
    return false;
}

static bool vmem(struct uni *u, uint64_t va, void *buf, size_t len,
                 bool write, struct fault *f)
{
    uint8_t *p = buf;
    while (len) {
        size_t chunk = 4096 - (va & 4095);
        if (chunk > len)
            chunk = len;
        uint64_t pa;
        if (!walk(u, va, write, &pa, f))
            return false;
        if (!phys_ok(u, pa, chunk)) {
            /* not RAM: the CPU would reach MMIO; no guest of ours puts
             * descriptor tables or stacks there */
            f->vector = EXC_GP;
            f->err = 0;
            return false;
        }
        if (write) {
            memcpy(u->cpu->ram + pa, p, chunk);
            uni_mark_dirty(u, pa, chunk);
            /* a frame written over code must not run stale TBs */
            uc_ctl_remove_cache(u->uc, pa, pa + chunk);
        } else {
            memcpy(p, u->cpu->ram + pa, chunk);
        }
        va += chunk;
        p += chunk;
        len -= chunk;
    }
    return true;
}

/* ---- descriptors -------------------------------------------------------- */

struct desc {
    uint32_t lo, hi;
};

static bool read_desc(struct uni *u, const struct vmm_sregs *s, uint16_t sel,
                      struct desc *d, uint64_t *addr, struct fault *f)
{
    const struct vmm_dtable *t = &s->gdt;
    uint64_t base = t->base, limit = t->limit;
    if (sel & 4) { /* LDT */
        if (s->ldt.unusable)
            goto gp;
        base = s->ldt.base;
        limit = s->ldt.limit;
    }
    if ((uint64_t)(sel & ~7u) + 7 > limit)
        goto gp;
    *addr = base + (sel & ~7u);
    return vmem(u, *addr, d, 8, false, f);
gp:
    f->vector = EXC_GP;
    f->err = sel & 0xfffc;
    return false;
}

static void desc_to_seg(const struct desc *d, uint16_t sel,
                        struct vmm_segment *s)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->base = (d->lo >> 16) | ((d->hi & 0xff) << 16) | (d->hi & 0xff000000u);
    uint32_t lim = (d->lo & 0xffff) | (d->hi & 0xf0000);
    s->g = (d->hi >> 23) & 1;
    s->limit = s->g ? (lim << 12) | 0xfff : lim;
    s->type = (d->hi >> 8) & 15;
    s->s = (d->hi >> 12) & 1;
    s->dpl = (d->hi >> 13) & 3;
    s->present = (d->hi >> 15) & 1;
    s->avl = (d->hi >> 20) & 1;
    s->l = (d->hi >> 21) & 1;
    s->db = (d->hi >> 22) & 1;
    s->unusable = !s->present;
}

/* ---- delivery ----------------------------------------------------------- */

static bool push64(struct uni *u, uint64_t *rsp, uint64_t v, struct fault *f)
{
    *rsp -= 8;
    return vmem(u, *rsp, &v, 8, true, f);
}

static bool tss_read(struct uni *u, const struct vmm_sregs *s, unsigned off,
                     uint64_t *v, uint32_t ext, struct fault *f)
{
    if (s->tr.unusable || off + 7 > s->tr.limit) {
        f->vector = EXC_TS;
        f->err = (s->tr.selector & 0xfffc) | ext;
        return false;
    }
    return vmem(u, s->tr.base + off, v, 8, false, f);
}

/* One delivery attempt in long mode; false with *f on a nested fault. */
/* RFLAGS as pushed: for fault-class exceptions the image has RF set, so
 * that the iret back to the faulting instruction does not trip an
 * instruction breakpoint again (SDM vol. 3, 17.3.1.1); KVM does it, and
 * the frame is guest memory a replay must reproduce. */
static uint64_t pushed_rflags(uint64_t rflags, unsigned v, bool soft)
{
    static const uint32_t faults = 1u << 0 | 1u << 5 | 1u << 6 | 1u << 7 |
                                   1u << 10 | 1u << 11 | 1u << 12 |
                                   1u << 13 | 1u << 14 | 1u << 16 |
                                   1u << 17 | 1u << 19 | 1u << 20;
    return !soft && v < 32 && (faults >> v & 1) ? rflags | RF_RF : rflags;
}

static bool deliver64(struct uni *u, unsigned v, bool soft, bool has_err,
                      uint32_t err, uint32_t ext, struct fault *f)
{
    struct vmm_sregs s;
    struct vmm_regs r;
    if (uni_get_sregs(u, &s) || uni_get_regs(u, &r)) {
        f->vector = 255;
        return false;
    }
    unsigned cpl = s.cs.dpl;
    uint32_t idt_err = v * 8 + 2 + ext;
    if (v * 16ull + 15 > s.idt.limit) {
        *f = (struct fault){EXC_GP, idt_err, 0};
        return false;
    }
    uint32_t g[4];
    if (!vmem(u, s.idt.base + v * 16ull, g, 16, false, f))
        return false;
    unsigned type = (g[1] >> 8) & 15, gdpl = (g[1] >> 13) & 3;
    if (type != 14 && type != 15) {
        *f = (struct fault){EXC_GP, idt_err, 0};
        return false;
    }
    if (soft && gdpl < cpl) {
        *f = (struct fault){EXC_GP, v * 8 + 2, 0};
        return false;
    }
    if (!(g[1] & (1u << 15))) {
        *f = (struct fault){EXC_NP, idt_err, 0};
        return false;
    }
    uint16_t sel = (uint16_t)(g[0] >> 16);
    uint64_t target = (g[0] & 0xffff) | (g[1] & 0xffff0000u) |
                      ((uint64_t)g[2] << 32);
    unsigned ist = g[1] & 7;
    if (!(sel & ~3u)) {
        *f = (struct fault){EXC_GP, ext, 0};
        return false;
    }
    struct desc d;
    uint64_t daddr;
    if (!read_desc(u, &s, sel, &d, &daddr, f)) {
        f->err |= ext;
        return false;
    }
    struct vmm_segment cs;
    desc_to_seg(&d, sel, &cs);
    if (!cs.s || !(cs.type & 8) || !cs.l || cs.db || cs.dpl > cpl) {
        *f = (struct fault){EXC_GP, (sel & 0xfffcu) | ext, 0};
        return false;
    }
    if (!cs.present) {
        *f = (struct fault){EXC_NP, (sel & 0xfffcu) | ext, 0};
        return false;
    }
    unsigned ncpl = (cs.type & 4) ? cpl : cs.dpl; /* conforming keeps CPL */
    uint64_t rsp = r.rsp;
    if (ist) {
        if (!tss_read(u, &s, 0x24 + 8 * (ist - 1), &rsp, ext, f))
            return false;
    } else if (ncpl < cpl) {
        if (!tss_read(u, &s, 4 + 8 * ncpl, &rsp, ext, f))
            return false;
    }
    rsp &= ~0xfull;
    uint64_t frame[6] = {s.ss.selector, r.rsp,
                         pushed_rflags(r.rflags, v, soft), s.cs.selector,
                         r.rip, err};
    int n = has_err ? 6 : 5;
    for (int i = 0; i < n; i++)
        if (!push64(u, &rsp, frame[i], f))
            return false;
    if (!(d.hi & (1u << 8))) { /* set the descriptor's accessed bit */
        d.hi |= 1u << 8;
        if (!vmem(u, daddr + 4, &d.hi, 4, true, f))
            return false;
        cs.type |= 1;
    }
    cs.selector = (uint16_t)((sel & 0xfffc) | ncpl);
    struct vmm_segment ss = s.ss;
    if (ncpl != cpl) { /* 64-bit mode: SS becomes NULL with RPL = CPL */
        memset(&ss, 0, sizeof ss);
        ss.selector = (uint16_t)ncpl;
        ss.dpl = (uint8_t)ncpl;
        ss.unusable = 1;
    }
    uint64_t fl = r.rflags & ~(RF_TF | RF_NT | RF_RF | RF_VM);
    if (type == 14)
        fl &= ~RF_IF;
    r.rsp = rsp;
    r.rip = target;
    r.rflags = fl;
    if (uni_set_regs(u, &r) || uni_load_segs(u, &cs, &ss)) {
        f->vector = 255;
        return false;
    }
    return true;
}

static bool push32(struct uni *u, const struct vmm_segment *ss, uint32_t *esp,
                   uint32_t v, struct fault *f)
{
    *esp -= 4;
    return vmem(u, ss->base + *esp, &v, 4, true, f);
}

/* One delivery attempt in 32-bit protected mode (8-byte gates, a 32-bit
 * TSS, no stack alignment); false with *f on a nested fault. */
static bool deliver32(struct uni *u, unsigned v, bool soft, bool has_err,
                      uint32_t err, uint32_t ext, struct fault *f)
{
    struct vmm_sregs s;
    struct vmm_regs r;
    if (uni_get_sregs(u, &s) || uni_get_regs(u, &r)) {
        f->vector = 255;
        return false;
    }
    unsigned cpl = s.cs.dpl;
    uint32_t idt_err = v * 8 + 2 + ext;
    if (v * 8ull + 7 > s.idt.limit) {
        *f = (struct fault){EXC_GP, idt_err, 0};
        return false;
    }
    uint32_t g[2];
    if (!vmem(u, s.idt.base + v * 8ull, g, 8, false, f))
        return false;
    unsigned type = (g[1] >> 8) & 31, gdpl = (g[1] >> 13) & 3;
    if (type != 14 && type != 15) { /* task and 16-bit gates: not here */
        if (type == 5 || type == 6 || type == 7)
            snprintf(u->detail, sizeof u->detail,
                     "vector %u uses a task or 16-bit gate, which the "
                     "Unicorn backend does not deliver", v);
        *f = (struct fault){type == 5 || type == 6 || type == 7 ? 255
                                                                : EXC_GP,
                            idt_err, 0};
        return false;
    }
    if (soft && gdpl < cpl) {
        *f = (struct fault){EXC_GP, v * 8 + 2, 0};
        return false;
    }
    if (!(g[1] & (1u << 15))) {
        *f = (struct fault){EXC_NP, idt_err, 0};
        return false;
    }
    uint16_t sel = (uint16_t)(g[0] >> 16);
    uint32_t target = (g[0] & 0xffff) | (g[1] & 0xffff0000u);
    struct desc d;
    uint64_t daddr;
    if (!(sel & ~3u)) {
        *f = (struct fault){EXC_GP, ext, 0};
        return false;
    }
    if (!read_desc(u, &s, sel, &d, &daddr, f)) {
        f->err |= ext;
        return false;
    }
    struct vmm_segment cs;
    desc_to_seg(&d, sel, &cs);
    if (!cs.s || !(cs.type & 8) || cs.dpl > cpl) {
        *f = (struct fault){EXC_GP, (sel & 0xfffcu) | ext, 0};
        return false;
    }
    if (!cs.present) {
        *f = (struct fault){EXC_NP, (sel & 0xfffcu) | ext, 0};
        return false;
    }
    unsigned ncpl = (cs.type & 4) ? cpl : cs.dpl;
    struct vmm_segment ss = s.ss;
    uint32_t esp = (uint32_t)r.rsp;
    bool switched = ncpl < cpl;
    if (switched) {
        uint64_t esp0 = 0, ss0 = 0;
        unsigned off = 4 + 8 * ncpl;
        if (s.tr.unusable || off + 5 > s.tr.limit ||
            !vmem(u, s.tr.base + off, &esp0, 4, false, f) ||
            !vmem(u, s.tr.base + off + 4, &ss0, 2, false, f)) {
            if (f->vector != EXC_PF)
                *f = (struct fault){EXC_TS, (s.tr.selector & 0xfffcu) | ext,
                                    0};
            return false;
        }
        struct desc sd;
        uint64_t sa;
        if (!read_desc(u, &s, (uint16_t)ss0, &sd, &sa, f)) {
            *f = (struct fault){EXC_TS, ((uint16_t)ss0 & 0xfffcu) | ext, 0};
            return false;
        }
        desc_to_seg(&sd, (uint16_t)ss0, &ss);
        if (!ss.s || (ss.type & 8) || !(ss.type & 2) || ss.dpl != ncpl ||
            !ss.present) {
            *f = (struct fault){EXC_TS, ((uint16_t)ss0 & 0xfffcu) | ext, 0};
            return false;
        }
        esp = (uint32_t)esp0;
        if (!push32(u, &ss, &esp, s.ss.selector, f) ||
            !push32(u, &ss, &esp, (uint32_t)r.rsp, f))
            return false;
    }
    uint32_t frame[4] = {(uint32_t)pushed_rflags(r.rflags, v, soft), s.cs.selector, (uint32_t)r.rip,
                         err};
    for (int i = 0; i < (has_err ? 4 : 3); i++)
        if (!push32(u, &ss, &esp, frame[i], f))
            return false;
    if (!(d.hi & (1u << 8))) {
        d.hi |= 1u << 8;
        if (!vmem(u, daddr + 4, &d.hi, 4, true, f))
            return false;
        cs.type |= 1;
    }
    cs.selector = (uint16_t)((sel & 0xfffc) | ncpl);
    uint64_t fl = r.rflags & ~(RF_TF | RF_NT | RF_RF | RF_VM);
    if (type == 14)
        fl &= ~RF_IF;
    r.rsp = (r.rsp & ~0xffffffffull) | esp;
    r.rip = target;
    r.rflags = fl;
    if (uni_set_regs(u, &r) || uni_load_segs(u, &cs, switched ? &ss : NULL)) {
        f->vector = 255;
        return false;
    }
    return true;
}

static bool contributory(unsigned v)
{
    return v == EXC_DE || (v >= EXC_TS && v <= EXC_GP);
}

int uni_deliver(struct uni *u, unsigned vector, bool soft, bool has_err,
                uint32_t err)
{
    u->detail[0] = 0;
    bool lm = uni_efer(u) & (1u << 10);
    if (!(uni_reg(u, UC_X86_REG_CR0) & 1)) {
        snprintf(u->detail, sizeof u->detail,
                 "vector %u in real mode: the Unicorn backend delivers "
                 "interrupts in protected and long mode only", vector);
        return VMM_E_UNSUPPORTED;
    }
    /* EXT (bit 0 of error codes about the IDT/GDT/TSS): set while
     * delivering anything but a software interrupt. */
    uint32_t ext = soft ? 0 : 1;
    for (int depth = 0; depth < 4; depth++) {
        struct fault f = {0, 0, 0};
        if (lm ? deliver64(u, vector, soft, has_err, err, ext, &f)
               : deliver32(u, vector, soft, has_err, err, ext, &f))
            return 0;
        if (f.vector == 255)
            return u->detail[0] ? VMM_E_UNSUPPORTED : VMM_E_UNICORN;
        if (vector == EXC_DF) {
            u->shutdown = true;
            snprintf(u->detail, sizeof u->detail,
                     "triple fault: vector %u while delivering #DF",
                     f.vector);
            return 1;
        }
        if (f.vector == EXC_PF)
            uni_set_reg(u, UC_X86_REG_CR2, f.cr2);
        if (soft && u->soft_len) /* a faulting INT n reports its own RIP */
            uni_set_reg(u, UC_X86_REG_RIP,
                        uni_reg(u, UC_X86_REG_RIP) - u->soft_len);
        if ((contributory(vector) && contributory(f.vector)) ||
            (vector == EXC_PF &&
             (contributory(f.vector) || f.vector == EXC_PF))) {
            vector = EXC_DF;
            err = 0;
        } else {
            vector = f.vector;
            err = f.err;
        }
        soft = false;
        has_err = uni_vector_has_error(vector);
        ext = 1;
    }
    u->shutdown = true;
    snprintf(u->detail, sizeof u->detail, "triple fault (nested faults)");
    return 1;
}

/* ---- SYSCALL / SYSRET / MSRs -------------------------------------------- */

static void flat_seg(struct vmm_segment *s, uint16_t sel, bool code,
                     unsigned dpl, bool l)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->limit = 0xffffffff;
    s->type = code ? 11 : 3;
    s->s = 1;
    s->dpl = (uint8_t)dpl;
    s->present = 1;
    s->l = l;
    s->db = code ? !l : 1;
    s->g = 1;
}

static uint64_t msr_get(struct uni *u, uint32_t id)
{
    uc_x86_msr m = {id, 0};
    uc_reg_read(u->uc, UC_X86_REG_MSR, &m);
    return m.value;
}

/* Called with RIP after the syscall instruction (Unicorn skipped it). */
int uni_emulate_syscall(struct uni *u)
{
    struct vmm_regs r;
    int rc = uni_get_regs(u, &r);
    if (rc)
        return rc;
    uint64_t efer = uni_efer(u);
    if (!(efer & 1) || !(efer & (1u << 10))) {
        r.rip -= 2;
        if ((rc = uni_set_regs(u, &r)))
            return rc;
        return uni_deliver(u, EXC_UD, false, false, 0) < 0 ? VMM_E_UNICORN
                                                           : 0;
    }
    uint64_t star = msr_get(u, 0xc0000081), lstar = msr_get(u, 0xc0000082);
    uint64_t fmask = msr_get(u, 0xc0000084);
    r.rcx = r.rip;
    r.r11 = r.rflags;
    r.rflags &= ~(fmask | RF_RF);
    r.rflags |= 2;
    r.rip = lstar;
    uint16_t sel = (uint16_t)(star >> 32);
    struct vmm_segment cs, ss;
    flat_seg(&cs, sel & 0xfffc, true, 0, true);
    flat_seg(&ss, (uint16_t)(sel + 8), false, 0, false);
    if ((rc = uni_set_regs(u, &r)))
        return rc;
    return uni_load_segs(u, &cs, &ss);
}

static bool canonical(uint64_t a)
{
    return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

static int get_all(struct uni *u, struct vmm_regs *r, struct vmm_sregs *s)
{
    int rc = uni_get_regs(u, r);
    return rc ? rc : uni_get_sregs(u, s);
}

int uni_emulate_sysret(struct uni *u, bool rex_w)
{
    struct vmm_regs r;
    struct vmm_sregs s;
    int rc = get_all(u, &r, &s);
    if (rc)
        return rc;
    if (!(s.efer & 1) || !s.cs.l)
        return uni_deliver(u, EXC_UD, false, false, 0) < 0 ? VMM_E_UNICORN
                                                           : 1;
    if (s.cs.dpl != 0 || (rex_w && !canonical(r.rcx)))
        return uni_deliver(u, EXC_GP, false, true, 0) < 0 ? VMM_E_UNICORN
                                                          : 1;
    uint16_t base = (uint16_t)(msr_get(u, 0xc0000081) >> 48);
    struct vmm_segment cs, ss;
    if (rex_w) {
        flat_seg(&cs, (uint16_t)((base + 16) | 3), true, 3, true);
        r.rip = r.rcx;
    } else {
        flat_seg(&cs, (uint16_t)(base | 3), true, 3, false);
        r.rip = (uint32_t)r.rcx;
    }
    flat_seg(&ss, (uint16_t)((base + 8) | 3), false, 3, false);
    r.rflags = (r.r11 & 0x3c7fd7) | 2;
    if ((rc = uni_set_regs(u, &r)))
        return rc;
    return uni_load_segs(u, &cs, &ss);
}

/* RDMSR/WRMSR at RIP (not executed yet).  0 = done (RIP advanced). */
int uni_emulate_msr(struct uni *u, bool write)
{
    struct vmm_regs r;
    struct vmm_sregs s;
    int rc = get_all(u, &r, &s);
    if (rc)
        return rc;
    if (s.cs.dpl != 0)
        return uni_deliver(u, EXC_GP, false, true, 0) < 0 ? VMM_E_UNICORN
                                                          : 0;
    uint32_t id = (uint32_t)r.rcx;
    if (write) {
        uint64_t v = (r.rdx << 32) | (uint32_t)r.rax;
        if (id == 0xc0000080) {
            int rc2 = uni_set_efer(u, (uni_efer(u) & (1u << 10)) |
                                          (v & ~(1ull << 10)));
            if (rc2)
                return rc2;
        } else if (id == 0xc0000103) {
            u->tsc_aux = v;
        } else {
            uc_x86_msr m = {id, v};
            uc_reg_write(u->uc, UC_X86_REG_MSR, &m);
        }
    } else {
        uint64_t v;
        if (id == 0xc0000080)
            v = uni_efer(u);
        else if (id == 0xc0000103)
            v = u->tsc_aux;
        else
            v = msr_get(u, id);
        r.rax = (uint32_t)v;
        r.rdx = v >> 32;
    }
    r.rip += 2;
    return uni_set_regs(u, &r);
}

/* ---- identity paging check ---------------------------------------------- */

static int paging_bad(struct uni *u, uint64_t va, uint64_t pa)
{
    snprintf(u->detail, sizeof u->detail,
             "guest paging is not identity: virtual 0x%" PRIx64
             " maps physical 0x%" PRIx64
             " (Unicorn 2.0.1 translates virtual = physical)",
             va, pa);
    return VMM_E_PAGING;
}

static void pt_seen(struct uni *u, uint64_t table, uint64_t size)
{
    if (table < u->pt_lo)
        u->pt_lo = table;
    if (table + size > u->pt_hi)
        u->pt_hi = table + size;
}

static int check_level(struct uni *u, uint64_t table, int level,
                       uint64_t va_base)
{
    if (!phys_ok(u, table, 4096))
        return 0; /* a table outside RAM: walks fault, nothing maps */
    pt_seen(u, table, 4096);
    for (unsigned i = 0; i < 512; i++) {
        uint64_t e = ld64(u, table + i * 8ull);
        if (!(e & PTE_P))
            continue;
        uint64_t va = va_base | ((uint64_t)i << (12 + 9 * level));
        if (level == 3 && (va & (1ull << 47)))
            va |= 0xffff000000000000ull;
        bool leaf = level == 0 || (level <= 2 && level >= 1 && (e & PTE_PS));
        if (leaf) {
            uint64_t psz = 1ull << (12 + 9 * level);
            uint64_t pa = e & PTE_ADDR & ~(psz - 1);
            if (pa != va)
                return paging_bad(u, va, pa);
            continue;
        }
        int rc = check_level(u, e & PTE_ADDR, level - 1, va);
        if (rc)
            return rc;
    }
    return 0;
}

int uni_check_paging(struct uni *u)
{
    u->pt_lo = UINT64_MAX;
    u->pt_hi = 0;
    uint64_t cr0 = uni_reg(u, UC_X86_REG_CR0);
    if (!(cr0 & (1ull << 31)))
        return 0;
    uint64_t cr3 = uni_reg(u, UC_X86_REG_CR3);
    uint64_t cr4 = uni_reg(u, UC_X86_REG_CR4);
    if (uni_efer(u) & (1u << 10)) {
        if (cr4 & (1u << 12)) {
            snprintf(u->detail, sizeof u->detail,
                     "5-level paging is not supported by Unicorn 2.0.1");
            return VMM_E_PAGING;
        }
        return check_level(u, cr3 & PTE_ADDR, 3, 0);
    }
    if (cr4 & (1u << 5)) { /* 32-bit PAE: 4 PDPTEs, then 2-level */
        uint64_t pdpt = cr3 & 0xffffffe0u;
        if (!phys_ok(u, pdpt, 32))
            return 0;
        pt_seen(u, pdpt, 32);
        for (unsigned i = 0; i < 4; i++) {
            uint64_t e = ld64(u, pdpt + i * 8ull);
            if (!(e & PTE_P))
                continue;
            int rc = check_level(u, e & PTE_ADDR, 1, (uint64_t)i << 30);
            if (rc)
                return rc;
        }
        return 0;
    }
    /* 32-bit 2-level paging with 4 MiB pages when PSE */
    uint64_t pd = cr3 & 0xfffff000u;
    if (!phys_ok(u, pd, 4096))
        return 0;
    pt_seen(u, pd, 4096);
    for (unsigned i = 0; i < 1024; i++) {
        uint32_t e;
        memcpy(&e, u->cpu->ram + pd + i * 4, 4);
        if (!(e & 1))
            continue;
        uint64_t va = (uint64_t)i << 22;
        if ((e & 0x80) && (cr4 & (1u << 4))) {
            if ((e & 0xffc00000u) != va)
                return paging_bad(u, va, e & 0xffc00000u);
            continue;
        }
        uint64_t pt = e & 0xfffff000u;
        if (!phys_ok(u, pt, 4096))
            continue;
        pt_seen(u, pt, 4096);
        for (unsigned j = 0; j < 1024; j++) {
            uint32_t pte;
            memcpy(&pte, u->cpu->ram + pt + j * 4, 4);
            if ((pte & 1) && (pte & 0xfffff000u) != (va | (uint64_t)j << 12))
                return paging_bad(u, va | (uint64_t)j << 12,
                                  pte & 0xfffff000u);
        }
    }
    return 0;
}

/* ---- I/O permission (Unicorn 2.0.1 skips the check) --------------------- */

/* Port and size of the IN/OUT/INS/OUTS at p (its bytes). */
static bool io_operands(struct uni *u, const uint8_t *p, unsigned len,
                        uint16_t *port, unsigned *size)
{
    bool opsize16 = false;
    unsigned i = 0;
    for (; i < len; i++) {
        if (p[i] == 0x66)
            opsize16 = true;
        else if (p[i] != 0x67 && p[i] != 0xf2 && p[i] != 0xf3 &&
                 (p[i] & 0xf0) != 0x40)
            break;
    }
    if (i >= len)
        return false;
    uint8_t op = p[i];
    bool imm = op >= 0xe4 && op <= 0xe7;
    *size = (op & 1) ? (opsize16 ? 2 : 4) : 1;
    if (imm) {
        if (i + 1 >= len)
            return false;
        *port = p[i + 1];
    } else {
        *port = (uint16_t)uni_reg(u, UC_X86_REG_RDX);
    }
    return true;
}

/* False when CPL > IOPL and the TSS I/O bitmap denies the access (the
 * instruction must raise #GP(0) instead of running). */
bool uni_io_allowed(struct uni *u, const uint8_t *insn, unsigned len)
{
    unsigned cpl = uni_reg(u, UC_X86_REG_CS) & 3;
    unsigned iopl = (uni_reg(u, UC_X86_REG_RFLAGS) >> 12) & 3;
    if (cpl <= iopl)
        return true;
    uint16_t port;
    unsigned size;
    if (!io_operands(u, insn, len, &port, &size))
        return true;
    uc_x86_mmr tr = {0};
    uc_reg_read(u->uc, UC_X86_REG_TR, &tr);
    struct fault f;
    uint16_t base, bits;
    if (tr.limit < 0x67 || !vmem(u, tr.base + 0x66, &base, 2, false, &f))
        return false;
    uint64_t off = (uint64_t)base + port / 8;
    if (off + 1 > tr.limit || !vmem(u, tr.base + off, &bits, 2, false, &f))
        return false;
    return !((bits >> (port & 7)) & ((1u << size) - 1));
}
