/*
 * The audit trail as a records service: searching it (who looked at this
 * chart), verifying its chain and signatures, and the accounting of
 * disclosures. Every one of these is itself on the trail.
 */
#include "core/alloc.h"
#include "core/id.h"
#include "core/time.h"
#include "records/records_impl.h"
#include "security/auditchain.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_DAY 86400000LL

/* Write one audit entry in a transaction of its own. */
static enum mr_err audit_now(struct mr_records *r, const struct mr_actor *a,
                             const char *action, enum mr_err outcome,
                             const char *type, const char *id,
                             const char *patient, const char *query,
                             const char *detail, struct mr_diag *d)
{
    enum mr_err err = mr_store_begin(r->st, 1, d);

    if (err)
        return err;
    err = mr__audit(r, a, action, outcome, type, id, patient, query, detail, d);
    if (err) {
        mr_store_rollback(r->st);
        return err;
    }
    return mr_store_commit(r->st, d);
}

/* Reading the trail needs search rights on AuditEvent; a refusal is
 * audited too. */
static enum mr_err may_read_trail(struct mr_records *r,
                                  const struct mr_actor *a, const char *action,
                                  struct mr_diag *d)
{
    enum mr_err err = mr__authorize(r, a, MR_ACT_SEARCH, "AuditEvent", d);

    if (err == MR_EDENIED)
        return mr__denied(r, a, action, "AuditEvent", NULL, d);
    return err;
}

/* "Patient/id" for an MRN or a reference. With must_read the patient is
 * looked up (an audited read) even when given as a reference. */
static enum mr_err patient_ref(struct mr_records *r, const struct mr_actor *a,
                               const char *mrn, int must_read, char *ref,
                               size_t cap, struct mr_diag *d)
{
    struct mr_result res;
    enum mr_err err;

    if (!mrn || !*mrn)
        return mr_diag_set(d, MR_EINVALID, "patient: no MRN given");
    if (!must_read && !strncmp(mrn, "Patient/", 8)) {
        if (!mr_id_valid(mrn + 8))
            return mr_diag_set(d, MR_EINVALID,
                               "patient: \"%s\" is not a valid reference", mrn);
        snprintf(ref, cap, "%s", mrn);
        return MR_OK;
    }
    mr_result_init(&res);
    err = mr_records_patient_by_mrn(r, a, mrn, &res, d);
    if (!err)
        snprintf(ref, cap, "Patient/%s", res.meta.id);
    mr_result_release(&res);
    return err;
}

/* ---- search --------------------------------------------------------- */

/* The filter as the search's audit query. */
static enum mr_err filter_text(const struct mr_audit_filter *f,
                               struct mr_buf *q)
{
    char t[32];
    enum mr_err err = MR_OK;

#define SEP (q->len ? "&" : "")
    if (!err && f->patient)
        err = mr_buf_addf(q, "%spatient=%s", SEP, f->patient);
    if (!err && f->actor)
        err = mr_buf_addf(q, "%suser=%s", SEP, f->actor);
    if (!err && f->action)
        err = mr_buf_addf(q, "%saction=%s", SEP, f->action);
    if (!err && f->since) {
        mr_time_format(f->since, t);
        err = mr_buf_addf(q, "%ssince=%s", SEP, t);
    }
    if (!err && f->until) {
        mr_time_format(f->until, t);
        err = mr_buf_addf(q, "%suntil=%s", SEP, t);
    }
    if (!err && f->emergency)
        err = mr_buf_addf(q, "%semergency=true", SEP);
#undef SEP
    return err;
}

enum mr_err mr_records_audit_search(struct mr_records *r,
                                    const struct mr_actor *a,
                                    const struct mr_audit_filter *f,
                                    mr_audit_cb cb, void *ctx,
                                    struct mr_diag *d)
{
    struct mr_audit_filter q = *f;
    struct mr_buf text = MR_BUF_INIT(8192);
    struct mr_diag local, ad;
    char ref[128];
    enum mr_err err, aerr;

    if (!d)
        d = &local;
    if ((err = may_read_trail(r, a, "audit-search", d)))
        return err;
    if (f->patient) {
        err = patient_ref(r, a, f->patient, 0, ref, sizeof(ref), d);
        if (err)
            return err;
        q.patient = ref;
    }
    if (filter_text(&q, &text)) {
        mr_buf_release(&text);
        return mr_diag_set(d, MR_ETOOBIG, "audit search: filter too long");
    }
    err = mr_store_begin(r->st, 0, d);
    if (!err) {
        err = mr_store_audit_query(r->st, &q, cb, ctx, d);
        mr_store_rollback(r->st);
    }
    aerr = audit_now(r, a, "audit-search", err, NULL, NULL, q.patient,
                     text.ptr[0] ? text.ptr : NULL, NULL, &ad);
    mr_buf_release(&text);
    if (aerr) {
        /* Without its audit entry the search did not happen. */
        *d = ad;
        return aerr;
    }
    return err;
}

