/*
 * boot.c — guest images: checking them (vmm_image_probe, pure), loading
 * them into RAM and building the state the guest starts in (vmm_load,
 * pure as well: it needs a RAM buffer, not a vCPU).
 *
 * Conventions shared with the guest SDK (guests/), fixed:
 *  - guests load at or above 1 MiB; memory below 1 MiB is the VMM's:
 *      0x1000 GDT: null, 0x08 code (64-bit for ELF64, 32-bit for
 *             Multiboot), 0x10 data; Accessed bits preset
 *      0x2000 Multiboot info block (MEM, CMDLINE, MMAP, LOADER_NAME)
 *      0x3000 command line (NUL-terminated, < 4 KiB)
 *      0x4000 Multiboot memory map
 *      0x8000 PML4, 0x9000 PDPT, 0xA000.. one PD per GiB: every byte of
 *             RAM identity-mapped with 2 MiB pages, P|RW|US|A|D preset
 *      0x80000 initial stack pointer (grows down)
 *    The Multiboot memory map marks [0x1000, 0x80000) reserved for them.
 *  - ELF64 entry: 64-bit CPL0, IF=0, CR0.PG|PE|WP|NE|ET|MP,
 *    CR4.PAE|OSFXSR|OSXMMEXCPT, EFER.LME|LMA, CS=0x08, DS..SS=0x10,
 *    RDI = info block address, RSI = 0x2BADB002, RSP = 0x80000.
 *  - Multiboot (v1) entry as the spec says: 32-bit flat protected mode,
 *    paging off, IF=0, EAX = 0x2BADB002, EBX = info block.
 */
#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/vmm_int.h"

#define MB_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_SEARCH 8192
#define MB_AOUT_KLUDGE (1u << 16)
#define MB_KNOWN_REQ 0x7u /* bits 0-2: align, mem info, video (ignored) */

#define LOW_TOP 0x9fc00ull

static int fail(struct vmm_image_info *info, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct vmm_image_info *info, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->error, sizeof info->error, fmt, ap);
    va_end(ap);
    return VMM_E_IMAGE;
}

/* [addr, addr+size) must lie in RAM above the VMM's area. */
static int check_range(struct vmm_image_info *info, const char *what,
                       unsigned idx, uint64_t addr, uint64_t size,
                       uint64_t mem)
{
    if (addr < VMM_BOOT_AREA_END && size)
        return fail(info,
                    "%s %u [0x%llx, +0x%llx) overlaps the VMM area below "
                    "1 MiB",
                    what, idx, (unsigned long long)addr,
                    (unsigned long long)size);
    if (addr > mem || size > mem - addr)
        return fail(info,
                    "%s %u [0x%llx, +0x%llx) is outside guest RAM "
                    "(%llu MiB)",
                    what, idx, (unsigned long long)addr,
                    (unsigned long long)size, (unsigned long long)(mem >> 20));
    return 0;
}

static void extent(struct vmm_image_info *info, uint64_t lo, uint64_t hi)
{
    if (lo < info->load_lo)
        info->load_lo = lo;
    if (hi > info->load_hi)
        info->load_hi = hi;
}

static int check_entry(struct vmm_image_info *info, uint64_t entry,
                       uint64_t mem)
{
    if (entry >= mem)
        return fail(info, "entry point 0x%llx is outside guest RAM",
                    (unsigned long long)entry);
    if (entry < VMM_BOOT_AREA_END)
        return fail(info, "entry point 0x%llx is in the VMM area below "
                          "1 MiB", (unsigned long long)entry);
    info->entry = entry;
    return 0;
}

/* ---- ELF (both classes share the checks through a normalised view) ---- */

struct seg {
    uint64_t off, filesz, paddr, memsz;
};

typedef int (*seg_fn)(void *ctx, unsigned idx, const struct seg *s);

