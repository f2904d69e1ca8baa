/*
 * test_loader.c — the ELF64 and Multiboot loaders without KVM: images are
 * built here byte by byte, loaded into a plain buffer, and the VMM area,
 * the copied bytes and the entry state are checked against the boot
 * conventions (vmm/boot.c).  Every refusal is checked to leave RAM alone.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/vmm_int.h"

#define MEM (8ull << 20)
#define MB_MAGIC 0x1BADB002u

static uint8_t *ram;

static void setup(void)
{
    ram = malloc(MEM);
    cr_assert(ram);
    memset(ram, 0xaa, MEM);
}

static void teardown(void) { free(ram); }

TestSuite(elf64, .init = setup, .fini = teardown);
TestSuite(multiboot, .init = setup, .fini = teardown);

struct seg_spec {
    uint64_t paddr, filesz, memsz;
    uint8_t fill;
};

/* An ELF64 x86-64 executable with the given segments (file bytes = fill). */
static size_t make_elf64(uint8_t *buf, size_t cap, uint64_t entry,
                         const struct seg_spec *segs, int n)
{
    size_t off = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr);
    memset(buf, 0, cap);
    Elf64_Ehdr *h = (Elf64_Ehdr *)buf;
    memcpy(h->e_ident, ELFMAG, SELFMAG);
    h->e_ident[EI_CLASS] = ELFCLASS64;
    h->e_ident[EI_DATA] = ELFDATA2LSB;
    h->e_ident[EI_VERSION] = EV_CURRENT;
    h->e_type = ET_EXEC;
    h->e_machine = EM_X86_64;
    h->e_version = EV_CURRENT;
    h->e_entry = entry;
    h->e_phoff = sizeof *h;
    h->e_ehsize = sizeof *h;
    h->e_phentsize = sizeof(Elf64_Phdr);
    h->e_phnum = (uint16_t)n;
    for (int i = 0; i < n; i++) {
        Elf64_Phdr *p = (Elf64_Phdr *)(buf + sizeof *h) + i;
        p->p_type = PT_LOAD;
        p->p_offset = off;
        p->p_vaddr = p->p_paddr = segs[i].paddr;
        p->p_filesz = segs[i].filesz;
        p->p_memsz = segs[i].memsz;
        cr_assert(off + segs[i].filesz <= cap);
        memset(buf + off, segs[i].fill, segs[i].filesz);
        off += segs[i].filesz;
    }
    return off;
}

static size_t make_elf32_mb(uint8_t *buf, size_t cap, uint32_t entry,
                            uint32_t paddr, uint32_t filesz, uint32_t memsz)
{
    memset(buf, 0, cap);
    Elf32_Ehdr *h = (Elf32_Ehdr *)buf;
    memcpy(h->e_ident, ELFMAG, SELFMAG);
    h->e_ident[EI_CLASS] = ELFCLASS32;
    h->e_ident[EI_DATA] = ELFDATA2LSB;
    h->e_type = ET_EXEC;
    h->e_machine = EM_386;
    h->e_entry = entry;
    h->e_phoff = sizeof *h;
    h->e_phentsize = sizeof(Elf32_Phdr);
    h->e_phnum = 1;
    Elf32_Phdr *p = (Elf32_Phdr *)(buf + sizeof *h);
    uint32_t off = 0x100;
    p->p_type = PT_LOAD;
    p->p_offset = off;
    p->p_paddr = p->p_vaddr = paddr;
    p->p_filesz = filesz;
    p->p_memsz = memsz;
    memset(buf + off, 0x5a, filesz);
    uint32_t hdr[3] = { MB_MAGIC, 0x3, (uint32_t)-(MB_MAGIC + 0x3) };
    memcpy(buf + off, hdr, sizeof hdr); /* header inside the segment */
    return off + filesz;
}

static uint64_t rd64(uint64_t gpa)
{
    uint64_t v;
    memcpy(&v, ram + gpa, 8);
    return v;
}

static uint32_t rd32(uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, ram + gpa, 4);
    return v;
}

static uint8_t img[64 << 10];

