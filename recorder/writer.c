/*
 * writer.c — the trace writer thread.  Compression, hashing and LMDB
 * commits happen here, off the vCPU thread, so a snapshot holds the guest
 * only for as long as it takes to copy state and dirty pages (issue 3's
 * pause target).  The queue is bounded: a guest that dirties memory faster
 * than the disk takes it is slowed down, never allowed to grow the
 * recorder's memory without limit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recorder/recorder_int.h"

struct rec_writer {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* queue changed */
    struct rec_job *head, *tail;
    size_t queued_bytes, max_queued;
    bool stopping, busy;
    /* A written snapshot's page buffer, kept for the next capture: fresh
     * memory would cost the paused vCPU a page fault per 4 KiB. */
    uint8_t *spare;
    size_t spare_pages;
    int err;
    char detail[256];
};

void rec_job_free(struct rec_job *job)
{
    if (!job)
        return;
    free(job->ev);
    free(job->cpu);
    free(job->dev);
    free(job->gfns);
    free(job->pages);
    free(job);
}

static size_t job_bytes(const struct rec_job *job)
{
    return job->nev * sizeof *job->ev + job->cpu_len + job->dev_len +
           job->npages * (STORE_PAGE_SIZE + sizeof(uint64_t));
}

static int write_snapshot(struct store *st, const struct rec_job *job)
{
    int rc = store_snapshot_begin(st, &job->info, job->cpu, job->cpu_len,
                                  job->dev, job->dev_len);
    for (size_t i = 0; !rc && i < job->npages; i++)
        rc = store_snapshot_page(st, job->gfns[i],
                                 job->pages + i * STORE_PAGE_SIZE);
    if (!rc)
        rc = store_snapshot_end(st);
    return rc;
}

static int write_job(struct rec_writer *w, const struct rec_job *job)
{
    int rc;
    if (job->kind == REC_JOB_EVENTS)
        rc = store_events_append(w->st, job->ev, job->nev);
    else
        rc = write_snapshot(w->st, job);
    if (rc)
        snprintf(w->detail, sizeof w->detail, "writing %s: %s%s%s",
                 job->kind == REC_JOB_EVENTS ? "events" : "a snapshot",
                 store_strerror(rc), *store_error_detail(w->st) ? ": " : "",
                 store_error_detail(w->st));
    return rc;
}

static void *writer_main(void *arg)
{
    struct rec_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (!w->head)
            break;
        struct rec_job *job = w->head;
        w->head = job->next;
        if (!w->head)
            w->tail = NULL;
        w->busy = true;
        pthread_mutex_unlock(&w->lock);

        /* After a failure keep draining (freeing) so submitters never
         * block forever; the first error is what everyone sees. */
        int rc = w->err ? 0 : write_job(w, job);
        size_t bytes = job_bytes(job);

        pthread_mutex_lock(&w->lock);
        if (job->pages && job->pages_cap > w->spare_pages) {
            free(w->spare);
            w->spare = job->pages;
            w->spare_pages = job->pages_cap;
            job->pages = NULL;
        }
        rec_job_free(job);
        if (rc && !w->err)
            w->err = rc;
        w->queued_bytes -= bytes;
        w->busy = false;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int rec_writer_start(struct store *st, size_t max_queued,
                     struct rec_writer **out)
{
    struct rec_writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->st = st;
    w->max_queued = max_queued;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

int rec_writer_submit(struct rec_writer *w, struct rec_job *job)
{
    size_t bytes = job_bytes(job);
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    /* A single job larger than the budget still goes through once the
     * queue is empty. */
    while (w->queued_bytes && w->queued_bytes + bytes > w->max_queued &&
           !w->err)
        pthread_cond_wait(&w->cond, &w->lock);
    int err = w->err;
    if (err) {
        pthread_mutex_unlock(&w->lock);
        rec_job_free(job);
        return err;
    }
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    w->queued_bytes += bytes;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int rec_writer_flush(struct rec_writer *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->head || w->busy)
        pthread_cond_wait(&w->cond, &w->lock);
    int err = w->err;
    pthread_mutex_unlock(&w->lock);
    return err;
}

const char *rec_writer_detail(struct rec_writer *w) { return w->detail; }

uint8_t *rec_writer_take_buffer(struct rec_writer *w, size_t npages,
                                size_t *cap)
{
    uint8_t *buf = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->spare && w->spare_pages >= npages) {
        buf = w->spare;
        *cap = w->spare_pages;
        w->spare = NULL;
        w->spare_pages = 0;
    }
    pthread_mutex_unlock(&w->lock);
    if (!buf && (buf = malloc((npages ? npages : 1) * STORE_PAGE_SIZE)))
        *cap = npages ? npages : 1;
    return buf;
}

int rec_writer_stop(struct rec_writer *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    int err = w->err;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->spare);
    free(w);
    return err;
}
