/*
 * vcpu_unicorn_state.c — moving the portable CPU state in and out of
 * Unicorn.
 *
 * Most registers go through uc_reg_read/uc_reg_write.  Three things have no
 * API in Unicorn 2.0.1 and are reached through the CPU context blob
 * (uc_context_save/restore, a copy of QEMU's CPUX86State):
 *  - the hidden parts of segment registers (writing a selector through the
 *    API loads a descriptor from the guest GDT, which need not hold what the
 *    state says, e.g. at a Multiboot entry);
 *  - hflags, QEMU's cache of CPL/mode bits derived from segments and CRs;
 *  - error_code and old_exception (error codes are not reported; the
 *    exception-in-flight marker is never reset, see NOTES-unicorn-kvm.md).
 * The offsets are not guessed: ulayout_get() finds them once per process by
 * probing a scratch Unicorn instance with known values and refuses to run
 * when any probe disagrees (another Unicorn build).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu_unicorn_int.h"

/* QEMU segment-cache flag bits (descriptor high dword positions). */
#define DESC_TYPE_SHIFT 8
#define DESC_S (1u << 12)
#define DESC_DPL_SHIFT 13
#define DESC_P (1u << 15)
#define DESC_AVL (1u << 20)
#define DESC_L (1u << 21)
#define DESC_B (1u << 22)
#define DESC_G (1u << 23)

/* QEMU hflags bits this backend derives itself. */
#define HF_CPL_MASK 3u
#define HF_INHIBIT_IRQ (1u << 3)
#define HF_CS32 (1u << 4)
#define HF_SS32 (1u << 5)
#define HF_ADDSEG (1u << 6)
#define HF_PE (1u << 7)
#define HF_MP (1u << 9)
#define HF_EM (1u << 10)
#define HF_TS (1u << 11)
#define HF_LMA (1u << 14)
#define HF_CS64 (1u << 15)
#define HF_OSFXSR (1u << 22)
#define HF_SMAP (1u << 23)

/* ---- layout probe ------------------------------------------------------- */

static struct ulayout layout;
static int layout_rc;
static char layout_why[160];
static pthread_once_t layout_once = PTHREAD_ONCE_INIT;

static bool find_u64(const uint8_t *p, size_t from, size_t to, uint64_t v,
                     size_t *at)
{
    for (size_t i = from; i + 8 <= to; i += 4) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (x == v) {
            *at = i;
            return true;
        }
    }
    return false;
}

static int32_t rd32(const uint8_t *p, size_t off)
{
    int32_t v;
    memcpy(&v, p + off, 4);
    return v;
}

struct probe_hit {
    uc_context *ctx;
    int n;
};

static void probe_intr(uc_engine *uc, uint32_t intno, void *ud)
{
    struct probe_hit *h = ud;
    (void)intno;
    uc_context_save(uc, h->ctx);
    h->n++;
    uc_emu_stop(uc);
}

#define PROBE_FAIL(msg)                                                   \
    do {                                                                  \
        snprintf(layout_why, sizeof layout_why, "%s", msg);               \
        goto out;                                                         \
    } while (0)