Test(elf64, loads_segments_and_builds_vmm_area)
{
    struct seg_spec s[2] = { { 0x100000, 0x1000, 0x1000, 0x11 },
                             { 0x200000, 0x10, 0x3000, 0x22 } };
    size_t len = make_elf64(img, sizeof img, 0x100040, s, 2);
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_AUTO, "a=1 b", false,
                          &st, &info), 0, "%s", info.error);
    cr_assert_eq(info.mode, VMM_BOOT_ELF64);
    cr_assert_eq(info.entry, 0x100040);
    cr_assert_eq(info.load_lo, 0x100000);
    cr_assert_eq(info.load_hi, 0x203000);
    cr_assert_eq(ram[0x100000], 0x11);
    cr_assert_eq(ram[0x100fff], 0x11);
    cr_assert_eq(ram[0x101000], 0xaa, "bytes past a segment untouched");
    cr_assert_eq(ram[0x20000f], 0x22);
    cr_assert_eq(ram[0x200010], 0, ".bss cleared");
    cr_assert_eq(ram[0x202fff], 0);
    /* page tables: every 2 MiB of RAM, P RW US A D PS */
    cr_assert_eq(rd64(VMM_BOOT_PML4), (VMM_BOOT_PML4 + 0x1000) | 0x27);
    cr_assert_eq(rd64(VMM_BOOT_PML4 + 0x1000), (VMM_BOOT_PML4 + 0x2000) | 0x27);
    for (uint64_t a = 0; a < MEM; a += 2 << 20)
        cr_assert_eq(rd64(VMM_BOOT_PML4 + 0x2000 + (a >> 21) * 8), a | 0xe7);
    cr_assert_eq(rd64(VMM_BOOT_PML4 + 0x2000 + (MEM >> 21) * 8), 0,
                 "nothing mapped past RAM");
    /* GDT: 0x08 64-bit code, 0x10 data, Accessed preset */
    cr_assert_eq(rd64(VMM_BOOT_GDT + 8), 0x00af9b000000ffffull);
    cr_assert_eq(rd64(VMM_BOOT_GDT + 16), 0x00cf93000000ffffull);
    /* Multiboot info: MEM CMDLINE MMAP */
    uint32_t flags = rd32(VMM_BOOT_INFO);
    cr_assert(flags & 1 && flags & 4 && flags & 64);
    cr_assert_eq(rd32(VMM_BOOT_INFO + 8), (MEM - 0x100000) / 1024);
    cr_assert_str_eq((char *)ram + rd32(VMM_BOOT_INFO + 16), "a=1 b");
    uint32_t mlen = rd32(VMM_BOOT_INFO + 44), maddr = rd32(VMM_BOOT_INFO + 48);
    uint32_t last = mlen - 24; /* RAM from 1 MiB up comes last */
    cr_assert_eq(rd64(maddr + last + 4), 0x100000);
    cr_assert_eq(rd64(maddr + last + 12), MEM - 0x100000);
    cr_assert_eq(rd32(maddr + last + 20), 1);
    /* entry state */
    cr_assert_eq(st.regs.rip, 0x100040);
    cr_assert_eq(st.regs.rdi, VMM_BOOT_INFO);
    cr_assert_eq(st.regs.rsi, 0x2BADB002);
    cr_assert_eq(st.regs.rflags & 0x200, 0, "IF=0");
    cr_assert_eq(st.sregs.efer & 0x500, 0x500);
    cr_assert_eq(st.sregs.cr4 & 0x620, 0x620);
    cr_assert(st.sregs.cr0 & 0x80000001u);
    cr_assert_eq(st.sregs.cr3, VMM_BOOT_PML4);
    cr_assert(st.sregs.cs.l && st.sregs.cs.dpl == 0 &&
              st.sregs.cs.selector == 0x08);
    cr_assert_eq(st.sregs.ds.selector, 0x10);
    /* the walk through those tables is the identity */
    uint64_t gpa;
    cr_assert_eq(vmm_walk(ram, MEM, &st.sregs, 0x345678, false, &gpa), 0);
    cr_assert_eq(gpa, 0x345678);
    cr_assert_eq(vmm_walk(ram, MEM, &st.sregs, MEM + 0x1000, false, &gpa),
                 VMM_E_RANGE);
}

