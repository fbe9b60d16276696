/* Unit tests for the tamper-evident audit trail: the canonical encoding
 * and hash (against an independently computed vector), the signing key
 * file, checkpoint signatures, the verifier on good and damaged chains,
 * and the SQLite store: chaining across transactions, rollbacks,
 * savepoints and two connections, checkpoints, a missing key, migration
 * of a version-2 trail, the triggers, and filtered audit queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "security/auditchain.h"
#include "store/schema.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[128];
    char key[160];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/mr-test-auditchain-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    snprintf(f->key, sizeof(f->key), "%s.audit-key", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char sh[160];

    snprintf(sh, sizeof(sh), "rm -rf %s", f->dir);
    if (system(sh) != 0)
        return -1;
    free(f);
    return 0;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
}

static void row_set(struct mr_audit_row *r, int64_t seq, int64_t ts,
                    const char *const v[MR_AUDIT_NFIELDS])
{
    int i;

    r->seq = seq;
    r->ts = ts;
    for (i = 0; i < MR_AUDIT_NFIELDS; i++)
        mr_audit_text_set(&r->f[i], v[i]);
}

/* ---- encoding and hash -------------------------------------------------- */

static void test_hash_vector(void **state)
{
    /* Computed with Python's hashlib.blake2b(digest_size=32) from the
     * encoding in docs/audit.md. */
    static const char *const f1[] = {"alice", "clinician", "cli", "read",
                                     "ok",    "Patient",   "p1",  "Patient/p1",
                                     NULL,    ""};
    static const char *const f2[] = {"bob",
                                     "auditor",
                                     NULL,
                                     "audit-search",
                                     "ok",
                                     NULL,
                                     NULL,
                                     "Patient/p1",
                                     "patient=Patient/p1",
                                     "emergency: \xc3\xbc"};
    unsigned char zero[32] = {0}, h1[32], h2[32];
    char x[65];
    struct mr_audit_row r;

    (void)state;
    row_set(&r, 1, 1700000000000LL, f1);
    mr_auditchain_hash(zero, &r, h1);
    hex(h1, 32, x);
    assert_string_equal(
        x, "43d2a7cc7ff3a36290e979e7627c097cac745c8dbe5b28737fe647d0476aefe8");
    row_set(&r, 2, 1700000000001LL, f2);
    mr_auditchain_hash(h1, &r, h2);
    hex(h2, 32, x);
    assert_string_equal(
        x, "5737a141765f8659e47ce5fb7bd4434fdbb1c62800d72e0945fa6f91f1baaf61");
}

static void test_hash_unambiguous(void **state)
{
    const char *a[MR_AUDIT_NFIELDS] = {"ab", "c", "s", "read", "ok"};
    const char *b[MR_AUDIT_NFIELDS] = {"a", "bc", "s", "read", "ok"};
    unsigned char zero[32] = {0}, one[32] = {1}, ha[32], hb[32];
    struct mr_audit_row r;

    (void)state;
    row_set(&r, 1, 5, a);
    mr_auditchain_hash(zero, &r, ha);
    /* The same bytes split differently between fields. */
    row_set(&r, 1, 5, b);
    mr_auditchain_hash(zero, &r, hb);
    assert_memory_not_equal(ha, hb, 32);
    /* NULL is not "". */
    a[9] = "";
    row_set(&r, 1, 5, a);
    mr_auditchain_hash(zero, &r, hb);
    assert_memory_not_equal(ha, hb, 32);
    a[9] = NULL;
    /* seq, ts and the previous hash all count. */
    row_set(&r, 2, 5, a);
    mr_auditchain_hash(zero, &r, hb);
    assert_memory_not_equal(ha, hb, 32);
    row_set(&r, 1, 6, a);
    mr_auditchain_hash(zero, &r, hb);
    assert_memory_not_equal(ha, hb, 32);
    row_set(&r, 1, 5, a);
    mr_auditchain_hash(one, &r, hb);
    assert_memory_not_equal(ha, hb, 32);
    /* And it is deterministic. */
    mr_auditchain_hash(zero, &r, hb);
    assert_memory_equal(ha, hb, 32);
}

/* ---- the key file and signatures ---------------------------------------- */