static void layout_probe(void)
{
    uc_engine *uc = NULL;
    uc_context *ctx = NULL, *hit = NULL;
    uint8_t *page = aligned_alloc(4096, 0x4000);
    layout_rc = VMM_E_UNICORN;
    if (!page || uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK)
        PROBE_FAIL("cannot open a Unicorn x86-64 instance");
    memset(page, 0, 0x4000);
    if (uc_mem_map_ptr(uc, 0, 0x4000, UC_PROT_ALL, page) ||
        uc_context_alloc(uc, &ctx) || uc_context_alloc(uc, &hit))
        PROBE_FAIL("cannot map memory or allocate a context");
    size_t csize = uc_context_size(uc);
    const uint8_t *raw = (const uint8_t *)ctx;

    uint64_t m1 = 0x7a11a2b3c4d5e6f1ull, m2 = 0x1b2c3d4e5f607182ull;
    uc_reg_write(uc, UC_X86_REG_RAX, &m1);
    uc_reg_write(uc, UC_X86_REG_RBX, &m2);
    uc_context_save(uc, ctx);
    size_t d;
    bool found;
    if (!find_u64(raw, 0, 64, m1, &d) || rd32(raw, d + 24) != (int32_t)m2)
        PROBE_FAIL("register file not found in the context");
    layout.data = d;
    layout.size = csize;

    /* GDT/IDT/TR caches follow the six segment caches and the LDT. */
    uc_x86_mmr g = {0, 0x5a5a5a5a000ull, 0x0f, 0};
    uc_x86_mmr tr = {0x28, 0x3c3c3c000ull, 0x67, 0x8b00};
    uc_reg_write(uc, UC_X86_REG_GDTR, &g);
    uc_reg_write(uc, UC_X86_REG_TR, &tr);
    uc_context_save(uc, ctx);
    size_t gb, tb;
    if (!find_u64(raw + d, 0, 1024, g.base, &gb) ||
        !find_u64(raw + d, 0, 1024, tr.base, &tb) || gb <= tb)
        PROBE_FAIL("segment caches not found in the context");
    size_t stride = gb - tb;         /* TR then GDT are adjacent caches */
    size_t base_off = 8;             /* selector, pad, base */
    layout.seg_stride = stride;
    layout.segs = tb - base_off - 7 * stride;
    if (stride != 24 || rd32(raw + d, layout.segs + 7 * stride) != 0x28 ||
        (uint32_t)rd32(raw + d, layout.segs + 7 * stride + 20) != 0x8b00)
        PROBE_FAIL("unexpected segment cache layout");
    layout.hflags = layout.segs - 8;
    uint32_t hf = (uint32_t)rd32(raw + d, layout.hflags);
    if (!(hf & HF_LMA) || !(hf & HF_CS64))
        PROBE_FAIL("hflags not where expected");

    /* EFER: Unicorn's CPU model lacks NX (and SYSCALL), so wrmsr drops
     * NXE; find the field to store it directly.  Clearing LME changes it
     * from 0x500 to 0x400. */
    uc_context_save(uc, ctx);
    uint8_t *before = malloc(csize);
    if (!before)
        PROBE_FAIL("out of memory");
    memcpy(before, raw + d, csize - d);
    uc_x86_msr em = {0xc0000080, 0};
    uc_reg_write(uc, UC_X86_REG_MSR, &em);
    uc_context_save(uc, ctx);
    found = false;
    for (size_t i = layout.segs + 10 * stride; i + 8 <= csize - d; i += 8) {
        uint64_t a, b;
        memcpy(&a, before + i, 8);
        memcpy(&b, raw + d + i, 8);
        if (a == 0x500 && b == 0x400) {
            layout.efer = i;
            found = true;
            break;
        }
    }
    free(before);
    if (!found)
        PROBE_FAIL("EFER not found in the context");
    em.value = 0x500;
    uc_reg_write(uc, UC_X86_REG_MSR, &em);

    /* error_code and old_exception: a #GP(0x1238) from loading DS with a
     * selector beyond the GDT limit, twice (the second is promoted to #DF
     * by the stale old_exception, which proves which field it is). */
    g.base = 0x3000;
    uc_reg_write(uc, UC_X86_REG_GDTR, &g);
    static const uint8_t code[] = {0x66, 0xb8, 0x38, 0x12, /* mov ax,0x1238 */
                                   0x8e, 0xd8,             /* mov ds,ax */
                                   0xf4};
    memcpy(page + 0x1000, code, sizeof code);
    struct probe_hit h = {hit, 0};
    uc_hook hh;
    uc_hook_add(uc, &hh, UC_HOOK_INTR, (void *)probe_intr, &h, 1, 0);
    uc_emu_start(uc, 0x1000, 0x8000000000000000ull, 0, 0);
    if (h.n != 1)
        PROBE_FAIL("probe #GP not reported");
    const uint8_t *hd = (const uint8_t *)hit + d;
    size_t ec = 0;
    found = false;
    for (size_t i = layout.segs + 10 * stride; i + 120 <= csize - d; i += 4)
        if (rd32(hd, i) == 0x1238 && rd32(hd, i + 112) == 13) {
            ec = i;
            found = true;
            break;
        }
    if (!found)
        PROBE_FAIL("error_code/old_exception not found");
    uc_emu_start(uc, 0x1000, 0x8000000000000000ull, 0, 0);
    if (h.n != 2 || rd32(hd, ec + 112) != 8)
        PROBE_FAIL("old_exception does not behave as expected");
    layout.error_code = ec;
    layout.old_exception = ec + 112;
    layout_rc = 0;
out:
    if (hit)
        uc_context_free(hit);
    if (ctx)
        uc_context_free(ctx);
    if (uc)
        uc_close(uc);
    free(page);
}