/* Type of [a, b) in the Multiboot memory map: 1 or 2 when one entry
 * covers all of it, 0 when none does. */
static uint32_t map_type(uint64_t a, uint64_t b)
{
    uint32_t len = rd32(VMM_BOOT_INFO + 44), at = rd32(VMM_BOOT_INFO + 48);
    for (uint32_t off = 0; off + 24 <= len; off += rd32(at + off) + 4) {
        uint64_t base = rd64(at + off + 4), n = rd64(at + off + 12);
        if (base <= a && b <= base + n)
            return rd32(at + off + 20);
    }
    return 0;
}

/* Every structure the VMM leaves in low memory, and the stack it hands
 * over, is reserved; the rest is laid out as a PC's BIOS reports it
 * (conventional memory to 0x9fc00, then the EBDA/ROM hole, then RAM from
 * 1 MiB), and mem_lower/mem_upper agree with the map. */
static void check_memory_map(uint64_t mem)
{
    cr_assert_eq(rd32(VMM_BOOT_INFO) & 0x41, 0x41, "MEM and MMAP flags");
    uint32_t len = rd32(VMM_BOOT_INFO + 44), at = rd32(VMM_BOOT_INFO + 48);
    cr_assert_eq(map_type(at, at + len), 2, "the map itself");
    cr_assert_eq(map_type(VMM_BOOT_GDT, VMM_BOOT_GDT + 24), 2, "GDT");
    cr_assert_eq(map_type(VMM_BOOT_INFO, VMM_BOOT_INFO + 0x60), 2, "info");
    cr_assert_eq(map_type(VMM_BOOT_CMDLINE,
                          VMM_BOOT_CMDLINE + VMM_BOOT_CMDLINE_MAX), 2,
                 "command line");
    uint64_t tables = 0x2000 + ((mem + (1ull << 30) - 1) >> 30) * 0x1000;
    cr_assert_eq(map_type(VMM_BOOT_PML4, VMM_BOOT_PML4 + tables), 2,
                 "page tables");
    cr_assert_eq(map_type(VMM_BOOT_STACK - 0x1000, VMM_BOOT_STACK), 2,
                 "initial stack");
    cr_assert_eq(map_type(0, 0x1000), 1, "page 0 is free memory");
    cr_assert_eq(map_type(VMM_BOOT_STACK, 0x9fc00), 1, "above the stack");
    cr_assert_eq(map_type(0x9fc00, 0x100000), 2, "EBDA, VGA, ROM");
    cr_assert_eq(map_type(0x100000, mem), 1, "RAM from 1 MiB");
    cr_assert_eq(map_type(0x100000, mem + 1), 0, "nothing past RAM");
    /* entries sorted, disjoint, and covering [0, mem) without a gap */
    uint64_t end = 0;
    for (uint32_t off = 0; off + 24 <= len; off += rd32(at + off) + 4) {
        cr_assert_eq(rd32(at + off), 20);
        cr_assert_eq(rd64(at + off + 4), end, "entry at +%u", off);
        end += rd64(at + off + 12);
    }
    cr_assert_eq(end, mem);
    /* lower memory is conventional memory up to the EBDA (what the map
     * describes below 0x9fc00, free or not); upper memory is the free
     * RAM from 1 MiB */
    cr_assert_eq((uint64_t)rd32(VMM_BOOT_INFO + 4) * 1024, 0x9fc00);
    cr_assert_eq((uint64_t)rd32(VMM_BOOT_INFO + 8) * 1024, mem - 0x100000);
}

Test(elf64, memory_map_reserves_the_vmm_area)
{
    struct seg_spec s = { 0x100000, 16, 16, 0x90 };
    size_t len = make_elf64(img, sizeof img, 0x100000, &s, 1);
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_AUTO, "", false, &st,
                          &info), 0, "%s", info.error);
    check_memory_map(MEM);
    cr_assert_eq(map_type(st.regs.rsp - 8, st.regs.rsp), 2, "RSP's stack");
}

