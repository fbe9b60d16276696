/*
 * The HL7 v2 feed inside the records service (docs/hl7.md): who may send,
 * the interface log, and receiving a message. A message is logged as it
 * came, applied as its sender (src/records/hl7_map.c) in a savepoint, and its
 * outcome and ACK are kept with it, all in one transaction: when the
 * caller may send the ACK, the message, what it changed and the audit
 * entries are committed together, or none of them.
 */
#include "core/time.h"
#include "hl7/ack.h"
#include "records/hl7_map.h"
#include "records/records_impl.h"
#include "store/store.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define SENDER_KIND "hl7-sender"
#define NAME_MAX_BYTES 180

/* ---- senders --------------------------------------------------------- */

static int name_ok(const char *s, int empty_ok)
{
    size_t n = s ? strlen(s) : 0, i;

    if (!n)
        return empty_ok;
    if (n > NAME_MAX_BYTES)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '|' || s[i] == 0x7f)
            return 0;
    return 1;
}

enum mr_err mr_records_hl7_sender_set(struct mr_records *r,
                                      const struct mr_actor *a,
                                      const struct mr_hl7_sender *sd,
                                      struct mr_diag *d)
{
    const char *app = sd->app ? sd->app : "";
    const char *facility = sd->facility ? sd->facility : "";
    const char *proc = sd->processing && *sd->processing ? sd->processing : "P";
    char name[2 * NAME_MAX_BYTES + 2];
    json_t *doc;
    char *text;
    enum mr_err err;

    if (!name_ok(app, 1) || !name_ok(facility, 1) || (!*app && !*facility))
        return mr_diag_set(d, MR_EINVALID,
                           "--app, --facility: up to %d characters, no '|' "
                           "or control characters, and at least one of them",
                           NAME_MAX_BYTES);
    if (!name_ok(sd->tls_client, 1))
        return mr_diag_set(d, MR_EINVALID,
                           "--tls-client: up to %d characters, no '|' or "
                           "control characters",
                           NAME_MAX_BYTES);
    if (strspn(proc, "PTD") != strlen(proc) || strlen(proc) > 3)
        return mr_diag_set(d, MR_EINVALID,
                           "--processing: \"%s\" is not a set of processing "
                           "ids P, T and D (e.g. P,T)",
                           proc);
    if (sd->active &&
        (!sd->role || !mr_policy_role_known(r->policy, sd->role) ||
         !strcmp(sd->role, "patient")))
        return mr_diag_set(d, MR_EINVALID,
                           "--role: \"%s\" is not a role of the policy a "
                           "system may have (medrec policy show)",
                           sd->role ? sd->role : "");
    err = mr__authorize_priv(r, a, MR_PRIV_INTERFACES, d);
    if (err)
        return mr__denied(r, a, "hl7-sender", NULL, app, d);
    snprintf(name, sizeof(name), "%s|%s", app, facility);
    doc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "app", app, "facility",
                    facility, "role", sd->role ? sd->role : "", "tls_client",
                    sd->tls_client ? sd->tls_client : "", "processing", proc,
                    "active", sd->active);
    text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (!text)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    err = mr__tx_begin(r, d);
    if (!err && !sd->active) {
        err = mr_store_sec_get(r->st, SENDER_KIND, name, NULL, NULL, d);
        if (err == MR_ENOTFOUND)
            mr_diag_set(d, err, "no sender %s is registered", name);
    }
    if (!err)
        err = mr_store_sec_put(r->st, SENDER_KIND, name, text, 0, a->user, d);
    if (!err)
        err =
            mr__audit(r, a, sd->active ? "hl7-sender-add" : "hl7-sender-remove",
                      MR_OK, NULL, name, NULL, NULL, text, d);
    if (!err)
        err = mr__tx_commit(r, d);
    else
        mr__tx_rollback(r);
    free(text);
    return err;
}

struct senders_ctx {
    mr_hl7_sender_cb cb;
    void *ctx;
};