int ulayout_get(const struct ulayout **out, char *why, size_t cap)
{
    pthread_once(&layout_once, layout_probe);
    if (layout_rc) {
        snprintf(why, cap, "unsupported Unicorn build: %s", layout_why);
        return layout_rc;
    }
    *out = &layout;
    return 0;
}

/* ---- plain registers ---------------------------------------------------- */

uint64_t uni_reg(struct uni *u, int id)
{
    uint64_t v = 0;
    uc_reg_read(u->uc, id, &v);
    return v;
}

void uni_set_reg(struct uni *u, int id, uint64_t v)
{
    uc_reg_write(u->uc, id, &v);
}

static const int gpr_ids[VMM_NREGS] = {
    UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX,
    UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_RSP, UC_X86_REG_RBP,
    UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
    UC_X86_REG_RIP, UC_X86_REG_RFLAGS,
};

int uni_get_regs(struct uni *u, struct vmm_regs *r)
{
    uint64_t v[VMM_NREGS];
    void *p[VMM_NREGS];
    for (int i = 0; i < VMM_NREGS; i++)
        p[i] = &v[i];
    if (uc_reg_read_batch(u->uc, (int *)gpr_ids, p, VMM_NREGS))
        return VMM_E_UNICORN;
    memcpy(r, v, sizeof v);
    if (u->in_io)
        r->rip = u->io_rip; /* the accessing instruction, not the block */
    return 0;
}

int uni_set_regs(struct uni *u, const struct vmm_regs *r)
{
    uint64_t v[VMM_NREGS];
    void *p[VMM_NREGS];
    memcpy(v, r, sizeof v);
    for (int i = 0; i < VMM_NREGS; i++)
        p[i] = &v[i];
    if (uc_reg_write_batch(u->uc, (int *)gpr_ids, p, VMM_NREGS))
        return VMM_E_UNICORN;
    return 0;
}

/* ---- the context blob --------------------------------------------------- */

static uint8_t *blob(struct uni *u)
{
    return (uint8_t *)u->ctx + u->lay->data;
}

static void seg_to_cache(const struct vmm_segment *s, uint8_t *c)
{
    uint32_t sel = s->selector, lim = s->limit;
    uint64_t base = s->base;
    uint32_t fl = ((uint32_t)(s->type & 15) << DESC_TYPE_SHIFT) |
                  (s->s ? DESC_S : 0) |
                  ((uint32_t)(s->dpl & 3) << DESC_DPL_SHIFT) |
                  (s->present && !s->unusable ? DESC_P : 0) |
                  (s->avl ? DESC_AVL : 0) | (s->l ? DESC_L : 0) |
                  (s->db ? DESC_B : 0) | (s->g ? DESC_G : 0);
    memcpy(c, &sel, 4);
    memcpy(c + 8, &base, 8);
    memcpy(c + 16, &lim, 4);
    memcpy(c + 20, &fl, 4);
}

static void tr_type_fix(uint8_t *c, unsigned from, unsigned to)
{
    uint32_t fl;
    memcpy(&fl, c + 20, 4);
    if (((fl >> DESC_TYPE_SHIFT) & 15) == from) {
        fl = (fl & ~(15u << DESC_TYPE_SHIFT)) | (to << DESC_TYPE_SHIFT);
        memcpy(c + 20, &fl, 4);
    }
}

static void cache_to_seg(const uint8_t *c, struct vmm_segment *s)
{
    uint32_t sel, lim, fl;
    memset(s, 0, sizeof *s);
    memcpy(&sel, c, 4);
    memcpy(&s->base, c + 8, 8);
    memcpy(&lim, c + 16, 4);
    memcpy(&fl, c + 20, 4);
    s->selector = (uint16_t)sel;
    s->limit = lim;
    s->type = (fl >> DESC_TYPE_SHIFT) & 15;
    s->s = !!(fl & DESC_S);
    s->dpl = (fl >> DESC_DPL_SHIFT) & 3;
    s->present = !!(fl & DESC_P);
    s->avl = !!(fl & DESC_AVL);
    s->l = !!(fl & DESC_L);
    s->db = !!(fl & DESC_B);
    s->g = !!(fl & DESC_G);
    s->unusable = !s->present;
}

