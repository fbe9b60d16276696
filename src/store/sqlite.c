/*
 * The SQLite store: one database file, WAL, synchronous=FULL, foreign
 * keys, prepared statements cached per connection, numbered migrations.
 * One handle is one connection and is used by one thread at a time.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "core/time.h"
#include "store/schema.h"
#include "store/store_impl.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "MREC": marks a SQLite file as a medrec database. */
#define MR_APPLICATION_ID 0x4d524543

_Static_assert(MR_STORE_SCHEMA_VERSION == MR__SQLITE_NMIGRATIONS,
               "one migration per schema version");

enum stmt_id {
    S_FIND,
    S_INS_RESOURCE,
    S_UPD_RESOURCE,
    S_INS_VERSION,
    S_READ_CUR,
    S_READ_VER,
    S_HISTORY,
    S_BEGIN_W,
    S_BEGIN_R,
    S_COMMIT,
    S_SP_OPEN,
    S_SP_RELEASE,
    S_SP_ROLLBACK,
    S_SEQ,
    S_SEQ_USED,
    S_AUDIT,
    S_CHAIN_HEAD,
    S_CKPT_INS,
    /* Per index kind, in enum mr_ix_kind order; SQL from ix_kinds[]. */
    S_DEL_IX,
    S_INS_IX = S_DEL_IX + MR_IX_URI + 1,
    S_FLUSH_IX = S_INS_IX + MR_IX_URI + 1,
    S_CLEAR_IX = S_FLUSH_IX + MR_IX_URI + 1,
    S_COUNT = S_CLEAR_IX + MR_IX_URI + 1
};

static const char *const stmt_sql[S_COUNT] = {
    [S_FIND] = "SELECT rid, version, deleted FROM resource"
               " WHERE type = ?1 AND id = ?2",
    [S_INS_RESOURCE] = "INSERT INTO resource(type, id, version, updated,"
                       " deleted) VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_UPD_RESOURCE] = "UPDATE resource SET version = ?2, updated = ?3,"
                       " deleted = ?4 WHERE rid = ?1",
    [S_INS_VERSION] = "INSERT INTO version(rid, version, ts, author, reason,"
                      " deleted, json) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_READ_CUR] = "SELECT v.version, v.ts, v.deleted, v.author, v.reason,"
                   " v.json FROM resource r JOIN version v ON v.rid = r.rid"
                   " AND v.version = r.version"
                   " WHERE r.type = ?1 AND r.id = ?2",
    [S_READ_VER] = "SELECT v.version, v.ts, v.deleted, v.author, v.reason,"
                   " v.json FROM resource r JOIN version v ON v.rid = r.rid"
                   " WHERE r.type = ?1 AND r.id = ?2 AND v.version = ?3",
    [S_HISTORY] = "SELECT v.version, v.ts, v.deleted, v.author, v.reason,"
                  " v.json FROM resource r JOIN version v ON v.rid = r.rid"
                  " WHERE r.type = ?1 AND r.id = ?2 ORDER BY v.version DESC",
    /* Transaction control is prepared once too: a server runs it for
     * every request. */
    [S_BEGIN_W] = "BEGIN IMMEDIATE",
    [S_BEGIN_R] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_SP_OPEN] = "SAVEPOINT job",
    [S_SP_RELEASE] = "RELEASE job",
    [S_SP_ROLLBACK] = "ROLLBACK TO job",
    [S_SEQ] = "INSERT INTO seq(name, value) VALUES(?1, ?2)"
              " ON CONFLICT(name) DO UPDATE SET value = value + 1"
              " RETURNING value",
    [S_SEQ_USED] = "INSERT INTO seq(name, value) VALUES(?1, ?2)"
                   " ON CONFLICT(name) DO UPDATE"
                   " SET value = max(value, excluded.value)",
    [S_AUDIT] = "INSERT INTO audit(seq, ts, actor, role, source, action,"
                " outcome, type, id, patient, query, detail, prev, hash)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
                " ?13, ?14)",
    /* The chain's head and the last checkpoint: four index seeks. */
    [S_CHAIN_HEAD] =
        "SELECT (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1),"
        " (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1),"
        " (SELECT seq FROM audit_checkpoint ORDER BY seq DESC LIMIT 1),"
        " (SELECT ts FROM audit_checkpoint ORDER BY seq DESC LIMIT 1)",
    [S_CKPT_INS] = "INSERT INTO audit_checkpoint(seq, hash, ts, key_id, sig)"
                   " VALUES(?1, ?2, ?3, ?4, ?5)",
};

/* A checkpoint is due at a commit once this many entries or this much
 * time (ms) have passed since the last one. */
#define CKPT_ENTRIES 1000
#define CKPT_MS 60000

struct sq_store {
    struct mr_store base;
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    char *path;
    int schema;
    unsigned staged; /* bit per enum mr_ix_kind with staged entries */
    /* Search statements by SQL text: a query shape is prepared once. */
    struct {
        char *sql;
        sqlite3_stmt *st;
        uint64_t used;
    } cache[64];
    uint64_t clock;
    int readonly;
    /* The audit chain. head_* (the last entry) and ckpt_* (the last
     * checkpoint) are read once per write transaction, at its first
     * audit entry, since another connection may have written in between;
     * they are forgotten at commit and at any rollback. */
    int chain_ok;    /* head_* and ckpt_* are read in this transaction */
    int txn_audited; /* this transaction wrote audit entries */
    int unckpt;      /* this handle committed entries no checkpoint covers */
    int64_t head_seq, ckpt_seq, ckpt_ts;
    unsigned char head_hash[MR_AUDIT_HASH_BYTES];
    int64_t backfilled; /* entries chained by migration 3 at this open */
    int have_key;       /* key holds the signing key */
    int key_missing;    /* the database has a key, the file is gone */
    struct mr_audit_key key;
    char *key_path;             /* "<path>.audit-key" */
    struct sq_walckpt *walckpt; /* background WAL checkpoints, or NULL */
};

/* Background WAL checkpoints for a connection that commits often (the
 * server's committer): instead of checkpointing inside its own commit
 * every 1000 WAL pages (SQLite's default), it signals a thread with its
 * own connection, which checkpoints (PASSIVE) while it goes on. */
struct sq_walckpt {
    sqlite3 *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, stop;
};

#define SQ_WALCKPT_PAGES 1000

static void *walckpt_main(void *arg)
{
    struct sq_walckpt *c = arg;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->pending && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        c->pending = 0;
        pthread_mutex_unlock(&c->mu);
        sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int walckpt_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct sq_walckpt *c = arg;

    (void)db;
    (void)name;
    if (pages >= SQ_WALCKPT_PAGES) {
        pthread_mutex_lock(&c->mu);
        c->pending = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

static void walckpt_stop(struct sq_store *s)
{
    struct sq_walckpt *c = s->walckpt;

    if (!c)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    mr_free(c);
    s->walckpt = NULL;
    /* What is left is checkpointed the usual way again. */
    sqlite3_wal_autocheckpoint(s->db, SQ_WALCKPT_PAGES);
}

static enum mr_err sq_background_checkpoints(struct mr_store *base,
                                             struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    struct sq_walckpt *c;

    if (s->walckpt || s->readonly)
        return MR_OK;
    c = mr_calloc(1, sizeof(*c));
    if (!c)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    if (sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READWRITE, NULL) !=
        SQLITE_OK) {
        sqlite3_close(c->db);
        mr_free(c);
        return mr_diag_set(d, MR_EIO, "%s: cannot open for checkpoints",
                           s->path);
    }
    sqlite3_busy_timeout(c->db, 5000);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, walckpt_main, c)) {
        sqlite3_close(c->db);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        mr_free(c);
        return mr_diag_set(d, MR_EINTERNAL, "cannot start checkpoints");
    }
    s->walckpt = c;
    /* Replaces the automatic checkpoint (itself a WAL hook). */
    sqlite3_wal_hook(s->db, walckpt_hook, c);
    return MR_OK;
}

/*
 * The index kinds: the columns after (rid, key) and the order a flush
 * inserts in. Stored entries live in ix_<name>; a transaction's entries
 * are staged in the connection-private temp.st_<name> and written to the
 * index tables sorted by value at commit (or before a search in the same
 * transaction), so the B-trees are visited in order instead of at random:
 * several times faster for batches.
 */
static const struct ix_kind {
    const char *name, *cols, *order;
    int ncols;
} ix_kinds[] = {
    [MR_IX_STRING] = {"string", "norm, exact", "norm", 2},
    [MR_IX_TOKEN] = {"token", "system, code", "code, system", 2},
    [MR_IX_DATE] = {"date", "lo, hi", "lo", 2},
    [MR_IX_REFERENCE] = {"ref", "ref", "ref", 1},
    [MR_IX_NUMBER] = {"number", "value", "value", 1},
    [MR_IX_QUANTITY] = {"quantity", "value, system, code", "value", 3},
    [MR_IX_URI] = {"uri", "uri", "uri", 1},
};

/* The SQL of a per-kind statement (S_DEL_IX ... S_CLEAR_IX + kind). */
static void ix_stmt_sql(int id, char *buf, size_t cap)
{
    int op = (id - S_DEL_IX) / (MR_IX_URI + 1);
    const struct ix_kind *k = &ix_kinds[(id - S_DEL_IX) % (MR_IX_URI + 1)];
    static const char *const vals[] = {"", "?3", "?3, ?4", "?3, ?4, ?5"};

    switch (op) {
    case 0:
        snprintf(buf, cap, "DELETE FROM ix_%s WHERE rid = ?1", k->name);
        break;
    case 1:
        snprintf(buf, cap,
                 "INSERT INTO temp.st_%s(rid, key, %s) VALUES(?1, ?2, %s)",
                 k->name, k->cols, vals[k->ncols]);
        break;
    case 2:
        snprintf(buf, cap,
                 "INSERT OR IGNORE INTO ix_%s(rid, key, %s) SELECT rid, key,"
                 " %s FROM temp.st_%s ORDER BY key, %s",
                 k->name, k->cols, k->cols, k->name, k->order);
        break;
    default:
        snprintf(buf, cap, "DELETE FROM temp.st_%s", k->name);
        break;
    }
}

static const char *ix_table[] = {
    [MR_IX_STRING] = "ix_string", [MR_IX_TOKEN] = "ix_token",
    [MR_IX_DATE] = "ix_date",     [MR_IX_REFERENCE] = "ix_ref",
    [MR_IX_NUMBER] = "ix_number", [MR_IX_QUANTITY] = "ix_quantity",
    [MR_IX_URI] = "ix_uri",
};

static enum mr_err map_rc(struct sq_store *s, int rc, struct mr_diag *d,
                          const char *what)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return mr_diag_set(
            d, MR_EBUSY, "%s: database is locked by another process", s->path);
    case SQLITE_CORRUPT:
        return mr_diag_set(d, MR_ECORRUPT, "%s: database is corrupt (%s)",
                           s->path, msg);
    case SQLITE_NOTADB:
        return mr_diag_set(d, MR_ENOTDB, "%s: not a medrec database", s->path);
    case SQLITE_NOMEM:
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return mr_diag_set(d, MR_EIO, "%s: %s", s->path, msg);
    default:
        return mr_diag_set(d, MR_EINTERNAL, "%s: %s (%s)", s->path, what, msg);
    }
}

static enum mr_err exec(struct sq_store *s, const char *sql, struct mr_diag *d)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "statement failed");
    return MR_OK;
}

static enum mr_err prep(struct sq_store *s, enum stmt_id id, sqlite3_stmt **out,
                        struct mr_diag *d)
{
    int rc;

    if (!s->stmt[id]) {
        char buf[256];
        const char *sql = stmt_sql[id];
        if (!sql) {
            ix_stmt_sql(id, buf, sizeof(buf));
            sql = buf;
        }
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &s->stmt[id], NULL);
        if (rc != SQLITE_OK)
            return map_rc(s, rc, d, "prepare");
    }
    *out = s->stmt[id];
    return MR_OK;
}

/* A statement for dynamic SQL (searches), from the per-connection cache;
 * give it back with uncache(). Least recently used entries make room. */
static int prep_cached(struct sq_store *s, const char *sql, sqlite3_stmt **out)
{
    size_t i, victim = 0;
    int rc;
    sqlite3_stmt *st;
    char *copy;

    for (i = 0; i < 64; i++) {
        if (s->cache[i].sql && !strcmp(s->cache[i].sql, sql)) {
            s->cache[i].used = ++s->clock;
            *out = s->cache[i].st;
            return SQLITE_OK;
        }
        if (s->cache[i].used < s->cache[victim].used)
            victim = i;
    }
    rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                            NULL);
    if (rc != SQLITE_OK)
        return rc;
    copy = mr_strdup(sql);
    if (!copy) {
        /* Not cached: still usable once; uncache() finalizes it. */
        *out = st;
        return SQLITE_OK;
    }
    sqlite3_finalize(s->cache[victim].st);
    mr_free(s->cache[victim].sql);
    s->cache[victim].sql = copy;
    s->cache[victim].st = st;
    s->cache[victim].used = ++s->clock;
    *out = st;
    return SQLITE_OK;
}

