/*
 * capture.c — what a snapshot copies while the vCPU is held: the full CPU
 * state, every device's state, and the pages written since the previous
 * snapshot (from the KVM dirty log).  Cost grows with the dirty pages,
 * never with RAM size: the dirty bitmap is RAM/32768 bytes and only its set
 * bits are visited.  Snapshot 0 is the exception by nature (the whole
 * machine); it reads only pages the process has ever touched (mincore), so
 * a fresh 1 GiB guest costs what its loaded image costs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "recorder/recorder_int.h"

struct rec_capture {
    struct vmm *vm;
    struct rec_writer *w;
    struct vcpu *cpu;
    uint8_t *ram;
    uint64_t npages;
    uint64_t *bitmap; /* one bit per page */
    size_t words;
};

int rec_capture_init(struct vmm *vm, struct rec_writer *w,
                     struct rec_capture **out)
{
    struct rec_capture *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->vm = vm;
    c->w = w;
    c->cpu = vmm_vcpu(vm);
    c->ram = vmm_ram(vm);
    c->npages = vmm_ram_size(vm) / STORE_PAGE_SIZE;
    c->words = (c->npages + 63) / 64;
    c->bitmap = calloc(c->words, sizeof *c->bitmap);
    if (!c->bitmap) {
        free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void rec_capture_fini(struct rec_capture *c)
{
    if (!c)
        return;
    free(c->bitmap);
    free(c);
}

/* CPU and device state into a new snapshot job. */
static int capture_state(struct rec_capture *c, struct rec_job **out)
{
    struct rec_job *job = calloc(1, sizeof *job);
    if (!job)
        return -ENOMEM;
    job->kind = REC_JOB_SNAPSHOT;
    job->cpu_len = sizeof(struct vmm_cpu_state);
    job->cpu = malloc(job->cpu_len);
    long dev_len = vmm_devices_save(c->vm, NULL, 0);
    int rc = -ENOMEM;
    if (!job->cpu || dev_len < 0) {
        rc = dev_len < 0 ? (int)dev_len : -ENOMEM;
        goto fail;
    }
    job->dev_len = (size_t)dev_len;
    job->dev = malloc(job->dev_len ? job->dev_len : 1);
    if (!job->dev)
        goto fail;
    rc = vcpu_get_state(c->cpu, job->cpu);
    if (rc)
        goto fail;
    long got = vmm_devices_save(c->vm, job->dev, job->dev_len);
    if (got < 0) {
        rc = (int)got;
        goto fail;
    }
    job->dev_len = (size_t)got;
    *out = job;
    return 0;
fail:
    rec_job_free(job);
    return rc;
}

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < STORE_PAGE_SIZE / 8; i++)
        if (w[i])
            return false;
    return true;
}

/* Copies the pages whose bits are set in c->bitmap into job. */
static int copy_marked_pages(struct rec_capture *c, struct rec_job *job,
                             bool skip_zero)
{
    size_t n = 0;
    for (size_t i = 0; i < c->words; i++)
        n += (size_t)__builtin_popcountll(c->bitmap[i]);
    job->gfns = malloc((n ? n : 1) * sizeof *job->gfns);
    job->pages = rec_writer_take_buffer(c->w, n, &job->pages_cap);
    if (!job->gfns || !job->pages)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < c->words; i++) {
        for (uint64_t bits = c->bitmap[i]; bits; bits &= bits - 1) {
            uint64_t gfn = i * 64 + (uint64_t)__builtin_ctzll(bits);
            if (gfn >= c->npages)
                break;
            const uint8_t *src = c->ram + gfn * STORE_PAGE_SIZE;
            if (skip_zero && page_is_zero(src))
                continue;
            job->gfns[k] = gfn;
            memcpy(job->pages + k * STORE_PAGE_SIZE, src, STORE_PAGE_SIZE);
            k++;
        }
    }
    job->npages = k;
    return 0;
}

/* Marks the pages this process has ever touched: untouched anonymous
 * memory is not resident and reads as zeros. */
static int mark_resident_pages(struct rec_capture *c)
{
    unsigned char *vec = malloc(c->npages ? c->npages : 1);
    if (!vec)
        return -ENOMEM;
    if (mincore(c->ram, c->npages * STORE_PAGE_SIZE, vec) != 0) {
        /* Not expected for our own mapping; fall back to every page. */
        memset(vec, 1, c->npages);
    }
    memset(c->bitmap, 0, c->words * sizeof *c->bitmap);
    for (uint64_t p = 0; p < c->npages; p++)
        if (vec[p] & 1)
            c->bitmap[p / 64] |= 1ull << (p % 64);
    free(vec);
    return 0;
}

int rec_capture_boot(struct rec_capture *c, struct rec_job **out)
{
    struct rec_job *job;
    int rc = capture_state(c, &job);
    if (rc)
        return rc;
    /* Start the dirty log from here: what the loader wrote is in this
     * snapshot; what the guest writes from now on is in the next. */
    rc = vcpu_dirty_log(c->cpu, c->bitmap);
    if (!rc)
        rc = mark_resident_pages(c);
    if (!rc)
        rc = copy_marked_pages(c, job, true);
    if (rc) {
        rec_job_free(job);
        return rc;
    }
    *out = job;
    return 0;
}

int rec_capture_incremental(struct rec_capture *c, struct rec_job **out)
{
    struct rec_job *job = NULL;
    int rc = capture_state(c, &job);
    if (rc)
        return rc;
    rc = vcpu_dirty_log(c->cpu, c->bitmap);
    if (!rc)
        rc = copy_marked_pages(c, job, false);
    if (rc) {
        rec_job_free(job);
        return rc;
    }
    *out = job;
    return 0;
}