static uint32_t cache_flags(const uint8_t *b, const struct ulayout *l, int i)
{
    uint32_t fl;
    memcpy(&fl, b + l->segs + i * l->seg_stride + 20, 4);
    return fl;
}

static uint64_t cache_base(const uint8_t *b, const struct ulayout *l, int i)
{
    uint64_t v;
    memcpy(&v, b + l->segs + i * l->seg_stride + 8, 8);
    return v;
}

/* hflags as QEMU derives them from segments, CR0, CR4 and EFER. */
static uint32_t compute_hflags(struct uni *u, uint32_t old)
{
    const struct ulayout *l = u->lay;
    const uint8_t *b = blob(u);
    uint64_t cr0 = uni_reg(u, UC_X86_REG_CR0);
    uint64_t cr4 = uni_reg(u, UC_X86_REG_CR4);
    uint32_t cs = cache_flags(b, l, 1), ss = cache_flags(b, l, 2);
    uint32_t h = old & ~(HF_CPL_MASK | HF_CS32 | HF_SS32 | HF_ADDSEG | HF_PE |
                         HF_MP | HF_EM | HF_TS | HF_LMA | HF_CS64 |
                         HF_OSFXSR | HF_SMAP);
    h |= (cs >> DESC_DPL_SHIFT) & HF_CPL_MASK;
    if (cr0 & 1)
        h |= HF_PE;
    h |= (uint32_t)((cr0 << 8) & (HF_MP | HF_EM | HF_TS)); /* bits 1-3 */
    if (cr4 & (1u << 9))
        h |= HF_OSFXSR;
    if (cr4 & (1u << 21))
        h |= HF_SMAP;
    uint64_t efer;
    memcpy(&efer, b + l->efer, 8);
    if (efer & (1u << 10))
        h |= HF_LMA;
    if ((h & HF_LMA) && (cs & DESC_L)) {
        h |= HF_CS32 | HF_SS32 | HF_CS64;
    } else {
        if (cs & DESC_B)
            h |= HF_CS32;
        if (ss & DESC_B)
            h |= HF_SS32;
        if (!(cr0 & 1) || !(h & HF_CS32))
            h |= HF_ADDSEG;
        else if (cache_base(b, l, 0) | cache_base(b, l, 2) |
                 cache_base(b, l, 3))
            h |= HF_ADDSEG;
    }
    return h;
}

static int blob_save(struct uni *u)
{
    return uc_context_save(u->uc, u->ctx) ? VMM_E_UNICORN : 0;
}

static int blob_restore(struct uni *u)
{
    return uc_context_restore(u->uc, u->ctx) ? VMM_E_UNICORN : 0;
}

static void blob_put32(struct uni *u, size_t off, uint32_t v)
{
    memcpy(blob(u) + off, &v, 4);
}

static uint32_t blob_get32(struct uni *u, size_t off)
{
    uint32_t v;
    memcpy(&v, blob(u) + off, 4);
    return v;
}

static void mode_from_hflags(struct uni *u, uint32_t h)
{
    u->mode = (h & HF_CS64) ? UMODE_64 : (h & HF_CS32) ? UMODE_32 : UMODE_16;
}

int uni_irq_shadow(struct uni *u)
{
    int rc = blob_save(u);
    return rc ? rc : !!(blob_get32(u, u->lay->hflags) & HF_INHIBIT_IRQ);
}

int uni_refresh_mode(struct uni *u)
{
    int rc = blob_save(u);
    if (!rc)
        mode_from_hflags(u, blob_get32(u, u->lay->hflags));
    return rc;
}

int uni_clear_exception(struct uni *u)
{
    int rc = blob_save(u);
    if (rc)
        return rc;
    blob_put32(u, u->lay->old_exception, (uint32_t)-1);
    return blob_restore(u);
}

int uni_exception_marker(struct uni *u)
{
    if (blob_save(u))
        return -1;
    return (int)blob_get32(u, u->lay->old_exception);
}

