/*
 * insn.c — finds the start of the write instruction that KVM has already
 * executed when it reports an OUT or MMIO-write exit (vcpu_kvm.c explains
 * why), so the exit's registers can be given "before the instruction".
 *
 * x86 cannot be decoded backwards in general, but here the instruction is
 * known: it ends at RIP and wrote `size` bytes to a known port or address.
 * For OUT the encodings are few (E6/E7 ib, EE/EF, optional 66) and are
 * checked by hand against the port and DX.  For MMIO every candidate start
 * RIP-1 .. RIP-15 is decoded with Capstone and kept only when it ends at
 * RIP and writes `size` bytes to an address that translates to the exit's
 * GPA; the shortest such candidate wins (a redundant prefix in front of it
 * is the only case this can get wrong).  Results are cached by RIP with
 * the instruction bytes, so a loop costs one decode.
 *
 * Also the small helpers every backend shares to look at code before it
 * runs: its linear address, its bytes through the page tables, and its
 * prefixes (vmm_insn_prefixes, which tells string instructions apart).
 */
#include <capstone/capstone.h>
#include <stdio.h>
#include <string.h>

#include "vmm/vmm_int.h"

static cs_mode mode_of(const struct vmm_sregs *s)
{
    return s->cs.l ? CS_MODE_64 : s->cs.db ? CS_MODE_32 : CS_MODE_16;
}

static bool code_bytes(const uint8_t *ram, uint64_t ram_size,
                       const struct vmm_sregs *s, uint64_t lin, uint8_t *buf,
                       size_t len)
{
    return vmm_read_gva(ram, ram_size, s, lin, buf, len) == 0;
}

uint64_t vmm_code_linear(const struct vmm_sregs *s, uint64_t rip)
{
    bool long64 = (s->efer & 0x400) && s->cs.l;
    return long64 ? rip : (uint32_t)(rip + s->cs.base);
}

unsigned vmm_code_fetch(const uint8_t *ram, uint64_t ram_size,
                        const struct vmm_sregs *s, uint64_t rip, uint8_t *b,
                        unsigned n)
{
    uint64_t lin = vmm_code_linear(s, rip);
    while (n && vmm_read_gva(ram, ram_size, s, lin, b, n))
        n--; /* stop at the end of mapped memory */
    return n;
}

static bool is_string_op(uint8_t op)
{
    return (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf) ||
           (op >= 0x6c && op <= 0x6f);
}

bool vmm_insn_prefixes(const uint8_t *b, size_t n, const struct vmm_sregs *s,
                       struct vmm_insn_prefix *p)
{
    bool long64 = (s->efer & 0x400) && s->cs.l, op16 = !long64 && !s->cs.db;
    bool o66 = false, a67 = false, rexw = false;
    memset(p, 0, sizeof *p);
    size_t i = 0;
    for (; i < n; i++) {
        uint8_t c = b[i];
        if (c == 0x66)
            o66 = true;
        else if (c == 0x67)
            a67 = true;
        else if (c == 0xf2 || c == 0xf3)
            p->rep = c;
        else if (c == 0x2e || c == 0x36 || c == 0x3e || c == 0x26 ||
                 c == 0x64 || c == 0x65)
            p->seg = c;
        else if (c == 0xf0)
            continue; /* lock */
        else if (long64 && (c & 0xf0) == 0x40)
            rexw = c & 8; /* REX: only the last one counts */
        else
            break;
    }
    if (i >= n)
        return false;
    p->len = (uint8_t)i;
    p->op = b[i];
    p->asz = long64 ? (a67 ? 4 : 8) : (op16 != a67) ? 2 : 4;
    unsigned osz = (op16 != o66) ? 2 : 4; /* without REX.W */
    p->opsz = (uint8_t)(long64 && rexw ? 8 : osz);
    p->str = is_string_op(p->op);
    if (p->str) /* INS/OUTS move at most 4 bytes: REX.W does not widen */
        p->esize = !(p->op & 1) ? 1
                   : (p->op >= 0x6c && p->op <= 0x6f) ? (uint8_t)osz
                                                      : p->opsz;
    return true;
}