Test(elf64, page_tables_cover_4_gib)
{
    uint64_t big = 4ull << 30;
    uint8_t *r = mmap(NULL, big, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert(r != MAP_FAILED);
    struct seg_spec s = { 0x100000, 16, 16, 0x90 };
    size_t len = make_elf64(img, sizeof img, 0x100000, &s, 1);
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    cr_assert_eq(vmm_load(r, big, img, len, VMM_BOOT_ELF64, NULL, true, &st,
                          &info), 0, "%s", info.error);
    uint64_t gpa;
    cr_assert_eq(vmm_walk(r, big, &st.sregs, big - 8, false, &gpa), 0);
    cr_assert_eq(gpa, big - 8);
    munmap(r, big);
}

static void expect_refused(const uint8_t *im, size_t len, enum vmm_boot_mode m,
                           const char *needle)
{
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    int rc = vmm_load(ram, MEM, im, len, m, "", false, &st, &info);
    cr_assert_eq(rc, VMM_E_IMAGE, "expected refusal (%s)", needle);
    cr_assert(strstr(info.error, needle), "error '%s' lacks '%s'", info.error,
              needle);
    cr_assert(!strchr(info.error, '\n'), "one line");
    for (size_t i = 0; i < MEM; i += 4093)
        cr_assert_eq(ram[i], 0xaa, "RAM touched at 0x%zx", i);
}

Test(elf64, refuses_bad_images)
{
    struct seg_spec ok = { 0x100000, 0x100, 0x100, 1 };
    size_t len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    expect_refused(img, 30, VMM_BOOT_ELF64, "truncated");
    expect_refused(img, sizeof(Elf64_Ehdr) + 10, VMM_BOOT_ELF64, "truncated");
    expect_refused(img, len - 1, VMM_BOOT_ELF64, "truncated");

    struct seg_spec low = { 0xf0000, 0x100, 0x100, 1 };
    len = make_elf64(img, sizeof img, 0x100000, &low, 1);
    expect_refused(img, len, VMM_BOOT_AUTO, "VMM area");

    struct seg_spec high = { MEM - 0x80, 0x100, 0x100, 1 };
    len = make_elf64(img, sizeof img, 0x100000, &high, 1);
    expect_refused(img, len, VMM_BOOT_AUTO, "outside guest RAM");

    struct seg_spec wrap = { UINT64_MAX - 0x10, 0x100, 0x100, 1 };
    len = make_elf64(img, sizeof img, 0x100000, &wrap, 1);
    expect_refused(img, len, VMM_BOOT_AUTO, "outside guest RAM");

    len = make_elf64(img, sizeof img, MEM + 0x1000, &ok, 1);
    expect_refused(img, len, VMM_BOOT_AUTO, "entry point");
    len = make_elf64(img, sizeof img, 0x7c00, &ok, 1);
    expect_refused(img, len, VMM_BOOT_AUTO, "entry point");

    struct seg_spec fat = { 0x100000, 0x200, 0x100, 1 };
    len = make_elf64(img, sizeof img, 0x100000, &fat, 1);
    expect_refused(img, len, VMM_BOOT_AUTO, "file size");

    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Ehdr *)img)->e_machine = EM_AARCH64;
    expect_refused(img, len, VMM_BOOT_AUTO, "not an x86");

    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Ehdr *)img)->e_phnum = 0;
    expect_refused(img, len, VMM_BOOT_AUTO, "program headers");

    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_type = PT_NOTE;
    expect_refused(img, len, VMM_BOOT_AUTO, "no loadable segment");

    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_offset = 1ull << 40;
    expect_refused(img, len, VMM_BOOT_AUTO, "truncated");

    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Ehdr *)img)->e_type = ET_DYN;
    expect_refused(img, len, VMM_BOOT_AUTO, "not an executable");
}

/* Offsets so large that offset + size wraps: named as such, never
 * reported as a small end ("program headers end at 96"). */
