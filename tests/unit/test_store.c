/* Unit tests for store/store.h over a temporary SQLite file: open and
 * schema checks, versioned puts, tombstones, history, append-only
 * triggers, sequences, audit, search and the integrity check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "fhir/index.h"
#include "fhir/search.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[128];
    struct mr_store *st;
};

static void rm_db(const char *path)
{
    char p[160];
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s.audit-key", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-journal", path);
    unlink(p);
    unlink(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct mr_diag d;

    snprintf(f->dir, sizeof(f->dir), "/tmp/mr-test-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    if (mr_store_open(f->path, MR_STORE_CREATE, &f->st, &d)) {
        fprintf(stderr, "open: %s\n", mr_diag_msg(&d));
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];

    mr_store_close(f->st);
    rm_db(f->path);
    snprintf(p, sizeof(p), "%s/other.db", f->dir);
    rm_db(p);
    snprintf(p, sizeof(p), "%s/plain.txt", f->dir);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

#define CHECK(call)                                                            \
    do {                                                                       \
        struct mr_diag d_;                                                     \
        mr_diag_clear(&d_);                                                    \
        enum mr_err e_ = (call);                                               \
        if (e_)                                                                \
            fail_msg("%s: %s (%s)", #call, mr_errname(e_), mr_diag_msg(&d_));  \
    } while (0)

/* Put json (type/id) with index entries extracted from it, in its own
 * transaction; returns the put's error, version in *v. */
static enum mr_err put_json(struct mr_store *st, const char *type,
                            const char *id, int64_t expect, const char *json,
                            int64_t *v, struct mr_diag *d)
{
    struct mr_ix ix;
    json_t *j = NULL;
    enum mr_err err;
    int64_t ver = 0;

    mr_ix_init(&ix);
    if (json) {
        j = json_loads(json, 0, NULL);
        assert_non_null(j);
        assert_int_equal(mr_fhir_extract(j, type, &ix), MR_OK);
    }
    struct mr_put p = {.type = type,
                       .id = id,
                       .expect = expect,
                       .json = json,
                       .json_len = json ? strlen(json) : 0,
                       .ts = 1700000000000LL,
                       .author = "tester",
                       .reason = json ? "edit" : "delete",
                       .ix = json ? &ix : NULL};
    err = mr_store_begin(st, 1, d);
    if (!err)
        err = mr_store_put(st, &p, &ver, d);
    if (!err)
        err = mr_store_commit(st, d);
    else
        mr_store_rollback(st);
    if (!err && v)
        *v = ver;
    json_decref(j);
    mr_ix_release(&ix);
    return err;
}

static int64_t nversions(struct mr_store *st)
{
    int64_t r = 0, v = 0, a = 0;
    CHECK(mr_store_counts(st, &r, &v, &a, &d_));
    return v;
}

static int64_t nresources(struct mr_store *st)
{
    int64_t r = 0, v = 0, a = 0;
    CHECK(mr_store_counts(st, &r, &v, &a, &d_));
    return r;
}

static sqlite3 *raw(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    return db;
}

static char *raw_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    char *out = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

/* ---- open ------------------------------------------------------------- */

static void test_open_missing_and_create(void **state)
{
    struct fx *f = *state;
    struct mr_store *st = NULL;
    struct mr_diag d;
    char p[160];

    snprintf(p, sizeof(p), "%s/other.db", f->dir);
    assert_int_equal(mr_store_open(p, 0, &st, &d), MR_ENOTFOUND);
    assert_null(st);
    assert_non_null(strstr(d.msg, p));
    assert_int_equal(access(p, F_OK), -1); /* not created */
    assert_int_equal(mr_store_open("", 0, &st, &d), MR_EUSAGE);

    assert_int_equal(mr_store_open(p, MR_STORE_CREATE, &st, &d), MR_OK);
    assert_int_equal(mr_store_schema(st), MR_STORE_SCHEMA_VERSION);
    mr_store_close(st);
    /* Reopen without CREATE. */
    st = NULL;
    assert_int_equal(mr_store_open(p, 0, &st, &d), MR_OK);
    assert_int_equal(mr_store_schema(st), MR_STORE_SCHEMA_VERSION);
    mr_store_close(st);
    st = NULL;
    assert_int_equal(mr_store_open(p, MR_STORE_READONLY, &st, &d), MR_OK);
    mr_store_close(st);
    mr_store_close(NULL);

    sqlite3 *db = raw(p);
    char *uv = raw_text(db, "PRAGMA user_version");
    assert_int_equal(atoi(uv), MR_STORE_SCHEMA_VERSION);
    free(uv);
    sqlite3_close(db);
}

