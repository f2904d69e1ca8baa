/*
 * x86_regs.c — the x86-64 register file as gdb sees it: numbering, sizes,
 * conversion from/to struct vmm_cpu_state, and the target description.
 *
 * One table drives everything: the XML we send (so gdb's register numbers
 * are ours by construction), the 'g' packet layout and 'p'/'P'.  Feature
 * and register names are the ones GDB documents for i386/amd64 targets
 * ("Target Descriptions" > "i386 Features"): org.gnu.gdb.i386.core (GPRs,
 * rip, eflags, selectors, x87), org.gnu.gdb.i386.sse (xmm, mxcsr) and
 * org.gnu.gdb.i386.segments (fs_base, gs_base); the control registers go
 * in a feature of our own, in gdb's "system" register group.
 *
 * Conversions worth a note: vmm_fpu is FXSAVE-shaped, so its tag word is
 * the abridged one bit per register, while gdb wants the full 2-bit x87 tag
 * word (derived from each register's contents, as FSAVE would store it);
 * in 64-bit FXSAVE the instruction/operand pointers are 64-bit, and gdb's
 * amd64 convention puts their high halves in fiseg/foseg.
 */
#include <string.h>

#include "debugger/debugger_int.h"

/* clang-format off: tables read better aligned by hand */
enum { F_CORE, F_SSE, F_SEGMENTS, F_SYSTEM, F_COUNT };

static const char *const feature_names[F_COUNT] = {
    "org.gnu.gdb.i386.core",
    "org.gnu.gdb.i386.sse",
    "org.gnu.gdb.i386.segments",
    "org.ttvm.x86-64.system",
};

/* Types each feature defines before its registers (gdb resolves type
 * names in the whole description, but a feature should carry its own). */