static void uncache(struct sq_store *s, sqlite3_stmt *st)
{
    size_t i;

    if (!st)
        return;
    for (i = 0; i < 64; i++)
        if (s->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

static void done_stmt(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int query_int(struct sq_store *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- the audit chain (docs/audit.md) ---------------------------------- */

static enum mr_err run_stmt(struct sq_store *s, enum stmt_id id,
                            struct mr_diag *d);
static enum mr_err step_done(struct sq_store *s, sqlite3_stmt *st,
                             struct mr_diag *d, const char *what);

/* Read the chain's head and the last checkpoint in this transaction. */
static enum mr_err chain_load(struct sq_store *s, struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    enum mr_err err = prep(s, S_CHAIN_HEAD, &st, d);
    const void *h;
    int rc, n;

    if (err)
        return err;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        done_stmt(st);
        return map_rc(s, rc, d, "reading the audit chain");
    }
    s->head_seq = sqlite3_column_int64(st, 0);
    memset(s->head_hash, 0, sizeof(s->head_hash));
    h = sqlite3_column_blob(st, 1);
    n = sqlite3_column_bytes(st, 1);
    /* A damaged head is chained onto as it is: verify reports it. */
    if (h)
        memcpy(s->head_hash, h,
               (size_t)n < sizeof(s->head_hash) ? (size_t)n
                                                : sizeof(s->head_hash));
    s->ckpt_seq = sqlite3_column_int64(st, 2);
    s->ckpt_ts = sqlite3_column_int64(st, 3);
    done_stmt(st);
    s->chain_ok = 1;
    return MR_OK;
}

/* Sign the head of the chain and record the checkpoint. */
static enum mr_err checkpoint_write(struct sq_store *s, struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    unsigned char sig[MR_AUDIT_SIG_BYTES];
    int64_t ts = mr_time_now_ms();
    enum mr_err err = prep(s, S_CKPT_INS, &st, d);

    if (err)
        return err;
    mr_auditchain_sign(&s->key, s->head_seq, ts, s->head_hash, sig);
    sqlite3_bind_int64(st, 1, s->head_seq);
    sqlite3_bind_blob(st, 2, s->head_hash, MR_AUDIT_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ts);
    sqlite3_bind_text(st, 4, s->key.id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, sig, MR_AUDIT_SIG_BYTES, SQLITE_STATIC);
    err = step_done(s, st, d, "audit checkpoint");
    if (!err) {
        s->ckpt_seq = s->head_seq;
        s->ckpt_ts = ts;
    }
    return err;
}

/* In a write transaction: add a checkpoint if one is due (force: if any
 * entry is uncovered). Without the key nothing is signed. */
static enum mr_err checkpoint_due(struct sq_store *s, int force,
                                  struct mr_diag *d)
{
    enum mr_err err;

    if (!s->chain_ok && (err = chain_load(s, d)))
        return err;
    if (!s->have_key || s->head_seq <= s->ckpt_seq)
        return MR_OK;
    if (!force && s->head_seq - s->ckpt_seq < CKPT_ENTRIES &&
        mr_time_now_ms() - s->ckpt_ts < CKPT_MS)
        return MR_OK;
    return checkpoint_write(s, d);
}

/* A checkpoint in a transaction of its own (clean close, after the
 * migration chained old entries). Best effort: a busy database is left
 * to whoever writes next. */
static void checkpoint_now(struct sq_store *s)
{
    struct mr_diag d;

    if (!s->db || !s->have_key || s->readonly || !sqlite3_get_autocommit(s->db))
        return;
    if (run_stmt(s, S_BEGIN_W, &d))
        return;
    s->chain_ok = 0;
    if (checkpoint_due(s, 1, &d) || run_stmt(s, S_COMMIT, &d))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    else
        s->unckpt = 0;
    s->chain_ok = 0;
}

static void text_col(sqlite3_stmt *st, int col, struct mr_audit_text *t)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        t->p = NULL;
        t->n = 0;
        return;
    }
    t->p = (const char *)sqlite3_column_text(st, col);
    t->n = (size_t)sqlite3_column_bytes(st, col);
    if (!t->p) {
        t->p = "";
        t->n = 0;
    }
}

/* Columns col.. of "seq, ts, actor, role, source, action, outcome, type,
 * id, patient, query, detail" as a chain row. */
static void row_cols(sqlite3_stmt *st, int col, struct mr_audit_row *row)
{
    int i;

    row->seq = sqlite3_column_int64(st, col);
    row->ts = sqlite3_column_int64(st, col + 1);
    for (i = 0; i < MR_AUDIT_NFIELDS; i++)
        text_col(st, col + 2 + i, &row->f[i]);
}

#define AUDIT_COLS                                                             \
    "seq, ts, actor, role, source, action, outcome, type, id, patient,"        \
    " query, detail"

/* Migration 3: chain the entries written before it, oldest first. Read a
 * batch, then update it, so no statement reads rows being updated. */
static enum mr_err chain_backfill(struct sq_store *s, struct mr_diag *d)
{
    enum { BATCH = 256 };
    struct done {
        int64_t seq;
        unsigned char prev[MR_AUDIT_HASH_BYTES], hash[MR_AUDIT_HASH_BYTES];
    } * b;
    sqlite3_stmt *sel = NULL, *upd = NULL;
    unsigned char prev[MR_AUDIT_HASH_BYTES] = {0};
    struct mr_audit_row row;
    int64_t after = 0;
    enum mr_err err = MR_OK;
    int rc, n, i;

    b = mr_malloc(BATCH * sizeof(*b));
    if (!b)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT " AUDIT_COLS " FROM audit WHERE seq > ?1"
                            " ORDER BY seq LIMIT 256",
                            -1, &sel, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            s->db, "UPDATE audit SET prev = ?2, hash = ?3 WHERE seq = ?1", -1,
            &upd, NULL);
    while (rc == SQLITE_OK) {
        sqlite3_bind_int64(sel, 1, after);
        n = 0;
        while (n < BATCH && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
            row_cols(sel, 0, &row);
            b[n].seq = row.seq;
            memcpy(b[n].prev, prev, sizeof(prev));
            mr_auditchain_hash(prev, &row, b[n].hash);
            memcpy(prev, b[n].hash, sizeof(prev));
            n++;
        }
        sqlite3_reset(sel);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            break;
        rc = SQLITE_OK;
        if (n == 0)
            break;
        for (i = 0; i < n && rc == SQLITE_OK; i++) {
            sqlite3_bind_int64(upd, 1, b[i].seq);
            sqlite3_bind_blob(upd, 2, b[i].prev, MR_AUDIT_HASH_BYTES,
                              SQLITE_STATIC);
            sqlite3_bind_blob(upd, 3, b[i].hash, MR_AUDIT_HASH_BYTES,
                              SQLITE_STATIC);
            rc = sqlite3_step(upd);
            sqlite3_reset(upd);
            if (rc == SQLITE_DONE)
                rc = SQLITE_OK;
        }
        after = b[n - 1].seq;
        s->backfilled += n;
    }
    if (rc != SQLITE_OK)
        err = map_rc(s, rc, d, "chaining the audit trail");
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    mr_free(b);
    return err;
}

