/*
 * Group commit (src/records/queue.c): many jobs, some failing, from
 * several threads; each job's writes are kept or undone alone, every job
 * hears of the commit, and what is kept is durable and audited.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "records/records.h"

static const struct mr_actor ACTOR = {"queue-test", NULL, "unit-test", NULL, 1};

#define NJOBS 200

struct job {
    struct mr_job j;
    int index;
    int ran_ok; /* the create inside succeeded */
    int undo;   /* ask for this job's writes to be undone */
    int done;   /* done() was called */
    enum mr_err commit;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ndone;

static int run(void *ctx, struct mr_records *r)
{
    struct job *jb = ctx;
    char json[256];
    struct mr_diag d;

    if (jb->index % 10 == 3)
        /* Invalid: refused, nothing written. */
        snprintf(json, sizeof(json),
                 "{\"resourceType\":\"Observation\",\"status\":\"nope\","
                 "\"code\":{\"text\":\"q%d\"}}",
                 jb->index);
    else
        snprintf(json, sizeof(json),
                 "{\"resourceType\":\"Observation\",\"status\":\"final\","
                 "\"code\":{\"text\":\"q%d\"}}",
                 jb->index);
    jb->ran_ok = mr_records_create(r, &ACTOR, "Observation", json, strlen(json),
                                   NULL, 0, NULL, &d) == MR_OK;
    /* Every 7th written job asks to be undone after writing. */
    jb->undo = jb->ran_ok && jb->index % 7 == 0;
    return !jb->ran_ok || jb->undo;
}

static void done(void *ctx, enum mr_err commit)
{
    struct job *jb = ctx;

    pthread_mutex_lock(&mu);
    jb->commit = commit;
    jb->done = 1;
    ndone++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

struct submitter {
    struct mr_queue *q;
    struct job *jobs;
    int from, to;
};

static void *submit(void *arg)
{
    struct submitter *s = arg;
    int i;

    for (i = s->from; i < s->to; i++)
        mr_queue_submit(s->q, &s->jobs[i].j);
    return NULL;
}

struct count {
    int n;
    int seen[NJOBS];
};

static int count_cb(void *ctx, const struct mr_version *m, const char *json,
                    size_t len)
{
    struct count *c = ctx;
    const char *p = strstr(json, "\"text\":\"q");
    int idx;

    (void)m;
    (void)len;
    c->n++;
    if (p && sscanf(p + 9, "%d", &idx) == 1 && idx >= 0 && idx < NJOBS)
        c->seen[idx]++;
    return 0;
}

static int audit_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    (void)seq;
    if (e->action && !strcmp(e->action, "create"))
        (*(int *)ctx)++;
    return 0;
}

static void test_group_commit(void **state)
{
    char dir[] = "/tmp/medrec-queue-XXXXXX", path[128], sh[160];
    struct mr_records *r;
    struct mr_queue *q;
    struct mr_diag d;
    struct job *jobs = calloc(NJOBS, sizeof(*jobs));
    struct submitter subs[4];
    pthread_t th[4];
    struct count c;
    int i, kept = 0, audits = 0;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/q.db", dir);
    assert_int_equal(mr_records_open(path, MR_STORE_CREATE, &r, &d), MR_OK);
    mr_records_close(r);
    assert_int_equal(mr_queue_start(path, &q, &d), MR_OK);

    for (i = 0; i < NJOBS; i++) {
        jobs[i].index = i;
        jobs[i].j.run = run;
        jobs[i].j.done = done;
        jobs[i].j.ctx = &jobs[i];
    }
    for (i = 0; i < 4; i++) {
        subs[i] =
            (struct submitter){q, jobs, i * NJOBS / 4, (i + 1) * NJOBS / 4};
        assert_int_equal(pthread_create(&th[i], NULL, submit, &subs[i]), 0);
    }
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_lock(&mu);
    while (ndone < NJOBS)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    mr_queue_stop(q);

    for (i = 0; i < NJOBS; i++) {
        assert_true(jobs[i].done);
        assert_int_equal(jobs[i].commit, MR_OK);
        assert_int_equal(jobs[i].ran_ok, i % 10 != 3);
        if (jobs[i].ran_ok && !jobs[i].undo)
            kept++;
    }
    assert_true(kept > 0 && kept < NJOBS);

    /* Reopen: exactly the kept jobs' resources, each once, audited once. */
    assert_int_equal(mr_records_open(path, 0, &r, &d), MR_OK);
    memset(&c, 0, sizeof(c));
    {
        FILE *f = tmpfile();
        int64_t n = 0;
        char line[512];
        assert_non_null(f);
        assert_int_equal(mr_records_export(r, &ACTOR, f, &n, &d), MR_OK);
        rewind(f);
        while (fgets(line, sizeof(line), f))
            count_cb(&c, NULL, line, strlen(line));
        fclose(f);
    }
    assert_int_equal(c.n, kept);
    for (i = 0; i < NJOBS; i++)
        assert_int_equal(c.seen[i], jobs[i].ran_ok && !jobs[i].undo);
    assert_int_equal(
        mr_records_audit_scan(r, &ACTOR, NULL, audit_cb, &audits, &d), MR_OK);
    assert_int_equal(audits, kept);
    mr_records_close(r);
    free(jobs);
    snprintf(sh, sizeof(sh), "rm -rf %s", dir);
    assert_int_equal(system(sh), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