static int elf_segments(const uint8_t *img, size_t len, bool is64,
                        struct vmm_image_info *info, seg_fn fn, void *ctx)
{
    uint64_t phoff, phnum, phentsize;
    if (is64) {
        const Elf64_Ehdr *h = (const void *)img;
        phoff = h->e_phoff, phnum = h->e_phnum, phentsize = h->e_phentsize;
        if (phentsize != sizeof(Elf64_Phdr))
            return fail(info, "ELF: bad program header size %llu",
                        (unsigned long long)phentsize);
    } else {
        const Elf32_Ehdr *h = (const void *)img;
        phoff = h->e_phoff, phnum = h->e_phnum, phentsize = h->e_phentsize;
        if (phentsize != sizeof(Elf32_Phdr))
            return fail(info, "ELF: bad program header size %llu",
                        (unsigned long long)phentsize);
    }
    if (phnum == 0)
        return fail(info, "ELF: no program headers");
    uint64_t phsize = phnum * phentsize; /* both 16-bit: cannot wrap */
    if (phoff > UINT64_MAX - phsize)
        return fail(info,
                    "ELF: program header table offset 0x%llx + %llu bytes "
                    "overflows (bad e_phoff)", (unsigned long long)phoff,
                    (unsigned long long)phsize);
    if (phoff > len || phsize > len - phoff)
        return fail(info,
                    "ELF: truncated (program headers end at %llu, file "
                    "has %zu bytes)",
                    (unsigned long long)(phoff + phsize), len);
    unsigned loads = 0;
    for (unsigned i = 0; i < phnum; i++) {
        const uint8_t *p = img + phoff + i * phentsize;
        struct seg s;
        uint32_t type;
        if (is64) {
            Elf64_Phdr ph;
            memcpy(&ph, p, sizeof ph);
            type = ph.p_type;
            s = (struct seg){ ph.p_offset, ph.p_filesz, ph.p_paddr,
                              ph.p_memsz };
        } else {
            Elf32_Phdr ph;
            memcpy(&ph, p, sizeof ph);
            type = ph.p_type;
            s = (struct seg){ ph.p_offset, ph.p_filesz, ph.p_paddr,
                              ph.p_memsz };
        }
        if (type != PT_LOAD || s.memsz == 0)
            continue;
        loads++;
        if (s.off > UINT64_MAX - s.filesz)
            return fail(info,
                        "ELF: segment %u offset 0x%llx + 0x%llx bytes "
                        "overflows (bad p_offset)",
                        i, (unsigned long long)s.off,
                        (unsigned long long)s.filesz);
        if (s.off > len || s.filesz > len - s.off)
            return fail(info,
                        "ELF: segment %u is truncated (needs bytes up to "
                        "%llu, file has %zu)",
                        i, (unsigned long long)(s.off + s.filesz), len);
        if (s.filesz > s.memsz)
            return fail(info, "ELF: segment %u has file size > memory size",
                        i);
        int rc = fn(ctx, i, &s);
        if (rc)
            return rc;
    }
    if (!loads)
        return fail(info, "ELF: no loadable segment");
    return 0;
}

struct load_ctx {
    const uint8_t *img;
    uint8_t *ram;      /* NULL: check only */
    uint64_t mem;
    bool ram_zeroed;
    struct vmm_image_info *info;
};

static int seg_load(void *vctx, unsigned idx, const struct seg *s)
{
    struct load_ctx *c = vctx;
    int rc = check_range(c->info, "segment", idx, s->paddr, s->memsz, c->mem);
    if (rc)
        return rc;
    extent(c->info, s->paddr, s->paddr + s->memsz);
    if (!c->ram)
        return 0;
    memcpy(c->ram + s->paddr, c->img + s->off, s->filesz);
    if (!c->ram_zeroed)
        memset(c->ram + s->paddr + s->filesz, 0, s->memsz - s->filesz);
    return 0;
}

static bool is_elf(const uint8_t *img, size_t len)
{
    return len >= 4 && !memcmp(img, ELFMAG, SELFMAG);
}