/* Register the loaded key's public half (once; cheap to check). */
static enum mr_err key_register(struct sq_store *s, struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    int rc, known;

    rc = sqlite3_prepare_v2(s->db, "SELECT 1 FROM audit_key WHERE key_id = ?1",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "audit key");
    sqlite3_bind_text(st, 1, s->key.id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    known = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_rc(s, rc, d, "audit key");
    if (known)
        return MR_OK;
    rc = sqlite3_prepare_v2(s->db,
                            "INSERT OR IGNORE INTO audit_key(key_id,"
                            " public_key, created) VALUES(?1, ?2, ?3)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "audit key");
    sqlite3_bind_text(st, 1, s->key.id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, s->key.pk, MR_AUDIT_PK_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, mr_time_now_ms());
    /* Outside a transaction the insert commits by itself. */
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "registering the audit key");
    return MR_OK;
}

/* At open for writing: load the signing key; create it when the database
 * has none yet (a new database, or one from before migration 3). When the
 * database has a key but the file is gone, writes go on unsigned. */
static enum mr_err key_setup(struct sq_store *s, struct mr_diag *d)
{
    int64_t nkeys = 0;
    enum mr_err err = mr_auditkey_load(s->key_path, &s->key, d);
    int rc;

    if (err == MR_ENOTFOUND) {
        mr_diag_clear(d);
        rc = query_int(s, "SELECT count(*) FROM audit_key", &nkeys);
        if (rc != SQLITE_OK)
            return map_rc(s, rc, d, "audit key");
        if (nkeys > 0) {
            s->key_missing = 1;
            return MR_OK;
        }
        err = mr_auditkey_create(s->key_path, &s->key, d);
        if (err == MR_EEXISTS) {
            /* Another process made it just now. */
            mr_diag_clear(d);
            err = mr_auditkey_load(s->key_path, &s->key, d);
        }
    }
    if (err)
        return err;
    s->have_key = 1;
    return key_register(s, d);
}

static void sq_close(struct mr_store *base)
{
    struct sq_store *s = (struct sq_store *)base;
    int i;

    walckpt_stop(s);
    if (s->unckpt)
        checkpoint_now(s);
    for (i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    for (i = 0; i < 64; i++) {
        sqlite3_finalize(s->cache[i].st);
        mr_free(s->cache[i].sql);
    }
    if (s->db)
        sqlite3_close(s->db);
    mr_auditkey_wipe(&s->key);
    mr_free(s->key_path);
    mr_free(s->path);
    mr_free(s);
}

static enum mr_err migrate(struct sq_store *s, int from, struct mr_diag *d)
{
    enum mr_err err;
    int v;
    char sql[64];

    for (v = from; v < (int)MR__SQLITE_NMIGRATIONS; v++) {
        err = exec(s, "BEGIN IMMEDIATE", d);
        if (err)
            return err;
        err = exec(s, mr__sqlite_migrations[v], d);
        if (!err) {
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
            err = exec(s, sql, d);
        }
        if (!err && v == 0) {
            snprintf(sql, sizeof(sql), "PRAGMA application_id = %d",
                     MR_APPLICATION_ID);
            err = exec(s, sql, d);
        }
        if (!err && v + 1 == 3)
            err = chain_backfill(s, d);
        if (!err)
            err = exec(s, "COMMIT", d);
        if (err) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return err;
        }
    }
    s->schema = (int)MR__SQLITE_NMIGRATIONS;
    return MR_OK;
}

static const struct mr_store_ops sqlite_ops;

/* SQLite's memory statistics take one process-wide mutex on every
 * allocation, which the server's threads then fight over; medrec does not
 * read them. Configured once, before SQLite is first used. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_global_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

enum mr_err mr__sqlite_open(const char *path, int flags, struct mr_store **out,
                            struct mr_diag *d)
{
    struct sq_store *s;
    enum mr_err err = MR_OK;
    int oflags, rc, k;
    int64_t appid = 0, uver = 0, ntables = 0;
    const char *busy_env;
    long busy_ms = 5000;

    pthread_once(&sqlite_once, sqlite_global_init);
    if (!path || !*path)
        return mr_diag_set(d, MR_EUSAGE, "no database file given");
    if (!(flags & MR_STORE_CREATE) && access(path, F_OK) != 0)
        return mr_diag_set(d, MR_ENOTFOUND,
                           "%s: no such database (create it with "
                           "`medrec init --db %s`)",
                           path, path);
    s = mr_calloc(1, sizeof(*s));
    if (!s)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    s->base.ops = &sqlite_ops;
    s->path = mr_strdup(path);
    s->key_path = mr_malloc(strlen(path) + sizeof(".audit-key"));
    if (s->key_path) {
        memcpy(s->key_path, path, strlen(path));
        memcpy(s->key_path + strlen(path), ".audit-key", sizeof(".audit-key"));
    }
    s->readonly = (flags & MR_STORE_READONLY) != 0;
    if (!s->path || !s->key_path) {
        mr_free(s->key_path);
        mr_free(s->path);
        mr_free(s);
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (flags & MR_STORE_READONLY)
        oflags |= SQLITE_OPEN_READONLY;
    else
        oflags |= SQLITE_OPEN_READWRITE;
    if (flags & MR_STORE_CREATE)
        oflags |= SQLITE_OPEN_CREATE;
    rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        err = map_rc(s, rc, d, "open");
        goto fail;
    }
    busy_env = getenv("MEDREC_BUSY_TIMEOUT_MS");
    if (busy_env) {
        char *end;
        long v = strtol(busy_env, &end, 10);
        if (*end == '\0' && v >= 0 && v <= 600000)
            busy_ms = v;
    }
    sqlite3_busy_timeout(s->db, (int)busy_ms);
    sqlite3_extended_result_codes(s->db, 1);

    /* Reading the header tells a medrec database from anything else. */
    rc = query_int(s, "PRAGMA application_id", &appid);
    if (rc == SQLITE_OK)
        rc = query_int(s, "PRAGMA user_version", &uver);
    if (rc == SQLITE_OK)
        rc = query_int(s, "SELECT count(*) FROM sqlite_schema", &ntables);
    if (rc != SQLITE_OK) {
        err = map_rc(s, rc, d, "reading the database header");
        goto fail;
    }
    if (ntables > 0 && appid != MR_APPLICATION_ID) {
        err = mr_diag_set(d, MR_ENOTDB,
                          "%s: not a medrec database (a SQLite file of "
                          "another program)",
                          path);
        goto fail;
    }
    if (uver > MR_STORE_SCHEMA_VERSION) {
        err = mr_diag_set(d, MR_ENEWER,
                          "%s: database schema version %lld is newer than "
                          "this medrec supports (%d); upgrade medrec",
                          path, (long long)uver, MR_STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (ntables == 0 && !(flags & MR_STORE_CREATE)) {
        err = mr_diag_set(d, MR_ENOTDB,
                          "%s: not a medrec database (empty file)", path);
        goto fail;
    }
    s->schema = (int)uver;
    if (!(flags & MR_STORE_READONLY)) {
        /* journal_mode returns a row; exec discards it. */
        err = exec(s, "PRAGMA journal_mode = WAL", d);
        if (!err)
            err = exec(s, "PRAGMA synchronous = FULL", d);
        if (err)
            goto fail;
    }
    err = exec(s,
               "PRAGMA foreign_keys = ON;"
               "PRAGMA cache_size = -65536;"
               "PRAGMA temp_store = MEMORY",
               d);
    if (err)
        goto fail;
    for (k = 0; k <= MR_IX_URI && !err; k++) {
        char buf[160];
        snprintf(buf, sizeof(buf),
                 "CREATE TEMP TABLE IF NOT EXISTS st_%s(rid, key, %s)",
                 ix_kinds[k].name, ix_kinds[k].cols);
        err = exec(s, buf, d);
    }
    if (err)
        goto fail;
    if (!(flags & MR_STORE_READONLY) && uver < MR_STORE_SCHEMA_VERSION) {
        err = migrate(s, (int)uver, d);
        if (err)
            goto fail;
    } else if (uver < MR_STORE_SCHEMA_VERSION) {
        err = mr_diag_set(d, MR_EUNSUPPORTED,
                          "%s: database needs a schema upgrade; open it "
                          "read-write once",
                          path);
        goto fail;
    }
    if (!s->readonly) {
        err = key_setup(s, d);
        if (err)
            goto fail;
        /* Entries chained by the migration get their first checkpoint
         * when this handle closes. */
        if (s->backfilled)
            s->unckpt = 1;
    }
    *out = &s->base;
    return MR_OK;
fail:
    sq_close(&s->base);
    return err;
}

static enum mr_err sq_begin(struct mr_store *base, int write, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;

    s->chain_ok = 0;
    s->txn_audited = 0;
    return run_stmt(s, write ? S_BEGIN_W : S_BEGIN_R, d);
}

/* Move staged index entries of the kinds in mask into the index tables,
 * sorted. */
static enum mr_err flush_kinds(struct sq_store *s, unsigned mask,
                               struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    int k;

    for (k = 0; k <= MR_IX_URI; k++) {
        if (!(s->staged & mask & (1u << k)))
            continue;
        err = prep(s, (enum stmt_id)(S_FLUSH_IX + k), &st, d);
        if (!err)
            err = step_done(s, st, d, "index flush");
        if (!err)
            err = prep(s, (enum stmt_id)(S_CLEAR_IX + k), &st, d);
        if (!err)
            err = step_done(s, st, d, "index flush");
        if (err)
            return err;
        s->staged &= ~(1u << k);
    }
    return MR_OK;
}

static enum mr_err flush_index(struct sq_store *s, struct mr_diag *d)
{
    return flush_kinds(s, ~0u, d);
}

/* The index kinds a search reads: those of its clauses; every kind when
 * it chains, sorts by a parameter or includes (kept simple: those read
 * other kinds or other types' entries). A search in the middle of a
 * group commit (an HL7 patient lookup by identifier) then moves only the
 * staged token entries, not every kind, out of the staging tables. */
static unsigned query_kinds(const struct mr_query *q)
{
    unsigned mask = 0;
    size_t i;

    if (q->ninclude)
        return ~0u;
    for (i = 0; i < q->nsort; i++)
        if (q->sort[i].special == MR_Q_PARAM)
            return ~0u;
    for (i = 0; i < q->n; i++) {
        if (q->clauses[i].chain)
            return ~0u;
        if (q->clauses[i].special == MR_Q_PARAM)
            mask |= 1u << q->clauses[i].kind;
    }
    return mask;
}

static enum mr_err sq_commit(struct mr_store *base, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    enum mr_err err = flush_index(s, d);

    if (!err && s->txn_audited)
        err = checkpoint_due(s, 0, d);
    if (!err)
        err = run_stmt(s, S_COMMIT, d);

    if (err) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->staged = 0;
    } else if (s->txn_audited) {
        s->unckpt = s->head_seq > s->ckpt_seq;
    }
    s->chain_ok = 0;
    s->txn_audited = 0;
    return err;
}

static void sq_rollback(struct mr_store *base)
{
    struct sq_store *s = (struct sq_store *)base;

    if (sqlite3_get_autocommit(s->db) == 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    /* The staging tables are rolled back with the transaction. */
    s->staged = 0;
    s->chain_ok = 0;
    s->txn_audited = 0;
}

static enum mr_err run_stmt(struct sq_store *s, enum stmt_id id,
                            struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    enum mr_err err = prep(s, id, &st, d);
    int rc;

    if (err)
        return err;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, stmt_sql[id]);
    return MR_OK;
}

static enum mr_err sq_savepoint(struct mr_store *base, enum mr_savepoint_op op,
                                struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    enum mr_err err;

    switch (op) {
    case MR_SP_OPEN:
        return run_stmt(s, S_SP_OPEN, d);
    case MR_SP_RELEASE:
        return run_stmt(s, S_SP_RELEASE, d);
    case MR_SP_ROLLBACK:
        /* The chain's head may have been rolled back too: read it again
         * at the next entry. */
        s->chain_ok = 0;
        err = run_stmt(s, S_SP_ROLLBACK, d);
        if (!err)
            err = run_stmt(s, S_SP_RELEASE, d);
        /* A flush inside the savepoint is undone with it, and the staged
         * entries it moved are back in the staging tables: which kinds
         * hold some is no longer known, so the next flush visits all of
         * them (an empty one costs a statement). Forgetting them lost the
         * index entries of resources written earlier in the transaction. */
        s->staged = (1u << (MR_IX_URI + 1)) - 1;
        return err;
    }
    return MR_EINTERNAL;
}

static enum mr_err step_done(struct sq_store *s, sqlite3_stmt *st,
                             struct mr_diag *d, const char *what)
{
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return map_rc(s, rc, d, what);
    return MR_OK;
}

static enum mr_err write_index(struct sq_store *s, int64_t rid, int existed,
                               const struct mr_ix *ix, struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    size_t i;
    int k;

    if (existed) {
        /* Entries of this resource may still be staged (written earlier
         * in this transaction): flush them so one delete finds them. */
        err = flush_index(s, d);
        if (err)
            return err;
        for (k = 0; k <= MR_IX_URI; k++) {
            err = prep(s, (enum stmt_id)(S_DEL_IX + k), &st, d);
            if (err)
                return err;
            sqlite3_bind_int64(st, 1, rid);
            err = step_done(s, st, d, "index delete");
            if (err)
                return err;
        }
    }
    if (!ix)
        return MR_OK;
    for (i = 0; i < ix->n; i++) {
        const struct mr_ix_entry *e = &ix->v[i];
        err = prep(s, (enum stmt_id)(S_INS_IX + (int)e->kind), &st, d);
        if (err)
            return err;
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_int64(st, 2, e->key);
        switch (e->kind) {
        case MR_IX_STRING:
            if (!e->s1) {
                done_stmt(st);
                continue;
            }
            sqlite3_bind_text(st, 3, e->s1, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, e->s2 ? e->s2 : "", -1, SQLITE_STATIC);
            break;
        case MR_IX_TOKEN:
            sqlite3_bind_text(st, 3, e->s1 ? e->s1 : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, e->s2 ? e->s2 : "", -1, SQLITE_STATIC);
            break;
        case MR_IX_DATE:
            sqlite3_bind_int64(st, 3, e->lo);
            sqlite3_bind_int64(st, 4, e->hi);
            break;
        case MR_IX_REFERENCE:
        case MR_IX_URI:
            if (!e->s1) {
                done_stmt(st);
                continue;
            }
            sqlite3_bind_text(st, 3, e->s1, -1, SQLITE_STATIC);
            break;
        case MR_IX_NUMBER:
            sqlite3_bind_double(st, 3, e->n);
            break;
        case MR_IX_QUANTITY:
            sqlite3_bind_double(st, 3, e->n);
            sqlite3_bind_text(st, 4, e->s1 ? e->s1 : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, e->s2 ? e->s2 : "", -1, SQLITE_STATIC);
            break;
        }
        err = step_done(s, st, d, "index insert");
        if (err)
            return err;
        s->staged |= 1u << e->kind;
    }
    return MR_OK;
}

static enum mr_err sq_put(struct mr_store *base, const struct mr_put *p,
                          int64_t *version, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    int rc, exists = 0, was_deleted = 0;
    int64_t rid = 0, cur = 0, next;

    err = prep(s, S_FIND, &st, d);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, p->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        exists = 1;
        rid = sqlite3_column_int64(st, 0);
        cur = sqlite3_column_int64(st, 1);
        was_deleted = sqlite3_column_int(st, 2);
    }
    done_stmt(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_rc(s, rc, d, "lookup");

    if (p->expect == MR_PUT_NEW && exists)
        return mr_diag_set(d, MR_EEXISTS, "%s/%s already exists", p->type,
                           p->id);
    if (p->expect > 0) {
        if (!exists)
            return mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", p->type,
                               p->id);
        if (cur != p->expect)
            return mr_diag_set(d, MR_ECONFLICT,
                               "%s/%s: expected version %lld but the "
                               "current version is %lld",
                               p->type, p->id, (long long)p->expect,
                               (long long)cur);
    }
    if (!p->json) {
        if (!exists)
            return mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", p->type,
                               p->id);
        if (was_deleted)
            return mr_diag_set(d, MR_EGONE, "%s/%s is already deleted", p->type,
                               p->id);
    }
    next = cur + 1;
    if (!exists && p->set_version > 0)
        next = p->set_version;

    if (!exists) {
        err = prep(s, S_INS_RESOURCE, &st, d);
        if (err)
            return err;
        sqlite3_bind_text(st, 1, p->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, next);
        sqlite3_bind_int64(st, 4, p->ts);
        sqlite3_bind_int(st, 5, p->json ? 0 : 1);
        err = step_done(s, st, d, "insert resource");
        if (err)
            return err;
        rid = sqlite3_last_insert_rowid(s->db);
    } else {
        err = prep(s, S_UPD_RESOURCE, &st, d);
        if (err)
            return err;
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_int64(st, 2, next);
        sqlite3_bind_int64(st, 3, p->ts);
        sqlite3_bind_int(st, 4, p->json ? 0 : 1);
        err = step_done(s, st, d, "update resource");
        if (err)
            return err;
    }
    err = prep(s, S_INS_VERSION, &st, d);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, next);
    sqlite3_bind_int64(st, 3, p->ts);
    sqlite3_bind_text(st, 4, p->author ? p->author : "unknown", -1,
                      SQLITE_STATIC);
    bind_text_or_null(st, 5, p->reason);
    sqlite3_bind_int(st, 6, p->json ? 0 : 1);
    if (p->json)
        sqlite3_bind_blob(st, 7, p->json, (int)p->json_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    err = step_done(s, st, d, "insert version");
    if (err)
        return err;
    err = write_index(s, rid, exists, p->json ? p->ix : NULL, d);
    if (err)
        return err;
    *version = next;
    return MR_OK;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* Columns: version, ts, deleted, author, reason, json. */
static void fill_meta(struct mr_version *m, const char *type, const char *id,
                      sqlite3_stmt *st)
{
    snprintf(m->type, sizeof(m->type), "%s", type);
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->version = sqlite3_column_int64(st, 0);
    m->ts = sqlite3_column_int64(st, 1);
    m->deleted = sqlite3_column_int(st, 2);
    copy_col(m->author, sizeof(m->author), st, 3);
    copy_col(m->reason, sizeof(m->reason), st, 4);
}

static enum mr_err sq_read(struct mr_store *base, const char *type,
                           const char *id, int64_t version,
                           struct mr_version *meta, struct mr_buf *json,
                           struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    struct mr_version m;
    int rc;

    err = prep(s, version ? S_READ_VER : S_READ_CUR, &st, d);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (version)
        sqlite3_bind_int64(st, 3, version);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        done_stmt(st);
        if (version)
            return mr_diag_set(d, MR_ENOTFOUND,
                               "%s/%s/_history/%lld not "
                               "found",
                               type, id, (long long)version);
        return mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", type, id);
    }
    if (rc != SQLITE_ROW) {
        done_stmt(st);
        return map_rc(s, rc, d, "read");
    }
    fill_meta(&m, type, id, st);
    if (json && !m.deleted) {
        mr_buf_reset(json);
        err = mr_buf_add(json, sqlite3_column_blob(st, 5),
                         (size_t)sqlite3_column_bytes(st, 5));
        if (err) {
            done_stmt(st);
            return mr_diag_set(d, err, "reading %s/%s: %s", type, id,
                               mr_strerror(err));
        }
    }
    done_stmt(st);
    if (meta)
        *meta = m;
    if (m.deleted)
        return mr_diag_set(d, MR_EGONE, "%s/%s was deleted", type, id);
    return MR_OK;
}