uint32_t uni_error_code(struct uni *u)
{
    if (blob_save(u))
        return 0;
    return blob_get32(u, u->lay->error_code);
}

uint64_t uni_efer(struct uni *u)
{
    uint64_t v = 0;
    if (blob_save(u) == 0)
        memcpy(&v, blob(u) + u->lay->efer, 8);
    return (v & ~1ull) | (u->sce ? 1 : 0);
}

int uni_set_efer(struct uni *u, uint64_t efer)
{
    int rc = blob_save(u);
    if (rc)
        return rc;
    u->sce = efer & 1;
    uint64_t v = efer & ~1ull;
    memcpy(blob(u) + u->lay->efer, &v, 8);
    blob_put32(u, u->lay->hflags,
               compute_hflags(u, blob_get32(u, u->lay->hflags)));
    return blob_restore(u);
}

int uni_load_segs(struct uni *u, const struct vmm_segment *cs,
                  const struct vmm_segment *ss)
{
    int rc = blob_save(u);
    if (rc)
        return rc;
    uint8_t *b = blob(u);
    if (cs)
        seg_to_cache(cs, b + u->lay->segs + 1 * u->lay->seg_stride);
    if (ss)
        seg_to_cache(ss, b + u->lay->segs + 2 * u->lay->seg_stride);
    uint32_t h = compute_hflags(u, blob_get32(u, u->lay->hflags));
    h &= ~HF_INHIBIT_IRQ; /* delivery and SYSCALL/SYSRET end a shadow */
    blob_put32(u, u->lay->hflags, h);
    blob_put32(u, u->lay->old_exception, (uint32_t)-1);
    mode_from_hflags(u, h);
    return blob_restore(u);
}

/* ---- full state --------------------------------------------------------- */

static int write_msr(struct uni *u, uint32_t id, uint64_t v)
{
    uc_x86_msr m = {id, v};
    return uc_reg_write(u->uc, UC_X86_REG_MSR, &m) ? VMM_E_UNICORN : 0;
}

static uint64_t read_msr(struct uni *u, uint32_t id)
{
    uc_x86_msr m = {id, 0};
    uc_reg_read(u->uc, UC_X86_REG_MSR, &m);
    return m.value;
}

static const struct {
    uint32_t id;
    size_t off;
} msr_map[] = {
    {0xc0000081, offsetof(struct vmm_msrs, star)},
    {0xc0000082, offsetof(struct vmm_msrs, lstar)},
    {0xc0000083, offsetof(struct vmm_msrs, cstar)},
    {0xc0000084, offsetof(struct vmm_msrs, sfmask)},
    {0xc0000102, offsetof(struct vmm_msrs, kernel_gs_base)},
    {0x174, offsetof(struct vmm_msrs, sysenter_cs)},
    {0x175, offsetof(struct vmm_msrs, sysenter_esp)},
    {0x176, offsetof(struct vmm_msrs, sysenter_eip)},
    {0x277, offsetof(struct vmm_msrs, pat)},
};

static const int drid[8] = {UC_X86_REG_DR0, UC_X86_REG_DR1, UC_X86_REG_DR2,
                            UC_X86_REG_DR3, UC_X86_REG_DR4, UC_X86_REG_DR5,
                            UC_X86_REG_DR6, UC_X86_REG_DR7};

static int set_fpu(struct uni *u, const struct vmm_fpu *f)
{
    uc_engine *uc = u->uc;
    uint16_t tag = 0;
    for (int i = 0; i < 8; i++)
        if (!(f->ftwx & (1u << i)))
            tag |= (uint16_t)(3u << (2 * i));
    uint16_t fcw = f->fcw, fsw = f->fsw, fop = f->last_opcode;
    uint64_t fip = f->last_ip, fdp = f->last_dp;
    uint32_t mxcsr = f->mxcsr;
    if (uc_reg_write(uc, UC_X86_REG_FPCW, &fcw) ||
        uc_reg_write(uc, UC_X86_REG_FPSW, &fsw) ||
        uc_reg_write(uc, UC_X86_REG_FPTAG, &tag) ||
        uc_reg_write(uc, UC_X86_REG_FOP, &fop) ||
        uc_reg_write(uc, UC_X86_REG_FIP, &fip) ||
        uc_reg_write(uc, UC_X86_REG_FDP, &fdp) ||
        uc_reg_write(uc, UC_X86_REG_MXCSR, &mxcsr))
        return VMM_E_UNICORN;
    for (int i = 0; i < 8; i++) /* ST(i) relative to TOP, as FXSAVE */
        if (uc_reg_write(uc, UC_X86_REG_ST0 + i, f->fpr[i]))
            return VMM_E_UNICORN;
    for (int i = 0; i < 16; i++)
        if (uc_reg_write(uc, UC_X86_REG_XMM0 + i, f->xmm[i]))
            return VMM_E_UNICORN;
    return 0;
}