static void test_key_file(void **state)
{
    struct fx *f = *state;
    struct mr_audit_key k1, k2, k3;
    struct mr_diag d;
    struct stat sb;
    unsigned char h[32] = {7}, sig[64];
    FILE *fp;

    assert_int_equal(mr_auditkey_load(f->key, &k1, &d), MR_ENOTFOUND);
    assert_int_equal(mr_auditkey_create(f->key, &k1, &d), MR_OK);
    assert_int_equal(stat(f->key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(strlen(k1.id), MR_AUDIT_KEY_ID_LEN);
    assert_int_equal(mr_auditkey_create(f->key, &k2, &d), MR_EEXISTS);
    assert_int_equal(mr_auditkey_load(f->key, &k2, &d), MR_OK);
    assert_memory_equal(k1.pk, k2.pk, 32);
    assert_string_equal(k1.id, k2.id);

    mr_auditchain_sign(&k1, 42, 1000, h, sig);
    assert_true(mr_auditchain_sig_ok(k2.pk, 42, 1000, h, sig));
    assert_false(mr_auditchain_sig_ok(k2.pk, 43, 1000, h, sig));
    assert_false(mr_auditchain_sig_ok(k2.pk, 42, 1001, h, sig));
    h[0] ^= 1;
    assert_false(mr_auditchain_sig_ok(k2.pk, 42, 1000, h, sig));

    /* Readable by others: refused, like ssh does. */
    assert_int_equal(chmod(f->key, 0644), 0);
    assert_int_equal(mr_auditkey_load(f->key, &k3, &d), MR_EDENIED);
    assert_non_null(strstr(d.msg, "chmod 600"));
    assert_int_equal(chmod(f->key, 0600), 0);
    /* Not a key. */
    fp = fopen(f->key, "w");
    assert_non_null(fp);
    fputs("# nothing here\nnot hex\n", fp);
    fclose(fp);
    assert_int_equal(mr_auditkey_load(f->key, &k3, &d), MR_EINVALID);
    mr_auditkey_wipe(&k1);
    mr_auditkey_wipe(&k2);
}

/* ---- the verifier on synthetic chains ----------------------------------- */

#define N 20

struct chain {
    struct mr_audit_row r[N];
    unsigned char prev[N][32], hash[N][32];
    char actor[N][16];
    struct mr_audit_key k;
};

static void make_chain(struct chain *c)
{
    unsigned char prev[32] = {0};
    const char *v[MR_AUDIT_NFIELDS] = {NULL,      "clinician", "cli", "read",
                                       "ok",      "Patient",   "p1",  NULL,
                                       "q=1&x=2", NULL};
    int i;

    for (i = 0; i < N; i++) {
        snprintf(c->actor[i], sizeof(c->actor[i]), "user%d", i);
        v[0] = c->actor[i];
        row_set(&c->r[i], i + 1, 1000 + i, v);
        memcpy(c->prev[i], prev, 32);
        mr_auditchain_hash(prev, &c->r[i], c->hash[i]);
        memcpy(prev, c->hash[i], 32);
    }
}

/* Checkpoints at the given entries (1-based), signed by c->k unless
 * bad_sig names one of them. Returns whether the trail passed. */
static int verify(struct chain *c, const int *ck, int nck, int skip,
                  int bad_sig, struct mr_auditchain_verifier *v)
{
    unsigned char sig[64];
    int i;

    mr_auditchain_verifier_init(v);
    assert_int_equal(mr_auditchain_add_key(v, c->k.id, c->k.pk, 32), MR_OK);
    for (i = 0; i < nck; i++) {
        mr_auditchain_sign(&c->k, ck[i], 5000 + ck[i], c->hash[ck[i] - 1], sig);
        if (ck[i] == bad_sig)
            sig[3] ^= 0x40;
        assert_int_equal(mr_auditchain_add_checkpoint(v, ck[i], 5000 + ck[i],
                                                      c->hash[ck[i] - 1], 32,
                                                      c->k.id, sig, 64),
                         MR_OK);
    }
    for (i = 0; i < N; i++) {
        if (i + 1 == skip)
            continue;
        if (mr_auditchain_feed(v, &c->r[i], c->prev[i], 32, c->hash[i], 32))
            break;
    }
    return mr_auditchain_finish(v);
}

static void test_verifier(void **state)
{
    struct chain *c = calloc(1, sizeof(*c));
    struct mr_auditchain_verifier v;
    static const int ck[] = {5, 10, 20};
    unsigned char zero[32] = {0};

    (void)state;
    assert_non_null(c);
    make_chain(c);
    {
        unsigned char seed[32];
        randombytes_buf(seed, sizeof(seed));
        crypto_sign_seed_keypair(c->k.pk, c->k.sk, seed);
        mr_auditkey_id(c->k.pk, c->k.id);
    }

    /* Intact. */
    assert_true(verify(c, ck, 3, 0, 0, &v));
    assert_int_equal(v.entries, N);
    assert_int_equal(v.signed_seq, 20);
    assert_int_equal(v.checkpoints, 3);
    mr_auditchain_verifier_release(&v);

    /* A changed field. */
    c->actor[7][0] = 'X';
    assert_false(verify(c, ck, 3, 0, 0, &v));
    assert_int_equal(v.bad_seq, 8);
    assert_non_null(strstr(v.problem, "audit entry 8: hash does not match"));
    mr_auditchain_verifier_release(&v);
    c->actor[7][0] = 'u';

    /* A removed entry (no checkpoint on it): the gap. */
    assert_false(verify(c, ck, 3, 12, 0, &v));
    assert_int_equal(v.bad_seq, 13);
    assert_non_null(strstr(v.problem, "entry 12 before it is missing"));
    mr_auditchain_verifier_release(&v);

    /* A broken link. */
    c->prev[3][0] ^= 1;
    assert_false(verify(c, ck, 3, 0, 0, &v));
    assert_int_equal(v.bad_seq, 4);
    assert_non_null(strstr(v.problem, "changed or removed entries before"));
    mr_auditchain_verifier_release(&v);
    c->prev[3][0] ^= 1;

    /* A forged signature; the chain itself is fine. */
    assert_false(verify(c, ck, 3, 0, 10, &v));
    assert_int_equal(v.bad_seq, 10);
    assert_non_null(strstr(v.problem, "signature does not verify"));
    mr_auditchain_verifier_release(&v);

    /* Truncated: the last entries gone, their checkpoint left. */
    {
        int i;
        mr_auditchain_verifier_init(&v);
        unsigned char sig[64];
        assert_int_equal(mr_auditchain_add_key(&v, c->k.id, c->k.pk, 32),
                         MR_OK);
        mr_auditchain_sign(&c->k, 20, 1, c->hash[19], sig);
        assert_int_equal(mr_auditchain_add_checkpoint(&v, 20, 1, c->hash[19],
                                                      32, c->k.id, sig, 64),
                         MR_OK);
        for (i = 0; i < 15; i++)
            assert_int_equal(mr_auditchain_feed(&v, &c->r[i], c->prev[i], 32,
                                                c->hash[i], 32),
                             0);
        assert_false(mr_auditchain_finish(&v));
        assert_non_null(strstr(v.problem, "truncated"));
        mr_auditchain_verifier_release(&v);

        /* Cut short with its checkpoint: only an anchor tells. */
        mr_auditchain_verifier_init(&v);
        for (i = 0; i < 15; i++)
            assert_int_equal(mr_auditchain_feed(&v, &c->r[i], c->prev[i], 32,
                                                c->hash[i], 32),
                             0);
        assert_true(mr_auditchain_finish(&v));
        mr_auditchain_verifier_release(&v);
        mr_auditchain_verifier_init(&v);
        v.anchor_seq = 18;
        memcpy(v.anchor_hash, c->hash[17], 32);
        for (i = 0; i < 15; i++)
            assert_int_equal(mr_auditchain_feed(&v, &c->r[i], c->prev[i], 32,
                                                c->hash[i], 32),
                             0);
        assert_false(mr_auditchain_finish(&v));
        assert_non_null(strstr(v.problem, "anchor entry 18 is missing"));
        mr_auditchain_verifier_release(&v);
    }

    /* Rewritten: entry 7 changed and every hash from it on recomputed, so
     * the chain is consistent; the checkpoint at 10, signed before, is
     * not. */
    {
        unsigned char sig[3][64];
        int i;
        for (i = 0; i < 3; i++)
            mr_auditchain_sign(&c->k, ck[i], 7, c->hash[ck[i] - 1], sig[i]);
        c->actor[6][0] = 'X';
        for (i = 6; i < N; i++) {
            memcpy(c->prev[i], c->hash[i - 1], 32);
            mr_auditchain_hash(c->prev[i], &c->r[i], c->hash[i]);
        }
        mr_auditchain_verifier_init(&v);
        assert_int_equal(mr_auditchain_add_key(&v, c->k.id, c->k.pk, 32),
                         MR_OK);
        for (i = 0; i < 3; i++)
            assert_int_equal(
                mr_auditchain_add_checkpoint(&v, ck[i], 7, c->hash[ck[i] - 1],
                                             32, c->k.id, sig[i], 64),
                MR_OK);
        /* Checkpoints 10 and 20 were signed over other hashes. */
        assert_int_equal(v.bad_seq, 10);
        mr_auditchain_verifier_release(&v);
        /* With the original hashes in the checkpoints (as stored). */
        mr_auditchain_verifier_init(&v);
        assert_int_equal(mr_auditchain_add_key(&v, c->k.id, c->k.pk, 32),
                         MR_OK);
        c->actor[6][0] = 'u';
        {
            struct chain *o = calloc(1, sizeof(*o));
            assert_non_null(o);
            make_chain(o);
            for (i = 0; i < 3; i++)
                assert_int_equal(mr_auditchain_add_checkpoint(
                                     &v, ck[i], 7, o->hash[ck[i] - 1], 32,
                                     c->k.id, sig[i], 64),
                                 MR_OK);
            free(o);
        }
        assert_true(v.problem[0] == '\0');
        c->actor[6][0] = 'X';
        for (i = 0; i < N; i++)
            if (mr_auditchain_feed(&v, &c->r[i], c->prev[i], 32, c->hash[i],
                                   32))
                break;
        assert_false(mr_auditchain_finish(&v));
        assert_int_equal(v.bad_seq, 10);
        assert_non_null(strstr(v.problem, "signed hash does not match"));
        assert_int_equal(v.signed_seq, 5);
        mr_auditchain_verifier_release(&v);
        c->actor[6][0] = 'u';
        make_chain(c);
    }

    /* Unknown key and unsigned checkpoints are errors. */
    mr_auditchain_verifier_init(&v);
    assert_int_equal(
        mr_auditchain_add_checkpoint(&v, 5, 1, c->hash[4], 32, NULL, NULL, 0),
        MR_OK);
    assert_non_null(strstr(v.problem, "not signed"));
    mr_auditchain_verifier_release(&v);
    mr_auditchain_verifier_init(&v);
    assert_int_equal(mr_auditchain_add_checkpoint(&v, 5, 1, c->hash[4], 32,
                                                  "0123456789abcdef", zero, 64),
                     MR_OK);
    assert_non_null(strstr(v.problem, "not registered"));
    mr_auditchain_verifier_release(&v);
    free(c);
}

/* ---- the store ---------------------------------------------------------- */

#define CHECK(call)                                                            \
    do {                                                                       \
        struct mr_diag d_;                                                     \
        mr_diag_clear(&d_);                                                    \
        enum mr_err e_ = (call);                                               \
        if (e_)                                                                \
            fail_msg("%s: %s (%s)", #call, mr_errname(e_), mr_diag_msg(&d_));  \
    } while (0)

static enum mr_err put_audit(struct mr_store *st, const char *actor,
                             const char *action, const char *patient,
                             const char *detail, int64_t ts, struct mr_diag *d)
{
    struct mr_audit_entry e = {.ts = ts,
                               .actor = actor,
                               .role = "clinician",
                               .source = "cli",
                               .action = action,
                               .outcome = "ok",
                               .type = patient ? "Patient" : NULL,
                               .id = patient ? patient + 8 : NULL,
                               .patient = patient,
                               .detail = detail};
    return mr_store_audit(st, &e, d);
}

static int v_key(void *ctx, const char *id, const void *pk, size_t n,
                 int64_t created)
{
    (void)created;
    return mr_auditchain_add_key(ctx, id, pk, n);
}

static int v_ckpt(void *ctx, int64_t seq, int64_t ts, const void *h, size_t hl,
                  const char *id, const void *s, size_t sl)
{
    return mr_auditchain_add_checkpoint(ctx, seq, ts, h, hl, id, s, sl);
}

static int v_entry(void *ctx, const struct mr_audit_row *row, const void *p,
                   size_t pl, const void *h, size_t hl)
{
    mr_auditchain_feed(ctx, row, p, pl, h, hl);
    return 0;
}

/* Verify the stored trail; returns whether it is intact. */
static int store_verify(const char *path, struct mr_auditchain_verifier *v)
{
    static const struct mr_audit_chain_cb cb = {v_key, v_ckpt, v_entry};
    struct mr_store *st;
    struct mr_diag d;
    int ok;

    if (mr_store_open(path, MR_STORE_READONLY, &st, &d))
        fail_msg("open: %s", mr_diag_msg(&d));
    mr_auditchain_verifier_init(v);
    CHECK(mr_store_begin(st, 0, &d_));
    CHECK(mr_store_audit_chain(st, &cb, v, &d_));
    mr_store_rollback(st);
    mr_store_close(st);
    ok = mr_auditchain_finish(v);
    if (!ok)
        print_message("verify: %s\n", v->problem);
    return ok;
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    int rc;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static void test_store_chain(void **state)
{
    struct fx *f = *state;
    struct mr_store *st, *st2;
    struct mr_auditchain_verifier v;
    struct mr_audit_signer sg;
    struct stat sb;
    int i;

    CHECK(mr_store_open(f->path, MR_STORE_CREATE, &st, &d_));
    /* The key was made beside the database, private. */
    assert_int_equal(stat(f->key, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    mr_store_audit_signer(st, &sg);
    assert_int_equal(sg.state, MR_SIGNER_OK);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_key"), 1);

    CHECK(mr_store_begin(st, 1, &d_));
    for (i = 0; i < 3; i++)
        CHECK(put_audit(st, "alice", "read", "Patient/p1", NULL, 100 + i, &d_));
    CHECK(mr_store_commit(st, &d_));
    /* The first commit finds no checkpoint at all: one is due. */
    assert_int_equal(raw_int(f->path, "SELECT max(seq) FROM audit_checkpoint"),
                     3);

    /* A rolled-back transaction leaves the head where it was. */
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "bob", "read", NULL, NULL, 200, &d_));
    CHECK(put_audit(st, "bob", "read", NULL, NULL, 201, &d_));
    mr_store_rollback(st);
    /* So does a rolled-back savepoint (a failed job in a group commit). */
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "carol", "read", NULL, NULL, 300, &d_));
    CHECK(mr_store_savepoint(st, MR_SP_OPEN, &d_));
    CHECK(put_audit(st, "carol", "update", NULL, NULL, 301, &d_));
    CHECK(mr_store_savepoint(st, MR_SP_ROLLBACK, &d_));
    CHECK(put_audit(st, "carol", "read", NULL, NULL, 302, &d_));
    CHECK(mr_store_commit(st, &d_));

    /* Another connection writes in between. */
    CHECK(mr_store_open(f->path, 0, &st2, &d_));
    CHECK(mr_store_begin(st2, 1, &d_));
    CHECK(put_audit(st2, "dave", "read", NULL, NULL, 400, &d_));
    CHECK(mr_store_commit(st2, &d_));
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "alice", "read", NULL, NULL, 500, &d_));
    CHECK(mr_store_commit(st, &d_));
    mr_store_close(st2);
    mr_store_close(st);

    assert_true(store_verify(f->path, &v));
    assert_int_equal(v.entries, 7);
    /* Closing a handle that wrote entries signs them. */
    assert_int_equal(v.signed_seq, 7);
    mr_auditchain_verifier_release(&v);
    assert_int_equal(
        raw_int(f->path, "SELECT count(*) FROM audit WHERE actor = 'carol'"),
        2);

    /* The triggers: no update, no delete. */
    assert_int_not_equal(
        raw_exec(f->path, "UPDATE audit SET actor = 'x' WHERE seq = 2"),
        SQLITE_OK);
    assert_int_not_equal(
        raw_exec(f->path, "UPDATE audit SET hash = x'00' WHERE seq = 2"),
        SQLITE_OK);
    assert_int_not_equal(raw_exec(f->path, "DELETE FROM audit WHERE seq = 7"),
                         SQLITE_OK);
    assert_int_not_equal(raw_exec(f->path, "DELETE FROM audit_checkpoint"),
                         SQLITE_OK);

    /* Past the triggers: a changed entry is found. */
    assert_int_equal(raw_exec(f->path,
                              "DROP TRIGGER audit_append_only_u;"
                              "UPDATE audit SET patient = NULL WHERE seq = 2"),
                     SQLITE_OK);
    assert_false(store_verify(f->path, &v));
    assert_int_equal(v.bad_seq, 2);
    mr_auditchain_verifier_release(&v);
}