static enum mr_err cb_result(int r)
{
    if (r > 0 && r < MR__ERR_COUNT)
        return (enum mr_err)r;
    return MR_EINTERNAL;
}

static enum mr_err sq_history(struct mr_store *base, const char *type,
                              const char *id, mr_store_cb cb, void *ctx,
                              struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    struct mr_version m;
    int rc, n = 0, r;

    err = prep(s, S_HISTORY, &st, d);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fill_meta(&m, type, id, st);
        n++;
        r = cb(ctx, &m, (const char *)sqlite3_column_blob(st, 5),
               (size_t)sqlite3_column_bytes(st, 5));
        if (r) {
            done_stmt(st);
            return cb_result(r);
        }
    }
    done_stmt(st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "history");
    if (n == 0)
        return mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", type, id);
    return MR_OK;
}

/* Run a one-off statement whose rows are (type, id, version, ts, deleted,
 * author, reason, json) and feed them to cb. */
static enum mr_err run_rows(struct sq_store *s, sqlite3_stmt *st,
                            mr_store_cb cb, void *ctx, struct mr_diag *d)
{
    struct mr_version m;
    int rc, r;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        copy_col(m.type, sizeof(m.type), st, 0);
        copy_col(m.id, sizeof(m.id), st, 1);
        m.version = sqlite3_column_int64(st, 2);
        m.ts = sqlite3_column_int64(st, 3);
        m.deleted = sqlite3_column_int(st, 4);
        copy_col(m.author, sizeof(m.author), st, 5);
        copy_col(m.reason, sizeof(m.reason), st, 6);
        r = cb(ctx, &m, (const char *)sqlite3_column_blob(st, 7),
               (size_t)sqlite3_column_bytes(st, 7));
        if (r)
            return cb_result(r);
    }
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "query");
    return MR_OK;
}

#define ROW_COLUMNS                                                            \
    "r.type, r.id, r.version, r.updated, r.deleted, v.author, v.reason,"       \
    " v.json"

static enum mr_err sq_scan(struct mr_store *base, const char *type,
                           mr_store_cb cb, void *ctx, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    int rc;
    const char *sql =
        type ? "SELECT " ROW_COLUMNS " FROM resource r JOIN version v"
               " ON v.rid = r.rid AND v.version = r.version"
               " WHERE r.deleted = 0 AND r.type = ?1 ORDER BY r.rid"
             : "SELECT " ROW_COLUMNS " FROM resource r JOIN version v"
               " ON v.rid = r.rid AND v.version = r.version"
               " WHERE r.deleted = 0 ORDER BY r.rid";

    rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare scan");
    if (type)
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    err = run_rows(s, st, cb, ctx, d);
    sqlite3_finalize(st);
    return err;
}

/* ---- search ----------------------------------------------------------- */

enum bind_kind { B_TEXT, B_INT, B_REAL };

struct bindv {
    enum bind_kind kind;
    const char *t;
    int64_t i;
    double r;
};

struct qbuild {
    struct mr_buf sql;
    struct bindv b[1024];
    int nb;
    struct mr_arena arena; /* for computed strings (prefix upper bounds) */
    enum mr_err err;
    /* The clause that drives the query (its matches are enumerated; the
     * other clauses are checked per candidate through the rid-clustered
     * primary keys), -1 for none, or DRIVE_ID when an _id clause does. */
    int driver;
};
#define DRIVE_ID (-2)

static void qs(struct qbuild *q, const char *s)
{
    if (!q->err)
        q->err = mr_buf_adds(&q->sql, s);
}

static void bt(struct qbuild *q, const char *t)
{
    if (q->nb >= (int)(sizeof(q->b) / sizeof(q->b[0]))) {
        q->err = MR_ETOOBIG;
        return;
    }
    q->b[q->nb].kind = B_TEXT;
    q->b[q->nb++].t = t;
    qs(q, "?");
}

static void bi(struct qbuild *q, int64_t i)
{
    if (q->nb >= (int)(sizeof(q->b) / sizeof(q->b[0]))) {
        q->err = MR_ETOOBIG;
        return;
    }
    q->b[q->nb].kind = B_INT;
    q->b[q->nb++].i = i;
    qs(q, "?");
}

static void br(struct qbuild *q, double r)
{
    if (q->nb >= (int)(sizeof(q->b) / sizeof(q->b[0]))) {
        q->err = MR_ETOOBIG;
        return;
    }
    q->b[q->nb].kind = B_REAL;
    q->b[q->nb++].r = r;
    qs(q, "?");
}

/* The smallest string greater than every string starting with p. Folded
 * text is valid UTF-8, which never contains 0xff, so incrementing the last
 * byte is enough. */
static const char *prefix_end(struct qbuild *q, const char *p)
{
    size_t n = strlen(p);
    char *e = mr_arena_strndup(&q->arena, p, n);

    if (!e) {
        q->err = MR_ENOMEM;
        return "";
    }
    if (n)
        e[n - 1] = (char)((unsigned char)e[n - 1] + 1);
    return e;
}

/* Date comparisons per FHIR search: [lo, hi) of the value against the
 * indexed range [lo, hi). `col_lo`/`col_hi` are column expressions. */
static void date_cond(struct qbuild *q, const struct mr_q_value *v,
                      const char *col_lo, const char *col_hi)
{
    int64_t widen;

    qs(q, "(");
    switch (v->prefix) {
    case MR_PFX_EQ:
        qs(q, col_lo), qs(q, " >= "), bi(q, v->lo);
        qs(q, " AND "), qs(q, col_lo), qs(q, " < "), bi(q, v->hi);
        qs(q, " AND "), qs(q, col_hi), qs(q, " <= "), bi(q, v->hi);
        break;
    case MR_PFX_NE:
        qs(q, "NOT ("), qs(q, col_lo), qs(q, " >= "), bi(q, v->lo);
        qs(q, " AND "), qs(q, col_hi), qs(q, " <= "), bi(q, v->hi);
        qs(q, ")");
        break;
    case MR_PFX_LT:
        qs(q, col_lo), qs(q, " < "), bi(q, v->lo);
        break;
    case MR_PFX_GT:
        qs(q, col_hi), qs(q, " > "), bi(q, v->hi);
        break;
    case MR_PFX_LE:
        qs(q, col_lo), qs(q, " < "), bi(q, v->hi);
        break;
    case MR_PFX_GE:
        qs(q, col_hi), qs(q, " > "), bi(q, v->lo);
        break;
    case MR_PFX_SA:
        qs(q, col_lo), qs(q, " >= "), bi(q, v->hi);
        break;
    case MR_PFX_EB:
        qs(q, col_hi), qs(q, " <= "), bi(q, v->lo);
        break;
    case MR_PFX_AP:
        /* Approximately: overlap with the value widened by a tenth of its
         * span and at least a day on each side. */
        widen = (v->hi - v->lo) / 10;
        if (widen < 86400000)
            widen = 86400000;
        qs(q, col_lo), qs(q, " < "), bi(q, v->hi + widen);
        qs(q, " AND "), qs(q, col_hi), qs(q, " > "), bi(q, v->lo - widen);
        break;
    }
    qs(q, ")");
}

static void num_cond(struct qbuild *q, const struct mr_q_value *v,
                     const char *col)
{
    static const char *ops[] = {
        [MR_PFX_EQ] = " = ", [MR_PFX_NE] = " <> ", [MR_PFX_LT] = " < ",
        [MR_PFX_GT] = " > ", [MR_PFX_LE] = " <= ", [MR_PFX_GE] = " >= ",
        [MR_PFX_SA] = " > ", [MR_PFX_EB] = " < ",  [MR_PFX_AP] = " = ",
    };
    double a;

    if (v->prefix == MR_PFX_AP) {
        a = v->n < 0 ? -v->n : v->n;
        qs(q, "("), qs(q, col), qs(q, " BETWEEN "), br(q, v->n - a / 10);
        qs(q, " AND "), br(q, v->n + a / 10), qs(q, ")");
        return;
    }
    qs(q, "("), qs(q, col), qs(q, ops[v->prefix]), br(q, v->n), qs(q, ")");
}

static void value_cond(struct qbuild *q, const struct mr_q_clause *c,
                       const struct mr_q_value *v)
{
    switch (c->kind) {
    case MR_IX_STRING:
        if (c->modifier == MR_MOD_EXACT) {
            qs(q, "exact = "), bt(q, v->s2 ? v->s2 : v->s1 ? v->s1 : "");
        } else if (c->modifier == MR_MOD_CONTAINS) {
            qs(q, "instr(norm, "), bt(q, v->s1 ? v->s1 : ""), qs(q, ") > 0");
        } else {
            const char *p = v->s1 ? v->s1 : "";
            qs(q, "(norm >= "), bt(q, p);
            qs(q, " AND norm < "), bt(q, prefix_end(q, p)), qs(q, ")");
        }
        break;
    case MR_IX_TOKEN:
        qs(q, "(");
        if (v->s2)
            qs(q, "code = "), bt(q, v->s2);
        else
            qs(q, "1");
        if (v->s1 && !*v->s1)
            qs(q, " AND system = ''");
        else if (v->s1)
            qs(q, " AND system = "), bt(q, v->s1);
        qs(q, ")");
        break;
    case MR_IX_DATE:
        date_cond(q, v, "lo", "hi");
        break;
    case MR_IX_REFERENCE:
        qs(q, "ref = "), bt(q, v->s1 ? v->s1 : "");
        break;
    case MR_IX_URI:
        qs(q, "uri = "), bt(q, v->s1 ? v->s1 : "");
        break;
    case MR_IX_NUMBER:
        num_cond(q, v, "value");
        break;
    case MR_IX_QUANTITY:
        qs(q, "(");
        num_cond(q, v, "value");
        if (v->s1 && *v->s1)
            qs(q, " AND system = "), bt(q, v->s1);
        if (v->s2 && *v->s2)
            qs(q, " AND code = "), bt(q, v->s2);
        qs(q, ")");
        break;
    }
}

static void clause_cond(struct qbuild *q, const struct mr_q_clause *c,
                        int drive);

/* Can this clause drive the query (enumerate its index matches)? */
static int can_drive(const struct mr_q_clause *c)
{
    return c->special == MR_Q_PARAM && c->param && !c->chain &&
           c->modifier != MR_MOD_MISSING && c->modifier != MR_MOD_NOT &&
           c->nvals > 0;
}

static enum mr_err bind_all(struct sq_store *s, sqlite3_stmt *st,
                            const struct qbuild *q, struct mr_diag *d);

/*
 * Pick the driving clause: the one with the fewest index matches, counted
 * up to 256 (cheap: that many index entries at most per clause). With
 * several clauses SQLite alone cannot tell a birth date (a few dozen
 * patients) from a name prefix (tens of thousands).
 */
static enum mr_err choose_driver(struct sq_store *s, struct qbuild *q,
                                 const struct mr_query *qr, struct mr_diag *d)
{
    size_t i;
    int64_t best = -1, n;
    struct qbuild *cq;
    sqlite3_stmt *st;
    enum mr_err err = MR_OK;

    q->driver = -1;
    for (i = 0; i < qr->n; i++)
        if (qr->clauses[i].special == MR_Q_ID &&
            qr->clauses[i].modifier != MR_MOD_NOT) {
            q->driver = DRIVE_ID;
            return MR_OK;
        }
    for (i = 0; i < qr->n; i++)
        if (can_drive(&qr->clauses[i]))
            break;
    if (i == qr->n)
        return MR_OK;
    if (qr->n == 1) {
        q->driver = (int)i;
        return MR_OK;
    }
    cq = mr_calloc(1, sizeof(*cq));
    if (!cq)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    for (i = 0; i < qr->n && !err; i++) {
        if (!can_drive(&qr->clauses[i]))
            continue;
        mr_buf_init(&cq->sql, 1 << 20);
        cq->nb = 0;
        cq->err = MR_OK;
        {
            const struct mr_q_clause *c = &qr->clauses[i];
            size_t k;
            qs(cq, "SELECT count(*) FROM (SELECT 1 FROM ");
            qs(cq, ix_table[c->kind]);
            qs(cq, " WHERE key = "), bi(cq, c->param->key), qs(cq, " AND (");
            for (k = 0; k < c->nvals; k++) {
                if (k)
                    qs(cq, " OR ");
                value_cond(cq, c, &c->vals[k]);
            }
            qs(cq, ") LIMIT 256)");
        }
        if (cq->err) {
            err = mr_diag_set(d, cq->err, "search too complex");
        } else if (prep_cached(s, cq->sql.ptr, &st) == SQLITE_OK) {
            err = bind_all(s, st, cq, d);
            if (!err && sqlite3_step(st) == SQLITE_ROW) {
                n = sqlite3_column_int64(st, 0);
                if (best < 0 || n < best) {
                    best = n;
                    q->driver = (int)i;
                }
            }
            uncache(s, st);
        }
        mr_buf_release(&cq->sql);
    }
    mr_arena_release(&cq->arena);
    mr_free(cq);
    return err;
}