/* ---- verify --------------------------------------------------------- */

static int key_cb(void *ctx, const char *key_id, const void *pk, size_t pklen,
                  int64_t created)
{
    (void)created;
    return mr_auditchain_add_key(ctx, key_id, pk, pklen) ? MR_ENOMEM : 0;
}

static int ckpt_cb(void *ctx, int64_t seq, int64_t ts, const void *hash,
                   size_t hlen, const char *key_id, const void *sig,
                   size_t slen)
{
    return mr_auditchain_add_checkpoint(ctx, seq, ts, hash, hlen, key_id, sig,
                                        slen)
               ? MR_ENOMEM
               : 0;
}

static int entry_cb(void *ctx, const struct mr_audit_row *row, const void *prev,
                    size_t plen, const void *hash, size_t hlen)
{
    /* Once the chain is broken the rest need not be read. */
    return mr_auditchain_feed(ctx, row, prev, plen, hash, hlen) ? MR_ECORRUPT
                                                                : 0;
}

static enum mr_err parse_anchor(const char *s, int64_t *seq,
                                unsigned char hash[MR_AUDIT_HASH_BYTES],
                                struct mr_diag *d)
{
    const char *colon = strchr(s, ':');
    char *end;
    long long v;
    size_t bin = 0;

    if (colon) {
        v = strtoll(s, &end, 10);
        if (end == colon && v > 0 && strlen(colon + 1) == 64 &&
            sodium_hex2bin(hash, MR_AUDIT_HASH_BYTES, colon + 1, 64, NULL, &bin,
                           NULL) == 0 &&
            bin == MR_AUDIT_HASH_BYTES) {
            *seq = v;
            return MR_OK;
        }
    }
    return mr_diag_set(d, MR_EUSAGE,
                       "anchor: \"%s\" is not SEQ:HASH (an entry number, a "
                       "colon and 64 hex digits)",
                       s);
}

enum mr_err mr_records_audit_verify(struct mr_records *r,
                                    const struct mr_actor *a,
                                    const char *anchor,
                                    struct mr_audit_report *rep,
                                    struct mr_diag *d)
{
    static const struct mr_audit_chain_cb cbs = {key_cb, ckpt_cb, entry_cb};
    struct mr_auditchain_verifier v;
    struct mr_diag local, ad;
    char detail[128];
    enum mr_err err, aerr;
    int intact = 0;

    if (!d)
        d = &local;
    if ((err = may_read_trail(r, a, "audit-verify", d)))
        return err;
    mr_auditchain_verifier_init(&v);
    if (anchor && (err = parse_anchor(anchor, &v.anchor_seq, v.anchor_hash, d)))
        return err;
    err = mr_store_begin(r->st, 0, d);
    if (!err) {
        err = mr_store_audit_chain(r->st, &cbs, &v, d);
        mr_store_rollback(r->st);
    }
    if (err == MR_ECORRUPT && v.stopped)
        err = MR_OK;
    if (err == MR_ENOMEM)
        mr_diag_set(d, err, "audit verify: out of memory");
    if (!err) {
        intact = mr_auditchain_finish(&v);
        memset(rep, 0, sizeof(*rep));
        rep->entries = v.entries;
        rep->checkpoints = v.checkpoints;
        rep->keys = (int64_t)v.nkeys;
        rep->last_seq = v.last_seq;
        rep->signed_seq = v.signed_seq;
        rep->signed_ts = v.signed_ts;
        if (v.signed_seq)
            sodium_bin2hex(rep->signed_hash, sizeof(rep->signed_hash),
                           v.signed_hash, MR_AUDIT_HASH_BYTES);
        memcpy(rep->signed_key, v.signed_key, sizeof(rep->signed_key));
        rep->uncovered = v.last_seq - v.signed_seq;
        rep->bad_seq = v.bad_seq;
        memcpy(rep->problem, v.problem, sizeof(rep->problem));
        mr_store_audit_signer(r->st, &rep->signer);
        if (!intact)
            err = mr_diag_set(d, MR_ECORRUPT, "%s", v.problem);
    }
    snprintf(detail, sizeof(detail), "%lld entries, %lld checkpoints",
             (long long)v.entries, (long long)v.checkpoints);
    mr_auditchain_verifier_release(&v);
    aerr = audit_now(r, a, "audit-verify", err, NULL, NULL, NULL, NULL, detail,
                     &ad);
    if (aerr && !err) {
        *d = ad;
        return aerr;
    }
    return err;
}