/* ELF header checks common to both boot paths. */
static int elf_header(const uint8_t *img, size_t len, bool want64,
                      struct vmm_image_info *info)
{
    size_t need = want64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    if (len < need)
        return fail(info, "ELF: truncated header (%zu bytes)", len);
    if (img[EI_CLASS] != (want64 ? ELFCLASS64 : ELFCLASS32))
        return fail(info, "ELF: expected a %s image",
                    want64 ? "64-bit" : "32-bit");
    if (img[EI_DATA] != ELFDATA2LSB)
        return fail(info, "ELF: not little-endian");
    uint16_t type, machine;
    memcpy(&type, img + 16, 2);
    memcpy(&machine, img + 18, 2);
    if (machine != (want64 ? EM_X86_64 : EM_386))
        return fail(info, "not an x86%s image (ELF machine %u)",
                    want64 ? "-64" : "", machine);
    if (type != ET_EXEC)
        return fail(info, "ELF: not an executable (type %u)", type);
    return 0;
}

static int elf64_do(const uint8_t *img, size_t len, struct load_ctx *c)
{
    int rc = elf_header(img, len, true, c->info);
    if (rc)
        return rc;
    const Elf64_Ehdr *h = (const void *)img;
    c->info->mode = VMM_BOOT_ELF64;
    if ((rc = elf_segments(img, len, true, c->info, seg_load, c)))
        return rc;
    return check_entry(c->info, h->e_entry, c->mem);
}

/* ---- Multiboot ---- */