Test(elf64, refuses_wrapping_offsets)
{
    struct seg_spec ok = { 0x100000, 0x100, 0x100, 1 };
    size_t len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Ehdr *)img)->e_phoff = 0xfffffffffffffff0ull;
    expect_refused(img, len, VMM_BOOT_AUTO, "program header table");
    expect_refused(img, len, VMM_BOOT_AUTO, "0xfffffffffffffff0");
    struct vmm_image_info info;
    vmm_image_probe(img, len, VMM_BOOT_AUTO, MEM, &info);
    cr_assert(!strstr(info.error, "end at 96"), "%s", info.error);

    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    ((Elf64_Phdr *)(img + sizeof(Elf64_Ehdr)))->p_offset =
        0xffffffffffffff80ull;
    expect_refused(img, len, VMM_BOOT_AUTO, "segment 0");
    expect_refused(img, len, VMM_BOOT_AUTO, "0xffffffffffffff80");
}

/* Only the ELF magic: a truncated header, not "ELF machine 0". */
Test(elf64, refuses_bare_elf_magic_as_truncated)
{
    memcpy(img, "\x7f" "ELF", 4);
    expect_refused(img, 4, VMM_BOOT_AUTO, "truncated");
    expect_refused(img, 4, VMM_BOOT_ELF64, "truncated");
    img[EI_CLASS] = ELFCLASS32;
    expect_refused(img, 20, VMM_BOOT_AUTO, "truncated");
    img[EI_CLASS] = ELFCLASS64;
    expect_refused(img, 20, VMM_BOOT_AUTO, "truncated");
}

Test(elf64, refuses_random_bytes_and_empty)
{
    srand(7);
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)rand();
    img[0] = 0; /* not "\177ELF" */
    expect_refused(img, sizeof img, VMM_BOOT_AUTO, "Multiboot");
    expect_refused(img, sizeof img, VMM_BOOT_ELF64, "not an ELF");
    expect_refused(img, 0, VMM_BOOT_AUTO, "empty");
    struct vmm_image_info info;
    cr_assert_eq(vmm_image_probe(img, sizeof img, VMM_BOOT_AUTO, MEM, &info),
                 VMM_E_IMAGE);
}

Test(elf64, refuses_overlong_cmdline)
{
    struct seg_spec ok = { 0x100000, 0x100, 0x100, 1 };
    size_t len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    static char cmd[8192];
    memset(cmd, 'x', sizeof cmd - 1);
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_AUTO, cmd, false, &st,
                          &info),
                 VMM_E_IMAGE);
    cr_assert(strstr(info.error, "command line"));
    /* the limit vmm.h gives is exact */
    cmd[VMM_CMDLINE_MAX + 1] = '\0';
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_AUTO, cmd, false, &st,
                          &info), VMM_E_IMAGE);
    cmd[VMM_CMDLINE_MAX] = '\0';
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_AUTO, cmd, false, &st,
                          &info), 0, "%s", info.error);
    cr_assert_eq(strlen((char *)ram + rd32(VMM_BOOT_INFO + 16)),
                 VMM_CMDLINE_MAX);
    cr_assert_str_eq((char *)ram + rd32(VMM_BOOT_INFO + 64), "ttvm",
                     "the loader name survives");
}

Test(multiboot, elf32_image)
{
    size_t len = make_elf32_mb(img, sizeof img, 0x100010, 0x100000, 0x400,
                               0x1000);
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_AUTO, "x", false, &st,
                          &info), 0, "%s", info.error);
    cr_assert_eq(info.mode, VMM_BOOT_MULTIBOOT);
    cr_assert_eq(rd32(0x100000), MB_MAGIC);
    cr_assert_eq(ram[0x1003ff], 0x5a);
    cr_assert_eq(ram[0x100400], 0);
    cr_assert_eq(st.regs.rax, 0x2BADB002);
    cr_assert_eq(st.regs.rbx, VMM_BOOT_INFO);
    cr_assert_eq(st.regs.rip, 0x100010);
    cr_assert_eq(st.sregs.cr0 & 0x80000001u, 1, "protected mode, no paging");
    cr_assert_eq(st.sregs.efer, 0);
    cr_assert(st.sregs.cs.db && !st.sregs.cs.l);
    cr_assert_eq(st.regs.rflags & 0x200, 0);
    cr_assert_eq(rd64(VMM_BOOT_GDT + 8), 0x00cf9b000000ffffull, "32-bit code");
    cr_assert_eq(rd32(VMM_BOOT_INFO + 4), 639);
    check_memory_map(MEM);
}