static int senders_cb(void *ctx, const char *name, int64_t version,
                      const char *json)
{
    struct senders_ctx *s = ctx;
    json_t *o = json_loads(json, 0, NULL);
    struct mr_hl7_sender sd;
    int rc;

    (void)name;
    (void)version;
    if (!o)
        return MR_ECORRUPT;
    sd.app = json_string_value(json_object_get(o, "app"));
    sd.facility = json_string_value(json_object_get(o, "facility"));
    sd.role = json_string_value(json_object_get(o, "role"));
    sd.tls_client = json_string_value(json_object_get(o, "tls_client"));
    sd.processing = json_string_value(json_object_get(o, "processing"));
    if (!sd.processing)
        sd.processing = "P";
    sd.active = json_is_true(json_object_get(o, "active"));
    rc = s->cb(s->ctx, &sd);
    json_decref(o);
    return rc;
}

enum mr_err mr_records_hl7_senders(struct mr_records *r,
                                   const struct mr_actor *a,
                                   mr_hl7_sender_cb cb, void *ctx,
                                   struct mr_diag *d)
{
    struct senders_ctx s = {cb, ctx};
    enum mr_err err = mr__authorize_priv(r, a, MR_PRIV_INTERFACES, d);

    if (err)
        return mr__denied(r, a, "hl7-senders", NULL, NULL, d);
    err = mr__tx_begin_read(r, d);
    if (!err) {
        err = mr_store_sec_list(r->st, SENDER_KIND, senders_cb, &s, d);
        if (!err)
            err = mr__tx_commit(r, d);
        else
            mr__tx_rollback(r);
    }
    return err;
}

/* The registered role of APP|FAC (else APP with any facility, else any
 * app of FAC); "" if the sender is unknown or withdrawn. cert_cn and
 * proc receive its TLS client name and accepted processing ids. */
static enum mr_err sender_role(struct mr_records *r, const char *app,
                               const char *fac, char *role, size_t cap,
                               char *cert_cn, size_t ccap, char proc[4],
                               struct mr_diag *d)
{
    struct mr_buf doc = MR_BUF_INIT(64u << 10);
    char name[2 * NAME_MAX_BYTES + 2];
    enum mr_err err = MR_ENOTFOUND;
    int pass;

    role[0] = '\0';
    cert_cn[0] = '\0';
    strcpy(proc, "P");
    if (!name_ok(app, 1) || !name_ok(fac, 1))
        return MR_OK;
    for (pass = 0; pass < 3 && err == MR_ENOTFOUND; pass++) {
        if ((pass == 1 && !fac[0]) || (pass == 2 && !app[0]))
            continue;
        snprintf(name, sizeof(name), "%s|%s", pass == 2 ? "" : app,
                 pass == 1 ? "" : fac);
        if (!strcmp(name, "|"))
            continue;
        err = mr_store_sec_get(r->st, SENDER_KIND, name, &doc, NULL, d);
    }
    if (!err) {
        json_t *o = json_loadb(doc.ptr, doc.len, 0, NULL);
        const char *v;
        if (o && json_is_true(json_object_get(o, "active")) &&
            json_string_value(json_object_get(o, "role")))
            snprintf(role, cap, "%s",
                     json_string_value(json_object_get(o, "role")));
        if (o && (v = json_string_value(json_object_get(o, "tls_client"))))
            snprintf(cert_cn, ccap, "%s", v);
        if (o && (v = json_string_value(json_object_get(o, "processing"))) &&
            strlen(v) < 4)
            strcpy(proc, v);
        json_decref(o);
    } else if (err == MR_ENOTFOUND) {
        mr_diag_clear(d);
        err = MR_OK;
    }
    mr_buf_release(&doc);
    return err;
}

/* ---- receiving ------------------------------------------------------- */

/* A copy of a header slice, unescaped, or the bytes as sent. */
static void hdr_text(const struct mr_hl7_msg *m, struct mr_hl7_slice v,
                     char *out, size_t cap)
{
    struct mr_buf b = MR_BUF_INIT(4096);

    if (!mr_hl7_unescape(&m->delims, m->hdr.charset, v.ptr, v.len, &b) &&
        b.len < cap && !memchr(b.ptr, '\0', b.len)) {
        memcpy(out, b.ptr, b.len);
        out[b.len] = '\0';
    } else {
        snprintf(out, cap, "%.*s", (int)v.len, v.ptr);
    }
    mr_buf_release(&b);
}