enum mr_err mr_records_audit_new_key(struct mr_records *r,
                                     const struct mr_actor *a,
                                     char key_id[MR_AUDIT_KEY_ID_LEN + 1],
                                     struct mr_diag *d)
{
    struct mr_diag local, ad;
    char detail[64], id[MR_AUDIT_KEY_ID_LEN + 1] = "";
    enum mr_err err;

    if (!d)
        d = &local;
    if ((err = mr__check_actor(a, d)))
        return err;
    /* The key lives beside the database file: only someone who holds
     * the file may make one, whatever the policy says. */
    if (!a->local || a->role) {
        mr_diag_set(d, MR_EDENIED,
                    "a new audit signing key is made on the command line by "
                    "whoever holds the database file");
        return mr__denied(r, a, "audit-key", NULL, NULL, d);
    }
    err = mr_store_audit_new_key(r->st, id, d);
    snprintf(detail, sizeof(detail), "new signing key %s", id);
    if (audit_now(r, a, "audit-key", err, NULL, NULL, NULL, NULL,
                  err ? NULL : detail, &ad) &&
        !err) {
        *d = ad;
        return ad.code;
    }
    if (!err)
        memcpy(key_id, id, sizeof(id));
    return err;
}

/* ---- disclosures ---------------------------------------------------- */

/* Today (UTC) as YYYY-MM-DD, and the same day `years` earlier (29 Feb
 * becomes 28 Feb in a common year). */
static void today(char out[11], int years)
{
    int y;
    unsigned m, dd;

    mr_civil_from_days(mr_time_now_ms() / MS_PER_DAY, &y, &m, &dd);
    y -= years;
    if (m == 2 && dd == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        dd = 28;
    snprintf(out, 11, "%04d-%02u-%02u", y, m, dd);
}

static enum mr_err check_text(const char *name, const char *v, size_t min,
                              size_t max, struct mr_diag *d)
{
    size_t n = v ? strlen(v) : 0;
    const unsigned char *p;

    if (n < min)
        return mr_diag_set(d, MR_EINVALID, "disclosure.%s: required", name);
    if (n > max)
        return mr_diag_set(d, MR_EINVALID,
                           "disclosure.%s: %zu bytes; at most %zu", name, n,
                           max);
    for (p = (const unsigned char *)v; p && *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return mr_diag_set(d, MR_EINVALID,
                               "disclosure.%s: control characters (such as "
                               "line breaks) are not allowed",
                               name);
    return MR_OK;
}

enum mr_err mr_records_disclose(struct mr_records *r, const struct mr_actor *a,
                                const char *mrn,
                                const struct mr_disclosure *dsc,
                                struct mr_diag *d)
{
    struct mr_diag local;
    struct mr_daterange dr;
    char ref[128], now[11], date[11];
    json_t *o;
    char *detail;
    enum mr_err err;

    if (!d)
        d = &local;
    if ((err = mr__check_actor(a, d)) ||
        (err = check_text("recipient", dsc->recipient, 1, 200, d)) ||
        (err = check_text("purpose", dsc->purpose, 1, 500, d)) ||
        (err = check_text("what", dsc->what, 0, 1000, d)))
        return err;
    today(now, 0);
    if (dsc->date) {
        if (strlen(dsc->date) != 10 ||
            mr_date_parse(dsc->date, 10, MR_DATE_DATE, &dr) != MR_OK)
            return mr_diag_set(d, MR_EINVALID,
                               "disclosure.date: \"%s\" is not a date "
                               "(YYYY-MM-DD)",
                               dsc->date);
        if (strcmp(dsc->date, now) > 0)
            return mr_diag_set(d, MR_EINVALID,
                               "disclosure.date: %s is in the future",
                               dsc->date);
        snprintf(date, sizeof(date), "%s", dsc->date);
    } else {
        memcpy(date, now, sizeof(date));
    }
    err = patient_ref(r, a, mrn, 1, ref, sizeof(ref), d);
    if (err)
        return err;
    o = json_object();
    if (!o || json_object_set_new(o, "date", json_string(date)) ||
        json_object_set_new(o, "recipient", json_string(dsc->recipient)) ||
        json_object_set_new(o, "purpose", json_string(dsc->purpose)) ||
        (dsc->what && *dsc->what &&
         json_object_set_new(o, "what", json_string(dsc->what)))) {
        json_decref(o);
        /* json_string refuses text that is not UTF-8. */
        return mr_diag_set(d, MR_EINVALID,
                           "disclosure: text must be UTF-8 (or out of "
                           "memory)");
    }
    detail = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!detail)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    err = audit_now(r, a, "disclose", MR_OK, "Patient", ref + 8, ref, NULL,
                    detail, d);
    free(detail);
    return err;
}

struct disc_list {
    struct mr_arena arena;
    struct disc {
        int64_t seq;
        char date[11];
        struct mr_disclosure d;
    } * v;
    size_t n, cap;
    char cutoff[11];
    int64_t bad; /* an entry whose detail cannot be read */
};

static const char *member(struct mr_arena *a, json_t *o, const char *k,
                          int *fail)
{
    const char *s = json_string_value(json_object_get(o, k));
    char *c;

    if (!s)
        return NULL;
    c = mr_arena_strdup(a, s);
    if (!c)
        *fail = 1;
    return c;
}

static int disc_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct disc_list *l = ctx;
    struct disc *x;
    json_t *o = e->detail ? json_loads(e->detail, 0, NULL) : NULL;
    const char *date = json_string_value(json_object_get(o, "date"));
    int fail = 0;

    if (!date || strlen(date) != 10) {
        json_decref(o);
        l->bad = seq;
        return MR_ECORRUPT;
    }
    if (strcmp(date, l->cutoff) < 0) {
        json_decref(o);
        return 0;
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        struct disc *nv = mr_realloc(l->v, ncap * sizeof(*nv));
        if (!nv) {
            json_decref(o);
            return MR_ENOMEM;
        }
        l->v = nv;
        l->cap = ncap;
    }
    x = &l->v[l->n];
    memset(x, 0, sizeof(*x));
    x->seq = seq;
    memcpy(x->date, date, sizeof(x->date));
    x->d.date = NULL; /* set to x->date once the array stops moving */
    x->d.recipient = member(&l->arena, o, "recipient", &fail);
    x->d.purpose = member(&l->arena, o, "purpose", &fail);
    x->d.what = member(&l->arena, o, "what", &fail);
    x->d.by = mr_arena_strdup(&l->arena, e->actor ? e->actor : "");
    x->d.recorded = e->ts;
    json_decref(o);
    if (fail || !x->d.by)
        return MR_ENOMEM;
    l->n++;
    return 0;
}