static int get_fpu(struct uni *u, struct vmm_fpu *f)
{
    uc_engine *uc = u->uc;
    uint16_t tag = 0, fcw = 0, fsw = 0, fop = 0;
    uint64_t fip = 0, fdp = 0;
    uint32_t mxcsr = 0;
    memset(f, 0, sizeof *f);
    if (uc_reg_read(uc, UC_X86_REG_FPCW, &fcw) ||
        uc_reg_read(uc, UC_X86_REG_FPSW, &fsw) ||
        uc_reg_read(uc, UC_X86_REG_FPTAG, &tag) ||
        uc_reg_read(uc, UC_X86_REG_FOP, &fop) ||
        uc_reg_read(uc, UC_X86_REG_FIP, &fip) ||
        uc_reg_read(uc, UC_X86_REG_FDP, &fdp) ||
        uc_reg_read(uc, UC_X86_REG_MXCSR, &mxcsr))
        return VMM_E_UNICORN;
    f->fcw = fcw;
    f->fsw = fsw;
    f->last_opcode = fop;
    f->last_ip = fip;
    f->last_dp = fdp;
    f->mxcsr = mxcsr;
    for (int i = 0; i < 8; i++)
        if (((tag >> (2 * i)) & 3) != 3)
            f->ftwx |= (uint8_t)(1u << i);
    for (int i = 0; i < 8; i++) {
        uint8_t st[10];
        if (uc_reg_read(uc, UC_X86_REG_ST0 + i, st))
            return VMM_E_UNICORN;
        memcpy(f->fpr[i], st, 10);
    }
    for (int i = 0; i < 16; i++)
        if (uc_reg_read(uc, UC_X86_REG_XMM0 + i, f->xmm[i]))
            return VMM_E_UNICORN;
    return 0;
}

static int set_sregs(struct uni *u, const struct vmm_sregs *s)
{
    uc_engine *uc = u->uc;
    uint64_t cr[4] = {s->cr0, s->cr2, s->cr3, s->cr4};
    static const int crid[4] = {UC_X86_REG_CR0, UC_X86_REG_CR2,
                                UC_X86_REG_CR3, UC_X86_REG_CR4};
    for (int i = 0; i < 4; i++)
        if (uc_reg_write(uc, crid[i], &cr[i]))
            return VMM_E_UNICORN;
    u->sce = s->efer & 1; /* SCE: emulated */
    int rc = write_msr(u, 0xc0000080, s->efer & ~1ull);
    if (rc)
        return rc;
    uc_x86_mmr g = {0, s->gdt.base, s->gdt.limit, 0};
    uc_x86_mmr i = {0, s->idt.base, s->idt.limit, 0};
    if (uc_reg_write(uc, UC_X86_REG_GDTR, &g) ||
        uc_reg_write(uc, UC_X86_REG_IDTR, &i))
        return VMM_E_UNICORN;
    if ((rc = blob_save(u)))
        return rc;
    uint8_t *b = blob(u);
    /* NXE as the guest has it (wrmsr above drops it); SCE stays out so
     * SYSRET raises #UD and is emulated with the rest of SYSCALL. */
    uint64_t efer = s->efer & ~1ull;
    memcpy(b + u->lay->efer, &efer, 8);
    const struct vmm_segment *segs[8] = {&s->es, &s->cs, &s->ss, &s->ds,
                                         &s->fs, &s->gs, &s->ldt, &s->tr};
    for (int k = 0; k < 8; k++)
        seg_to_cache(segs[k], b + u->lay->segs + k * u->lay->seg_stride);
    /* QEMU's TR cache holds the type the descriptor had before LTR set it
     * busy (9, not 11), and its I/O permission check insists on that. */
    tr_type_fix(b + u->lay->segs + 7 * u->lay->seg_stride, 11, 9);
    return 0; /* caller finishes hflags and restores the blob */
}