/* The first component of a header slice (MSH-3.1, MSH-4.1). */
static void hdr_first(const struct mr_hl7_msg *m, struct mr_hl7_slice v,
                      char *out, size_t cap)
{
    const char *p = memchr(v.ptr, m->delims.component, v.len);

    if (p)
        v.len = (size_t)(p - v.ptr);
    hdr_text(m, v, out, cap);
}

static void ack_stamp(int64_t id, char ctrl[32], char ts[32])
{
    mr_hl7_timestamp(mr_time_now_ms(), ts);
    snprintf(ctrl, 32, "MR%lld", (long long)id);
}

static void set_outcome(struct mr_hl7_outcome *out, int64_t id,
                        const char *status, const char *ack_code,
                        const char *detail, int repeat)
{
    if (!out)
        return;
    out->id = id;
    out->repeat = repeat;
    snprintf(out->status, sizeof(out->status), "%s", status);
    snprintf(out->ack_code, sizeof(out->ack_code), "%s", ack_code);
    snprintf(out->detail, sizeof(out->detail), "%s", detail ? detail : "");
}

static int is_ours(enum mr_err err)
{
    return err == MR_EIO || err == MR_EBUSY || err == MR_ENOMEM ||
           err == MR_EINTERNAL || err == MR_ECORRUPT;
}

/* Apply m (logged as row id) as its sender, in a savepoint, then record
 * the outcome and the ACK. Returns medrec's own failures only. */
static enum mr_err process(struct mr_records *r, const struct mr_actor *via,
                           const struct mr_actor *sender, const char *ns,
                           const struct mr_hl7_msg *m, int64_t id,
                           const char *what, struct mr_buf *ack,
                           struct mr_hl7_outcome *out, struct mr_diag *d)
{
    struct mr_hl7_applied ap;
    struct mr_hl7_ack ak;
    struct mr_hl7_row row;
    struct mr_diag ad;
    char ctrl[32], ts[32], detail[800], audit_detail[1200];
    enum mr_err err, aerr;

    mr_hl7_applied_init(&ap);
    mr_diag_clear(&ad);
    err = mr_store_savepoint(r->st, MR_SP_OPEN, d);
    if (err) {
        mr_hl7_applied_release(&ap);
        return err;
    }
    aerr = mr_hl7_apply(r, sender, m, ns, &ap, &ad);
    err = mr_store_savepoint(r->st, aerr ? MR_SP_ROLLBACK : MR_SP_RELEASE, d);
    if (!err && is_ours(aerr))
        err = mr_diag_set(d, aerr, "%s", ad.msg);
    if (err) {
        mr_hl7_applied_release(&ap);
        return err;
    }
    memset(&ak, 0, sizeof(ak));
    memset(&row, 0, sizeof(row));
    ack_stamp(id, ctrl, ts);
    ak.control_id = ctrl;
    ak.timestamp = ts;
    row.id = id;
    switch (aerr) {
    case MR_OK:
        ak.code = MR_HL7_AA;
        row.status = "applied";
        if (ap.warning[0])
            ak.reason = ap.warning;
        break;
    case MR_ENOTFOUND:
        /* Held for a records technician, never filed on a guess: the
         * sender need not resend (AA), and is told why (warning). */
        ak.code = MR_HL7_AA;
        ak.where = &ap.where;
        snprintf(detail, sizeof(detail),
                 "%s; held in the unmatched queue (medrec hl7 unmatched)",
                 ap.reason);
        ak.reason = detail;
        row.status = "unmatched";
        break;
    case MR_EUNSUPPORTED:
        ak.code = MR_HL7_AR;
        ak.where = &ap.where;
        ak.reason = ap.reason;
        row.status = "rejected";
        break;
    default:
        ak.code = MR_HL7_AE;
        ak.where = &ap.where;
        ak.reason = ap.reason[0] ? ap.reason : ad.msg;
        row.status = "error";
        break;
    }
    mr_buf_reset(ack);
    err = mr_hl7_ack_build(m, &ak, ack, d);
    if (err) {
        mr_hl7_applied_release(&ap);
        return err;
    }
    row.ack_code = mr_hl7_ack_code_name(ak.code);
    row.ack = ack->ptr;
    row.ack_len = ack->len;
    row.detail = aerr            ? (ak.reason ? ak.reason : "")
                 : ap.warning[0] ? ap.warning
                                 : NULL;
    row.patient = ap.patient[0] ? ap.patient : NULL;
    row.resources = aerr ? NULL : ap.resources.ptr;
    err = mr_store_hl7_update(r->st, &row, 0, d);
    snprintf(audit_detail, sizeof(audit_detail), "%s: %s%s%s", what, row.status,
             aerr ? ": " : "", aerr ? (ak.reason ? ak.reason : "") : "");
    {
        char ids[24];
        snprintf(ids, sizeof(ids), "%lld", (long long)id);
        if (!err)
            err = mr__audit(
                r, via, "hl7-receive", aerr == MR_ENOTFOUND ? MR_OK : aerr,
                "MessageHeader", ids, row.patient, NULL, audit_detail, d);
    }
    if (!err)
        set_outcome(out, id, row.status, row.ack_code, row.detail, 0);
    mr_hl7_applied_release(&ap);
    return err;
}