static const char *const feature_types[F_COUNT] = {
    [F_CORE] = "    <flags id=\"ttvm_eflags\" size=\"4\">\n"
               "      <field name=\"CF\" start=\"0\" end=\"0\"/>\n"
               "      <field name=\"\" start=\"1\" end=\"1\"/>\n"
               "      <field name=\"PF\" start=\"2\" end=\"2\"/>\n"
               "      <field name=\"AF\" start=\"4\" end=\"4\"/>\n"
               "      <field name=\"ZF\" start=\"6\" end=\"6\"/>\n"
               "      <field name=\"SF\" start=\"7\" end=\"7\"/>\n"
               "      <field name=\"TF\" start=\"8\" end=\"8\"/>\n"
               "      <field name=\"IF\" start=\"9\" end=\"9\"/>\n"
               "      <field name=\"DF\" start=\"10\" end=\"10\"/>\n"
               "      <field name=\"OF\" start=\"11\" end=\"11\"/>\n"
               "      <field name=\"NT\" start=\"14\" end=\"14\"/>\n"
               "      <field name=\"RF\" start=\"16\" end=\"16\"/>\n"
               "      <field name=\"VM\" start=\"17\" end=\"17\"/>\n"
               "      <field name=\"AC\" start=\"18\" end=\"18\"/>\n"
               "      <field name=\"VIF\" start=\"19\" end=\"19\"/>\n"
               "      <field name=\"VIP\" start=\"20\" end=\"20\"/>\n"
               "      <field name=\"ID\" start=\"21\" end=\"21\"/>\n"
               "    </flags>\n",
    [F_SSE] = "    <vector id=\"ttvm_v4f\" type=\"ieee_single\" count=\"4\"/>\n"
              "    <vector id=\"ttvm_v2d\" type=\"ieee_double\" count=\"2\"/>\n"
              "    <vector id=\"ttvm_v16i8\" type=\"int8\" count=\"16\"/>\n"
              "    <vector id=\"ttvm_v8i16\" type=\"int16\" count=\"8\"/>\n"
              "    <vector id=\"ttvm_v4i32\" type=\"int32\" count=\"4\"/>\n"
              "    <vector id=\"ttvm_v2i64\" type=\"int64\" count=\"2\"/>\n"
              "    <union id=\"ttvm_xmm\">\n"
              "      <field name=\"v4_float\" type=\"ttvm_v4f\"/>\n"
              "      <field name=\"v2_double\" type=\"ttvm_v2d\"/>\n"
              "      <field name=\"v16_int8\" type=\"ttvm_v16i8\"/>\n"
              "      <field name=\"v8_int16\" type=\"ttvm_v8i16\"/>\n"
              "      <field name=\"v4_int32\" type=\"ttvm_v4i32\"/>\n"
              "      <field name=\"v2_int64\" type=\"ttvm_v2i64\"/>\n"
              "      <field name=\"uint128\" type=\"uint128\"/>\n"
              "    </union>\n"
              "    <flags id=\"ttvm_mxcsr\" size=\"4\">\n"
              "      <field name=\"IE\" start=\"0\" end=\"0\"/>\n"
              "      <field name=\"DE\" start=\"1\" end=\"1\"/>\n"
              "      <field name=\"ZE\" start=\"2\" end=\"2\"/>\n"
              "      <field name=\"OE\" start=\"3\" end=\"3\"/>\n"
              "      <field name=\"UE\" start=\"4\" end=\"4\"/>\n"
              "      <field name=\"PE\" start=\"5\" end=\"5\"/>\n"
              "      <field name=\"DAZ\" start=\"6\" end=\"6\"/>\n"
              "      <field name=\"IM\" start=\"7\" end=\"7\"/>\n"
              "      <field name=\"DM\" start=\"8\" end=\"8\"/>\n"
              "      <field name=\"ZM\" start=\"9\" end=\"9\"/>\n"
              "      <field name=\"OM\" start=\"10\" end=\"10\"/>\n"
              "      <field name=\"UM\" start=\"11\" end=\"11\"/>\n"
              "      <field name=\"PM\" start=\"12\" end=\"12\"/>\n"
              "      <field name=\"FZ\" start=\"15\" end=\"15\"/>\n"
              "    </flags>\n",
    [F_SYSTEM] = "    <flags id=\"ttvm_cr0\" size=\"8\">\n"
                 "      <field name=\"PE\" start=\"0\" end=\"0\"/>\n"
                 "      <field name=\"MP\" start=\"1\" end=\"1\"/>\n"
                 "      <field name=\"EM\" start=\"2\" end=\"2\"/>\n"
                 "      <field name=\"TS\" start=\"3\" end=\"3\"/>\n"
                 "      <field name=\"ET\" start=\"4\" end=\"4\"/>\n"
                 "      <field name=\"NE\" start=\"5\" end=\"5\"/>\n"
                 "      <field name=\"WP\" start=\"16\" end=\"16\"/>\n"
                 "      <field name=\"AM\" start=\"18\" end=\"18\"/>\n"
                 "      <field name=\"NW\" start=\"29\" end=\"29\"/>\n"
                 "      <field name=\"CD\" start=\"30\" end=\"30\"/>\n"
                 "      <field name=\"PG\" start=\"31\" end=\"31\"/>\n"
                 "    </flags>\n"
                 "    <flags id=\"ttvm_efer\" size=\"8\">\n"
                 "      <field name=\"SCE\" start=\"0\" end=\"0\"/>\n"
                 "      <field name=\"LME\" start=\"8\" end=\"8\"/>\n"
                 "      <field name=\"LMA\" start=\"10\" end=\"10\"/>\n"
                 "      <field name=\"NXE\" start=\"11\" end=\"11\"/>\n"
                 "    </flags>\n",
};

/* Where a register lives in vmm_cpu_state. */
enum kind {
    K_U64,   /* a uint64_t field, all bits */
    K_LOW32, /* low 32 bits of a uint64_t field (eflags) */
    K_U32,   /* a uint32_t field */
    K_U16,   /* a uint16_t field widened to 32 bits */
    K_SEL,   /* a segment selector widened to 32 bits */
    K_ST,    /* 10 bytes of an x87 register slot */
    K_XMM,   /* 16 bytes */
    K_FTAG,  /* full tag word from the abridged one */
    K_PTRLO, /* low 32 bits of a 64-bit FPU pointer */
    K_PTRHI, /* high 32 bits */
};

struct reg {
    const char *name;
    unsigned short bits;
    unsigned char feature;
    unsigned char kind;
    size_t off; /* offsetof in struct vmm_cpu_state */
    const char *type, *group;
};

#define ST(f) offsetof(struct vmm_cpu_state, f)
#define GPR(n, f, t)                                                           \
    {                                                                          \
        n, 64, F_CORE, K_U64, ST(regs.f), t, NULL                              \
    }