struct mb_header {
    uint32_t magic, flags, checksum;
    uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

/* Finds the header; returns its offset, -1 when none, -2 (and an error)
 * when the only candidate has a bad checksum. */
static long mb_find(const uint8_t *img, size_t len,
                    struct vmm_image_info *info)
{
    size_t lim = len < MB_SEARCH ? len : MB_SEARCH;
    long bad = -1;
    for (size_t off = 0; off + 12 <= lim; off += 4) {
        uint32_t w[3];
        memcpy(w, img + off, 12);
        if (w[0] != MB_MAGIC)
            continue;
        if ((uint32_t)(w[0] + w[1] + w[2]) == 0)
            return (long)off;
        if (bad < 0)
            bad = (long)off;
    }
    if (bad >= 0) {
        fail(info, "Multiboot header at offset %ld has a bad checksum", bad);
        return -2;
    }
    return -1;
}

static int mb_aout(size_t len, long hoff,
                   const struct mb_header *h, struct load_ctx *c)
{
    struct vmm_image_info *info = c->info;
    if ((size_t)hoff + sizeof *h > len)
        return fail(info, "Multiboot: header address fields truncated");
    if (h->header_addr < h->load_addr ||
        h->header_addr - h->load_addr > (uint64_t)hoff)
        return fail(info, "Multiboot: load_addr 0x%x is inconsistent with "
                          "header_addr 0x%x",
                    h->load_addr, h->header_addr);
    uint64_t foff = (uint64_t)hoff - (h->header_addr - h->load_addr);
    uint64_t fsize = h->load_end_addr ? (uint64_t)h->load_end_addr -
                                            h->load_addr
                                      : len - foff;
    if (h->load_end_addr && h->load_end_addr < h->load_addr)
        return fail(info, "Multiboot: load_end_addr below load_addr");
    if (fsize > len - foff)
        return fail(info, "Multiboot: image truncated (load_end_addr needs "
                          "%llu bytes from offset %llu, file has %zu)",
                    (unsigned long long)fsize, (unsigned long long)foff, len);
    uint64_t msize = fsize;
    if (h->bss_end_addr) {
        if (h->bss_end_addr < h->load_addr + fsize)
            return fail(info, "Multiboot: bss_end_addr below the image end");
        msize = (uint64_t)h->bss_end_addr - h->load_addr;
    }
    struct seg s = { foff, fsize, h->load_addr, msize };
    int rc = seg_load(c, 0, &s);
    if (rc)
        return rc;
    return check_entry(info, h->entry_addr, c->mem);
}

static int mb_elf32(const uint8_t *img, size_t len, struct load_ctx *c)
{
    if (!is_elf(img, len))
        return fail(c->info, "Multiboot: no address fields (flag 16) and "
                             "not an ELF image");
    if (len > EI_CLASS && img[EI_CLASS] == ELFCLASS64)
        return fail(c->info, "Multiboot: a 64-bit ELF needs the header's "
                             "address fields (flag 16)");
    int rc = elf_header(img, len, false, c->info);
    if (rc)
        return rc;
    const Elf32_Ehdr *h = (const void *)img;
    if ((rc = elf_segments(img, len, false, c->info, seg_load, c)))
        return rc;
    return check_entry(c->info, h->e_entry, c->mem);
}

static int mb_do(const uint8_t *img, size_t len, struct load_ctx *c)
{
    long off = mb_find(img, len, c->info);
    if (off == -2)
        return VMM_E_IMAGE;
    if (off < 0)
        return fail(c->info, "no Multiboot header in the first 8 KiB");
    struct mb_header h;
    memset(&h, 0, sizeof h);
    memcpy(&h, img + off, (size_t)off + sizeof h <= len ? sizeof h : 12);
    uint32_t unknown = h.flags & 0xffffu & ~MB_KNOWN_REQ;
    if (unknown)
        return fail(c->info, "Multiboot: header requires unsupported "
                             "features 0x%x", unknown);
    c->info->mode = VMM_BOOT_MULTIBOOT;
    if (h.flags & MB_AOUT_KLUDGE)
        return mb_aout(len, off, &h, c);
    return mb_elf32(img, len, c);
}

static int image_do(const uint8_t *img, size_t len, enum vmm_boot_mode mode,
                    struct load_ctx *c)
{
    struct vmm_image_info *info = c->info;
    memset(info, 0, sizeof *info);
    info->load_lo = UINT64_MAX;
    if (c->mem < (2ull << 20) || c->mem % (2ull << 20) ||
        c->mem > VMM_MEM_MAX)
        return fail(info, "memory size must be a multiple of 2 MiB between "
                          "2 MiB and 64 GiB");
    if (!img || len == 0)
        return fail(info, "empty image");
    bool elf64 = len > EI_CLASS && is_elf(img, len) &&
                 img[EI_CLASS] == ELFCLASS64;
    switch (mode) {
    case VMM_BOOT_ELF64:
        if (!is_elf(img, len))
            return fail(info, "not an ELF image");
        return elf64_do(img, len, c);
    case VMM_BOOT_MULTIBOOT:
        return mb_do(img, len, c);
    case VMM_BOOT_AUTO:
        if (elf64) {
            uint16_t machine = 0;
            if (len >= 20)
                memcpy(&machine, img + 18, 2);
            if (machine == EM_X86_64 || mb_find(img, len, info) < 0)
                return elf64_do(img, len, c);
        }
        if (mb_find(img, len, info) == -1 && is_elf(img, len)) {
            /* No ELF header is shorter than ELF32's: the class and
             * machine fields may not even be there. */
            if (len < sizeof(Elf32_Ehdr))
                return fail(info, "ELF: truncated header (%zu bytes)", len);
            uint16_t machine = 0;
            memcpy(&machine, img + 18, 2);
            if (machine != EM_386 && machine != EM_X86_64)
                return fail(info, "not an x86 image (ELF machine %u)",
                            machine);
            return fail(info, "32-bit ELF image without a Multiboot header");
        }
        return mb_do(img, len, c);
    }
    return fail(info, "unknown boot mode %d", (int)mode);
}

int vmm_image_probe(const void *img, size_t len, enum vmm_boot_mode mode,
                    uint64_t mem_size, struct vmm_image_info *info)
{
    struct load_ctx c = { img, NULL, mem_size, true, info };
    return image_do(img, len, mode, &c);
}

/* ---- the VMM area ---- */

static void put64(uint8_t *ram, uint64_t gpa, uint64_t v)
{
    memcpy(ram + gpa, &v, 8);
}

static void put32(uint8_t *ram, uint64_t gpa, uint32_t v)
{
    memcpy(ram + gpa, &v, 4);
}

#define PTE_TABLE 0x27ull /* P RW US A */
#define PTE_2M 0xe7ull    /* P RW US A D PS */

static void build_page_tables(uint8_t *ram, uint64_t mem)
{
    uint64_t pdpt = VMM_BOOT_PML4 + 0x1000, pd0 = VMM_BOOT_PML4 + 0x2000;
    uint64_t gib = (mem + (1ull << 30) - 1) >> 30;
    put64(ram, VMM_BOOT_PML4, pdpt | PTE_TABLE);
    for (uint64_t g = 0; g < gib; g++)
        put64(ram, pdpt + 8 * g, (pd0 + 0x1000 * g) | PTE_TABLE);
    for (uint64_t a = 0; a < mem; a += 2ull << 20)
        put64(ram, pd0 + (a >> 21) * 8, a | PTE_2M);
}

static void build_gdt(uint8_t *ram, bool long_mode)
{
    put64(ram, VMM_BOOT_GDT, 0);
    put64(ram, VMM_BOOT_GDT + 8,
          long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull);
    put64(ram, VMM_BOOT_GDT + 16, 0x00cf93000000ffffull);
}

static void mmap_entry(uint8_t *ram, uint64_t *at, uint64_t base,
                       uint64_t len, uint32_t type)
{
    put32(ram, *at, 20);
    put64(ram, *at + 4, base);
    put64(ram, *at + 12, len);
    put32(ram, *at + 20, type);
    *at += 24;
}

static void build_info(uint8_t *ram, uint64_t mem, const char *cmdline)
{
    static const char loader[] = "ttvm";
    size_t n = strlen(cmdline);
    memcpy(ram + VMM_BOOT_CMDLINE, cmdline, n + 1);
    memcpy(ram + VMM_BOOT_CMDLINE + VMM_BOOT_CMDLINE_MAX - 16, loader,
           sizeof loader);
    /* As a PC's BIOS reports it (conventional memory to LOW_TOP, the
     * EBDA/VGA/ROM hole, RAM from 1 MiB), except that what the VMM put
     * below 1 MiB is reserved: the GDT, this info block, command line and
     * map, the page tables, and the stack handed over at VMM_BOOT_STACK,
     * which grows down towards them.  A guest may reclaim it once it has
     * its own, as it would a boot loader's memory. */
    uint64_t at = VMM_BOOT_MMAP;
    mmap_entry(ram, &at, 0, VMM_BOOT_GDT, 1);
    mmap_entry(ram, &at, VMM_BOOT_GDT, VMM_BOOT_STACK - VMM_BOOT_GDT, 2);
    mmap_entry(ram, &at, VMM_BOOT_STACK, LOW_TOP - VMM_BOOT_STACK, 1);
    mmap_entry(ram, &at, LOW_TOP, VMM_BOOT_AREA_END - LOW_TOP, 2);
    mmap_entry(ram, &at, VMM_BOOT_AREA_END, mem - VMM_BOOT_AREA_END, 1);
    uint64_t upper_kib = (mem - VMM_BOOT_AREA_END) >> 10;
    uint8_t *i = ram + VMM_BOOT_INFO;
    memset(i, 0, 0x60);
    put32(ram, VMM_BOOT_INFO + 0, (1u << 0) | (1u << 2) | (1u << 6) |
                                      (1u << 9)); /* MEM CMDLINE MMAP NAME */
    /* mem_lower is the size of conventional memory (the spec's "amount
     * of lower memory", 639 KiB as on a PC, where the boot loader's data
     * lives in it too); which part of it is free is the map's to say.
     * mem_upper is the free RAM from 1 MiB, the map's last entry. */
    put32(ram, VMM_BOOT_INFO + 4, (uint32_t)(LOW_TOP >> 10));
    put32(ram, VMM_BOOT_INFO + 8,
          upper_kib > 0xffffffffu ? 0xffffffffu : (uint32_t)upper_kib);
    put32(ram, VMM_BOOT_INFO + 16, (uint32_t)VMM_BOOT_CMDLINE);
    put32(ram, VMM_BOOT_INFO + 44, (uint32_t)(at - VMM_BOOT_MMAP));
    put32(ram, VMM_BOOT_INFO + 48, (uint32_t)VMM_BOOT_MMAP);
    put32(ram, VMM_BOOT_INFO + 64,
          (uint32_t)(VMM_BOOT_CMDLINE + VMM_BOOT_CMDLINE_MAX - 16));
}

/* ---- CPU state ---- */

static void flat(struct vmm_segment *s, uint16_t sel, uint8_t type, bool l,
                 bool db)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->limit = 0xffffffff;
    s->type = type;
    s->present = s->s = s->g = 1;
    s->l = l;
    s->db = db;
}