static void clause_cond(struct qbuild *q, const struct mr_q_clause *c,
                        int drive)
{
    size_t i;
    int negate = 0;

    if (c->special == MR_Q_ID) {
        qs(q, (c->modifier == MR_MOD_NOT) ? "r.id NOT IN (" : "r.id IN (");
        for (i = 0; i < c->nvals; i++) {
            if (i)
                qs(q, ", ");
            bt(q, c->vals[i].s2   ? c->vals[i].s2
                  : c->vals[i].s1 ? c->vals[i].s1
                                  : "");
        }
        qs(q, ")");
        return;
    }
    if (c->special == MR_Q_LASTUPDATED) {
        qs(q, "(");
        for (i = 0; i < c->nvals; i++) {
            if (i)
                qs(q, " OR ");
            date_cond(q, &c->vals[i], "r.updated", "(r.updated + 1)");
        }
        qs(q, ")");
        return;
    }
    if (!c->param) {
        qs(q, "1");
        return;
    }
    if (c->modifier == MR_MOD_MISSING) {
        int missing = c->nvals ? c->vals[0].missing : 1;
        qs(q,
           missing ? "NOT EXISTS (SELECT 1 FROM " : "EXISTS (SELECT 1 FROM ");
        qs(q, ix_table[c->kind]);
        qs(q, " x WHERE x.rid = r.rid AND x.key = ");
        bi(q, c->param->key), qs(q, ")");
        return;
    }
    negate = c->modifier == MR_MOD_NOT;
    if (c->chain) {
        /* Resources whose reference param points at a c->chain_type
         * resource matching the chained condition. References are
         * stored as written ("Patient/abc"). */
        qs(q, "r.rid IN (SELECT rid FROM ix_ref WHERE key = ");
        bi(q, c->param->key);
        qs(q, " AND ref IN (SELECT "), bt(q, c->chain_type);
        qs(q, " || '/' || t.id FROM resource t WHERE t.type = ");
        bt(q, c->chain_type);
        qs(q, " AND t.deleted = 0 AND t.rid");
        qs(q, negate ? " NOT IN (SELECT rid FROM " : " IN (SELECT rid FROM ");
        qs(q, ix_table[c->kind]);
        qs(q, " WHERE key = "), bi(q, c->chain->key), qs(q, " AND (");
        for (i = 0; i < c->nvals; i++) {
            if (i)
                qs(q, " OR ");
            value_cond(q, c, &c->vals[i]);
        }
        if (c->nvals == 0)
            qs(q, "0");
        qs(q, "))))");
        return;
    }
    if (drive && !negate) {
        qs(q, "r.rid IN (SELECT rid FROM ");
        qs(q, ix_table[c->kind]);
        qs(q, " WHERE key = ");
    } else {
        /* Checked per candidate: a seek on the (rid, key, ...) key. */
        qs(q, negate ? "NOT EXISTS (SELECT 1 FROM " : "EXISTS (SELECT 1 FROM ");
        qs(q, ix_table[c->kind]);
        qs(q, " x WHERE x.rid = r.rid AND x.key = ");
    }
    bi(q, c->param->key), qs(q, " AND (");
    for (i = 0; i < c->nvals; i++) {
        if (i)
            qs(q, " OR ");
        value_cond(q, c, &c->vals[i]);
    }
    if (c->nvals == 0)
        qs(q, "0");
    qs(q, "))");
}

static void build_where(struct qbuild *q, const struct mr_query *qr)
{
    size_t i;

    /* When an index clause drives, the unary + keeps SQLite from leading
     * with the (type, id) index instead. */
    if (q->driver >= 0)
        qs(q, " WHERE +r.type = ");
    else
        qs(q, " WHERE r.type = ");
    bt(q, qr->type);
    qs(q, " AND +r.deleted = 0");
    for (i = 0; i < qr->n; i++) {
        qs(q, " AND ");
        clause_cond(q, &qr->clauses[i], (int)i == q->driver);
    }
}

static enum mr_err bind_all(struct sq_store *s, sqlite3_stmt *st,
                            const struct qbuild *q, struct mr_diag *d)
{
    int i, rc = SQLITE_OK;

    for (i = 0; i < q->nb && rc == SQLITE_OK; i++) {
        switch (q->b[i].kind) {
        case B_TEXT:
            rc = sqlite3_bind_text(st, i + 1, q->b[i].t, -1, SQLITE_STATIC);
            break;
        case B_INT:
            rc = sqlite3_bind_int64(st, i + 1, q->b[i].i);
            break;
        case B_REAL:
            rc = sqlite3_bind_double(st, i + 1, q->b[i].r);
            break;
        }
    }
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "bind");
    return MR_OK;
}

/*
 * ORDER BY for _sort. Column and table names come from fixed tables
 * indexed by kind, never from the query; parameter keys are bound. A
 * parameter sorts by its smallest indexed value ascending and its largest
 * descending; resources without a value come last either way. The
 * creation order (rid) breaks ties so that paging is stable.
 */
static void build_order(struct qbuild *q, const struct mr_query *qr)
{
    static const char *const lo_col[] = {
        [MR_IX_STRING] = "min(norm)",  [MR_IX_TOKEN] = "min(code)",
        [MR_IX_DATE] = "min(lo)",      [MR_IX_REFERENCE] = "min(ref)",
        [MR_IX_NUMBER] = "min(value)", [MR_IX_QUANTITY] = "min(value)",
        [MR_IX_URI] = "min(uri)",
    };
    static const char *const hi_col[] = {
        [MR_IX_STRING] = "max(norm)",  [MR_IX_TOKEN] = "max(code)",
        [MR_IX_DATE] = "max(hi)",      [MR_IX_REFERENCE] = "max(ref)",
        [MR_IX_NUMBER] = "max(value)", [MR_IX_QUANTITY] = "max(value)",
        [MR_IX_URI] = "max(uri)",
    };
    size_t i;

    qs(q, " ORDER BY ");
    for (i = 0; i < qr->nsort; i++) {
        const struct mr_q_sort *k = &qr->sort[i];
        const char *dir = k->desc ? " DESC, " : " ASC, ";

        if (k->special == MR_Q_ID) {
            qs(q, "r.id"), qs(q, dir);
        } else if (k->special == MR_Q_LASTUPDATED) {
            qs(q, "r.updated"), qs(q, dir);
        } else if (k->param) {
            enum mr_ix_kind kind;
            switch (k->param->type) {
            case MR_SP_STRING:
                kind = MR_IX_STRING;
                break;
            case MR_SP_DATE:
                kind = MR_IX_DATE;
                break;
            case MR_SP_NUMBER:
                kind = MR_IX_NUMBER;
                break;
            case MR_SP_QUANTITY:
                kind = MR_IX_QUANTITY;
                break;
            case MR_SP_TOKEN:
                kind = MR_IX_TOKEN;
                break;
            default:
                continue; /* the parser refuses the others */
            }
            /* (x IS NULL) first puts missing values last. */
            for (int pass = 0; pass < 2; pass++) {
                qs(q, "(SELECT ");
                qs(q, k->desc ? hi_col[kind] : lo_col[kind]);
                qs(q, " FROM "), qs(q, ix_table[kind]);
                qs(q, " WHERE rid = r.rid AND key = ");
                bi(q, k->param->key);
                qs(q, pass ? ")" : ") IS NULL, ");
            }
            qs(q, dir);
        }
    }
    qs(q, "r.rid");
}

/* Included resources returned by one search, at most. */
#define MAX_INCLUDED 10000

/* Keys of every reference parameter of `type`, bound into an IN list. */
static void all_ref_keys(struct qbuild *q, const char *type)
{
    const struct mr_search_param *sp;
    size_t n, i;
    int any = 0;

    mr_search_params_of(type, &sp, &n);
    qs(q, "(");
    for (i = 0; i < n; i++) {
        if (sp[i].type != MR_SP_REFERENCE || !sp[i].npaths)
            continue;
        if (any++)
            qs(q, ", ");
        bi(q, sp[i].key);
    }
    if (!any)
        qs(q, "NULL");
    qs(q, ")");
}

/*
 * The _include/_revinclude resources of a page whose rids are the JSON
 * array `page`: one statement, the subqueries UNIONed so that a resource
 * comes once, never one of the page's own matches, current and not
 * deleted. Forward references are split into type and id so that the
 * (type, id) index finds the target.
 */
static enum mr_err run_includes(struct sq_store *s, const struct mr_query *qr,
                                const char *page, mr_store_cb cb, void *ctx,
                                struct mr_diag *d)
{
    struct qbuild *q;
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    size_t i;
    int rc, n = 0, r;
    struct mr_version m;

    q = mr_calloc(1, sizeof(*q));
    if (!q)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    mr_buf_init(&q->sql, 1 << 20);
    qs(q, "SELECT " ROW_COLUMNS " FROM resource r JOIN version v"
          " ON v.rid = r.rid AND v.version = r.version"
          " WHERE r.deleted = 0 AND r.rid NOT IN"
          " (SELECT value FROM json_each(");
    bt(q, page);
    qs(q, ")) AND r.rid IN (");
    for (i = 0; i < qr->ninclude; i++) {
        const struct mr_q_include *inc = &qr->include[i];
        if (i)
            qs(q, " UNION ");
        if (!inc->rev) {
            qs(q, "SELECT t.rid FROM ix_ref x JOIN resource t"
                  " ON t.type = substr(x.ref, 1, instr(x.ref, '/') - 1)"
                  " AND t.id = substr(x.ref, instr(x.ref, '/') + 1)"
                  " WHERE x.rid IN (SELECT value FROM json_each(");
            bt(q, page);
            qs(q, ")) AND x.key ");
            if (inc->param)
                qs(q, "= "), bi(q, inc->param->key);
            else
                qs(q, "IN "), all_ref_keys(q, inc->source);
            if (inc->target)
                qs(q, " AND t.type = "), bt(q, inc->target);
        } else {
            qs(q, "SELECT x.rid FROM ix_ref x WHERE x.key ");
            if (inc->param)
                qs(q, "= "), bi(q, inc->param->key);
            else
                qs(q, "IN "), all_ref_keys(q, inc->source);
            qs(q, " AND x.ref IN (SELECT p.type || '/' || p.id FROM resource"
                  " p WHERE p.rid IN (SELECT value FROM json_each(");
            bt(q, page);
            qs(q, ")))");
        }
    }
    qs(q, ") ORDER BY r.rid LIMIT ");
    bi(q, MAX_INCLUDED + 1);
    if (q->err) {
        err = mr_diag_set(d, q->err, "search too complex");
        goto done;
    }
    rc = sqlite3_prepare_v2(s->db, q->sql.ptr, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        err = map_rc(s, rc, d, "prepare include");
        goto done;
    }
    if ((err = bind_all(s, st, q, d)))
        goto done;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (++n > MAX_INCLUDED) {
            err = mr_diag_set(d, MR_ETOOBIG,
                              "_include/_revinclude: more than %d resources; "
                              "ask for a smaller page (_count)",
                              MAX_INCLUDED);
            goto done;
        }
        copy_col(m.type, sizeof(m.type), st, 0);
        copy_col(m.id, sizeof(m.id), st, 1);
        m.version = sqlite3_column_int64(st, 2);
        m.ts = sqlite3_column_int64(st, 3);
        m.deleted = sqlite3_column_int(st, 4);
        copy_col(m.author, sizeof(m.author), st, 5);
        copy_col(m.reason, sizeof(m.reason), st, 6);
        r = cb(ctx, &m, (const char *)sqlite3_column_blob(st, 7),
               (size_t)sqlite3_column_bytes(st, 7));
        if (r) {
            err = cb_result(r);
            goto done;
        }
    }
    if (rc != SQLITE_DONE)
        err = map_rc(s, rc, d, "include");
done:
    sqlite3_finalize(st);
    mr_buf_release(&q->sql);
    mr_arena_release(&q->arena);
    mr_free(q);
    return err;
}

/* *total = the number of matches of qr (q is reset and reused). */
static enum mr_err run_count(struct sq_store *s, struct qbuild *q,
                             const struct mr_query *qr, int64_t *total,
                             struct mr_diag *d)
{
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    int rc;
    /* By default matches are counted only up to a cap: counting a
     * hundred thousand matches to show twenty costs more than the page. */
    int capped = qr->total_mode != MR_TOTAL_ACCURATE && !qr->summary_count;