struct found_row {
    int64_t id, repeats;
    char status[16], ack_code[4];
    struct mr_buf ack, raw;
    char sender[2 * NAME_MAX_BYTES + 2];
    char detail[800];
};

static int found_row_cb(void *ctx, const struct mr_hl7_row *row)
{
    struct found_row *f = ctx;

    f->id = row->id;
    f->repeats = row->repeats;
    snprintf(f->status, sizeof(f->status), "%s", row->status);
    snprintf(f->ack_code, sizeof(f->ack_code), "%s",
             row->ack_code ? row->ack_code : "");
    snprintf(f->sender, sizeof(f->sender), "%s", row->sender);
    snprintf(f->detail, sizeof(f->detail), "%s",
             row->detail ? row->detail : "");
    mr_buf_reset(&f->ack);
    mr_buf_reset(&f->raw);
    if ((row->ack && mr_buf_add(&f->ack, row->ack, row->ack_len)) ||
        (row->raw && mr_buf_add(&f->raw, row->raw, row->raw_len)))
        return MR_ENOMEM;
    return 0; /* the query asks for one row */
}

/* A message refused before it is applied: logged as rejected (row holds
 * what is known of it), answered with AR at where/reason (from the bytes
 * when it did not parse: m NULL) and audited with outcome. */
static enum mr_err reject(struct mr_records *r, const struct mr_actor *via,
                          struct mr_hl7_row *row, const struct mr_hl7_msg *m,
                          const char *bytes, size_t len,
                          const struct mr_hl7_loc *where, const char *reason,
                          enum mr_err outcome, struct mr_buf *ack,
                          struct mr_hl7_outcome *out, struct mr_diag *d)
{
    struct mr_hl7_ack ak;
    char ctrl[32], ts[32];
    enum mr_err err;

    row->status = "rejected";
    row->ack_code = "AR";
    row->detail = reason;
    err = mr_store_hl7_add(r->st, row, &row->id, d);
    if (err)
        return err;
    memset(&ak, 0, sizeof(ak));
    ack_stamp(row->id, ctrl, ts);
    ak.code = MR_HL7_AR;
    ak.control_id = ctrl;
    ak.timestamp = ts;
    ak.where = where;
    ak.reason = reason;
    mr_buf_reset(ack);
    err = m ? mr_hl7_ack_build(m, &ak, ack, d)
            : mr_hl7_ack_unparsed(bytes, len, &ak, ack, d);
    if (!err) {
        row->ack = ack->ptr;
        row->ack_len = ack->len;
        err = mr_store_hl7_update(r->st, row, 0, d);
    }
    if (!err)
        err = mr__audit(r, via, "hl7-receive", outcome, "MessageHeader", NULL,
                        NULL, NULL, reason, d);
    if (!err)
        set_outcome(out, row->id, "rejected", "AR", reason, 0);
    return err;
}

