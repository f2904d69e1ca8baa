/*
 * boot_info.c — what the boot loader told the guest: the Multiboot v1
 * info block (both boot paths pass one), the command line and its
 * KEY=VALUE words, and the memory size.
 */
#include "sdk_int.h"

#define MB_BOOT_MAGIC 0x2badb002
#define MBI_MEM (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MMAP (1u << 6)

struct mb_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
} __attribute__((packed));

struct mb_mmap_entry {
    uint32_t size; /* of the rest of the entry */
    uint64_t base, len;
    uint32_t type; /* 1 = usable RAM */
} __attribute__((packed));

static char cmdline[512];
static const char *args = "";
static const char *boot_path = "elf64";
static uint64_t mem_bytes;

/* The loader's data is trusted no further than the SDK's identity map. */
static bool mapped(uint64_t p, uint64_t len)
{
    return p < SDK_MAPPED_BYTES && len <= SDK_MAPPED_BYTES - p;
}

static void copy_cmdline(uint32_t addr)
{
    const char *src = (const char *)(uintptr_t)addr;
    size_t n = 0;

    while (n + 1 < sizeof(cmdline) && mapped(addr + n, 1) && src[n])
        n++;
    memcpy(cmdline, src, n);
    cmdline[n] = '\0';
}

/* Drops a first word that names the image, as QEMU and GRUB pass it. */
static const char *strip_image_name(const char *s)
{
    const char *w = s, *end;
    bool path = false;
    size_t n;

    while (*w == ' ')
        w++;
    for (end = w; *end && *end != ' '; end++)
        if (*end == '/')
            path = true;
    n = (size_t)(end - w);
    if ((n >= 3 && !strncmp(end - 3, ".mb", 3)) ||
        (n >= 4 && !strncmp(end - 4, ".elf", 4)))
        path = true;
    if (!path)
        return w;
    while (*end == ' ')
        end++;
    return end;
}

static uint64_t mmap_top(uint32_t addr, uint32_t length)
{
    uint64_t top = 0, off = 0;

    if (!mapped(addr, length))
        return 0;
    while (off + sizeof(struct mb_mmap_entry) <= length) {
        const struct mb_mmap_entry *e = (const void *)(uintptr_t)(addr + off);

        if (e->type == 1 && e->base + e->len > top)
            top = e->base + e->len;
        off += (uint64_t)e->size + 4;
    }
    return top;
}

const char *sdk_boot_info_parse(uint64_t info, uint64_t magic, uint64_t path)
{
    const struct mb_info *mbi = (const void *)(uintptr_t)info;

    boot_path = path == 2 ? "multiboot" : "elf64";
    if (magic != MB_BOOT_MAGIC)
        return "boot magic is not 0x2badb002: no boot information";
    if (!mapped(info, sizeof(*mbi)))
        return "Multiboot info block outside the first 1 GiB: ignored";
    if (mbi->flags & MBI_CMDLINE) {
        copy_cmdline(mbi->cmdline);
        args = strip_image_name(cmdline);
    }
    if (mbi->flags & MBI_MMAP)
        mem_bytes = mmap_top(mbi->mmap_addr, mbi->mmap_length);
    if (!mem_bytes && (mbi->flags & MBI_MEM))
        mem_bytes = ((uint64_t)mbi->mem_upper + 1024) * 1024;
    return "";
}

const char *sdk_boot_path(void)
{
    return boot_path;
}

const char *sdk_cmdline(void)
{
    return args;
}

uint64_t sdk_mem_bytes(void)
{
    return mem_bytes;
}

/* Finds the word KEY=...; returns its value and length, or NULL. */
static const char *arg_find(const char *key, size_t *len)
{
    size_t klen = strlen(key);

    for (const char *w = args; *w;) {
        const char *end;

        while (*w == ' ')
            w++;
        for (end = w; *end && *end != ' '; end++)
            ;
        if ((size_t)(end - w) > klen && !strncmp(w, key, klen) &&
            w[klen] == '=') {
            *len = (size_t)(end - w) - klen - 1;
            return w + klen + 1;
        }
        w = end;
    }
    return NULL;
}

uint64_t sdk_arg_u64(const char *key, uint64_t dflt)
{
    size_t len;
    const char *v = arg_find(key, &len);
    uint64_t n;

    if (!v || sdk_parse_u64(v, len, &n) < 0)
        return dflt;
    return n;
}

bool sdk_arg_is(const char *key, const char *value)
{
    size_t len;
    const char *v = arg_find(key, &len);

    return v && len == strlen(value) && !strncmp(v, value, len);
}
