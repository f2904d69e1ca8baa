/*
 * test_insn.c — the shared x86 prefix decoder (vmm_insn_prefixes) and
 * code addressing (vmm_code_linear, vmm_code_fetch) of vmm/insn.c, which
 * the KVM backend (string I/O), the kvm-step backend, the recorder (rep
 * instructions at kicks) and the index (rep kick points) all rely on.
 * Encodings are checked against the Intel SDM's operand- and address-size
 * rules in each code mode.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmm_int.h"

enum mode { M16, M32, M64 };

static struct vmm_sregs sregs(enum mode m)
{
    struct vmm_sregs s;
    memset(&s, 0, sizeof s);
    if (m == M64) {
        s.efer = 0x500; /* LME | LMA */
        s.cs.l = 1;
    } else {
        s.cs.db = m == M32;
    }
    return s;
}

static struct vmm_insn_prefix decode(enum mode m, const char *hex)
{
    uint8_t b[15];
    size_t n = 0;
    for (const char *c = hex; *c && n < sizeof b; c += 2)
        b[n++] = (uint8_t)strtoul((char[3]){c[0], c[1], 0}, NULL, 16);
    struct vmm_sregs s = sregs(m);
    struct vmm_insn_prefix p;
    cr_assert(vmm_insn_prefixes(b, n, &s, &p), "%s does not decode", hex);
    return p;
}

Test(prefixes, rep_movsb_64)
{
    struct vmm_insn_prefix p = decode(M64, "f3a4");
    cr_expect_eq(p.len, 1);
    cr_expect_eq(p.op, 0xa4);
    cr_expect_eq(p.rep, 0xf3);
    cr_expect(p.str);
    cr_expect_eq(p.esize, 1);
    cr_expect_eq(p.asz, 8);
    cr_expect_eq(p.opsz, 4);
}

Test(prefixes, rex_w_widens_movs_not_outs)
{
    struct vmm_insn_prefix p = decode(M64, "f348a5"); /* rep movsq */
    cr_expect_eq(p.len, 2);
    cr_expect_eq(p.esize, 8);
    cr_expect_eq(p.opsz, 8);
    p = decode(M64, "f3486f"); /* rep outsd: REX.W does not widen */
    cr_expect_eq(p.esize, 4);
    p = decode(M64, "66f36f"); /* rep outsw */
    cr_expect_eq(p.esize, 2);
}

Test(prefixes, address_size_by_mode)
{
    cr_expect_eq(decode(M64, "67f3aa").asz, 4);
    cr_expect_eq(decode(M32, "f3aa").asz, 4);
    cr_expect_eq(decode(M32, "67f3aa").asz, 2);
    cr_expect_eq(decode(M16, "f3aa").asz, 2);
    cr_expect_eq(decode(M16, "67f3aa").asz, 4);
}

Test(prefixes, operand_size_by_mode)
{
    cr_expect_eq(decode(M16, "ab").esize, 2);   /* stosw */
    cr_expect_eq(decode(M16, "66ab").esize, 4); /* stosd */
    cr_expect_eq(decode(M32, "ab").esize, 4);
    cr_expect_eq(decode(M32, "66ab").esize, 2);
    cr_expect_eq(decode(M16, "666d").esize, 4); /* insd */
}

Test(prefixes, segment_lock_and_last_rep)
{
    struct vmm_insn_prefix p = decode(M64, "f02ef2f3a6");
    cr_expect_eq(p.len, 4);
    cr_expect_eq(p.seg, 0x2e);
    cr_expect_eq(p.rep, 0xf3);
    cr_expect(p.str);
}

Test(prefixes, rex_is_an_opcode_outside_64_bit_mode)
{
    /* 48 is dec eax in 32-bit code: not a prefix of the movs after it */
    struct vmm_insn_prefix p = decode(M32, "48a5");
    cr_expect_eq(p.len, 0);
    cr_expect_eq(p.op, 0x48);
    cr_expect_not(p.str);
    p = decode(M64, "48a5");
    cr_expect_eq(p.len, 1);
    cr_expect(p.str);
}

Test(prefixes, not_strings)
{
    cr_expect_not(decode(M64, "f390").str); /* pause */
    cr_expect_not(decode(M64, "0f05").str);
    cr_expect_eq(decode(M64, "0f05").op, 0x0f);
}

Test(prefixes, no_opcode_within_n)
{
    const uint8_t b[] = {0x66, 0xf3, 0x67};
    struct vmm_sregs s = sregs(M64);
    struct vmm_insn_prefix p;
    cr_expect_not(vmm_insn_prefixes(b, sizeof b, &s, &p));
    cr_expect_not(vmm_insn_prefixes(b, 0, &s, &p));
}

Test(code, linear_and_fetch)
{
    struct vmm_sregs s = sregs(M32);
    s.cs.base = 0x1000;
    cr_expect_eq(vmm_code_linear(&s, 0x20), 0x1020);
    cr_expect_eq(vmm_code_linear(&s, 0xfffff000u), 0, "32-bit wrap");
    struct vmm_sregs l = sregs(M64);
    l.cs.base = 0x1000; /* ignored in 64-bit mode */
    cr_expect_eq(vmm_code_linear(&l, 0x20), 0x20);

    /* paging off: linear is physical; the fetch stops where RAM ends */
    enum { SIZE = 0x2000 };
    uint8_t *ram = calloc(1, SIZE);
    cr_assert(ram);
    memcpy(ram + SIZE - 3, "\xf3\xa4\x90", 3);
    uint8_t b[15];
    s.cs.base = 0;
    cr_expect_eq(vmm_code_fetch(ram, SIZE, &s, SIZE - 3, b, sizeof b), 3);
    cr_expect_eq(memcmp(b, "\xf3\xa4\x90", 3), 0);
    cr_expect_eq(vmm_code_fetch(ram, SIZE, &s, SIZE, b, sizeof b), 0);
    free(ram);
}