/* OUT imm8 / OUT DX forms ending at rip_after. */
static unsigned out_len(const uint8_t *ram, uint64_t ram_size,
                        const struct vmm_regs *r, const struct vmm_sregs *s,
                        uint16_t port, unsigned size)
{
    uint8_t b[3];
    uint64_t lin = vmm_code_linear(s, r->rip);
    if (lin < 3 || !code_bytes(ram, ram_size, s, lin - 3, b, 3))
        return 0;
    bool op16 = !s->cs.l && !s->cs.db; /* 16-bit code: 66 means 32 */
    bool need66 = op16 ? size == 4 : size == 2;
    uint8_t imm_op = size == 1 ? 0xe6 : 0xe7;
    uint8_t dx_op = size == 1 ? 0xee : 0xef;
    /* imm8 form: [66] E6/E7 port */
    if (port < 256 && b[2] == port && b[1] == imm_op &&
        (!need66 || b[0] == 0x66))
        return need66 ? 3 : 2;
    /* DX form: [66] EE/EF */
    if (b[2] == dx_op && (uint16_t)r->rdx == port &&
        (!need66 || b[1] == 0x66))
        return need66 ? 2 : 1;
    return 0;
}

static const struct { x86_reg id; unsigned off; unsigned bits; } gpr[] = {
#define R(name, field, bits) { X86_REG_##name, offsetof(struct vmm_regs, field), bits }
    R(RAX, rax, 64), R(RBX, rbx, 64), R(RCX, rcx, 64), R(RDX, rdx, 64),
    R(RSI, rsi, 64), R(RDI, rdi, 64), R(RSP, rsp, 64), R(RBP, rbp, 64),
    R(R8, r8, 64),   R(R9, r9, 64),   R(R10, r10, 64), R(R11, r11, 64),
    R(R12, r12, 64), R(R13, r13, 64), R(R14, r14, 64), R(R15, r15, 64),
    R(EAX, rax, 32), R(EBX, rbx, 32), R(ECX, rcx, 32), R(EDX, rdx, 32),
    R(ESI, rsi, 32), R(EDI, rdi, 32), R(ESP, rsp, 32), R(EBP, rbp, 32),
    R(R8D, r8, 32),  R(R9D, r9, 32),  R(R10D, r10, 32), R(R11D, r11, 32),
    R(R12D, r12, 32), R(R13D, r13, 32), R(R14D, r14, 32), R(R15D, r15, 32),
    R(BX, rbx, 16), R(SI, rsi, 16), R(DI, rdi, 16), R(BP, rbp, 16),
#undef R
};

static bool reg_value(const struct vmm_regs *r, x86_reg id, uint64_t *v)
{
    if (id == X86_REG_INVALID) {
        *v = 0;
        return true;
    }
    for (size_t i = 0; i < sizeof gpr / sizeof gpr[0]; i++) {
        if (gpr[i].id != id)
            continue;
        uint64_t x;
        memcpy(&x, (const uint8_t *)r + gpr[i].off, 8);
        *v = gpr[i].bits == 64 ? x
             : gpr[i].bits == 32 ? (uint32_t)x : (uint16_t)x;
        return true;
    }
    return false;
}

static uint64_t seg_base(const struct vmm_sregs *s, x86_reg seg)
{
    switch (seg) {
    case X86_REG_FS: return s->fs.base;
    case X86_REG_GS: return s->gs.base;
    case X86_REG_ES: return s->es.base;
    case X86_REG_CS: return s->cs.base;
    case X86_REG_SS: return s->ss.base;
    default: return s->ds.base;
    }
}

/* Does insn (ending at rip_after) write size bytes at guest-physical gpa? */
static bool mmio_match(const uint8_t *ram, uint64_t ram_size,
                       const struct vmm_regs *r, const struct vmm_sregs *s,
                       const cs_insn *in, uint64_t gpa, unsigned size)
{
    const cs_x86 *x = &in->detail->x86;
    bool long64 = (s->efer & 0x400) && s->cs.l;
    for (unsigned i = 0; i < x->op_count; i++) {
        const cs_x86_op *op = &x->operands[i];
        if (op->type != X86_OP_MEM || op->size != size ||
            !(op->access & CS_AC_WRITE))
            continue;
        uint64_t base, index;
        if (op->mem.base == X86_REG_RIP || op->mem.base == X86_REG_EIP)
            base = r->rip;
        else if (!reg_value(r, op->mem.base, &base))
            continue;
        if (!reg_value(r, op->mem.index, &index))
            continue;
        uint64_t ea = base + index * (uint64_t)op->mem.scale +
                      (uint64_t)op->mem.disp;
        if (!long64 || op->mem.segment == X86_REG_FS ||
            op->mem.segment == X86_REG_GS)
            ea += seg_base(s, op->mem.segment);
        if (!long64)
            ea = (uint32_t)ea;
        uint64_t pa;
        if (vmm_walk(ram, ram_size, s, ea, true, &pa) == 0 && pa == gpa)
            return true;
        /* Not RAM-backed: vmm_walk checks only the tables, so compare
         * the linear address when paging is off. */
        if (!(s->cr0 & 0x80000000u) && ea == gpa)
            return true;
    }
    return false;
}