static int disc_cmp(const void *pa, const void *pb)
{
    const struct disc *a = pa, *b = pb;
    int c = strcmp(a->date, b->date);

    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

enum mr_err mr_records_disclosures(struct mr_records *r,
                                   const struct mr_actor *a, const char *mrn,
                                   mr_disclosure_cb cb, void *ctx,
                                   struct mr_diag *d)
{
    struct disc_list l;
    struct mr_audit_filter f;
    struct mr_daterange dr;
    struct mr_diag local, ad;
    char ref[128], query[64];
    enum mr_err err, aerr;
    size_t i;

    if (!d)
        d = &local;
    if ((err = mr__check_actor(a, d)))
        return err;
    err = patient_ref(r, a, mrn, 1, ref, sizeof(ref), d);
    if (err)
        return err;
    memset(&l, 0, sizeof(l));
    today(l.cutoff, MR_DISCLOSURE_YEARS);
    if (mr_date_parse(l.cutoff, 10, MR_DATE_DATE, &dr))
        return mr_diag_set(d, MR_EINTERNAL, "disclosures: bad cut-off");
    memset(&f, 0, sizeof(f));
    f.patient = ref;
    f.action = "disclose";
    /* An entry is recorded on or after the day it tells of. */
    f.since = dr.lo;
    err = mr_store_begin(r->st, 0, d);
    if (!err) {
        err = mr_store_audit_query(r->st, &f, disc_cb, &l, d);
        mr_store_rollback(r->st);
    }
    if (err == MR_ECORRUPT && l.bad)
        mr_diag_set(d, err,
                    "audit entry %lld: the disclosure's detail cannot be "
                    "read",
                    (long long)l.bad);
    else if (err == MR_ENOMEM)
        mr_diag_set(d, err, "disclosures: out of memory");
    snprintf(query, sizeof(query), "action=disclose&since=%s", l.cutoff);
    aerr =
        audit_now(r, a, "audit-search", err, NULL, NULL, ref, query, NULL, &ad);
    if (!err && aerr) {
        *d = ad;
        err = aerr;
    }
    if (!err) {
        if (l.n)
            qsort(l.v, l.n, sizeof(*l.v), disc_cmp);
        for (i = 0; i < l.n; i++) {
            int rc;
            l.v[i].d.date = l.v[i].date;
            rc = cb(ctx, &l.v[i].d);
            if (rc) {
                err = rc > 0 && rc < MR__ERR_COUNT ? (enum mr_err)rc
                                                   : MR_EINTERNAL;
                break;
            }
        }
    }
    mr_free(l.v);
    mr_arena_release(&l.arena);
    return err;
}