static void test_open_not_a_db(void **state)
{
    struct fx *f = *state;
    struct mr_store *st = NULL;
    struct mr_diag d;
    char p[160];
    FILE *fp;
    int i;

    snprintf(p, sizeof(p), "%s/plain.txt", f->dir);
    fp = fopen(p, "w");
    assert_non_null(fp);
    for (i = 0; i < 200; i++)
        fputs("This is a plain text file, not a database.\n", fp);
    fclose(fp);
    assert_int_equal(mr_store_open(p, 0, &st, &d), MR_ENOTDB);
    assert_null(st);
    assert_int_equal(mr_store_open(p, MR_STORE_CREATE, &st, &d), MR_ENOTDB);
    assert_null(st);

    /* A SQLite file of another program. */
    snprintf(p, sizeof(p), "%s/other.db", f->dir);
    sqlite3 *db = raw(p);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mr_store_open(p, 0, &st, &d), MR_ENOTDB);
    assert_null(st);
    rm_db(p);
    /* An empty file without CREATE. */
    fp = fopen(p, "w");
    fclose(fp);
    assert_int_equal(mr_store_open(p, 0, &st, &d), MR_ENOTDB);
    assert_null(st);
}

static void test_open_newer(void **state)
{
    struct fx *f = *state;
    struct mr_store *st = NULL;
    struct mr_diag d;

    mr_store_close(f->st);
    f->st = NULL;
    sqlite3 *db = raw(f->path);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", 0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mr_store_open(f->path, 0, &st, &d), MR_ENEWER);
    assert_null(st);
    assert_non_null(strstr(d.msg, "99"));
    assert_int_equal(mr_store_open(f->path, MR_STORE_READONLY, &st, &d),
                     MR_ENEWER);
    db = raw(f->path);
    char buf[64];
    snprintf(buf, sizeof(buf), "PRAGMA user_version=%d",
             MR_STORE_SCHEMA_VERSION);
    assert_int_equal(sqlite3_exec(db, buf, 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mr_store_open(f->path, 0, &f->st, &d), MR_OK);
}

/* The store's own connection, caught as it opens: SQLite calls every
 * auto extension with each new connection of the process. */
static sqlite3 *last_db;

static int catch_db(sqlite3 *db, const char **err, const void *api)
{
    (void)err;
    (void)api;
    last_db = db;
    return SQLITE_OK;
}

static void test_pragmas(void **state)
{
    struct fx *f = *state;
    struct mr_store *st = NULL;
    struct mr_diag d;
    int64_t v;

    /* journal_mode=WAL is persistent: visible from a second connection. */
    sqlite3 *db = raw(f->path);
    char *jm = raw_text(db, "PRAGMA journal_mode");
    char *appid = raw_text(db, "PRAGMA application_id");
    assert_string_equal(jm, "wal");
    assert_int_equal(atol(appid), 0x4d524543);
    free(jm);
    free(appid);
    sqlite3_close(db);

    /* synchronous and foreign_keys are per connection: ask the store's. */
    last_db = NULL;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))catch_db),
                     SQLITE_OK);
    assert_int_equal(mr_store_open(f->path, 0, &st, &d), MR_OK);
    sqlite3_cancel_auto_extension((void (*)(void))catch_db);
    assert_non_null(last_db);
    char *sync = raw_text(last_db, "PRAGMA synchronous");
    char *fk = raw_text(last_db, "PRAGMA foreign_keys");
    jm = raw_text(last_db, "PRAGMA journal_mode");
    assert_string_equal(sync, "2"); /* FULL */
    assert_string_equal(fk, "1");
    assert_string_equal(jm, "wal");
    free(sync);
    free(fk);
    free(jm);
    mr_store_close(st);
    last_db = NULL;

    /* A committed write is visible to another connection at once. */
    assert_int_equal(put_json(f->st, "Patient", "p1", MR_PUT_NEW,
                              "{\"resourceType\":\"Patient\",\"id\":\"p1\"}",
                              &v, &d),
                     MR_OK);
    db = raw(f->path);
    char *n = raw_text(db, "SELECT count(*) FROM resource");
    assert_string_equal(n, "1");
    free(n);
    sqlite3_close(db);
}