static void test_store_checkpoints(void **state)
{
    struct fx *f = *state;
    struct mr_store *st;
    struct mr_auditchain_verifier v;
    int i;

    CHECK(mr_store_open(f->path, MR_STORE_CREATE, &st, &d_));
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "a", "read", NULL, NULL, 1, &d_));
    CHECK(mr_store_commit(st, &d_));
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_checkpoint"),
                     1);
    /* 999 more: not yet due (the last one was just now). */
    CHECK(mr_store_begin(st, 1, &d_));
    for (i = 0; i < 999; i++)
        CHECK(put_audit(st, "a", "read", NULL, NULL, 2 + i, &d_));
    CHECK(mr_store_commit(st, &d_));
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_checkpoint"),
                     1);
    /* The thousandth since the last checkpoint makes one due. */
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "a", "read", NULL, NULL, 5000, &d_));
    CHECK(mr_store_commit(st, &d_));
    assert_int_equal(raw_int(f->path, "SELECT max(seq) FROM audit_checkpoint"),
                     1001);
    /* A commit without entries writes none; neither does a clean close
     * with nothing new. */
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(mr_store_commit(st, &d_));
    mr_store_close(st);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_checkpoint"),
                     2);
    assert_true(store_verify(f->path, &v));
    assert_int_equal(v.signed_seq, 1001);
    mr_auditchain_verifier_release(&v);
}