static enum mr_err receive(struct mr_records *r, const struct mr_actor *via,
                           const char *peer_cn, const char *bytes, size_t len,
                           struct mr_buf *ack, struct mr_hl7_outcome *out,
                           struct mr_diag *d)
{
    struct mr_hl7_msg m;
    struct mr_hl7_loc where;
    struct mr_hl7_row row;
    struct mr_diag pd;
    char app[NAME_MAX_BYTES + 8], fac[NAME_MAX_BYTES + 8], role[40];
    char sender[2 * NAME_MAX_BYTES + 20], ctrl[MR_HL7_MAX_CONTROL_ID + 1];
    char type[40], what[1000], actor_name[2 * NAME_MAX_BYTES + 30];
    char reason[700], want_cn[NAME_MAX_BYTES + 8];
    char proc[4];
    struct mr_actor sa;
    enum mr_err err;
    int64_t id = 0;

    memset(&where, 0, sizeof(where));
    memset(&row, 0, sizeof(row));
    mr_diag_clear(&pd);
    row.source = via->source ? via->source : "";
    row.received = mr_time_now_ms();
    err = mr_hl7_parse(&m, bytes, len, NULL, &where, &pd);
    if (err == MR_ENOMEM)
        return mr_diag_set(d, err, "out of memory");
    if (err) {
        /* Unreadable: rejected, logged without its bytes (no sender
         * vouches for them), and audited. */
        row.sender = "";
        row.control_id = "";
        row.type = "";
        return reject(r, via, &row, NULL, bytes, len, &where, pd.msg,
                      MR_EINVALID, ack, out, d);
    }
    hdr_first(&m, m.hdr.sending_app, app, sizeof(app));
    hdr_first(&m, m.hdr.sending_facility, fac, sizeof(fac));
    hdr_text(&m, m.hdr.control_id, ctrl, sizeof(ctrl));
    snprintf(type, sizeof(type), "%.*s^%.*s", (int)m.hdr.msg_type.len,
             m.hdr.msg_type.ptr, (int)m.hdr.trigger.len, m.hdr.trigger.ptr);
    snprintf(sender, sizeof(sender), "%s|%s", app, fac);
    snprintf(what, sizeof(what), "%s %s from %s", type, ctrl, sender);
    row.sender = sender;
    row.control_id = ctrl;
    row.type = type;

    err = sender_role(r, app, fac, role, sizeof(role), want_cn, sizeof(want_cn),
                      proc, d);
    if (err)
        goto out;
    reason[0] = '\0';
    if (!role[0])
        snprintf(reason, sizeof(reason),
                 "MSH-3: sending application \"%s\" (facility \"%s\") is not "
                 "registered with medrec (medrec hl7 sender add)",
                 app, fac);
    else if (want_cn[0] && (!peer_cn || strcmp(peer_cn, want_cn))) {
        /* Registered to send over TLS with its client certificate: the
         * name in MSH-3 alone does not prove who sent it. */
        snprintf(reason, sizeof(reason),
                 "MSH-3: sender \"%s\" must connect with its TLS client "
                 "certificate",
                 app);
        role[0] = '\0';
    } else if (m.hdr.processing_id.len &&
               (m.hdr.processing_id.len != 1 ||
                !strchr(proc, m.hdr.processing_id.ptr[0])))
        snprintf(reason, sizeof(reason),
                 "MSH-11: processing id \"%.*s\" is not accepted from this "
                 "sender (it is registered for %s; production charts take "
                 "production messages)",
                 (int)m.hdr.processing_id.len, m.hdr.processing_id.ptr, proc);
    if (reason[0]) {
        memset(&where, 0, sizeof(where));
        memcpy(where.seg, "MSH", 4);
        where.seq = 1;
        where.field = role[0] ? 11 : 3;
        where.code = role[0] ? MR_HL7_ERR_UNSUPPORTED_PROCESSING_ID
                             : MR_HL7_ERR_INTERNAL;
        /* An unknown sender's bytes are not kept: only who it claims to
         * be and the refusal. */
        if (role[0]) {
            row.raw = m.data;
            row.raw_len = m.len;
        }
        err = reject(r, via, &row, &m, bytes, len, &where, reason, MR_EDENIED,
                     ack, out, d);
        goto out;
    }