/* ---- put, read, history ----------------------------------------------- */

struct hist {
    int n;
    int64_t versions[16];
    int deleted[16];
    char author[16][32];
    char reason[16][32];
    char json[16][256];
};

static int hist_cb(void *ctx, const struct mr_version *m, const char *json,
                   size_t len)
{
    struct hist *h = ctx;
    if (h->n >= 16)
        return 1;
    h->versions[h->n] = m->version;
    h->deleted[h->n] = m->deleted;
    snprintf(h->author[h->n], 32, "%.31s", m->author);
    snprintf(h->reason[h->n], 32, "%.31s", m->reason);
    snprintf(h->json[h->n], 256, "%.*s", (int)len, json ? json : "");
    h->n++;
    return 0;
}

static int history_of(struct mr_store *st, const char *type, const char *id,
                      struct hist *h)
{
    struct mr_diag d;
    enum mr_err err;
    memset(h, 0, sizeof(*h));
    assert_int_equal(mr_store_begin(st, 0, &d), MR_OK);
    err = mr_store_history(st, type, id, hist_cb, h, &d);
    mr_store_rollback(st);
    return err;
}

static const char *P1 = "{\"resourceType\":\"Patient\",\"gender\":\"male\"}";
static const char *P2 = "{\"resourceType\":\"Patient\",\"gender\":\"female\"}";
static const char *P3 = "{\"resourceType\":\"Patient\",\"gender\":\"other\"}";

static void test_put_new_exists(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    int64_t v = 0;

    assert_int_equal(put_json(f->st, "Patient", "a", MR_PUT_NEW, P1, &v, &d),
                     MR_OK);
    assert_int_equal(v, 1);
    v = 0;
    assert_int_equal(put_json(f->st, "Patient", "a", MR_PUT_NEW, P2, &v, &d),
                     MR_EEXISTS);
    assert_int_equal(v, 0);
    assert_int_equal(nversions(f->st), 1);
    /* Same id, other type: a different resource. */
    assert_int_equal(put_json(f->st, "Practitioner", "a", MR_PUT_NEW,
                              "{\"resourceType\":\"Practitioner\"}", &v, &d),
                     MR_OK);
    assert_int_equal(nresources(f->st), 2);
}

static void test_update_conflict(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    int64_t v = 0;
    struct hist h;

    assert_int_equal(put_json(f->st, "Patient", "a", MR_PUT_NEW, P1, &v, &d),
                     MR_OK);
    assert_int_equal(put_json(f->st, "Patient", "a", 1, P2, &v, &d), MR_OK);
    assert_int_equal(v, 2);
    v = 0;
    assert_int_equal(put_json(f->st, "Patient", "a", 1, P3, &v, &d),
                     MR_ECONFLICT);
    assert_int_equal(v, 0);
    assert_non_null(strstr(d.msg, "expected version 1"));
    assert_int_equal(history_of(f->st, "Patient", "a", &h), MR_OK);
    assert_int_equal(h.n, 2);
    assert_int_equal(nversions(f->st), 2);
    /* Current is still P2. */
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    struct mr_version m;
    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    assert_int_equal(mr_store_read(f->st, "Patient", "a", 0, &m, &b, &d),
                     MR_OK);
    mr_store_rollback(f->st);
    assert_string_equal(b.ptr, P2);
    assert_int_equal(m.version, 2);
    mr_buf_release(&b);
    /* expect > 0 on a missing resource: NOTFOUND. */
    assert_int_equal(put_json(f->st, "Patient", "zz", 1, P1, &v, &d),
                     MR_ENOTFOUND);
    /* ANY: no check. */
    assert_int_equal(put_json(f->st, "Patient", "a", MR_PUT_ANY, P3, &v, &d),
                     MR_OK);
    assert_int_equal(v, 3);
}