static void test_store_key_missing(void **state)
{
    struct fx *f = *state;
    struct mr_store *st;
    struct mr_auditchain_verifier v;
    struct mr_audit_signer sg;
    char id[MR_AUDIT_KEY_ID_LEN + 1];

    CHECK(mr_store_open(f->path, MR_STORE_CREATE, &st, &d_));
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "a", "read", NULL, NULL, 1, &d_));
    CHECK(mr_store_commit(st, &d_));
    mr_store_close(st);
    assert_int_equal(unlink(f->key), 0);

    /* Writes go on, nothing is signed, and no new key appears. */
    CHECK(mr_store_open(f->path, 0, &st, &d_));
    mr_store_audit_signer(st, &sg);
    assert_int_equal(sg.state, MR_SIGNER_MISSING);
    assert_string_equal(sg.key_path, f->key);
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "a", "read", NULL, NULL, 2, &d_));
    CHECK(put_audit(st, "a", "read", NULL, NULL, 3, &d_));
    CHECK(mr_store_commit(st, &d_));
    mr_store_close(st);
    assert_int_equal(access(f->key, F_OK), -1);
    assert_true(store_verify(f->path, &v));
    assert_int_equal(v.entries, 3);
    assert_int_equal(v.signed_seq, 1);
    mr_auditchain_verifier_release(&v);

    /* A new key: registered beside the old one; signing resumes. */
    CHECK(mr_store_open(f->path, 0, &st, &d_));
    CHECK(mr_store_audit_new_key(st, id, &d_));
    {
        struct mr_diag d;
        assert_int_equal(mr_store_audit_new_key(st, id, &d), MR_EEXISTS);
    }
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "a", "read", NULL, NULL, 4, &d_));
    CHECK(mr_store_commit(st, &d_));
    mr_store_close(st);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_key"), 2);
    assert_true(store_verify(f->path, &v));
    assert_int_equal(v.signed_seq, 4);
    assert_string_equal(v.signed_key, id);
    mr_auditchain_verifier_release(&v);
}