    /* The same message again: acknowledged again, applied once. */
    {
        struct mr_hl7_filter f;
        struct found_row fr;
        memset(&f, 0, sizeof(f));
        memset(&fr, 0, sizeof(fr));
        mr_buf_init(&fr.ack, 1u << 20);
        mr_buf_init(&fr.raw, 1u << 20);
        f.sender = sender;
        f.control_id = ctrl;
        f.limit = 1;
        err = mr_store_hl7_query(r->st, &f, found_row_cb, &fr, d);
        if (!err && fr.id) {
            struct mr_hl7_row rep;
            memset(&rep, 0, sizeof(rep));
            rep.id = fr.id;
            err = mr_store_hl7_update(r->st, &rep, 1, d);
            if (!err) {
                mr_buf_reset(ack);
                err = mr_buf_add(ack, fr.ack.ptr, fr.ack.len);
            }
            if (!err) {
                char ids[24];
                snprintf(ids, sizeof(ids), "%lld", (long long)fr.id);
                err = mr__audit(r, via, "hl7-receive", MR_OK, "MessageHeader",
                                ids, NULL, NULL,
                                "repeat: acknowledged again, not applied", d);
            }
            if (!err)
                set_outcome(out, fr.id, fr.status, fr.ack_code, fr.detail, 1);
            mr_buf_release(&fr.ack);
            mr_buf_release(&fr.raw);
            goto out;
        }
        mr_buf_release(&fr.ack);
        mr_buf_release(&fr.raw);
        if (err)
            goto out;
    }

    /* Logged before it is applied; the outcome follows in the same
     * transaction. */
    row.status = "received";
    row.ack_code = "";
    row.raw = m.data;
    row.raw_len = m.len;
    err = mr_store_hl7_add(r->st, &row, &id, d);
    if (err)
        goto out;
    snprintf(actor_name, sizeof(actor_name), "hl7:%s", sender);
    memset(&sa, 0, sizeof(sa));
    sa.user = actor_name;
    sa.role = role;
    sa.source = via->source;
    err = process(r, via, &sa, fac[0] ? fac : app, &m, id, what, ack, out, d);
out:
    mr_hl7_release(&m);
    return err;
}

/* Run fn in the caller's transaction (a group commit) or its own. */
static enum mr_err in_tx(struct mr_records *r, enum mr_err err_in, int own,
                         struct mr_diag *d)
{
    enum mr_err err = err_in;

    if (!own)
        return err;
    r->in_bundle = 0;
    if (!err && r->denials.n)
        err = mr_records_write_audits(r, &r->denials, d);
    mr_audit_batch_release(&r->denials);
    if (!err)
        err = mr_store_commit(r->st, d);
    else
        mr_store_rollback(r->st);
    return err;
}

enum mr_err mr_records_hl7_receive(struct mr_records *r,
                                   const struct mr_actor *via,
                                   const char *peer_cn, const char *bytes,
                                   size_t len, struct mr_buf *ack,
                                   struct mr_hl7_outcome *out,
                                   struct mr_diag *d)
{
    int own = !r->in_bundle;
    enum mr_err err = mr__check_actor(via, d);

    if (out)
        memset(out, 0, sizeof(*out));
    if (err)
        return err;
    if (own) {
        err = mr_store_begin(r->st, 1, d);
        if (err)
            return err;
        r->in_bundle = 1;
    }
    err = receive(r, via, peer_cn, bytes, len, ack, out, d);
    return in_tx(r, err, own, d);
}

enum mr_err mr_records_hl7_replay(struct mr_records *r,
                                  const struct mr_actor *a, int64_t id,
                                  struct mr_buf *ack,
                                  struct mr_hl7_outcome *out, struct mr_diag *d)
{
    struct mr_hl7_filter f;
    struct found_row fr;
    struct mr_hl7_msg m;
    struct mr_diag pd;
    char app[NAME_MAX_BYTES + 8], fac[NAME_MAX_BYTES + 8], role[40];
    char actor_name[2 * NAME_MAX_BYTES + 8], what[200];
    struct mr_actor sa;
    int own = !r->in_bundle, parsed = 0;
    enum mr_err err;