static void test_delete_tombstone_history_vread(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    struct mr_version m;
    int64_t v = 0;
    struct hist h;
    const char *js[3] = {P1, P2, P3};
    int i;

    for (i = 0; i < 3; i++)
        assert_int_equal(
            put_json(f->st, "Patient", "a", i ? i : MR_PUT_NEW, js[i], &v, &d),
            MR_OK);
    assert_int_equal(put_json(f->st, "Patient", "a", 3, NULL, &v, &d), MR_OK);
    assert_int_equal(v, 4);

    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    memset(&m, 0, sizeof(m));
    assert_int_equal(mr_store_read(f->st, "Patient", "a", 0, &m, &b, &d),
                     MR_EGONE);
    assert_int_equal(m.version, 4);
    assert_true(m.deleted);
    for (i = 0; i < 3; i++) {
        assert_int_equal(
            mr_store_read(f->st, "Patient", "a", i + 1, &m, &b, &d), MR_OK);
        assert_int_equal(m.version, i + 1);
        assert_string_equal(b.ptr, js[i]);
        assert_string_equal(m.author, "tester");
        assert_string_equal(m.type, "Patient");
        assert_string_equal(m.id, "a");
    }
    assert_int_equal(mr_store_read(f->st, "Patient", "a", 4, &m, &b, &d),
                     MR_EGONE);
    assert_int_equal(mr_store_read(f->st, "Patient", "a", 5, &m, &b, &d),
                     MR_ENOTFOUND);
    assert_int_equal(mr_store_read(f->st, "Patient", "b", 0, &m, &b, &d),
                     MR_ENOTFOUND);
    mr_store_rollback(f->st);

    assert_int_equal(history_of(f->st, "Patient", "a", &h), MR_OK);
    assert_int_equal(h.n, 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(h.versions[i], 4 - i); /* newest first */
        assert_string_equal(h.author[i], "tester");
    }
    assert_true(h.deleted[0]);
    assert_string_equal(h.reason[0], "delete");
    assert_string_equal(h.json[0], "");
    assert_false(h.deleted[1]);
    assert_string_equal(h.reason[1], "edit");
    assert_string_equal(h.json[1], P3);
    assert_string_equal(h.json[3], P1);

    /* Delete again: GONE, nothing written. */
    assert_int_equal(put_json(f->st, "Patient", "a", MR_PUT_ANY, NULL, &v, &d),
                     MR_EGONE);
    assert_int_equal(nversions(f->st), 4);
    assert_int_equal(nresources(f->st), 0);
    /* Delete of a missing one: NOTFOUND. */
    assert_int_equal(
        put_json(f->st, "Patient", "nope", MR_PUT_ANY, NULL, &v, &d),
        MR_ENOTFOUND);
    assert_int_equal(history_of(f->st, "Patient", "nope", &h), MR_ENOTFOUND);
    mr_buf_release(&b);
}

static void test_set_version_and_rollback(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    struct mr_version m;
    int64_t v = 0;
    struct mr_put p = {.type = "Patient",
                       .id = "imp",
                       .expect = MR_PUT_NEW,
                       .set_version = 7,
                       .json = P1,
                       .json_len = strlen(P1),
                       .ts = 1600000000000LL,
                       .author = "importer"};

    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_put(f->st, &p, &v, &d), MR_OK);
    assert_int_equal(v, 7);
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);
    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    assert_int_equal(mr_store_read(f->st, "Patient", "imp", 0, &m, NULL, &d),
                     MR_OK);
    mr_store_rollback(f->st);
    assert_int_equal(m.version, 7);
    assert_int_equal(m.ts, 1600000000000LL);
    /* Next update continues from 7. */
    assert_int_equal(put_json(f->st, "Patient", "imp", 7, P2, &v, &d), MR_OK);
    assert_int_equal(v, 8);

    /* Rollback discards. */
    p.id = "gone";
    p.set_version = 0;
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_put(f->st, &p, &v, &d), MR_OK);
    mr_store_rollback(f->st);
    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    assert_int_equal(mr_store_read(f->st, "Patient", "gone", 0, &m, NULL, &d),
                     MR_ENOTFOUND);
    mr_store_rollback(f->st);
    assert_int_equal(nversions(f->st), 2);
    /* And the id is free again. */
    assert_int_equal(put_json(f->st, "Patient", "gone", MR_PUT_NEW, P1, &v, &d),
                     MR_OK);
    assert_int_equal(v, 1);
}

