/*
 * recorder_int.h — shared inside recorder/ only.
 */
#ifndef TTVM_RECORDER_INT_H
#define TTVM_RECORDER_INT_H

#include "recorder/recorder.h"

/* One unit of work for the trace writer thread.  The writer owns every
 * buffer of a submitted job and frees it. */
struct rec_job {
    enum { REC_JOB_EVENTS, REC_JOB_SNAPSHOT } kind;
    struct store_event *ev; /* REC_JOB_EVENTS */
    size_t nev;
    struct store_snapshot_info info; /* REC_JOB_SNAPSHOT */
    void *cpu, *dev;
    size_t cpu_len, dev_len;
    uint64_t *gfns;  /* page numbers, ascending */
    uint8_t *pages;  /* npages * 4096 bytes, same order */
    size_t npages;
    size_t pages_cap; /* pages allocated (>= npages) */
    struct rec_job *next;
};

struct rec_writer;

/* Starts the writer thread on st (which it then uses exclusively until
 * rec_writer_stop).  At most max_queued bytes wait in its queue; submit
 * blocks beyond that. */
int rec_writer_start(struct store *st, size_t max_queued,
                     struct rec_writer **out);
/* Hands job to the writer (ownership moves, even on error).  Returns the
 * writer's first error, if it has failed. */
int rec_writer_submit(struct rec_writer *w, struct rec_job *job);
/* Waits until everything submitted is written and committed.  Returns the
 * writer's first error. */
int rec_writer_flush(struct rec_writer *w);
/* Flushes, stops the thread, frees w.  Returns the first error. */
int rec_writer_stop(struct rec_writer *w);
/* A buffer for at least npages pages (*cap set), reusing one the writer
 * has finished with when it is large enough; NULL when out of memory. */
uint8_t *rec_writer_take_buffer(struct rec_writer *w, size_t npages,
                                size_t *cap);
/* The writer's first error detail ("" if none). */
const char *rec_writer_detail(struct rec_writer *w);

void rec_job_free(struct rec_job *job);

/* Snapshot capture: the vCPU is stopped; copy what the snapshot needs so
 * the guest can resume at once.  This is the one place a copy-on-write
 * capture (pages saved as the guest first writes them) would replace the
 * copy; the job it produces, and so the trace format, stay the same. */
struct rec_capture;
/* Page buffers come from w (rec_writer_take_buffer). */
int rec_capture_init(struct vmm *vm, struct rec_writer *w,
                     struct rec_capture **out);
void rec_capture_fini(struct rec_capture *c);
/* Snapshot 0: every non-zero page of RAM; resets the dirty log. */
int rec_capture_boot(struct rec_capture *c, struct rec_job **out);
/* Pages written since the previous capture. */
int rec_capture_incremental(struct rec_capture *c, struct rec_job **out);

void rec_set_detail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif /* TTVM_RECORDER_INT_H */