#define SEG(n, f)                                                              \
    {                                                                          \
        n, 32, F_CORE, K_SEL, ST(sregs.f.selector), "int32", NULL              \
    }
#define STX(i)                                                                 \
    {                                                                          \
        "st" #i, 80, F_CORE, K_ST, ST(fpu.fpr[i]), "i387_ext", NULL            \
    }
#define XMM(i)                                                                 \
    {                                                                          \
        "xmm" #i, 128, F_SSE, K_XMM, ST(fpu.xmm[i]), "ttvm_xmm", NULL          \
    }
#define FPC(n, k, f)                                                           \
    {                                                                          \
        n, 32, F_CORE, k, ST(f), "int", "float"                                \
    }
#define SYS(n, f, t)                                                           \
    {                                                                          \
        n, 64, F_SYSTEM, K_U64, ST(sregs.f), t, "system"                       \
    }

static const struct reg regs[DBG_NREGS] = {
    GPR("rax", rax, "int64"),
    GPR("rbx", rbx, "int64"),
    GPR("rcx", rcx, "int64"),
    GPR("rdx", rdx, "int64"),
    GPR("rsi", rsi, "int64"),
    GPR("rdi", rdi, "int64"),
    GPR("rbp", rbp, "data_ptr"),
    GPR("rsp", rsp, "data_ptr"),
    GPR("r8", r8, "int64"),
    GPR("r9", r9, "int64"),
    GPR("r10", r10, "int64"),
    GPR("r11", r11, "int64"),
    GPR("r12", r12, "int64"),
    GPR("r13", r13, "int64"),
    GPR("r14", r14, "int64"),
    GPR("r15", r15, "int64"),
    GPR("rip", rip, "code_ptr"),
    {"eflags", 32, F_CORE, K_LOW32, ST(regs.rflags), "ttvm_eflags", NULL},
    SEG("cs", cs),
    SEG("ss", ss),
    SEG("ds", ds),
    SEG("es", es),
    SEG("fs", fs),
    SEG("gs", gs),
    STX(0),
    STX(1),
    STX(2),
    STX(3),
    STX(4),
    STX(5),
    STX(6),
    STX(7),
    FPC("fctrl", K_U16, fpu.fcw),
    FPC("fstat", K_U16, fpu.fsw),
    FPC("ftag", K_FTAG, fpu.ftwx),
    FPC("fiseg", K_PTRHI, fpu.last_ip),
    FPC("fioff", K_PTRLO, fpu.last_ip),
    FPC("foseg", K_PTRHI, fpu.last_dp),
    FPC("fooff", K_PTRLO, fpu.last_dp),
    FPC("fop", K_U16, fpu.last_opcode),
    XMM(0),
    XMM(1),
    XMM(2),
    XMM(3),
    XMM(4),
    XMM(5),
    XMM(6),
    XMM(7),
    XMM(8),
    XMM(9),
    XMM(10),
    XMM(11),
    XMM(12),
    XMM(13),
    XMM(14),
    XMM(15),
    {"mxcsr", 32, F_SSE, K_U32, ST(fpu.mxcsr), "ttvm_mxcsr", "vector"},
    {"fs_base", 64, F_SEGMENTS, K_U64, ST(sregs.fs.base), "int", NULL},
    {"gs_base", 64, F_SEGMENTS, K_U64, ST(sregs.gs.base), "int", NULL},
    SYS("cr0", cr0, "ttvm_cr0"),
    SYS("cr2", cr2, "data_ptr"),
    SYS("cr3", cr3, "int64"),
    SYS("cr4", cr4, "int64"),
    SYS("cr8", cr8, "int64"),
    SYS("efer", efer, "ttvm_efer"),
};
/* clang-format on */

size_t dbg_reg_size(unsigned n)
{
    return regs[n].bits / 8;
}

size_t dbg_regs_total(void)
{
    size_t t = 0;
    for (unsigned i = 0; i < DBG_NREGS; i++)
        t += dbg_reg_size(i);
    return t;
}

/* x87 tag of one register from its contents: 0 valid, 1 zero, 2 special
 * (NaN, infinity, denormal, unnormal), as the FPU would record it. */
static unsigned x87_tag(const uint8_t *r)
{
    unsigned exp = (r[9] & 0x7f) << 8 | r[8];
    uint64_t mant;
    memcpy(&mant, r, 8);
    if (exp == 0x7fff)
        return 2;
    if (exp == 0)
        return mant == 0 ? 1 : 2;
    return (mant >> 63) ? 0 : 2;
}