static void test_append_only_triggers(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    int64_t v;
    char *err = NULL;
    struct mr_audit_entry e = {
        .ts = 1, .actor = "u", .role = "r", .action = "read", .outcome = "ok"};

    assert_int_equal(put_json(f->st, "Patient", "a", MR_PUT_NEW, P1, &v, &d),
                     MR_OK);
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_audit(f->st, &e, &d), MR_OK);
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);

    sqlite3 *db = raw(f->path);
    static const char *const bad[] = {
        "UPDATE version SET json = '{}'",
        "UPDATE version SET author = 'mallory'",
        "DELETE FROM version",
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "DELETE FROM audit WHERE seq = 1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = sqlite3_exec(db, bad[i], 0, 0, &err);
        if (rc == SQLITE_OK)
            fail_msg("%s was allowed", bad[i]);
        assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
        assert_non_null(err);
        assert_true(strstr(err, "never") || strstr(err, "append-only"));
        sqlite3_free(err);
        err = NULL;
    }
    char *n = raw_text(db, "SELECT count(*) FROM version");
    assert_string_equal(n, "1");
    free(n);
    n = raw_text(db, "SELECT json FROM version");
    assert_string_equal(n, P1);
    free(n);
    n = raw_text(db, "SELECT count(*) FROM audit");
    assert_string_equal(n, "1");
    free(n);
    sqlite3_close(db);
}

static void test_next_seq(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    uint64_t s = 0;

    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_next_seq(f->st, "mrn", 1000000, &s, &d), MR_OK);
    assert_int_equal(s, 1000000);
    assert_int_equal(mr_store_next_seq(f->st, "mrn", 1000000, &s, &d), MR_OK);
    assert_int_equal(s, 1000001);
    assert_int_equal(mr_store_next_seq(f->st, "other", 5, &s, &d), MR_OK);
    assert_int_equal(s, 5);
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);
    /* Rolled back values are given again. */
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_next_seq(f->st, "mrn", 1000000, &s, &d), MR_OK);
    assert_int_equal(s, 1000002);
    mr_store_rollback(f->st);
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_next_seq(f->st, "mrn", 1000000, &s, &d), MR_OK);
    assert_int_equal(s, 1000002);
    /* start is only the first value. */
    assert_int_equal(mr_store_next_seq(f->st, "mrn", 1, &s, &d), MR_OK);
    assert_int_equal(s, 1000003);
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);
}

struct audit_rows {
    int n;
    int64_t seq[16];
    char action[16][16];
    char patient[16][32];
    char outcome[16][16];
};

static int audit_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct audit_rows *a = ctx;
    if (a->n >= 16)
        return 1;
    a->seq[a->n] = seq;
    snprintf(a->action[a->n], 16, "%s", e->action);
    snprintf(a->patient[a->n], 32, "%s", e->patient ? e->patient : "-");
    snprintf(a->outcome[a->n], 16, "%s", e->outcome);
    a->n++;
    return 0;
}

static void test_audit(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    struct audit_rows rows;
    struct mr_audit_entry e = {.ts = 1700000000000LL,
                               .actor = "alice",
                               .role = "clerk",
                               .source = "cli",
                               .action = "read",
                               .outcome = "ok",
                               .type = "Patient",
                               .id = "p1",
                               .patient = "Patient/p1"};

    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_audit(f->st, &e, &d), MR_OK);
    e.patient = "Patient/p2";
    e.action = "update";
    assert_int_equal(mr_store_audit(f->st, &e, &d), MR_OK);
    e.patient = "Patient/p1";
    e.action = "history";
    e.outcome = "NOTFOUND";
    assert_int_equal(mr_store_audit(f->st, &e, &d), MR_OK);
    e.patient = NULL;
    e.action = "export";
    e.actor = NULL; /* stored as "unknown" */
    e.outcome = NULL;
    assert_int_equal(mr_store_audit(f->st, &e, &d), MR_OK);
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);
    /* Rolled back entries vanish. */
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_audit(f->st, &e, &d), MR_OK);
    mr_store_rollback(f->st);

    memset(&rows, 0, sizeof(rows));
    assert_int_equal(
        mr_store_audit_scan(f->st, "Patient/p1", audit_cb, &rows, &d), MR_OK);
    assert_int_equal(rows.n, 2);
    assert_string_equal(rows.action[0], "read");
    assert_string_equal(rows.action[1], "history");
    assert_string_equal(rows.outcome[1], "NOTFOUND");
    assert_true(rows.seq[0] < rows.seq[1]);

    memset(&rows, 0, sizeof(rows));
    assert_int_equal(mr_store_audit_scan(f->st, NULL, audit_cb, &rows, &d),
                     MR_OK);
    assert_int_equal(rows.n, 4);
    assert_string_equal(rows.action[3], "export");
    assert_string_equal(rows.patient[3], "-");
    assert_string_equal(rows.outcome[3], "ok");
    memset(&rows, 0, sizeof(rows));
    assert_int_equal(
        mr_store_audit_scan(f->st, "Patient/none", audit_cb, &rows, &d), MR_OK);
    assert_int_equal(rows.n, 0);
}