void vmm_state_init(struct vmm_cpu_state *st)
{
    memset(st, 0, sizeof *st);
    st->version = VMM_STATE_VERSION;
    st->size = sizeof *st;
    struct vmm_sregs *s = &st->sregs;
    flat(&s->cs, 0x08, 0xb, false, true);
    flat(&s->ds, 0x10, 0x3, false, true);
    s->es = s->fs = s->gs = s->ss = s->ds;
    s->tr.limit = 0xffff;
    s->tr.type = 11;
    s->tr.present = 1;
    s->ldt.limit = 0xffff;
    s->ldt.type = 2;
    s->ldt.present = 1;
    s->ldt.unusable = 1;
    s->gdt.base = VMM_BOOT_GDT;
    s->gdt.limit = 23;
    s->cr0 = 0x11; /* PE ET */
    s->apic_base = 0xfee00900ull;
    st->regs.rflags = 0x2;
    st->regs.rsp = VMM_BOOT_STACK;
    st->fpu.fcw = 0x37f;
    st->fpu.mxcsr = 0x1f80;
    st->msrs.pat = 0x0007040600070406ull;
    st->dr[6] = 0xffff0ff0ull;
    st->dr[7] = 0x400;
    st->xcr0 = 1;
}

static void state_elf64(struct vmm_cpu_state *st, uint64_t entry)
{
    vmm_state_init(st);
    struct vmm_sregs *s = &st->sregs;
    flat(&s->cs, 0x08, 0xb, true, false);
    s->cr0 = 0x80050033; /* PG WP NE ET MP PE */
    s->cr3 = VMM_BOOT_PML4;
    s->cr4 = 0x620;      /* OSXMMEXCPT OSFXSR PAE */
    s->efer = 0x500;     /* LMA LME */
    st->regs.rip = entry;
    st->regs.rdi = VMM_BOOT_INFO;
    st->regs.rsi = MB_BOOT_MAGIC;
}