    if (qr->total_mode == MR_TOTAL_NONE && !qr->summary_count) {
        *total = MR_TOTAL_UNKNOWN;
        return MR_OK;
    }
    mr_buf_reset(&q->sql);
    q->nb = 0;
    qs(q, capped ? "SELECT count(*) FROM (SELECT 1 FROM resource r"
                 : "SELECT count(*) FROM resource r");
    build_where(q, qr);
    if (capped) {
        qs(q, " LIMIT ");
        bi(q, MR_QUERY_TOTAL_CAP + 1);
        qs(q, ")");
    }
    if (q->err)
        return mr_diag_set(d, q->err, "search too complex");
    rc = prep_cached(s, q->sql.ptr, &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare search");
    err = bind_all(s, st, q, d);
    if (!err) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *total = sqlite3_column_int64(st, 0);
        else
            err = map_rc(s, rc, d, "search count");
        if (!err && capped && *total > MR_QUERY_TOTAL_CAP)
            *total = MR_TOTAL_UNKNOWN;
    }
    uncache(s, st);
    mr_buf_reset(&q->sql);
    q->nb = 0;
    return err;
}

static enum mr_err sq_search_ex(struct mr_store *base,
                                const struct mr_query *qr, mr_store_cb cb,
                                mr_store_cb inc, void *ctx, int64_t *total,
                                struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    struct qbuild *q;
    struct mr_buf page = MR_BUF_INIT(1 << 20);
    struct mr_version m;
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    int rc, r, keyset, more = 0, skipped = 0;
    int64_t rows = 0, first_rid = 0, last_rid = 0;
    uint32_t limit;

    /* Searches see this transaction's own writes. */
    err = flush_kinds(s, query_kinds(qr), d);
    if (err)
        return err;
    q = mr_calloc(1, sizeof(*q));
    if (!q)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    mr_buf_init(&q->sql, 1 << 20);
    err = choose_driver(s, q, qr, d);
    if (err) {
        mr_buf_release(&q->sql);
        mr_free(q);
        return err;
    }

    /* The count costs a second pass over the matches: when the page
     * itself shows there are no more, it is not needed. */
    if (total && (qr->summary_count || !cb)) {
        err = run_count(s, q, qr, total, d);
        if (err)
            goto done;
    }
    if (qr->summary_count || !cb)
        goto done;

    /* In creation order one row more than the page tells whether there
     * are more; _page_before reads backwards and turns the page round. */
    keyset = qr->nsort == 0;
    limit = qr->count ? qr->count : MR_QUERY_DEFAULT_COUNT;
    if (keyset && qr->page_before)
        qs(q, "SELECT *, count(*) OVER () FROM (");
    qs(q, "SELECT " ROW_COLUMNS ", r.rid FROM resource r JOIN version v"
          " ON v.rid = r.rid AND v.version = r.version");
    build_where(q, qr);
    if (qr->page_after)
        qs(q, " AND r.rid > "), bi(q, qr->page_after);
    if (qr->page_before)
        qs(q, " AND r.rid < "), bi(q, qr->page_before);
    if (keyset && qr->page_before)
        qs(q, " ORDER BY r.rid DESC");
    else
        build_order(q, qr);
    qs(q, " LIMIT ");
    bi(q, limit + 1); /* one more tells whether there is a next page */
    if (keyset && qr->page_before) {
        qs(q, ") ORDER BY 9");
    } else {
        qs(q, " OFFSET ");
        bi(q, qr->offset);
    }
    if (q->err) {
        err = mr_diag_set(d, q->err, "search too complex");
        goto done;
    }
    rc = prep_cached(s, q->sql.ptr, &st);
    if (rc != SQLITE_OK) {
        err = map_rc(s, rc, d, "prepare search");
        goto done;
    }
    if ((err = bind_all(s, st, q, d)))
        goto done;
    /* The page's rids, as a JSON array for the include statement. */
    err = mr_buf_addc(&page, '[');
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t rid = sqlite3_column_int64(st, 8);
        if (!qr->page_before && rows == limit) {
            more = 1; /* the extra row: not shown */
            break;
        }
        if (keyset && qr->page_before && !skipped &&
            sqlite3_column_int64(st, 9) > (int64_t)limit) {
            more = skipped = 1; /* the extra row, first going forwards */
            continue;
        }
        if (!first_rid)
            first_rid = rid;
        last_rid = rid;
        copy_col(m.type, sizeof(m.type), st, 0);
        copy_col(m.id, sizeof(m.id), st, 1);
        m.version = sqlite3_column_int64(st, 2);
        m.ts = sqlite3_column_int64(st, 3);
        m.deleted = sqlite3_column_int(st, 4);
        copy_col(m.author, sizeof(m.author), st, 5);
        copy_col(m.reason, sizeof(m.reason), st, 6);
        err = mr_buf_addf(&page, "%s%lld", page.len > 1 ? "," : "",
                          (long long)sqlite3_column_int64(st, 8));
        if (err)
            break;
        rows++;
        r = cb(ctx, &m, (const char *)sqlite3_column_blob(st, 7),
               (size_t)sqlite3_column_bytes(st, 7));
        if (r) {
            err = cb_result(r);
            goto done;
        }
    }
    if (err) {
        err = mr_diag_set(d, err, "search page: %s", mr_strerror(err));
        goto done;
    }
    if (rc != SQLITE_DONE && !(more && rc == SQLITE_ROW)) {
        err = map_rc(s, rc, d, "search");
        goto done;
    }
    uncache(s, st);
    st = NULL;
    if (qr->page) {
        qr->page->first = first_rid;
        qr->page->last = last_rid;
        qr->page->more_after = qr->page_before ? 1 : more;
        qr->page->more_before =
            keyset &&
            (qr->page_before ? more : qr->page_after != 0 || qr->offset);
    }
    if (total) {
        /* The page shows the whole answer when nothing lies beyond it. */
        if (!more && !qr->page_after && !qr->page_before &&
            (rows > 0 || qr->offset == 0))
            *total = (int64_t)qr->offset + rows;
        else if ((err = run_count(s, q, qr, total, d)))
            goto done;
    }
    if (inc && qr->ninclude && page.len > 1) {
        if ((err = mr_buf_addc(&page, ']')))
            err = mr_diag_set(d, err, "search page: %s", mr_strerror(err));
        else
            err = run_includes(s, qr, page.ptr, inc, ctx, d);
    }
done:
    uncache(s, st);
    mr_buf_release(&page);
    mr_buf_release(&q->sql);
    mr_arena_release(&q->arena);
    mr_free(q);
    return err;
}

static enum mr_err sq_search(struct mr_store *base, const struct mr_query *qr,
                             mr_store_cb cb, void *ctx, int64_t *total,
                             struct mr_diag *d)
{
    return sq_search_ex(base, qr, cb, NULL, ctx, total, d);
}

/* A page of history, newest first. The SQL is one of four fixed texts
 * (instance or type/system, with or without a cursor); values are bound.
 * One row more than the page tells whether there is a next page. */
static enum mr_err sq_history_all(struct mr_store *base,
                                  struct mr_history_q *hq, mr_store_cb cb,
                                  void *ctx, int64_t *total, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    int rc, r, inst = hq->type && hq->id;
    uint32_t n = 0;
    struct mr_version m;
    char sql[512];
    const char *where = inst ? " WHERE r.type = ?1 AND r.id = ?2 AND v.ts >= ?3"
                             : " WHERE (?1 IS NULL OR r.type = ?1)"
                               " AND ?2 IS NULL AND v.ts >= ?3";

    hq->next = 0;
    if ((err = flush_index(s, d)))
        return err;
    if (total || inst) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*), (SELECT count(*) FROM resource r"
                 " WHERE r.type = ?1 AND r.id = ?2) FROM version v"
                 " JOIN resource r ON r.rid = v.rid%s",
                 where);
        rc = prep_cached(s, sql, &st);
        if (rc != SQLITE_OK)
            return map_rc(s, rc, d, "prepare history");
        bind_text_or_null(st, 1, hq->type);
        bind_text_or_null(st, 2, hq->id);
        sqlite3_bind_int64(st, 3, hq->since);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            err = map_rc(s, rc, d, "history count");
            uncache(s, st);
            return err;
        }
        if (total)
            *total = sqlite3_column_int64(st, 0);
        if (inst && sqlite3_column_int64(st, 1) == 0)
            err = mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", hq->type,
                              hq->id);
        uncache(s, st);
        st = NULL;
        if (err)
            return err;
    }
    snprintf(sql, sizeof(sql),
             "SELECT r.type, r.id, v.version, v.ts, v.deleted, v.author,"
             " v.reason, v.json, v.vid FROM version v"
             " JOIN resource r ON r.rid = v.rid%s%s"
             " ORDER BY v.vid DESC LIMIT ?5",
             where, hq->after ? " AND v.vid < ?4" : "");
    rc = prep_cached(s, sql, &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare history");
    bind_text_or_null(st, 1, hq->type);
    bind_text_or_null(st, 2, hq->id);
    sqlite3_bind_int64(st, 3, hq->since);
    if (hq->after)
        sqlite3_bind_int64(st, 4, hq->after);
    sqlite3_bind_int64(st, 5, (int64_t)hq->limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == hq->limit) {
            hq->next = sqlite3_column_int64(st, 8) + 1;
            break;
        }
        n++;
        copy_col(m.type, sizeof(m.type), st, 0);
        copy_col(m.id, sizeof(m.id), st, 1);
        m.version = sqlite3_column_int64(st, 2);
        m.ts = sqlite3_column_int64(st, 3);
        m.deleted = sqlite3_column_int(st, 4);
        copy_col(m.author, sizeof(m.author), st, 5);
        copy_col(m.reason, sizeof(m.reason), st, 6);
        r = cb(ctx, &m, (const char *)sqlite3_column_blob(st, 7),
               (size_t)sqlite3_column_bytes(st, 7));
        if (r) {
            uncache(s, st);
            return cb_result(r);
        }
    }
    if (rc != SQLITE_DONE && !(rc == SQLITE_ROW && hq->next))
        err = map_rc(s, rc, d, "history");
    uncache(s, st);
    return err;
}

/* Every current resource whose compartment parameter refers to `ref`
 * ("Patient/x"), in creation order; MR_ETOOBIG past `limit`. */
static enum mr_err sq_compartment(struct mr_store *base, const char *ref,
                                  uint32_t limit, mr_store_cb cb, void *ctx,
                                  struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    struct qbuild *q;
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    const struct mr_search_param *sp;
    int64_t n = 0;
    size_t i;
    int any = 0;

    if ((err = flush_index(s, d)))
        return err;
    q = mr_calloc(1, sizeof(*q));
    if (!q)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    mr_buf_init(&q->sql, 1 << 20);
    qs(q, "SELECT count(*) FROM resource r WHERE r.deleted = 0 AND r.rid IN"
          " (SELECT rid FROM ix_ref WHERE ref = ");
    bt(q, ref);
    qs(q, " AND key IN (");
    for (i = 0; i < mr_patient_compartment_count; i++) {
        sp = mr_search_param_find(mr_patient_compartment[i].resource,
                                  mr_patient_compartment[i].code);
        if (!sp || sp->type != MR_SP_REFERENCE || !sp->npaths)
            continue;
        if (any++)
            qs(q, ", ");
        bi(q, sp->key);
    }
    if (!any)
        qs(q, "NULL");
    qs(q, "))");
    if (q->err) {
        err = mr_diag_set(d, q->err, "compartment too complex");
        goto done;
    }
    /* Count first so that a too large compartment sends nothing. */
    for (int pass = 0; pass < 2; pass++) {
        int rc = sqlite3_prepare_v2(s->db, q->sql.ptr, -1, &st, NULL);
        if (rc != SQLITE_OK) {
            err = map_rc(s, rc, d, "prepare compartment");
            goto done;
        }
        if ((err = bind_all(s, st, q, d)))
            goto done;
        if (pass == 1) {
            err = run_rows(s, st, cb, ctx, d);
            goto done;
        }
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            err = map_rc(s, rc, d, "compartment count");
            goto done;
        }
        n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        st = NULL;
        if (n > (int64_t)limit) {
            err = mr_diag_set(d, MR_ETOOBIG,
                              "%s: compartment holds %lld resources, more "
                              "than %u",
                              ref, (long long)n, limit);
            goto done;
        }
        /* Same WHERE, rows instead of the count. */
        mr_buf_reset(&q->sql);
        if ((err = mr_buf_adds(&q->sql, "SELECT " ROW_COLUMNS
                                        " FROM resource r JOIN version v"
                                        " ON v.rid = r.rid AND v.version ="
                                        " r.version WHERE r.deleted = 0 AND"
                                        " r.rid IN (SELECT rid FROM ix_ref"
                                        " WHERE ref = ? AND key IN (")))
            goto nomem;
        for (i = 1; i < (size_t)q->nb; i++)
            if ((err = mr_buf_adds(&q->sql, i > 1 ? ", ?" : "?")))
                goto nomem;
        if (q->nb == 1 && (err = mr_buf_adds(&q->sql, "NULL")))
            goto nomem;
        if ((err = mr_buf_adds(&q->sql, ")) ORDER BY r.rid")))
            goto nomem;
    }
    goto done;