/* ---- search ----------------------------------------------------------- */

static const struct {
    const char *id, *json;
} people[] = {
    {"p1", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Muñoz\","
           "\"given\":[\"José\"]}],\"gender\":\"male\","
           "\"birthDate\":\"1984-03-09\",\"identifier\":[{\"system\":"
           "\"urn:test:mrn\",\"value\":\"A-100\"}]}"},
    {"p2", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Munro\","
           "\"given\":[\"Ann\"]}],\"gender\":\"female\","
           "\"birthDate\":\"1990-12-31\",\"identifier\":[{\"system\":"
           "\"urn:test:mrn\",\"value\":\"A-200\"}]}"},
    {"p3", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Smith\","
           "\"given\":[\"Zoë\"]}],\"gender\":\"female\","
           "\"birthDate\":\"1984\",\"identifier\":[{\"system\":"
           "\"urn:other\",\"value\":\"A-100\"}]}"},
    {"p4", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Ōta\"}],"
           "\"gender\":\"unknown\"}"},
    {"p5", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"muller\","
           "\"given\":[\"Eve\"]}],\"birthDate\":\"2001-06-15\"}"},
};

static void load_people(struct fx *f)
{
    struct mr_diag d;
    int64_t v;
    for (size_t i = 0; i < sizeof(people) / sizeof(people[0]); i++)
        if (put_json(f->st, "Patient", people[i].id, MR_PUT_NEW, people[i].json,
                     &v, &d))
            fail_msg("put %s: %s", people[i].id, mr_diag_msg(&d));
}

struct ids {
    int n;
    char s[64];
};

static int ids_cb(void *ctx, const struct mr_version *m, const char *json,
                  size_t len)
{
    struct ids *x = ctx;
    (void)json;
    (void)len;
    size_t l = strlen(x->s);
    snprintf(x->s + l, sizeof(x->s) - l, "%s%s", x->n ? "," : "", m->id);
    x->n++;
    return 0;
}

/* Run a search; return the ids found (comma separated) and the total. */
static const char *search(struct mr_store *st, const char *qs, int64_t *total)
{
    static struct ids x;
    struct mr_query q;
    struct mr_diag d;
    int64_t t = -1;
    enum mr_err err;

    memset(&x, 0, sizeof(x));
    err = mr_query_parse(&q, "Patient", qs, strlen(qs), &d);
    if (err)
        fail_msg("parse %s: %s", qs, mr_diag_msg(&d));
    assert_int_equal(q.nunknown, 0);
    assert_int_equal(mr_store_begin(st, 0, &d), MR_OK);
    err = mr_store_search(st, &q, ids_cb, &x, &t, &d);
    mr_store_rollback(st);
    mr_query_release(&q);
    if (err)
        fail_msg("search %s: %s", qs, mr_diag_msg(&d));
    if (total)
        *total = t;
    return x.s;
}

#define SEARCH_IS(qs, want)                                                    \
    do {                                                                       \
        const char *got_ = search(f->st, qs, NULL);                            \
        if (strcmp(got_, want))                                                \
            fail_msg("search %s: got [%s] want [%s]", qs, got_, want);         \
    } while (0)