int uni_set_state(struct uni *u, const struct vmm_cpu_state *s)
{
    int rc = uni_set_regs(u, &s->regs);
    if (rc)
        return rc;
    if ((rc = set_fpu(u, &s->fpu)))
        return rc;
    const uint8_t *m = (const uint8_t *)&s->msrs;
    for (size_t k = 0; k < sizeof msr_map / sizeof msr_map[0]; k++) {
        uint64_t v;
        memcpy(&v, m + msr_map[k].off, 8);
        if ((rc = write_msr(u, msr_map[k].id, v)))
            return rc;
    }
    u->tsc_aux = s->msrs.tsc_aux;
    for (int i = 0; i < 8; i++)
        if (uc_reg_write(u->uc, drid[i], &s->dr[i]))
            return VMM_E_UNICORN;
    if ((rc = set_sregs(u, &s->sregs)))
        return rc;
    uint32_t h = compute_hflags(u, blob_get32(u, u->lay->hflags));
    if (s->events.interrupt_shadow)
        h |= HF_INHIBIT_IRQ;
    else
        h &= ~HF_INHIBIT_IRQ;
    blob_put32(u, u->lay->hflags, h);
    blob_put32(u, u->lay->old_exception, (uint32_t)-1);
    mode_from_hflags(u, h);
    return blob_restore(u);
}

int uni_get_sregs(struct uni *u, struct vmm_sregs *s)
{
    memset(s, 0, sizeof *s);
    int rc = blob_save(u);
    if (rc)
        return rc;
    const uint8_t *b = blob(u);
    struct vmm_segment *segs[8] = {&s->es, &s->cs, &s->ss, &s->ds,
                                   &s->fs, &s->gs, &s->ldt, &s->tr};
    for (int k = 0; k < 8; k++)
        cache_to_seg(b + u->lay->segs + k * u->lay->seg_stride, segs[k]);
    if (s->tr.type == 9 && s->tr.present)
        s->tr.type = 11; /* as hardware and KVM report it */
    /* LDT/TR are system segments: S is 0 and "unusable" means absent. */
    uc_x86_mmr g = {0}, i = {0};
    uc_reg_read(u->uc, UC_X86_REG_GDTR, &g);
    uc_reg_read(u->uc, UC_X86_REG_IDTR, &i);
    s->gdt.base = g.base;
    s->gdt.limit = (uint16_t)g.limit;
    s->idt.base = i.base;
    s->idt.limit = (uint16_t)i.limit;
    s->cr0 = uni_reg(u, UC_X86_REG_CR0);
    s->cr2 = uni_reg(u, UC_X86_REG_CR2);
    s->cr3 = uni_reg(u, UC_X86_REG_CR3);
    s->cr4 = uni_reg(u, UC_X86_REG_CR4);
    uint64_t efer;
    memcpy(&efer, b + u->lay->efer, 8);
    s->efer = (efer & ~1ull) | (u->sce ? 1 : 0);
    return 0;
}

int uni_get_state(struct uni *u, struct vmm_cpu_state *s)
{
    memset(s, 0, sizeof *s);
    s->version = VMM_STATE_VERSION;
    s->size = sizeof *s;
    int rc = uni_get_regs(u, &s->regs);
    if (!rc)
        rc = uni_get_sregs(u, &s->sregs);
    if (!rc)
        rc = get_fpu(u, &s->fpu);
    if (rc)
        return rc;
    uint8_t *m = (uint8_t *)&s->msrs;
    for (size_t k = 0; k < sizeof msr_map / sizeof msr_map[0]; k++) {
        uint64_t v = read_msr(u, msr_map[k].id);
        memcpy(m + msr_map[k].off, &v, 8);
    }
    s->msrs.tsc_aux = u->tsc_aux;
    for (int i = 0; i < 8; i++)
        s->dr[i] = uni_reg(u, drid[i]);
    /* blob was saved by uni_get_sregs just above */
    s->events.interrupt_shadow =
        !!(blob_get32(u, u->lay->hflags) & HF_INHIBIT_IRQ);
    return 0;
}
