/*
 * progress.c — the one progress bar of the `ttvm` command (indexing,
 * verification): drawn on stderr only when it is a terminal, so logs and
 * scripts see none of it.
 */
#include <stdio.h>
#include <unistd.h>

#include "cmd/cmd.h"

void cmd_bar_start(struct cmd_bar *b, bool quiet)
{
    b->tty = !quiet && isatty(STDERR_FILENO);
    b->drawn = false;
    clock_gettime(CLOCK_MONOTONIC, &b->t0);
}

double cmd_bar_elapsed(const struct cmd_bar *b)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - b->t0.tv_sec) +
           (double)(now.tv_nsec - b->t0.tv_nsec) * 1e-9;
}

int cmd_bar_progress(void *ctx, const char *what, uint64_t done,
                     uint64_t total)
{
    struct cmd_bar *b = ctx;
    if (!b->tty)
        return 0;
    double f = total ? (double)done / (double)total : 0;
    if (f > 1)
        f = 1;
    int w = (int)(f * 30);
    fprintf(stderr, "\r%s [%.*s%*s] %3.0f%%  %.1f s", what, w,
            "##############################", 30 - w, "", 100 * f,
            cmd_bar_elapsed(b));
    b->drawn = true;
    return 0;
}

void cmd_bar_clear(struct cmd_bar *b)
{
    if (b->drawn)
        fprintf(stderr, "\r\033[K");
    b->drawn = false;
}