static void test_search(void **state)
{
    struct fx *f = *state;
    int64_t total = 0;
    struct mr_diag d;
    int64_t v;

    load_people(f);
    SEARCH_IS("name=mu", "p1,p2,p5");
    SEARCH_IS("name=MUN", "p1,p2");
    SEARCH_IS("family=munoz", "p1");       /* accent-insensitive */
    SEARCH_IS("family=Mu%C3%B1o", "p1");   /* accent in the query */
    SEARCH_IS("family=Mu%C3%B1", "p1,p2"); /* ñ folds to n */
    SEARCH_IS("name=jose", "p1");          /* given */
    SEARCH_IS("name=zoe", "p3");
    SEARCH_IS("family=ota", "p4");
    SEARCH_IS("family=xyz", "");
    SEARCH_IS("name:exact=Munro", "p2");
    SEARCH_IS("name:exact=munro", "");

    SEARCH_IS("birthdate=1984-03-09", "p1");
    SEARCH_IS("birthdate=1984", "p1,p3");
    SEARCH_IS("birthdate=lt1985", "p1,p3");
    SEARCH_IS("birthdate=lt1984-03-09", "p3");
    SEARCH_IS("birthdate=ge1990-12-31", "p2,p5");
    SEARCH_IS("birthdate=ge2002", "");

    SEARCH_IS("gender=female", "p2,p3");
    SEARCH_IS("gender=male", "p1");
    SEARCH_IS("gender=male,unknown", "p1,p4");

    SEARCH_IS("identifier=urn:test:mrn|A-100", "p1");
    SEARCH_IS("identifier=A-100", "p1,p3");
    SEARCH_IS("identifier=urn:test:mrn|", "p1,p2");
    SEARCH_IS("identifier=urn:other|A-200", "");

    SEARCH_IS("birthdate:missing=true", "p4");
    SEARCH_IS("gender:missing=true", "p5");
    SEARCH_IS("gender:missing=false", "p1,p2,p3,p4");

    SEARCH_IS("_id=p3", "p3");
    SEARCH_IS("_id=p3,p1", "p1,p3");
    SEARCH_IS("_id=p3&gender=male", "");
    SEARCH_IS("gender=female&birthdate=1984", "p3");

    assert_string_equal(search(f->st, "_count=2", &total), "p1,p2");
    assert_int_equal(total, 5);
    assert_string_equal(search(f->st, "_count=2&_offset=2", &total), "p3,p4");
    assert_int_equal(total, 5);
    assert_string_equal(search(f->st, "_count=2&_offset=4", &total), "p5");
    assert_string_equal(search(f->st, "_count=2&_offset=10", &total), "");
    assert_int_equal(total, 5);
    assert_string_equal(search(f->st, "name=mu&_count=1", &total), "p1");
    assert_int_equal(total, 3);

    /* The index follows the current version; deleted ones vanish. */
    assert_int_equal(put_json(f->st, "Patient", "p2", 1,
                              "{\"resourceType\":\"Patient\",\"name\":[{"
                              "\"family\":\"Baker\"}],\"gender\":\"male\"}",
                              &v, &d),
                     MR_OK);
    SEARCH_IS("name=mun", "p1");
    SEARCH_IS("family=baker", "p2");
    SEARCH_IS("gender=male", "p1,p2");
    assert_int_equal(put_json(f->st, "Patient", "p1", 1, NULL, &v, &d), MR_OK);
    SEARCH_IS("gender=male", "p2");
    assert_string_equal(search(f->st, "", &total), "p2,p3,p4,p5");
    assert_int_equal(total, 4);
}

/* A group commit: job 1 writes a resource (its index entries are staged),
 * job 2 searches (which moves staged entries into the index) and is then
 * undone (its savepoint rolled back, which also undoes that move). The
 * resource must still be found after the commit: a feed once lost a
 * patient's index this way and could not match it again. */
static void test_savepoint_rollback_keeps_staged_index(void **state)
{
    struct fx *f = *state;
    struct mr_query q;
    struct mr_ix ix;
    struct mr_diag d;
    struct ids x;
    int64_t ver = 0, t = -1;
    json_t *j = json_loads(people[0].json, 0, NULL);
    struct mr_put p = {.type = "Patient",
                       .id = "p1",
                       .expect = MR_PUT_NEW,
                       .json = people[0].json,
                       .json_len = strlen(people[0].json),
                       .ts = 1700000000000LL,
                       .author = "tester",
                       .ix = &ix};

    mr_ix_init(&ix);
    assert_non_null(j);
    assert_int_equal(mr_fhir_extract(j, "Patient", &ix), MR_OK);
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_savepoint(f->st, MR_SP_OPEN, &d), MR_OK);
    assert_int_equal(mr_store_put(f->st, &p, &ver, &d), MR_OK);
    assert_int_equal(mr_store_savepoint(f->st, MR_SP_RELEASE, &d), MR_OK);

    assert_int_equal(mr_store_savepoint(f->st, MR_SP_OPEN, &d), MR_OK);
    assert_int_equal(mr_query_parse(&q, "Patient", "identifier=urn:x|nobody",
                                    strlen("identifier=urn:x|nobody"), &d),
                     MR_OK);
    memset(&x, 0, sizeof(x));
    assert_int_equal(mr_store_search(f->st, &q, ids_cb, &x, &t, &d), MR_OK);
    mr_query_release(&q);
    assert_int_equal(mr_store_savepoint(f->st, MR_SP_ROLLBACK, &d), MR_OK);
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);
    json_decref(j);
    mr_ix_release(&ix);

    SEARCH_IS("identifier=urn:test:mrn|A-100", "p1");
    SEARCH_IS("name=jose", "p1");
}