nomem:
    err = mr_diag_set(d, err, "compartment: %s", mr_strerror(err));
done:
    sqlite3_finalize(st);
    mr_buf_release(&q->sql);
    mr_arena_release(&q->arena);
    mr_free(q);
    return err;
}

static enum mr_err sq_next_seq(struct mr_store *base, const char *name,
                               uint64_t start, uint64_t *out, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err;
    int rc;

    err = prep(s, S_SEQ, &st, d);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)start);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        done_stmt(st);
        return map_rc(s, rc, d, "sequence");
    }
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    /* Step to completion so the statement releases its write. */
    rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "sequence");
    return MR_OK;
}

static enum mr_err sq_seq_used(struct mr_store *base, const char *name,
                               uint64_t used, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err = prep(s, S_SEQ_USED, &st, d);

    if (err)
        return err;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)used);
    return step_done(s, st, d, "sequence");
}

static enum mr_err sq_audit(struct mr_store *base,
                            const struct mr_audit_entry *e, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    struct mr_audit_row row;
    unsigned char hash[MR_AUDIT_HASH_BYTES];
    const char *v[MR_AUDIT_NFIELDS] = {
        e->actor ? e->actor : "unknown",
        e->role ? e->role : "unknown",
        e->source,
        e->action,
        e->outcome ? e->outcome : "ok",
        e->type,
        e->id,
        e->patient,
        e->query,
        e->detail,
    };
    enum mr_err err;
    int i;

    /* Outside a transaction (not the contract, but possible) the head
     * cannot be kept: read it for every entry. */
    if ((!s->chain_ok || sqlite3_get_autocommit(s->db)) &&
        (err = chain_load(s, d)))
        return err;
    err = prep(s, S_AUDIT, &st, d);
    if (err)
        return err;
    /* The entry is hashed exactly as stored: seq is assigned here, not
     * by SQLite, and the defaults above are what the columns receive. */
    row.seq = s->head_seq + 1;
    row.ts = e->ts;
    for (i = 0; i < MR_AUDIT_NFIELDS; i++)
        mr_audit_text_set(&row.f[i], v[i]);
    mr_auditchain_hash(s->head_hash, &row, hash);
    sqlite3_bind_int64(st, 1, row.seq);
    sqlite3_bind_int64(st, 2, row.ts);
    for (i = 0; i < MR_AUDIT_NFIELDS; i++)
        if (v[i])
            sqlite3_bind_text(st, 3 + i, v[i], (int)row.f[i].n, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 3 + i);
    sqlite3_bind_blob(st, 13, s->head_hash, MR_AUDIT_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 14, hash, MR_AUDIT_HASH_BYTES, SQLITE_STATIC);
    err = step_done(s, st, d, "audit");
    if (!err) {
        s->head_seq = row.seq;
        memcpy(s->head_hash, hash, sizeof(hash));
        s->txn_audited = 1;
    }
    return err;
}

/* ---- security documents ------------------------------------------------ */

static enum mr_err sq_sec_get(struct mr_store *base, const char *kind,
                              const char *name, struct mr_buf *json,
                              int64_t *version, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    int rc;

    rc = prep_cached(s,
                     "SELECT version, json FROM secdoc WHERE kind = ?1 AND"
                     " name = ?2 ORDER BY version DESC LIMIT 1",
                     &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare security document");
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (version)
            *version = sqlite3_column_int64(st, 0);
        if (json) {
            mr_buf_reset(json);
            err = mr_buf_add(json, (const char *)sqlite3_column_text(st, 1),
                             (size_t)sqlite3_column_bytes(st, 1));
            if (err)
                mr_diag_set(d, err, "security document: %s", mr_strerror(err));
        }
    } else if (rc == SQLITE_DONE) {
        err = mr_diag_set(d, MR_ENOTFOUND, "no %s \"%s\"", kind, name);
    } else {
        err = map_rc(s, rc, d, "security document");
    }
    uncache(s, st);
    return err;
}

static enum mr_err sq_sec_put(struct mr_store *base, const char *kind,
                              const char *name, const char *json,
                              int64_t expect, const char *author,
                              struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    int64_t cur = 0;
    enum mr_err err;
    int rc;

    err = sq_sec_get(base, kind, name, NULL, &cur, d);
    if (err && err != MR_ENOTFOUND)
        return err;
    if (err)
        cur = 0;
    mr_diag_clear(d);
    if (expect == -1 && cur)
        return mr_diag_set(d, MR_EEXISTS, "%s \"%s\" already exists", kind,
                           name);
    if (expect > 0 && cur != expect)
        return mr_diag_set(d, MR_ECONFLICT,
                           "%s \"%s\" changed meanwhile (version %lld, "
                           "expected %lld)",
                           kind, name, (long long)cur, (long long)expect);
    rc = prep_cached(s,
                     "INSERT INTO secdoc(kind, name, version, ts, author,"
                     " json) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                     &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare security document");
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cur + 1);
    sqlite3_bind_int64(st, 4, mr_time_now_ms());
    sqlite3_bind_text(st, 5, author ? author : "unknown", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, json, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    uncache(s, st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "write security document");
    return MR_OK;
}

static enum mr_err sq_sec_list(struct mr_store *base, const char *kind,
                               mr_sec_cb cb, void *ctx, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    enum mr_err err = MR_OK;
    int rc, r;

    rc = prep_cached(s,
                     "SELECT name, max(version), json FROM secdoc"
                     " WHERE kind = ?1 GROUP BY name ORDER BY name",
                     &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare security documents");
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = cb(ctx, (const char *)sqlite3_column_text(st, 0),
               sqlite3_column_int64(st, 1),
               (const char *)sqlite3_column_text(st, 2));
        if (r) {
            err = cb_result(r);
            break;
        }
    }
    if (!err && rc != SQLITE_DONE)
        err = map_rc(s, rc, d, "security documents");
    uncache(s, st);
    return err;
}

static const char *col_or_null(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

static enum mr_err sq_audit_query(struct mr_store *base,
                                  const struct mr_audit_filter *f,
                                  mr_audit_cb cb, void *ctx, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    struct mr_audit_entry e;
    char sql[512];
    size_t n;
    int rc, r;
    enum mr_err err = MR_OK;

    /* Only fixed fragments go into the SQL; values are bound. Each
     * condition has its own parameter number. The planner picks the
     * index: patient, actor, ts, or the partial one of emergencies. */
    n = (size_t)snprintf(sql, sizeof(sql),
                         "SELECT " AUDIT_COLS " FROM audit WHERE 1");
    if (f->patient)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND patient = ?1");
    if (f->actor)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND actor = ?2");
    if (f->action)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND action = ?3");
    if (f->since)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND ts >= ?4");
    if (f->until)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND ts < ?5");
    if (f->emergency)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n,
                              " AND detail GLOB 'emergency*'");
    snprintf(sql + n, sizeof(sql) - n, " ORDER BY seq");
    rc = prep_cached(s, sql, &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare audit search");
    if (f->patient)
        sqlite3_bind_text(st, 1, f->patient, -1, SQLITE_STATIC);
    if (f->actor)
        sqlite3_bind_text(st, 2, f->actor, -1, SQLITE_STATIC);
    if (f->action)
        sqlite3_bind_text(st, 3, f->action, -1, SQLITE_STATIC);
    if (f->since)
        sqlite3_bind_int64(st, 4, f->since);
    if (f->until)
        sqlite3_bind_int64(st, 5, f->until);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e.ts = sqlite3_column_int64(st, 1);
        e.actor = col_or_null(st, 2);
        e.role = col_or_null(st, 3);
        e.source = col_or_null(st, 4);
        e.action = col_or_null(st, 5);
        e.outcome = col_or_null(st, 6);
        e.type = col_or_null(st, 7);
        e.id = col_or_null(st, 8);
        e.patient = col_or_null(st, 9);
        e.query = col_or_null(st, 10);
        e.detail = col_or_null(st, 11);
        r = cb(ctx, sqlite3_column_int64(st, 0), &e);
        if (r) {
            err = cb_result(r);
            break;
        }
    }
    if (!err && rc != SQLITE_DONE)
        err = map_rc(s, rc, d, "audit search");
    uncache(s, st);
    return err;
}

/* Every entry, or one patient's: the audit search with one filter. */
static enum mr_err sq_audit_scan(struct mr_store *base, const char *patient,
                                 mr_audit_cb cb, void *ctx, struct mr_diag *d)
{
    struct mr_audit_filter f;

    memset(&f, 0, sizeof(f));
    f.patient = patient;
    return sq_audit_query(base, &f, cb, ctx, d);
}

static enum mr_err sq_audit_chain(struct mr_store *base,
                                  const struct mr_audit_chain_cb *cb, void *ctx,
                                  struct mr_diag *d)
{
    static const char *const sql[] = {
        "SELECT key_id, public_key, created FROM audit_key"
        " ORDER BY created, key_id",
        "SELECT seq, ts, hash, key_id, sig FROM audit_checkpoint ORDER BY seq",
        "SELECT " AUDIT_COLS ", prev, hash FROM audit ORDER BY seq",
    };
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    struct mr_audit_row row;
    enum mr_err err = MR_OK;
    int rc = SQLITE_OK, r = 0;
    size_t i;

    for (i = 0; i < 3 && !err; i++) {
        rc = sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL);
        if (rc != SQLITE_OK)
            return map_rc(s, rc, d, "prepare audit chain");
        while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (i == 0)
                r = cb->key(ctx, col_or_null(st, 0), sqlite3_column_blob(st, 1),
                            (size_t)sqlite3_column_bytes(st, 1),
                            sqlite3_column_int64(st, 2));
            else if (i == 1)
                r = cb->checkpoint(
                    ctx, sqlite3_column_int64(st, 0),
                    sqlite3_column_int64(st, 1), sqlite3_column_blob(st, 2),
                    (size_t)sqlite3_column_bytes(st, 2), col_or_null(st, 3),
                    sqlite3_column_blob(st, 4),
                    (size_t)sqlite3_column_bytes(st, 4));
            else {
                row_cols(st, 0, &row);
                r = cb->entry(ctx, &row, sqlite3_column_blob(st, 12),
                              (size_t)sqlite3_column_bytes(st, 12),
                              sqlite3_column_blob(st, 13),
                              (size_t)sqlite3_column_bytes(st, 13));
            }
        }
        if (r)
            err = cb_result(r);
        else if (rc != SQLITE_DONE)
            err = map_rc(s, rc, d, "audit chain");
        sqlite3_finalize(st);
        st = NULL;
    }
    return err;
}

static void sq_audit_signer(struct mr_store *base, struct mr_audit_signer *out)
{
    struct sq_store *s = (struct sq_store *)base;

    memset(out, 0, sizeof(*out));
    out->key_path = s->key_path;
    if (s->readonly)
        out->state = MR_SIGNER_NONE;
    else if (s->have_key)
        out->state = MR_SIGNER_OK;
    else
        out->state = MR_SIGNER_MISSING;
    if (s->have_key)
        memcpy(out->key_id, s->key.id, sizeof(out->key_id));
}

static enum mr_err sq_audit_new_key(struct mr_store *base, char *key_id,
                                    struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    struct mr_audit_key k;
    enum mr_err err;

    if (s->readonly)
        return mr_diag_set(d, MR_EUNSUPPORTED,
                           "%s: opened read-only: cannot make a signing key",
                           s->path);
    if (!sqlite3_get_autocommit(s->db))
        return mr_diag_set(d, MR_EUSAGE,
                           "a new audit key is made outside transactions");
    err = mr_auditkey_create(s->key_path, &k, d);
    if (err)
        return err;
    mr_auditkey_wipe(&s->key);
    s->key = k;
    mr_auditkey_wipe(&k);
    s->have_key = 1;
    s->key_missing = 0;
    err = key_register(s, d);
    if (!err)
        memcpy(key_id, s->key.id, MR_AUDIT_KEY_ID_LEN + 1);
    return err;
}

static enum mr_err check_count(struct sq_store *s, struct mr_buf *report,
                               const char *sql, const char *what, int *bad,
                               struct mr_diag *d)
{
    int64_t n = 0;
    int rc = query_int(s, sql, &n);

    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, what);
    if (n) {
        *bad = 1;
        if (mr_buf_addf(report, "%lld %s\n", (long long)n, what))
            return mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    return MR_OK;
}

/* Every current resource has the search entries its JSON calls for: for
 * each index kind its extraction yields, at least one stored row. (A
 * group commit once lost whole kinds of a resource's entries, leaving it
 * stored but unfindable.) Reports the first few. */
