/*
 * Group commit: one committer thread, one transaction per batch of
 * queued jobs, one savepoint per job.
 */
#include "core/alloc.h"
#include "records/records_impl.h"
#include "store/store.h"

#include <pthread.h>
#include <string.h>

/* Jobs per transaction: enough to amortise a commit, few enough that a
 * batch's latency stays low. */
#define MAX_BATCH 256

struct mr_queue {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct mr_job *head, *tail;
    int stop;
    struct mr_records *r;
};

static void run_batch(struct mr_queue *q, struct mr_job **jobs, size_t n)
{
    struct mr_records *r = q->r;
    struct mr_diag d;
    enum mr_err err;
    size_t i;

    mr_diag_clear(&d);
    err = mr_store_begin(r->st, 1, &d);
    if (!err) {
        r->in_bundle = 1;
        for (i = 0; i < n && !err; i++) {
            int undo;
            if (jobs[i]->flags & MR_JOB_APPEND) {
                if (jobs[i]->run(jobs[i]->ctx, r))
                    err = MR_EIO;
                continue;
            }
            err = mr_store_savepoint(r->st, MR_SP_OPEN, &d);
            if (err)
                break;
            undo = jobs[i]->run(jobs[i]->ctx, r);
            err = mr_store_savepoint(r->st,
                                     undo ? MR_SP_ROLLBACK : MR_SP_RELEASE, &d);
            /* Refusals outlive the undone request: their audit entries
             * are written after its savepoint, in the same commit. */
            if (!err && r->denials.n)
                err = mr_records_write_audits(r, &r->denials, &d);
            mr_audit_batch_release(&r->denials);
        }
        r->in_bundle = 0;
        if (!err)
            err = mr_store_commit(r->st, &d);
        else
            mr_store_rollback(r->st);
    }
    for (i = 0; i < n; i++)
        jobs[i]->done(jobs[i]->ctx, err);
}

static void *committer(void *arg)
{
    struct mr_queue *q = arg;
    struct mr_job *jobs[MAX_BATCH];
    size_t n;

    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head && q->stop) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        for (n = 0; q->head && n < MAX_BATCH; n++) {
            jobs[n] = q->head;
            q->head = q->head->next;
        }
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->mu);
        run_batch(q, jobs, n);
    }
    return NULL;
}

enum mr_err mr_queue_start(const char *db, struct mr_queue **out,
                           struct mr_diag *d)
{
    struct mr_queue *q = mr_calloc(1, sizeof(*q));
    enum mr_err err;

    if (!q)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    err = mr_records_open(db, 0, &q->r, d);
    if (!err)
        err = mr_store_background_checkpoints(q->r->st, d);
    if (err) {
        if (q->r)
            mr_records_close(q->r);
        mr_free(q);
        return err;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thread, NULL, committer, q)) {
        mr_records_close(q->r);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        mr_free(q);
        return mr_diag_set(d, MR_EINTERNAL, "cannot start the committer");
    }
    *out = q;
    return MR_OK;
}

void mr_queue_submit(struct mr_queue *q, struct mr_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void mr_queue_stop(struct mr_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    mr_records_close(q->r);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    mr_free(q);
}
