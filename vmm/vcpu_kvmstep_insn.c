/*
 * vcpu_kvmstep_insn.c — what the kvm-step backend must know about an
 * instruction before it steps it, and what it reads of the guest's
 * interrupt machinery.
 *
 * Capstone gives the length and whether the instruction branches (a step
 * of a non-branch that does not end at the next instruction raised an
 * exception); the prefixes (vmm_insn_prefixes, shared with the KVM
 * backend and the recorder) and the opcode classify the rest: string
 * instructions with their element and address sizes, IRET/RETF/SYSRET/SYSEXIT (which may enter
 * CPL3), and the vectors an instruction raises by design.  Guest bytes
 * are read through the page tables (vmm_read_gva), never outside RAM.
 */
#include <string.h>

#include "vmm/vcpu_kvmstep_int.h"

int ks_insn_init(struct ks *ks)
{
    static const cs_mode modes[3] = {CS_MODE_16, CS_MODE_32, CS_MODE_64};
    for (int m = 0; m < 3; m++) {
        if (cs_open(CS_ARCH_X86, modes[m], &ks->cs[m]) != CS_ERR_OK)
            return VMM_E_UNSUPPORTED;
        ks->cs_ok[m] = true;
        cs_option(ks->cs[m], CS_OPT_DETAIL, CS_OPT_ON);
    }
    return 0;
}

void ks_insn_fini(struct ks *ks)
{
    for (int m = 0; m < 3; m++)
        if (ks->cs_ok[m])
            cs_close(&ks->cs[m]);
}

static unsigned mode_of(const struct vmm_sregs *s)
{
    if ((s->efer & 0x400) && s->cs.l)
        return 2;
    return s->cs.db ? 1 : 0;
}

static bool is_branch_id(unsigned id)
{
    return id == X86_INS_SYSCALL || id == X86_INS_SYSENTER ||
           id == X86_INS_SYSRET || id == X86_INS_SYSEXIT;
}

/* Length and branch-ness from Capstone. */
static void decode_cs(struct ks *ks, struct ks_insn *d)
{
    cs_insn *ci = NULL;
    d->len = 0;
    d->branch = true; /* undecodable: assume anything */
    if (cs_disasm(ks->cs[d->mode], d->bytes, d->n, d->lin, 1, &ci) != 1)
        return;
    d->len = (uint8_t)ci->size;
    d->branch = is_branch_id(ci->id);
    const cs_detail *det = ci->detail;
    for (unsigned i = 0; det && i < det->groups_count; i++) {
        uint8_t g = det->groups[i];
        if (g == CS_GRP_JUMP || g == CS_GRP_CALL || g == CS_GRP_RET ||
            g == CS_GRP_INT || g == CS_GRP_IRET ||
            g == CS_GRP_BRANCH_RELATIVE)
            d->branch = true;
    }
    cs_free(ci, 1);
}

/* Prefixes (vmm_insn_prefixes), then the opcode: string instructions,
 * returns, vectors. */
static void decode_own(struct ks_insn *d, const struct vmm_sregs *s)
{
    struct vmm_insn_prefix p;
    if (!vmm_insn_prefixes(d->bytes, d->n, s, &p))
        return;
    unsigned i = p.len;
    uint8_t op = p.op;
    uint8_t next = i + 1 < d->n ? d->bytes[i + 1] : 0;
    d->op = op;
    d->asz = p.asz;
    d->opsz = p.opsz;
    d->seg = p.seg;
    d->str = p.str;
    d->esize = p.esize;
    d->rep = p.str ? p.rep : 0;
    if (op == 0xcf) {
        d->ret = KS_RET_IRET;
    } else if (op == 0xca || op == 0xcb) {
        d->ret = KS_RET_FAR;
    } else if (op == 0x0f && (next == 0x07 || next == 0x35)) {
        d->ret = KS_RET_USER; /* sysret, sysexit */
    } else if (op == 0x0f && next == 0x0b) {
        d->vec = 6;
    } else if (op == 0xcd && i + 1 < d->n) {
        d->vec = next;
    } else if (op == 0xcc || op == 0xce || op == 0xf1) {
        d->vec = op == 0xcc ? 3 : op == 0xce ? 4 : 1;
    } else if ((op == 0xf6 || op == 0xf7) && i + 1 < d->n &&
               ((next >> 3) & 7) >= 6) {
        d->vec = 0; /* div, idiv: #DE */
    } else if (op >= 0xd8 && op <= 0xdf) {
        d->x87 = true;
    } else if (op == 0xf4) {
        d->hlt = true;
    }
}

const struct ks_insn *ks_decode(struct ks *ks, const struct vmm_sregs *s,
                                uint64_t rip)
{
    uint8_t b[15];
    uint64_t lin = vmm_code_linear(s, rip);
    unsigned mode = mode_of(s);
    unsigned n = vmm_code_fetch(ks->cpu->ram, ks->cpu->ram_size, s, rip, b,
                                sizeof b);
    if (!n)
        return NULL;
    unsigned slot = (unsigned)((lin ^ (lin >> 9)) % KS_DECODE_CACHE);
    struct ks_insn *d = &ks->cache[slot];
    if (ks->cache_used[slot] && d->lin == lin && d->mode == mode &&
        d->n == n && !memcmp(d->bytes, b, n))
        return d;
    memset(d, 0, sizeof *d);
    d->lin = lin;
    d->mode = (uint8_t)mode;
    d->n = (uint8_t)n;
    d->vec = -1;
    memcpy(d->bytes, b, n);
    decode_cs(ks, d);
    decode_own(d, s);
    ks->cache_used[slot] = true;
    return d;
}