/* The full tag word indexes physical registers; fpr[] is stack order, so
 * physical register p is ST((p - TOP) mod 8). */
static uint16_t full_tag(const struct vmm_fpu *f)
{
    unsigned top = (f->fsw >> 11) & 7;
    uint16_t tag = 0;
    for (unsigned p = 0; p < 8; p++) {
        unsigned t = 3; /* empty */
        if (f->ftwx & (1u << p))
            t = x87_tag(f->fpr[(p - top) & 7]);
        tag |= (uint16_t)(t << (2 * p));
    }
    return tag;
}

static uint8_t abridged_tag(uint16_t full)
{
    uint8_t a = 0;
    for (unsigned p = 0; p < 8; p++)
        if (((full >> (2 * p)) & 3) != 3)
            a |= (uint8_t)(1u << p);
    return a;
}

void dbg_reg_get(const struct vmm_cpu_state *s, unsigned n, uint8_t *out)
{
    const struct reg *r = &regs[n];
    const uint8_t *f = (const uint8_t *)s + r->off;
    uint64_t v64;
    uint32_t v = 0;
    uint16_t v16;

    switch (r->kind) {
    case K_U64:
        memcpy(out, f, 8);
        return;
    case K_ST:
        memcpy(out, f, 10);
        return;
    case K_XMM:
        memcpy(out, f, 16);
        return;
    case K_U32:
    case K_LOW32:
        memcpy(&v, f, 4);
        break;
    case K_U16:
    case K_SEL:
        memcpy(&v16, f, 2);
        v = v16;
        break;
    case K_FTAG:
        v = full_tag(&s->fpu);
        break;
    case K_PTRLO:
    case K_PTRHI:
        memcpy(&v64, f, 8);
        v = (uint32_t)(r->kind == K_PTRHI ? v64 >> 32 : v64);
        break;
    }
    memcpy(out, &v, 4);
}

void dbg_reg_set(struct vmm_cpu_state *s, unsigned n, const uint8_t *in)
{
    const struct reg *r = &regs[n];
    uint8_t *f = (uint8_t *)s + r->off;
    uint32_t v;
    uint64_t v64;
    uint16_t v16;

    memcpy(&v, in, 4);
    switch (r->kind) {
    case K_U64:
        memcpy(f, in, 8);
        break;
    case K_ST:
        memcpy(f, in, 10);
        break;
    case K_XMM:
        memcpy(f, in, 16);
        break;
    case K_U32:
    case K_LOW32: /* eflags: the upper half of rflags is reserved (0) */
        memcpy(f, &v, 4);
        break;
    case K_U16:
    case K_SEL:
        v16 = (uint16_t)v;
        memcpy(f, &v16, 2);
        break;
    case K_FTAG:
        s->fpu.ftwx = abridged_tag((uint16_t)v);
        break;
    case K_PTRLO:
    case K_PTRHI:
        memcpy(&v64, f, 8);
        if (r->kind == K_PTRHI)
            v64 = (v64 & 0xffffffffull) | (uint64_t)v << 32;
        else
            v64 = (v64 & ~0xffffffffull) | v;
        memcpy(f, &v64, 8);
        break;
    }
}

void dbg_target_xml(struct dbg_buf *out)
{
    dbg_buf_puts(out, "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
                      "<target version=\"1.0\">\n"
                      "  <architecture>i386:x86-64</architecture>\n");
    for (unsigned f = 0; f < F_COUNT; f++) {
        dbg_buf_printf(out, "  <feature name=\"%s\">\n", feature_names[f]);
        if (feature_types[f])
            dbg_buf_puts(out, feature_types[f]);
        for (unsigned i = 0; i < DBG_NREGS; i++) {
            if (regs[i].feature != f)
                continue;
            dbg_buf_printf(out,
                           "    <reg name=\"%s\" bitsize=\"%u\" "
                           "type=\"%s\" regnum=\"%u\"",
                           regs[i].name, regs[i].bits, regs[i].type, i);
            if (regs[i].group)
                dbg_buf_printf(out, " group=\"%s\"", regs[i].group);
            dbg_buf_puts(out, "/>\n");
        }
        dbg_buf_puts(out, "  </feature>\n");
    }
    dbg_buf_puts(out, "</target>\n");
}