static void test_store_migrate_v2(void **state)
{
    struct fx *f = *state;
    struct mr_store *st;
    struct mr_auditchain_verifier v;
    sqlite3 *db;
    char sql[256];
    int i;

    /* A version-2 database with a trail, as an older medrec left it. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, mr__sqlite_migrations[0], NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, mr__sqlite_migrations[1], NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA application_id = 1297237315;"
                                  "PRAGMA user_version = 2",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (i = 0; i < 600; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO audit(ts, actor, role, source, action,"
                 " outcome, patient, detail) VALUES(%d, 'u%d', 'admin',"
                 " 'cli', 'read', 'ok', %s, %s)",
                 1000 + i, i % 7, i % 3 ? "'Patient/p1'" : "NULL",
                 i % 5 ? "NULL" : "''");
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);

    CHECK(mr_store_open(f->path, 0, &st, &d_));
    assert_int_equal(mr_store_schema(st), MR_STORE_SCHEMA_VERSION);
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "after", "read", NULL, NULL, 9999, &d_));
    CHECK(mr_store_commit(st, &d_));
    mr_store_close(st);
    assert_int_equal(
        raw_int(f->path, "SELECT count(*) FROM audit WHERE hash IS NULL"), 0);
    assert_true(store_verify(f->path, &v));
    assert_int_equal(v.entries, 601);
    assert_int_equal(v.signed_seq, 601);
    mr_auditchain_verifier_release(&v);
    /* Once chained, the backfill's way in is closed. */
    assert_int_not_equal(raw_exec(f->path,
                                  "UPDATE audit SET prev = x'00', hash = x'00'"
                                  " WHERE seq = 1"),
                         SQLITE_OK);
}