static unsigned mmio_len(const uint8_t *ram, uint64_t ram_size,
                         const struct vmm_regs *r, const struct vmm_sregs *s,
                         uint64_t gpa, unsigned size)
{
    uint8_t b[15];
    uint64_t lin = vmm_code_linear(s, r->rip);
    unsigned avail = 15;
    while (avail && (lin < avail ||
                     !code_bytes(ram, ram_size, s, lin - avail, b, avail)))
        avail--;
    if (!avail)
        return 0;
    csh h;
    if (cs_open(CS_ARCH_X86, mode_of(s), &h) != CS_ERR_OK)
        return 0;
    cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
    cs_insn *in = cs_malloc(h);
    unsigned found = 0;
    for (unsigned len = 1; len <= avail && !found && in; len++) {
        const uint8_t *code = b + avail - len;
        size_t n = len;
        uint64_t addr = r->rip - len;
        if (cs_disasm_iter(h, &code, &n, &addr, in) && n == 0 &&
            mmio_match(ram, ram_size, r, s, in, gpa, size))
            found = len;
    }
    if (in)
        cs_free(in, 1);
    cs_close(&h);
    return found;
}

unsigned vmm_insn_decode(const uint8_t *code, size_t n,
                         const struct vmm_sregs *s, uint64_t rip, char *text,
                         size_t cap)
{
    csh h;
    cs_insn *in;
    unsigned len = 0;
    if (cap)
        text[0] = '\0';
    if (cs_open(CS_ARCH_X86, mode_of(s), &h) != CS_ERR_OK)
        return 0;
    if (cs_disasm(h, code, n, rip, 1, &in) == 1) {
        len = in->size;
        snprintf(text, cap, "%s%s%s", in->mnemonic, in->op_str[0] ? " " : "",
                 in->op_str);
        cs_free(in, 1);
    }
    cs_close(&h);
    return len;
}

unsigned vmm_insn_describe(char *buf, size_t cap, const uint8_t *code,
                           size_t n, const struct vmm_sregs *s, int cpl,
                           uint64_t rip)
{
    char text[64];
    if (n > 16)
        n = 16;
    unsigned len = vmm_insn_decode(code, n, s, rip, text, sizeof text);
    unsigned shown = len ? len : (unsigned)n;
    char hex[3 * 16 + 1] = "";
    for (unsigned i = 0; i < shown; i++)
        snprintf(hex + 3 * i - (i ? 1 : 0), 4, "%s%02x", i ? " " : "",
                 code[i]);
    snprintf(buf, cap, "RIP=0x%llx CPL%d bytes [%s]%s%s%s",
             (unsigned long long)rip, cpl, hex, text[0] ? " (" : "", text,
             text[0] ? ")" : "");
    return shown;
}

/* Per-thread cache: RIP after -> length, validated by the bytes. */
#define CACHE_N 64
static __thread struct {
    uint64_t rip;
    uint8_t len, bytes[15];
} cache[CACHE_N];

unsigned vmm_insn_len_before(const uint8_t *ram, uint64_t ram_size,
                             const struct vmm_regs *r,
                             const struct vmm_sregs *s, bool is_mmio,
                             uint64_t port_or_gpa, unsigned size)
{
    if (!is_mmio)
        return out_len(ram, ram_size, r, s, (uint16_t)port_or_gpa, size);
    uint64_t lin = vmm_code_linear(s, r->rip);
    unsigned slot = (unsigned)(r->rip ^ (r->rip >> 6)) % CACHE_N;
    uint8_t cur[15];
    if (cache[slot].rip == r->rip && cache[slot].len && lin >= 15 &&
        code_bytes(ram, ram_size, s, lin - cache[slot].len, cur,
                   cache[slot].len) &&
        !memcmp(cur, cache[slot].bytes, cache[slot].len))
        return cache[slot].len;
    unsigned len = mmio_len(ram, ram_size, r, s, port_or_gpa, size);
    if (len && code_bytes(ram, ram_size, s, lin - len, cur, len)) {
        cache[slot].rip = r->rip;
        cache[slot].len = len;
        memcpy(cache[slot].bytes, cur, len);
    }
    return len;
}
