/*
 * guest_compute_ref — the checksum the `compute` guest must print,
 * computed on the host from the definition in guests/compute.c:
 *   x = 0x9e3779b97f4a7c15; s = 0;
 *   N times: x = x * 6364136223846793005 + 1442695040888963407;
 *            s += x >> 33;
 *   checksum = s ^ x
 * Usage: guest_compute_ref N   (prints 0x<16 hex digits>)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    uint64_t x = 0x9e3779b97f4a7c15ull, s = 0, n;
    char *end;

    if (argc != 2) {
        fprintf(stderr, "usage: guest_compute_ref ITERATIONS\n");
        return 2;
    }
    errno = 0;
    n = strtoull(argv[1], &end, 0);
    if (errno || end == argv[1] || *end) {
        fprintf(stderr, "guest_compute_ref: bad iteration count '%s'\n",
                argv[1]);
        return 2;
    }
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s += x >> 33;
    }
    printf("%#018" PRIx64 "\n", s ^ x);
    return 0;
}