/* A raw image with the a.out kludge: header at offset 0x40. */
static size_t make_aout(uint32_t flags_extra, uint32_t load, uint32_t load_end,
                        uint32_t bss_end, uint32_t entry, bool bad_sum)
{
    memset(img, 0x33, 0x1000);
    uint32_t flags = 0x10003 | flags_extra;
    uint32_t h[8] = { MB_MAGIC, flags, (uint32_t)-(MB_MAGIC + flags),
                      load + 0x40, load, load_end, bss_end, entry };
    if (bad_sum)
        h[2] ^= 1;
    memcpy(img + 0x40, h, sizeof h);
    return 0x1000;
}

Test(multiboot, aout_kludge)
{
    size_t len = make_aout(0, 0x200000, 0x200800, 0x204000, 0x200100, false);
    struct vmm_image_info info;
    struct vmm_cpu_state st;
    cr_assert_eq(vmm_load(ram, MEM, img, len, VMM_BOOT_MULTIBOOT, "", false,
                          &st, &info), 0, "%s", info.error);
    cr_assert_eq(ram[0x200000], 0x33);
    cr_assert_eq(ram[0x2007ff], 0x33);
    cr_assert_eq(ram[0x200800], 0, "bss");
    cr_assert_eq(ram[0x203fff], 0);
    cr_assert_eq(ram[0x204000], 0xaa);
    cr_assert_eq(st.regs.rip, 0x200100);
    cr_assert_eq(info.load_hi, 0x204000);
}

Test(multiboot, refuses_bad_headers)
{
    size_t len = make_aout(0, 0x200000, 0, 0, 0x200100, true);
    expect_refused(img, len, VMM_BOOT_AUTO, "checksum");
    len = make_aout(0x8, 0x200000, 0, 0, 0x200100, false);
    expect_refused(img, len, VMM_BOOT_AUTO, "unsupported");
    len = make_aout(0, 0x200000, 0x300000, 0, 0x200100, false);
    expect_refused(img, len, VMM_BOOT_AUTO, "truncated");
    len = make_aout(0, 0x80000, 0, 0, 0x100100, false);
    expect_refused(img, len, VMM_BOOT_AUTO, "VMM area");
    len = make_aout(0, 0x200000, 0, 0, MEM + 4, false);
    expect_refused(img, len, VMM_BOOT_AUTO, "entry point");
    len = make_aout(0, 0x200000, 0x200800, 0x200400, 0x200100, false);
    expect_refused(img, len, VMM_BOOT_AUTO, "bss_end");
    /* header past the first 8 KiB is not found */
    memset(img, 0, sizeof img);
    uint32_t h[3] = { MB_MAGIC, 0, (uint32_t)-MB_MAGIC };
    memcpy(img + 9000, h, sizeof h);
    expect_refused(img, 12000, VMM_BOOT_MULTIBOOT, "no Multiboot header");
    /* 64-bit ELF without address fields */
    struct seg_spec ok = { 0x100000, 0x100, 0x100, 1 };
    len = make_elf64(img, sizeof img, 0x100000, &ok, 1);
    expect_refused(img, len, VMM_BOOT_MULTIBOOT, "no Multiboot header");
    memcpy(img + 128, h, sizeof h); /* a header without address fields */
    expect_refused(img, len, VMM_BOOT_MULTIBOOT, "64-bit ELF");
    /* ELF32 without a Multiboot header */
    len = make_elf32_mb(img, sizeof img, 0x100010, 0x100000, 0x400, 0x400);
    memset(img + 0x100, 0, 12);
    expect_refused(img, len, VMM_BOOT_AUTO, "without a Multiboot header");
}