/* Base of code segment sel in s's GDT (flat guests: 0). */
static bool code_base(struct ks *ks, const struct vmm_sregs *s, uint16_t sel,
                      uint64_t *base)
{
    uint8_t d[8];
    if ((sel & 4) || (uint32_t)(sel & ~7u) + 7 > s->gdt.limit ||
        vmm_read_gva(ks->cpu->ram, ks->cpu->ram_size, s,
                     s->gdt.base + (sel & ~7u), d, 8))
        return false;
    *base = (uint32_t)(d[2] | d[3] << 8 | d[4] << 16 | (uint32_t)d[7] << 24);
    return true;
}

bool ks_gate_target(struct ks *ks, const struct vmm_sregs *s, unsigned v,
                    uint64_t *lin)
{
    bool lm = s->efer & 0x400;
    unsigned size = lm ? 16 : 8;
    uint8_t g[16];
    if ((uint64_t)v * size + size - 1 > s->idt.limit ||
        vmm_read_gva(ks->cpu->ram, ks->cpu->ram_size, s,
                     s->idt.base + (uint64_t)v * size, g, size))
        return false;
    unsigned type = g[5] & 0x1f;
    if (!(g[5] & 0x80) || (type != 0x0e && type != 0x0f))
        return false; /* not present, or a task/call gate */
    uint64_t off = (uint64_t)g[0] | (uint64_t)g[1] << 8 |
                   (uint64_t)g[6] << 16 | (uint64_t)g[7] << 24;
    if (lm) {
        uint32_t hi;
        memcpy(&hi, g + 8, 4);
        *lin = off | (uint64_t)hi << 32;
        return true;
    }
    uint64_t base;
    if (!code_base(ks, s, (uint16_t)(g[2] | g[3] << 8), &base))
        return false;
    *lin = (uint32_t)(off + base);
    return true;
}

/* Words of guest-virtual stack memory, through the page tables of s. */
static bool stack_words(struct ks *ks, const struct vmm_sregs *s,
                        uint64_t va, unsigned wsize, uint64_t *out,
                        unsigned n)
{
    uint8_t buf[16 * 8];
    if (n * wsize > sizeof buf ||
        vmm_read_gva(ks->cpu->ram, ks->cpu->ram_size, s, va, buf, n * wsize))
        return false;
    for (unsigned i = 0; i < n; i++) {
        out[i] = 0;
        memcpy(&out[i], buf + i * wsize, wsize);
    }
    return true;
}

bool ks_frame_found(struct ks *ks, const struct vmm_cpu_state *pre,
                    const struct vmm_cpu_state *post,
                    const struct ks_insn *in)
{
    /* 64-bit frame: RIP CS RFLAGS RSP SS; legacy: EIP CS EFLAGS.  The
     * handler's first instruction may have pushed or popped once, and an
     * error code may sit below the frame. */
    bool lm = post->sregs.efer & 0x400;
    unsigned wsize = lm ? 8 : 4, nw = lm ? 5 : 3;
    uint64_t sp = lm ? post->regs.rsp
                     : (uint32_t)(post->regs.rsp + post->sregs.ss.base);
    uint64_t w[9];
    if (!stack_words(ks, &post->sregs, sp - wsize, wsize, w, 4 + nw))
        return false;
    uint64_t mask = ~0x108d5ull & (lm ? ~0ull : 0xffffffffull);
    uint64_t next = pre->regs.rip + (in ? in->len : 0);
    for (unsigned k = 0; k < 4; k++) {
        const uint64_t *f = w + k;
        bool rip_ok = f[0] == pre->regs.rip || (in && in->len && f[0] == next);
        if (rip_ok && (f[1] & 0xffff) == pre->sregs.cs.selector &&
            !((f[2] ^ pre->regs.rflags) & mask) &&
            (!lm || (f[3] == pre->regs.rsp &&
                     (f[4] & 0xffff) == pre->sregs.ss.selector)))
            return true;
    }
    return false;
}

int ks_ret_cpl(struct ks *ks, const struct vmm_cpu_state *s,
               const struct ks_insn *in)
{
    if (in->ret == KS_RET_USER)
        return 3;
    bool lm = (s->sregs.efer & 0x400) && s->sregs.cs.l;
    uint64_t sp = lm ? s->regs.rsp
                     : (uint32_t)(s->regs.rsp + s->sregs.ss.base);
    uint64_t w[2];
    /* IRET and RETF: the return RIP, then CS, each opsz bytes */
    if (!stack_words(ks, &s->sregs, sp, in->opsz, w, 2))
        return -1;
    return (int)(w[1] & 3);
}