static void state_multiboot(struct vmm_cpu_state *st, uint64_t entry)
{
    vmm_state_init(st);
    st->regs.rip = entry;
    st->regs.rax = MB_BOOT_MAGIC;
    st->regs.rbx = VMM_BOOT_INFO;
}

int vmm_load(uint8_t *ram, uint64_t size, const void *img, size_t len,
             enum vmm_boot_mode mode, const char *cmdline, bool ram_zeroed,
             struct vmm_cpu_state *st, struct vmm_image_info *info)
{
    if (!cmdline)
        cmdline = "";
    /* the loader's name shares the page: its last 16 bytes */
    _Static_assert(VMM_CMDLINE_MAX == VMM_BOOT_CMDLINE_MAX - 17, "cmdline");
    if (strlen(cmdline) > VMM_CMDLINE_MAX) {
        memset(info, 0, sizeof *info);
        return fail(info, "command line longer than %d bytes",
                    VMM_CMDLINE_MAX);
    }
    /* Check everything before touching RAM. */
    int rc = vmm_image_probe(img, len, mode, size, info);
    if (rc)
        return rc;
    memset(ram, 0, VMM_BOOT_AREA_END);
    struct load_ctx c = { img, ram, size, ram_zeroed, info };
    if ((rc = image_do(img, len, mode, &c)))
        return rc;
    build_page_tables(ram, size);
    build_gdt(ram, info->mode == VMM_BOOT_ELF64);
    build_info(ram, size, cmdline);
    if (info->mode == VMM_BOOT_ELF64)
        state_elf64(st, info->entry);
    else
        state_multiboot(st, info->entry);
    return 0;
}