/* A search inside a transaction moves only the staged index entries of
 * the kinds it reads; the others stay staged and are still written (by a
 * later search of their kind, or at commit). */
static int64_t search_in_tx(struct mr_store *st, const char *qs, struct ids *x)
{
    struct mr_query q;
    struct mr_diag d;
    int64_t t = -1;

    memset(x, 0, sizeof(*x));
    assert_int_equal(mr_query_parse(&q, "Patient", qs, strlen(qs), &d), MR_OK);
    assert_int_equal(mr_store_search(st, &q, ids_cb, x, &t, &d), MR_OK);
    mr_query_release(&q);
    return t;
}

static void test_search_flushes_its_kinds(void **state)
{
    struct fx *f = *state;
    struct mr_ix ix;
    struct mr_diag d;
    struct ids x;
    int64_t ver = 0;
    json_t *j = json_loads(people[0].json, 0, NULL);
    struct mr_put p = {.type = "Patient",
                       .id = "p1",
                       .expect = MR_PUT_NEW,
                       .json = people[0].json,
                       .json_len = strlen(people[0].json),
                       .ts = 1700000000000LL,
                       .author = "tester",
                       .ix = &ix};

    mr_ix_init(&ix);
    assert_int_equal(mr_fhir_extract(j, "Patient", &ix), MR_OK);
    assert_int_equal(mr_store_begin(f->st, 1, &d), MR_OK);
    assert_int_equal(mr_store_put(f->st, &p, &ver, &d), MR_OK);
    assert_int_equal(search_in_tx(f->st, "identifier=urn:test:mrn|A-100", &x),
                     1); /* tokens */
    assert_string_equal(x.s, "p1");
    assert_int_equal(search_in_tx(f->st, "name=jose", &x), 1); /* strings */
    assert_string_equal(x.s, "p1");
    assert_int_equal(mr_store_commit(f->st, &d), MR_OK);
    json_decref(j);
    mr_ix_release(&ix);
    SEARCH_IS("birthdate=1984-03-09", "p1"); /* dates: written at commit */
    SEARCH_IS("gender=male", "p1");
    SEARCH_IS("family=munoz", "p1");
}

/* ---- integrity check -------------------------------------------------- */

static void test_check(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    struct mr_buf report = MR_BUF_INIT(1 << 16);
    int64_t v;

    load_people(f);
    assert_int_equal(put_json(f->st, "Patient", "p1", 1, P1, &v, &d), MR_OK);
    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    assert_int_equal(mr_store_check(f->st, &report, &d), MR_OK);
    mr_store_rollback(f->st);
    assert_string_equal(report.ptr, "");

    sqlite3 *db = raw(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA foreign_keys=OFF;"
                                  "UPDATE resource SET version=99 "
                                  "WHERE id='p2'",
                                  0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    mr_diag_clear(&d);
    assert_int_equal(mr_store_check(f->st, &report, &d), MR_ECORRUPT);
    mr_store_rollback(f->st);
    assert_non_null(
        strstr(report.ptr, "1 resources without their current version"));
    assert_int_equal(d.code, MR_ECORRUPT);

    /* A current version pointing below existing versions. */
    mr_buf_reset(&report);
    db = raw(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE resource SET version=2 "
                                  "WHERE id='p2';"
                                  "UPDATE resource SET version=1 "
                                  "WHERE id='p1';",
                                  0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mr_store_begin(f->st, 0, &d), MR_OK);
    assert_int_equal(mr_store_check(f->st, &report, &d), MR_ECORRUPT);
    mr_store_rollback(f->st);
    assert_non_null(strstr(report.ptr, "versions newer than the current"));
    mr_buf_release(&report);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_missing_and_create),
        T(test_open_not_a_db),
        T(test_open_newer),
        T(test_pragmas),
        T(test_put_new_exists),
        T(test_update_conflict),
        T(test_delete_tombstone_history_vread),
        T(test_set_version_and_rollback),
        T(test_append_only_triggers),
        T(test_next_seq),
        T(test_audit),
        T(test_search),
        T(test_savepoint_rollback_keeps_staged_index),
        T(test_search_flushes_its_kinds),
        T(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