struct hits {
    int n;
    int64_t last;
};

static int count_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct hits *h = ctx;

    (void)e;
    assert_true(seq > h->last); /* oldest first */
    h->last = seq;
    h->n++;
    return 0;
}

static int query(struct mr_store *st, const struct mr_audit_filter *f)
{
    struct hits h = {0, 0};

    CHECK(mr_store_begin(st, 0, &d_));
    CHECK(mr_store_audit_query(st, f, count_cb, &h, &d_));
    mr_store_rollback(st);
    return h.n;
}

static void test_store_query(void **state)
{
    struct fx *f = *state;
    struct mr_store *st;
    struct mr_audit_filter q;

    CHECK(mr_store_open(f->path, MR_STORE_CREATE, &st, &d_));
    CHECK(mr_store_begin(st, 1, &d_));
    CHECK(put_audit(st, "alice", "read", "Patient/p1", NULL, 1000, &d_));
    CHECK(put_audit(st, "bob", "read", "Patient/p1", "emergency: trauma", 2000,
                    &d_));
    CHECK(put_audit(st, "bob", "search", "Patient/p2", NULL, 3000, &d_));
    CHECK(
        put_audit(st, "alice", "update", "Patient/p2", "Emergency", 4000, &d_));
    CHECK(put_audit(st, "carol", "export", NULL, "emergency access granted",
                    5000, &d_));
    CHECK(mr_store_commit(st, &d_));

    memset(&q, 0, sizeof(q));
    assert_int_equal(query(st, &q), 5);
    q.patient = "Patient/p1";
    assert_int_equal(query(st, &q), 2);
    q.actor = "bob";
    assert_int_equal(query(st, &q), 1);
    memset(&q, 0, sizeof(q));
    q.action = "read";
    assert_int_equal(query(st, &q), 2);
    memset(&q, 0, sizeof(q));
    q.since = 2000;
    q.until = 4000;
    assert_int_equal(query(st, &q), 2);
    memset(&q, 0, sizeof(q));
    /* Case matters: "Emergency" is not an emergency access entry. */
    q.emergency = 1;
    assert_int_equal(query(st, &q), 2);
    q.patient = "Patient/p1";
    assert_int_equal(query(st, &q), 1);
    q.patient = "Patient/none";
    assert_int_equal(query(st, &q), 0);
    mr_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_vector),
        cmocka_unit_test(test_hash_unambiguous),
        cmocka_unit_test(test_verifier),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_checkpoints, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_key_missing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_migrate_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_query, setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