    if (out)
        memset(out, 0, sizeof(*out));
    err = mr__authorize_priv(r, a, MR_PRIV_INTERFACES, d);
    if (err)
        return mr__denied(r, a, "hl7-replay", "MessageHeader", NULL, d);
    memset(&f, 0, sizeof(f));
    memset(&fr, 0, sizeof(fr));
    mr_buf_init(&fr.ack, 1u << 20);
    mr_buf_init(&fr.raw, 2u << 20);
    f.id = id;
    f.with_raw = 1;
    if (own) {
        err = mr_store_begin(r->st, 1, d);
        if (err)
            goto done;
        r->in_bundle = 1;
    }
    err = mr_store_hl7_query(r->st, &f, found_row_cb, &fr, d);
    if (!err && !fr.id)
        err = mr_diag_set(d, MR_ENOTFOUND, "no message %lld in the log",
                          (long long)id);
    if (!err && !strcmp(fr.status, "applied"))
        err = mr_diag_set(d, MR_ECONFLICT,
                          "message %lld is applied already; a replay would "
                          "apply it twice",
                          (long long)id);
    if (!err && !fr.raw.len)
        err = mr_diag_set(d, MR_EINVALID,
                          "message %lld was not kept (unknown sender or "
                          "unreadable); it must be sent again",
                          (long long)id);
    mr_diag_clear(&pd);
    if (!err) {
        err = mr_hl7_parse(&m, fr.raw.ptr, fr.raw.len, NULL, NULL, &pd);
        if (err)
            err =
                mr_diag_set(d, err, "message %lld: %s", (long long)id, pd.msg);
        else
            parsed = 1;
    }
    if (!err) {
        hdr_first(&m, m.hdr.sending_app, app, sizeof(app));
        hdr_first(&m, m.hdr.sending_facility, fac, sizeof(fac));
        char cn[NAME_MAX_BYTES + 8], proc[4];
        err = sender_role(r, app, fac, role, sizeof(role), cn, sizeof(cn), proc,
                          d);
        if (!err && !role[0])
            err = mr_diag_set(d, MR_EDENIED,
                              "sender %s|%s is not registered (medrec hl7 "
                              "sender add)",
                              app, fac);
    }
    if (!err) {
        snprintf(actor_name, sizeof(actor_name), "hl7:%s", fr.sender);
        memset(&sa, 0, sizeof(sa));
        sa.user = actor_name;
        sa.role = role;
        sa.source = a->source;
        snprintf(what, sizeof(what), "replay of message %lld by %s",
                 (long long)id, a->user);
        err = process(r, a, &sa, fac[0] ? fac : app, &m, id, what, ack, out, d);
    }
    if (parsed)
        mr_hl7_release(&m);
    if (own)
        err = in_tx(r, err, own, d);
done:
    mr_buf_release(&fr.ack);
    mr_buf_release(&fr.raw);
    return err;
}

struct list_ctx {
    mr_hl7_cb cb;
    void *ctx;
};

enum mr_err mr_records_hl7_messages(struct mr_records *r,
                                    const struct mr_actor *a,
                                    const struct mr_hl7_filter *f, mr_hl7_cb cb,
                                    void *ctx, struct mr_diag *d)
{
    enum mr_err err = mr__authorize_priv(r, a, MR_PRIV_INTERFACES, d);
    char q[200];

    if (err)
        return mr__denied(r, a, "hl7-messages", "MessageHeader", NULL, d);
    err = mr__tx_begin(r, d);
    if (err)
        return err;
    err = mr_store_hl7_query(r->st, f, cb, ctx, d);
    snprintf(q, sizeof(q), "status=%s&type=%s", f->status ? f->status : "",
             f->type ? f->type : "");
    if (!err)
        err = mr__audit(r, a, "hl7-messages", MR_OK, "MessageHeader", NULL,
                        NULL, q, NULL, d);
    if (!err)
        err = mr__tx_commit(r, d);
    else
        mr__tx_rollback(r);
    return err;
}