static enum mr_err check_index(struct sq_store *s, struct mr_buf *report,
                               int *bad, struct mr_diag *d)
{
    sqlite3_stmt *st = NULL, *has[MR_IX_URI + 1] = {0};
    struct mr_ix ix;
    enum mr_err err = MR_OK;
    int64_t missing = 0;
    int rc, k;
    char sql[128];

    rc = sqlite3_prepare_v2(s->db,
                            "SELECT r.rid, r.type, r.id, v.json FROM resource"
                            " r JOIN version v ON v.rid = r.rid AND"
                            " v.version = r.version WHERE r.deleted = 0",
                            -1, &st, NULL);
    for (k = 0; rc == SQLITE_OK && k <= MR_IX_URI; k++) {
        snprintf(sql, sizeof(sql), "SELECT 1 FROM ix_%s WHERE rid = ?1",
                 ix_kinds[k].name);
        rc = sqlite3_prepare_v2(s->db, sql, -1, &has[k], NULL);
    }
    if (rc != SQLITE_OK)
        err = map_rc(s, rc, d, "index check");
    mr_ix_init(&ix);
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 1);
        json_t *j = json_loadb((const char *)sqlite3_column_blob(st, 3),
                               (size_t)sqlite3_column_bytes(st, 3), 0, NULL);
        unsigned kinds = 0;
        size_t i;

        mr_ix_reset(&ix);
        if (!j || !type || mr_fhir_extract(j, type, &ix)) {
            json_decref(j);
            continue; /* invalid JSON is reported by its own check */
        }
        json_decref(j);
        for (i = 0; i < ix.n; i++)
            kinds |= 1u << ix.v[i].kind;
        for (k = 0; k <= MR_IX_URI; k++) {
            if (!(kinds & (1u << k)))
                continue;
            sqlite3_bind_int64(has[k], 1, sqlite3_column_int64(st, 0));
            rc = sqlite3_step(has[k]);
            sqlite3_reset(has[k]);
            if (rc == SQLITE_DONE) {
                if (++missing <= 10 &&
                    mr_buf_addf(report,
                                "index: %s/%s has no %s search entries "
                                "(rebuild: medrec export, then import into "
                                "a new database)\n",
                                type, sqlite3_column_text(st, 2),
                                ix_kinds[k].name))
                    err = mr_diag_set(d, MR_ENOMEM, "out of memory");
                break;
            }
            if (rc != SQLITE_ROW) {
                err = map_rc(s, rc, d, "index check");
                break;
            }
        }
    }
    if (!err && rc != SQLITE_DONE)
        err = map_rc(s, rc, d, "index check");
    if (!err && missing) {
        *bad = 1;
        if (mr_buf_addf(report, "index: %lld resources miss search entries\n",
                        (long long)missing))
            err = mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    mr_ix_release(&ix);
    sqlite3_finalize(st);
    for (k = 0; k <= MR_IX_URI; k++)
        sqlite3_finalize(has[k]);
    return err;
}

static enum mr_err sq_check(struct mr_store *base, struct mr_buf *report,
                            struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    int rc, bad = 0;
    enum mr_err err = MR_OK;

    rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "integrity check");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t && strcmp(t, "ok") != 0) {
            bad = 1;
            if (mr_buf_addf(report, "storage: %s\n", t))
                err = MR_ENOMEM;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "integrity check");
    if (err)
        return mr_diag_set(d, err, "out of memory");
    err =
        check_count(s, report, "SELECT count(*) FROM pragma_foreign_key_check",
                    "foreign key violations", &bad, d);
    if (!err)
        err = check_count(s, report,
                          "SELECT count(*) FROM resource r WHERE NOT EXISTS"
                          " (SELECT 1 FROM version v WHERE v.rid = r.rid"
                          " AND v.version = r.version)",
                          "resources without their current version", &bad, d);
    if (!err)
        err = check_count(s, report,
                          "SELECT count(*) FROM version v JOIN resource r"
                          " ON r.rid = v.rid WHERE v.version > r.version",
                          "versions newer than the current one", &bad, d);
    if (!err)
        err = check_count(s, report,
                          "SELECT count(*) FROM resource r JOIN version v"
                          " ON v.rid = r.rid AND v.version = r.version"
                          " WHERE v.deleted <> r.deleted"
                          " OR (v.deleted = 0 AND (v.json IS NULL"
                          " OR NOT json_valid(v.json)))",
                          "current versions with missing or invalid JSON", &bad,
                          d);
    if (!err)
        err = check_index(s, report, &bad, d);
    if (err)
        return err;
    if (bad)
        return mr_diag_set(d, MR_ECORRUPT, "%s: integrity check failed",
                           s->path);
    return MR_OK;
}

static enum mr_err sq_shared_tokens(struct mr_store *base, uint32_t key,
                                    const char *system, int64_t *count,
                                    char *first, size_t cap, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(
        s->db,
        "SELECT code, count(*) OVER () FROM ix_token t JOIN resource r"
        " ON r.rid = t.rid AND r.deleted = 0"
        " WHERE t.key = ?1 AND t.system = ?2"
        " GROUP BY code HAVING count(DISTINCT t.rid) > 1 LIMIT 1",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare shared tokens");
    sqlite3_bind_int64(st, 1, key);
    sqlite3_bind_text(st, 2, system, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *count = 0;
    if (cap)
        first[0] = '\0';
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 1);
        copy_col(first, cap, st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_rc(s, rc, d, "shared tokens");
    return MR_OK;
}

static int sq_schema(struct mr_store *base)
{
    return ((struct sq_store *)base)->schema;
}

static enum mr_err sq_counts(struct mr_store *base, int64_t *resources,
                             int64_t *versions, int64_t *audits,
                             struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    int rc;

    rc = query_int(s, "SELECT count(*) FROM resource WHERE deleted = 0",
                   resources);
    if (rc == SQLITE_OK)
        rc = query_int(s, "SELECT count(*) FROM version", versions);
    if (rc == SQLITE_OK)
        rc = query_int(s, "SELECT count(*) FROM audit", audits);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "counts");
    return MR_OK;
}

/* ---- the HL7 v2 interface log ---------------------------------------- */

static void bind_blob_or_null(sqlite3_stmt *st, int i, const char *v,
                              size_t len)
{
    if (v)
        sqlite3_bind_blob64(st, i, v, len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static enum mr_err sq_hl7_add(struct mr_store *base,
                              const struct mr_hl7_row *row, int64_t *id,
                              struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    int64_t now = mr_time_now_ms();
    int rc;

    rc = prep_cached(s,
                     "INSERT INTO hl7_message(received, sender, control_id,"
                     " type, source, raw, status, ack_code, ack, detail,"
                     " patient, resources, updated) VALUES(?1, ?2, ?3, ?4,"
                     " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?1)",
                     &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare interface log");
    sqlite3_bind_int64(st, 1, row->received ? row->received : now);
    sqlite3_bind_text(st, 2, row->sender ? row->sender : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, row->control_id ? row->control_id : "", -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 4, row->type ? row->type : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, row->source ? row->source : "", -1, SQLITE_STATIC);
    bind_blob_or_null(st, 6, row->raw, row->raw_len);
    sqlite3_bind_text(st, 7, row->status ? row->status : "received", -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 8, row->ack_code ? row->ack_code : "", -1,
                      SQLITE_STATIC);
    bind_blob_or_null(st, 9, row->ack, row->ack_len);
    bind_text_or_null(st, 10, row->detail);
    bind_text_or_null(st, 11, row->patient);
    bind_text_or_null(st, 12, row->resources);
    rc = sqlite3_step(st);
    uncache(s, st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return mr_diag_set(d, MR_EEXISTS,
                           "message %s from %s is already in the log",
                           row->control_id, row->sender);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "write interface log");
    *id = sqlite3_last_insert_rowid(s->db);
    return MR_OK;
}

static enum mr_err sq_hl7_update(struct mr_store *base,
                                 const struct mr_hl7_row *row, int repeat,
                                 struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = prep_cached(s,
                     repeat ? "UPDATE hl7_message SET repeats = repeats + 1,"
                              " updated = ?1 WHERE id = ?2"
                            : "UPDATE hl7_message SET updated = ?1, status ="
                              " ?3, ack_code = ?4, ack = ?5, detail = ?6,"
                              " patient = ?7, resources = ?8 WHERE id = ?2",
                     &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare interface log");
    sqlite3_bind_int64(st, 1, mr_time_now_ms());
    sqlite3_bind_int64(st, 2, row->id);
    if (!repeat) {
        sqlite3_bind_text(st, 3, row->status ? row->status : "", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 4, row->ack_code ? row->ack_code : "", -1,
                          SQLITE_STATIC);
        bind_blob_or_null(st, 5, row->ack, row->ack_len);
        bind_text_or_null(st, 6, row->detail);
        bind_text_or_null(st, 7, row->patient);
        bind_text_or_null(st, 8, row->resources);
    }
    rc = sqlite3_step(st);
    uncache(s, st);
    if (rc != SQLITE_DONE)
        return map_rc(s, rc, d, "update interface log");
    if (sqlite3_changes(s->db) != 1)
        return mr_diag_set(d, MR_ENOTFOUND, "no message %lld in the log",
                           (long long)row->id);
    return MR_OK;
}

static enum mr_err sq_hl7_query(struct mr_store *base,
                                const struct mr_hl7_filter *f, mr_hl7_cb cb,
                                void *ctx, struct mr_diag *d)
{
    struct sq_store *s = (struct sq_store *)base;
    sqlite3_stmt *st = NULL;
    struct mr_hl7_row row;
    enum mr_err err = MR_OK;
    char sql[640];
    size_t n;
    int rc, r;

    /* Fixed fragments only; values are bound. */
    n = (size_t)snprintf(
        sql, sizeof(sql),
        "SELECT id, received, updated, repeats, sender, control_id, type,"
        " source, status, ack_code, detail, patient, resources, ack, %s"
        " FROM hl7_message WHERE 1",
        f->with_raw ? "raw" : "NULL");
    if (f->id)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND id = ?1");
    if (f->sender)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n,
                              " AND sender = ?2 AND control_id = ?3 AND"
                              " status <> 'rejected'");
    if (f->status)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND status = ?4");
    if (f->type)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND type = ?5");
    snprintf(sql + n, sizeof(sql) - n, " ORDER BY id DESC LIMIT ?6");
    rc = prep_cached(s, sql, &st);
    if (rc != SQLITE_OK)
        return map_rc(s, rc, d, "prepare interface log");
    if (f->id)
        sqlite3_bind_int64(st, 1, f->id);
    if (f->sender) {
        sqlite3_bind_text(st, 2, f->sender, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, f->control_id ? f->control_id : "", -1,
                          SQLITE_STATIC);
    }
    if (f->status)
        sqlite3_bind_text(st, 4, f->status, -1, SQLITE_STATIC);
    if (f->type)
        sqlite3_bind_text(st, 5, f->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, f->limit > 0 ? f->limit : -1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&row, 0, sizeof(row));
        row.id = sqlite3_column_int64(st, 0);
        row.received = sqlite3_column_int64(st, 1);
        row.updated = sqlite3_column_int64(st, 2);
        row.repeats = sqlite3_column_int64(st, 3);
        row.sender = col_or_null(st, 4);
        row.control_id = col_or_null(st, 5);
        row.type = col_or_null(st, 6);
        row.source = col_or_null(st, 7);
        row.status = col_or_null(st, 8);
        row.ack_code = col_or_null(st, 9);
        row.detail = col_or_null(st, 10);
        row.patient = col_or_null(st, 11);
        row.resources = col_or_null(st, 12);
        row.ack = sqlite3_column_blob(st, 13);
        row.ack_len = (size_t)sqlite3_column_bytes(st, 13);
        row.raw = sqlite3_column_blob(st, 14);
        row.raw_len = (size_t)sqlite3_column_bytes(st, 14);
        r = cb(ctx, &row);
        if (r) {
            err = cb_result(r);
            break;
        }
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = map_rc(s, rc, d, "interface log");
    uncache(s, st);
    return err;
}

static const struct mr_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .put = sq_put,
    .read = sq_read,
    .history = sq_history,
    .scan = sq_scan,
    .search = sq_search,
    .next_seq = sq_next_seq,
    .seq_used = sq_seq_used,
    .audit = sq_audit,
    .audit_scan = sq_audit_scan,
    .check = sq_check,
    .schema = sq_schema,
    .shared_tokens = sq_shared_tokens,
    .counts = sq_counts,
    .search_ex = sq_search_ex,
    .history_all = sq_history_all,
    .compartment = sq_compartment,
    .sec_get = sq_sec_get,
    .sec_put = sq_sec_put,
    .sec_list = sq_sec_list,
    .audit_query = sq_audit_query,
    .audit_chain = sq_audit_chain,
    .audit_signer = sq_audit_signer,
    .audit_new_key = sq_audit_new_key,
    .hl7_add = sq_hl7_add,
    .hl7_update = sq_hl7_update,
    .hl7_query = sq_hl7_query,
    .background_checkpoints = sq_background_checkpoints,
};
