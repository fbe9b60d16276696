/*
 * Who may do what: the access policy applied in one place for every
 * adapter (mr__authorize before an operation, mr__visible for each
 * resource it returns, mr__restrict_query for searches), plus users, API
 * tokens, sign-in and emergency access, all kept as versioned security
 * documents and audited like any access.
 */
#define _GNU_SOURCE /* memmem */
#include "core/id.h"
#include "core/time.h"
#include "fhir/search.h"
#include "records/records_impl.h"
#include "security/password.h"
#include "security/policy.h"
#include "security/token.h"
#include "security/totp.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sign-in backoff: after this many consecutive failures an account is
 * held for 1, 2, 4 ... up to 60 minutes, so at most a dozen guesses an
 * hour get through whatever the number of clients or connections. */
#define FREE_FAILURES 5
#define MAX_HOLD_MIN 60
/* Emergency access lasts this long unless asked for less. */
#define GLASS_MINUTES 60

/* ---- the policy --------------------------------------------------------- */

enum mr_err mr__policy_load(struct mr_records *r, struct mr_diag *d)
{
    struct mr_buf doc = MR_BUF_INIT(MR_POLICY_MAX_BYTES);
    enum mr_err err;

    err = mr_store_sec_get(r->st, "policy", "current", &doc, NULL, d);
    if (err == MR_ENOTFOUND) {
        mr_diag_clear(d);
        err = mr_policy_load_default(&r->policy, d);
    } else if (!err) {
        err = mr_policy_load(doc.ptr, doc.len, &r->policy, d);
    }
    mr_buf_release(&doc);
    return err;
}

static const char *action_verb(enum mr_action act)
{
    return mr_policy_action_name(act);
}

/* The command line without a registered user acts with the rights of
 * whoever can open the database file: the policy cannot restrict file
 * access, so it does not pretend to. */
static int unrestricted(const struct mr_actor *a)
{
    return a->local && !a->role;
}

enum mr_err mr__authorize(struct mr_records *r, const struct mr_actor *a,
                          enum mr_action act, const char *type,
                          struct mr_diag *d)
{
    enum mr_err err = mr__check_actor(a, d);

    if (err || unrestricted(a))
        return err;
    if (!a->role || !mr_policy_role_known(r->policy, a->role))
        return mr_diag_set(d, MR_EDENIED, "role \"%s\" is not in the policy",
                           a->role ? a->role : "");
    if (type && !mr_policy_allows(r->policy, a->role, act, type))
        return mr_diag_set(d, MR_EDENIED, "a %s may not %s %s resources",
                           a->role, action_verb(act), type);
    if (mr_policy_own_compartment_only(r->policy, a->role) &&
        (!a->patient || strncmp(a->patient, "Patient/", 8)))
        return mr_diag_set(d, MR_EDENIED,
                           "this account is not linked to a patient");
    return MR_OK;
}

enum mr_err mr__authorize_priv(struct mr_records *r, const struct mr_actor *a,
                               enum mr_privilege priv, struct mr_diag *d)
{
    enum mr_err err = mr__check_actor(a, d);

    if (err || unrestricted(a))
        return err;
    if (!a->role || !mr_policy_has_privilege(r->policy, a->role, priv))
        return mr_diag_set(d, MR_EDENIED, "a %s may not %s",
                           a->role ? a->role : "user without a role",
                           mr_policy_privilege_name(priv));
    return MR_OK;
}

/* The active emergency grant of a->user for patient, if any. */
static int grant_active(struct mr_records *r, const struct mr_actor *a,
                        const char *patient, char *reason, size_t cap)
{
    struct mr_buf doc = MR_BUF_INIT(64u << 10);
    struct mr_diag d;
    char name[256];
    json_t *g;
    int ok = 0;

    if (!patient || !*patient)
        return 0;
    snprintf(name, sizeof(name), "%s|%s", a->user, patient);
    if (mr_store_sec_get(r->st, "grant", name, &doc, NULL, &d) == MR_OK) {
        g = json_loadb(doc.ptr, doc.len, 0, NULL);
        if (json_integer_value(json_object_get(g, "until")) >
            mr_time_now_ms()) {
            ok = 1;
            snprintf(reason, cap, "%s",
                     json_string_value(json_object_get(g, "reason"))
                         ? json_string_value(json_object_get(g, "reason"))
                         : "");
        }
        json_decref(g);
    }
    mr_buf_release(&doc);
    return ok;
}

enum mr_err mr__visible(struct mr_records *r, const struct mr_actor *a,
                        const char *type, const char *id, const char *json,
                        size_t len, struct mr_buf *redacted,
                        struct mr_emergency *em, struct mr_diag *d)
{
    const char *role = a->role;
    int own, held, redacts, labelled, used = 0, ok;
    json_t *root;
    char pref[128] = "", reason[512];
    enum mr_err err = MR_OK;

    if (em)
        em->used = 0;
    if (unrestricted(a))
        return MR_OK;
    own = mr_policy_own_compartment_only(r->policy, role);
    held = mr_policy_held(r->policy, role, type);
    if (redacted)
        mr_buf_reset(redacted);
    redacts = redacted && mr_policy_redacts(r->policy, role, type);
    labelled = memmem(json, len, "\"security\"", 10) != NULL;
    if (!own && !held && !redacts && !labelled)
        return MR_OK; /* the common case: nothing to look at */
    root = json_loadb(json, len, 0, NULL);
    if (!root)
        return mr_diag_set(d, MR_ECORRUPT, "%s/%s: stored JSON unreadable",
                           type, id);
    mr__patient_of(type, id, root, pref, sizeof(pref));
    if (own && (!a->patient || strcmp(pref, a->patient))) {
        err = mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", type, id);
        goto done;
    }
    ok = mr_policy_visible(r->policy, role, type, root, 0, &used);
    if (!ok && mr_policy_may_break_glass(r->policy, role) &&
        grant_active(r, a, pref, reason, sizeof(reason)) &&
        mr_policy_visible(r->policy, role, type, root, 1, &used)) {
        ok = 1;
        if (em) {
            em->used = 1;
            snprintf(em->reason, sizeof(em->reason), "%s", reason);
        }
    }
    if (!ok) {
        if (own)
            err = mr_diag_set(d, MR_ENOTFOUND, "%s/%s not found", type, id);
        else
            err = mr_diag_set(
                d, MR_EDENIED,
                "%s/%s is restricted (sensitive or not released)%s", type, id,
                mr_policy_may_break_glass(r->policy, role)
                    ? "; open it with emergency access, stating a reason"
                    : "");
        goto done;
    }
    if (redacts && mr_policy_redact(r->policy, role, type, root)) {
        char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        err = text ? mr_buf_adds(redacted, text) : MR_ENOMEM;
        free(text);
        if (err)
            mr_diag_set(d, err, "redacting: %s", mr_strerror(err));
    }
done:
    json_decref(root);
    return err;
}

/* Compartment parameter of `type` that names the patient, preferring
 * "patient" then "subject". */
static const char *patient_param(const char *type)
{
    const char *first = NULL, *subject = NULL;
    size_t i;

    for (i = 0; i < mr_patient_compartment_count; i++) {
        const struct mr_compartment_param *c = &mr_patient_compartment[i];
        if (strcmp(c->resource, type))
            continue;
        if (!strcmp(c->code, "patient"))
            return c->code;
        if (!strcmp(c->code, "subject"))
            subject = c->code;
        if (!first)
            first = c->code;
    }
    return subject ? subject : first;
}

enum mr_err mr__restrict_query(struct mr_records *r, const struct mr_actor *a,
                               struct mr_query *q, struct mr_diag *d)
{
    const char *systems[64], *codes[64], *param;
    struct mr_buf v = MR_BUF_INIT(16u << 10);
    size_t n, i;
    enum mr_err err = MR_OK;

    if (unrestricted(a))
        return MR_OK;
    /* Sensitive labels the role does not hold: such resources are not
     * matched at all, so they are not counted either. */
    n = mr_policy_hidden_codings(r->policy, a->role, systems, codes, 64);
    for (i = 0; i < n && i < 64 && !err; i++)
        err = mr_buf_addf(&v, "%s%s|%s", i ? "," : "", systems[i], codes[i]);
    if (!err && n)
        err = mr_query_add(q, "_security:not", v.ptr, d);
    if (!err && mr_policy_held(r->policy, a->role, q->type))
        err = mr_query_add(q, "_tag",
                           MR_RELEASE_TAG_SYSTEM "|" MR_RELEASE_TAG_CODE, d);
    if (!err && mr_policy_own_compartment_only(r->policy, a->role)) {
        if (!strcmp(q->type, "Patient")) {
            err = mr_query_add(q, "_id", a->patient + 8, d);
        } else if ((param = patient_param(q->type)) != NULL) {
            err = mr_query_add(q, param, a->patient, d);
        } else {
            /* Not in a patient's compartment: nothing of theirs. */
            err = mr_query_add(q, "_id", "-", d);
        }
    }
    mr_buf_release(&v);
    return err;
}

/* ---- users -------------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 2 || n > 64)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static enum mr_err user_get(struct mr_records *r, const char *name,
                            json_t **out, int64_t *version, struct mr_diag *d)
{
    struct mr_buf doc = MR_BUF_INIT(1u << 20);
    enum mr_err err;

    *out = NULL;
    err = mr_store_sec_get(r->st, "user", name, &doc, version, d);
    if (!err) {
        *out = json_loadb(doc.ptr, doc.len, 0, NULL);
        if (!*out)
            err = mr_diag_set(d, MR_ECORRUPT, "user %s: unreadable", name);
    } else if (err == MR_ENOTFOUND) {
        mr_diag_set(d, MR_ENOTFOUND, "no user \"%s\"", name);
    }
    mr_buf_release(&doc);
    return err;
}

static enum mr_err user_put(struct mr_records *r, const char *name, json_t *u,
                            int64_t expect, const char *author,
                            struct mr_diag *d)
{
    char *text = json_dumps(u, JSON_COMPACT | JSON_SORT_KEYS);
    enum mr_err err;

    if (!text)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    err = mr_store_sec_put(r->st, "user", name, text, expect, author, d);
    free(text);
    return err;
}

/* Finish a change begun with mr__tx_begin: its audit entry records the
 * outcome; a failed change is undone first unless keep (a failed sign-in
 * keeps its count of failures). */
static enum mr_err audited_keep(struct mr_records *r, const struct mr_actor *a,
                                const char *action, const char *detail,
                                const char *patient, enum mr_err err, int keep,
                                struct mr_diag *d)
{
    struct mr_diag ad;
    enum mr_err e2;

    if (keep && err) {
        e2 = mr__audit(r, a, action, err, NULL, NULL, patient, NULL, detail,
                       &ad);
        if (!e2)
            e2 = mr__tx_commit(r, &ad);
        if (e2)
            mr__tx_rollback(r);
        return err;
    }
    if (err)
        mr__tx_rollback(r);
    if (err && (e2 = mr__tx_begin(r, &ad))) {
        return err;
    }
    e2 = mr__audit(r, a, action, err, NULL, NULL, patient, NULL, detail, &ad);
    if (!e2)
        e2 = mr__tx_commit(r, &ad);
    else
        mr__tx_rollback(r);
    if (e2 && !err) {
        *d = ad;
        return e2;
    }
    return err;
}

static enum mr_err audited(struct mr_records *r, const struct mr_actor *a,
                           const char *action, const char *detail,
                           const char *patient, enum mr_err err,
                           struct mr_diag *d)
{
    return audited_keep(r, a, action, detail, patient, err, 0, d);
}

enum mr_err mr_records_user_add(struct mr_records *r, const struct mr_actor *a,
                                const char *name, const char *role,
                                const char *pw, size_t pwlen,
                                const char *patient, struct mr_diag *d)
{
    char hash[MR_PASSWORD_HASH_LEN];
    json_t *u = NULL;
    char detail[160];
    enum mr_err err;

    snprintf(detail, sizeof(detail), "user %s role %s", name, role ? role : "");
    if ((err = mr__authorize_priv(r, a, MR_PRIV_MANAGE_USERS, d))) {
        if (!mr__tx_begin(r, d))
            return audited(r, a, "user-add", detail, NULL, err, d);
        return err;
    }
    if (!name_ok(name))
        return mr_diag_set(d, MR_EINVALID,
                           "user: \"%s\" is not a valid name (2-64 of a-z, "
                           "0-9, '.', '_', '-')",
                           name);
    if (!role || !mr_policy_role_known(r->policy, role))
        return mr_diag_set(d, MR_EINVALID,
                           "role: \"%s\" is not a role of the policy",
                           role ? role : "");
    if (mr_policy_own_compartment_only(r->policy, role) &&
        (!patient || strncmp(patient, "Patient/", 8) ||
         !mr_id_valid(patient + 8)))
        return mr_diag_set(d, MR_EINVALID,
                           "patient: a %s account needs the Patient/id of "
                           "its chart",
                           role);
    if ((err = mr_password_check(pw, pwlen, name, d)) ||
        (err = mr_password_hash(pw, pwlen, hash, d)))
        return err;
    u = json_pack("{s:s,s:s,s:b,s:b,s:i,s:I,s:I}", "role", role, "pw", hash,
                  "mfa", 0, "locked", 0, "failures", 0, "held_until",
                  (json_int_t)0, "created", (json_int_t)mr_time_now_ms());
    sodium_memzero(hash, sizeof(hash));
    if (u && mr_policy_own_compartment_only(r->policy, role))
        json_object_set_new(u, "patient", json_string(patient));
    if (!u)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    if ((err = mr__tx_begin(r, d))) {
        json_decref(u);
        return err;
    }
    err = user_put(r, name, u, -1, a->user, d);
    json_decref(u);
    return audited(r, a, "user-add", detail, NULL, err, d);
}

/* Change one user: op "lock", "unlock", "role", "password", "mfa-on",
 * "mfa-off". For "mfa-on" uri receives the otpauth:// URI. */
enum mr_err mr_records_user_change(struct mr_records *r,
                                   const struct mr_actor *a, const char *name,
                                   const char *op, const char *arg,
                                   size_t arglen, struct mr_buf *uri,
                                   struct mr_diag *d)
{
    json_t *u = NULL;
    int64_t ver = 0;
    char detail[160];
    enum mr_err err;

    snprintf(detail, sizeof(detail), "user %s %s%s%s", name, op,
             !strcmp(op, "role") ? " " : "", !strcmp(op, "role") ? arg : "");
    if ((err = mr__authorize_priv(r, a, MR_PRIV_MANAGE_USERS, d))) {
        if (!mr__tx_begin(r, d))
            return audited(r, a, "user-change", detail, NULL, err, d);
        return err;
    }
    if ((err = mr__tx_begin(r, d)))
        return err;
    if ((err = user_get(r, name, &u, &ver, d)))
        goto fail;
    if (!strcmp(op, "lock") || !strcmp(op, "unlock")) {
        json_object_set_new(u, "locked", json_boolean(op[0] == 'l'));
        json_object_set_new(u, "failures", json_integer(0));
        json_object_set_new(u, "held_until", json_integer(0));
    } else if (!strcmp(op, "role")) {
        if (!arg || !mr_policy_role_known(r->policy, arg)) {
            err = mr_diag_set(d, MR_EINVALID,
                              "role: \"%s\" is not a role of the policy",
                              arg ? arg : "");
            goto fail;
        }
        json_object_set_new(u, "role", json_string(arg));
    } else if (!strcmp(op, "password")) {
        char hash[MR_PASSWORD_HASH_LEN];
        if ((err = mr_password_check(arg, arglen, name, d)) ||
            (err = mr_password_hash(arg, arglen, hash, d)))
            goto fail;
        json_object_set_new(u, "pw", json_string(hash));
        sodium_memzero(hash, sizeof(hash));
    } else if (!strcmp(op, "mfa-on")) {
        uint8_t key[MR_TOTP_KEY_LEN];
        char b32[MR_BASE32_LEN(MR_TOTP_KEY_LEN) + 1];
        mr_totp_secret_new(key);
        if ((err = mr_totp_base32_encode(key, sizeof(key), b32, sizeof(b32))) ||
            (uri && (err = mr_totp_uri(name, key, sizeof(key), uri)))) {
            mr_diag_set(d, err, "mfa: %s", mr_strerror(err));
            goto fail;
        }
        json_object_set_new(u, "mfa", json_true());
        json_object_set_new(u, "totp", json_string(b32));
        json_object_set_new(u, "totp_step", json_integer(-1));
        sodium_memzero(key, sizeof(key));
        sodium_memzero(b32, sizeof(b32));
    } else if (!strcmp(op, "mfa-off")) {
        json_object_set_new(u, "mfa", json_false());
        json_object_del(u, "totp");
    } else {
        err = mr_diag_set(d, MR_EUSAGE, "unknown user change \"%s\"", op);
        goto fail;
    }
    err = user_put(r, name, u, ver, a->user, d);
fail:
    json_decref(u);
    return audited(r, a, "user-change", detail, NULL, err, d);
}

struct list_ctx {
    int (*cb)(void *ctx, const struct mr_user_info *u);
    void *ctx;
};

static int list_cb(void *ctx, const char *name, int64_t version,
                   const char *json)
{
    struct list_ctx *l = ctx;
    struct mr_user_info info;
    json_t *u = json_loads(json, 0, NULL);
    int rc;

    memset(&info, 0, sizeof(info));
    snprintf(info.name, sizeof(info.name), "%s", name);
    snprintf(info.role, sizeof(info.role), "%s",
             json_string_value(json_object_get(u, "role"))
                 ? json_string_value(json_object_get(u, "role"))
                 : "");
    snprintf(info.patient, sizeof(info.patient), "%s",
             json_string_value(json_object_get(u, "patient"))
                 ? json_string_value(json_object_get(u, "patient"))
                 : "");
    info.mfa = json_is_true(json_object_get(u, "mfa"));
    info.locked = json_is_true(json_object_get(u, "locked"));
    info.held_until = json_integer_value(json_object_get(u, "held_until"));
    info.failures = (int)json_integer_value(json_object_get(u, "failures"));
    info.version = version;
    json_decref(u);
    rc = l->cb(l->ctx, &info);
    return rc;
}

enum mr_err mr_records_user_list(struct mr_records *r, const struct mr_actor *a,
                                 int (*cb)(void *ctx,
                                           const struct mr_user_info *u),
                                 void *ctx, struct mr_diag *d)
{
    struct list_ctx l = {cb, ctx};
    enum mr_err err;

    if ((err = mr__authorize_priv(r, a, MR_PRIV_MANAGE_USERS, d)))
        return err;
    if ((err = mr__tx_begin_read(r, d)))
        return err;
    err = mr_store_sec_list(r->st, "user", list_cb, &l, d);
    return mr__finish_read(r, a, "user-list", err, NULL, NULL, NULL, NULL, d);
}

enum mr_err mr_records_user_role(struct mr_records *r, const char *name,
                                 char *role, size_t rcap, char *patient,
                                 size_t pcap, struct mr_diag *d)
{
    json_t *u = NULL;
    enum mr_err err;

    if ((err = mr__tx_begin_read(r, d)))
        return err;
    err = user_get(r, name, &u, NULL, d);
    if (!r->in_bundle)
        mr_store_rollback(r->st);
    if (err)
        return err;
    snprintf(role, rcap, "%s",
             json_string_value(json_object_get(u, "role"))
                 ? json_string_value(json_object_get(u, "role"))
                 : "");
    snprintf(patient, pcap, "%s",
             json_string_value(json_object_get(u, "patient"))
                 ? json_string_value(json_object_get(u, "patient"))
                 : "");
    json_decref(u);
    return MR_OK;
}

/* ---- sign-in ------------------------------------------------------------ */

/* A hash to verify against when the user does not exist, so that the
 * answer takes as long as for a real one. */
static const char *dummy_hash(void)
{
    static char h[MR_PASSWORD_HASH_LEN];
    static int done;
    struct mr_diag d;

    if (!done) {
        if (mr_password_hash("not a real password at all", 26, h, &d))
            h[0] = '\0';
        done = 1;
    }
    return h;
}

enum mr_err mr_records_login(struct mr_records *r, const char *source,
                             const char *name, const char *pw, size_t pwlen,
                             const char *code, int require_mfa,
                             struct mr_principal *out, struct mr_diag *d)
{
    struct mr_actor who = {name && *name ? name : "-", NULL, source, NULL, 0};
    json_t *u = NULL;
    int64_t ver = 0, now = mr_time_now_ms(), held;
    const char *hash, *role;
    enum mr_err err;
    int ok, failures;

    char rolebuf[40];

    memset(out, 0, sizeof(*out));
    if (!name || !name_ok(name) || !pw) {
        if (mr_password_verify(dummy_hash(), "x", 1))
            name = NULL;
        err = mr_diag_set(d, MR_EDENIED, "invalid username or password");
        if (!mr__tx_begin(r, d))
            return audited(r, &who, "login", "unknown user", NULL, err, d);
        return err;
    }
    if ((err = mr__tx_begin(r, d)))
        return err;
    err = user_get(r, name, &u, &ver, d);
    if (err == MR_ENOTFOUND) {
        if (mr_password_verify(dummy_hash(), pw, pwlen))
            mr_diag_clear(d);
        err = mr_diag_set(d, MR_EDENIED, "invalid username or password");
        return audited(r, &who, "login", "unknown user", NULL, err, d);
    }
    if (err) {
        mr__tx_rollback(r);
        return err;
    }
    /* A copy: the audit entry is written after u is released. */
    snprintf(rolebuf, sizeof(rolebuf), "%s",
             json_string_value(json_object_get(u, "role"))
                 ? json_string_value(json_object_get(u, "role"))
                 : "");
    role = rolebuf[0] ? rolebuf : NULL;
    who.role = role;
    if (json_is_true(json_object_get(u, "locked"))) {
        err = mr_diag_set(d, MR_EDENIED,
                          "this account is locked; ask an administrator");
        goto done;
    }
    held = json_integer_value(json_object_get(u, "held_until"));
    if (held > now) {
        err = mr_diag_set(d, MR_ETHROTTLED,
                          "too many failed sign-ins; try again in %lld "
                          "minute(s)",
                          (long long)((held - now + 59999) / 60000));
        goto done;
    }
    hash = json_string_value(json_object_get(u, "pw"));
    ok = hash && mr_password_verify(hash, pw, pwlen);
    if (ok && json_is_true(json_object_get(u, "mfa"))) {
        const char *b32 = json_string_value(json_object_get(u, "totp"));
        uint8_t key[MR_TOTP_KEY_MAX];
        size_t klen = 0;
        int64_t step = -1;
        struct mr_diag kd;
        if (b32 && code &&
            !mr_totp_base32_decode(b32, strlen(b32), key, sizeof(key), &klen,
                                   &kd))
            step = mr_totp_verify(
                key, klen, code, now / 1000,
                json_integer_value(json_object_get(u, "totp_step")));
        sodium_memzero(key, sizeof(key));
        if (step < 0)
            ok = 0;
        else
            json_object_set_new(u, "totp_step", json_integer(step));
    }
    if (!ok) {
        failures = (int)json_integer_value(json_object_get(u, "failures")) + 1;
        json_object_set_new(u, "failures", json_integer(failures));
        if (failures >= FREE_FAILURES) {
            int shift = failures - FREE_FAILURES;
            int64_t minutes = shift >= 6 ? MAX_HOLD_MIN : (int64_t)1 << shift;
            json_object_set_new(u, "held_until",
                                json_integer(now + minutes * 60000));
        }
        err = user_put(r, name, u, ver, "sign-in", d);
        if (err) {
            json_decref(u);
            mr__tx_rollback(r);
            return err;
        }
        json_decref(u);
        err = mr_diag_set(d, MR_EDENIED, "invalid username, password or code");
        return audited_keep(r, &who, "login", NULL, NULL, err, 1, d);
    }
    if (require_mfa && !json_is_true(json_object_get(u, "mfa")) && role &&
        (!strcmp(role, "admin") || !strcmp(role, "clinician"))) {
        err = mr_diag_set(d, MR_EDENIED,
                          "a %s must sign in with a second factor; ask an "
                          "administrator to run: medrec user mfa enable %s",
                          role, name);
        goto done;
    }
    if (json_integer_value(json_object_get(u, "failures")) ||
        json_is_true(json_object_get(u, "mfa"))) {
        /* Reset the failures; keep the used TOTP step (no replay). */
        json_object_set_new(u, "failures", json_integer(0));
        json_object_set_new(u, "held_until", json_integer(0));
        if ((err = user_put(r, name, u, ver, "sign-in", d)))
            goto done;
    }
    snprintf(out->user, sizeof(out->user), "%s", name);
    snprintf(out->role, sizeof(out->role), "%s", role ? role : "");
    snprintf(out->patient, sizeof(out->patient), "%s",
             json_string_value(json_object_get(u, "patient"))
                 ? json_string_value(json_object_get(u, "patient"))
                 : "");
done:
    json_decref(u);
    return audited(r, &who, "login", NULL, NULL, err, d);
}

/* ---- API tokens --------------------------------------------------------- */

enum mr_err mr_records_token_create(struct mr_records *r,
                                    const struct mr_actor *a, const char *name,
                                    const char *role, int64_t ttl_ms,
                                    char out[61], struct mr_diag *d)
{
    char hex[MR_TOKEN_HASH_HEX], detail[160];
    json_t *t;
    char *text;
    enum mr_err err;

    snprintf(detail, sizeof(detail), "token %s role %s", name,
             role ? role : "");
    if ((err = mr__authorize_priv(r, a, MR_PRIV_MANAGE_USERS, d))) {
        if (!mr__tx_begin(r, d))
            return audited(r, a, "token-create", detail, NULL, err, d);
        return err;
    }
    if (!name_ok(name))
        return mr_diag_set(d, MR_EINVALID,
                           "token: \"%s\" is not a valid name (2-64 of a-z, "
                           "0-9, '.', '_', '-')",
                           name);
    if (!role || !mr_policy_system_token_ok(r->policy, role))
        return mr_diag_set(d, MR_EINVALID,
                           "role: a system token cannot carry \"%s\"",
                           role ? role : "");
    if (ttl_ms <= 0 || ttl_ms > 400LL * 86400000)
        return mr_diag_set(d, MR_EINVALID,
                           "expires: between 1 minute and 400 days");
    if ((err = mr_token_new(MR_TOKEN_PREFIX_API, out)))
        return mr_diag_set(d, err, "token: %s", mr_strerror(err));
    mr_token_hash(out, hex);
    t = json_pack("{s:s,s:s,s:I,s:I,s:b}", "name", name, "role", role,
                  "created", (json_int_t)mr_time_now_ms(), "expires",
                  (json_int_t)(mr_time_now_ms() + ttl_ms), "revoked", 0);
    text = t ? json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(t);
    if (!text)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    if (!(err = mr__tx_begin(r, d))) {
        /* The hash names the document; the name finds it for revoking. */
        err = mr_store_sec_put(r->st, "token", hex, text, -1, a->user, d);
        if (!err)
            err =
                mr_store_sec_put(r->st, "token-name", name, hex, 0, a->user, d);
    }
    free(text);
    if (err)
        sodium_memzero(out, MR_TOKEN_MAX);
    return audited(r, a, "token-create", detail, NULL, err, d);
}

enum mr_err mr_records_token_revoke(struct mr_records *r,
                                    const struct mr_actor *a, const char *name,
                                    struct mr_diag *d)
{
    struct mr_buf hex = MR_BUF_INIT(256), doc = MR_BUF_INIT(64u << 10);
    json_t *t = NULL;
    int64_t ver = 0;
    char detail[160], *text = NULL;
    enum mr_err err;

    snprintf(detail, sizeof(detail), "token %s", name);
    if ((err = mr__authorize_priv(r, a, MR_PRIV_MANAGE_USERS, d))) {
        if (!mr__tx_begin(r, d))
            return audited(r, a, "token-revoke", detail, NULL, err, d);
        return err;
    }
    if ((err = mr__tx_begin(r, d)))
        return err;
    if (!(err = mr_store_sec_get(r->st, "token-name", name, &hex, NULL, d)) &&
        !(err = mr_store_sec_get(r->st, "token", hex.ptr, &doc, &ver, d))) {
        t = json_loadb(doc.ptr, doc.len, 0, NULL);
        if (t)
            json_object_set_new(t, "revoked", json_true());
        text = t ? json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        err = text ? mr_store_sec_put(r->st, "token", hex.ptr, text, ver,
                                      a->user, d)
                   : mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    free(text);
    json_decref(t);
    mr_buf_release(&hex);
    mr_buf_release(&doc);
    return audited(r, a, "token-revoke", detail, NULL, err, d);
}

enum mr_err mr_records_token_check(struct mr_records *r, const char *token,
                                   struct mr_principal *out, struct mr_diag *d)
{
    struct mr_buf doc = MR_BUF_INIT(64u << 10);
    char hex[MR_TOKEN_HASH_HEX];
    json_t *t = NULL;
    enum mr_err err;

    memset(out, 0, sizeof(*out));
    if (!mr_token_wellformed(token, MR_TOKEN_PREFIX_API))
        return mr_diag_set(d, MR_EDENIED, "invalid token");
    mr_token_hash(token, hex);
    if ((err = mr__tx_begin_read(r, d)))
        return err;
    err = mr_store_sec_get(r->st, "token", hex, &doc, NULL, d);
    if (!r->in_bundle)
        mr_store_rollback(r->st);
    if (!err)
        t = json_loadb(doc.ptr, doc.len, 0, NULL);
    mr_buf_release(&doc);
    if (err || !t || json_is_true(json_object_get(t, "revoked")) ||
        json_integer_value(json_object_get(t, "expires")) <= mr_time_now_ms()) {
        json_decref(t);
        mr_diag_clear(d);
        return mr_diag_set(d, MR_EDENIED, "invalid, expired or revoked token");
    }
    snprintf(out->user, sizeof(out->user), "%s",
             json_string_value(json_object_get(t, "name")));
    snprintf(out->role, sizeof(out->role), "%s",
             json_string_value(json_object_get(t, "role")));
    out->expires = json_integer_value(json_object_get(t, "expires"));
    json_decref(t);
    return MR_OK;
}

/* ---- emergency access ------------------------------------------------- */

enum mr_err mr_records_break_glass(struct mr_records *r,
                                   const struct mr_actor *a,
                                   const char *patient, const char *reason,
                                   int minutes, int64_t *until,
                                   struct mr_diag *d)
{
    char name[256], detail[600];
    json_t *g;
    char *text;
    int64_t end;
    enum mr_err err = mr__check_actor(a, d);

    if (err)
        return err;
    if (!patient || strncmp(patient, "Patient/", 8) ||
        !mr_id_valid(patient + 8))
        return mr_diag_set(d, MR_EINVALID,
                           "patient: expected Patient/id, got \"%s\"",
                           patient ? patient : "");
    if (!reason || strlen(reason) < 10 || strlen(reason) > 400)
        return mr_diag_set(d, MR_EINVALID,
                           "reason: say why, in 10 to 400 characters");
    if (minutes <= 0 || minutes > GLASS_MINUTES)
        minutes = GLASS_MINUTES;
    snprintf(detail, sizeof(detail), "emergency access granted: %s", reason);
    if ((err = mr__tx_begin(r, d)))
        return err;
    if (!unrestricted(a) &&
        (!a->role || !mr_policy_may_break_glass(r->policy, a->role))) {
        err = mr_diag_set(d, MR_EDENIED, "a %s may not break the glass",
                          a->role ? a->role : "user");
        snprintf(detail, sizeof(detail), "break-the-glass refused: %s", reason);
        return audited(r, a, "break-glass", detail, patient, err, d);
    }
    end = mr_time_now_ms() + (int64_t)minutes * 60000;
    snprintf(name, sizeof(name), "%s|%s", a->user, patient);
    g = json_pack("{s:s,s:I}", "reason", reason, "until", (json_int_t)end);
    text = g ? json_dumps(g, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(g);
    err = text ? mr_store_sec_put(r->st, "grant", name, text, 0, a->user, d)
               : mr_diag_set(d, MR_ENOMEM, "out of memory");
    free(text);
    if (!err && until)
        *until = end;
    return audited(r, a, "break-glass", detail, patient, err, d);
}

/* ---- the policy document ---------------------------------------------- */

enum mr_err mr_records_policy_get(struct mr_records *r,
                                  const struct mr_actor *a, struct mr_buf *out,
                                  struct mr_diag *d)
{
    enum mr_err err;
    size_t len;
    const char *def;

    if ((err = mr__check_actor(a, d)))
        return err;
    if ((err = mr__tx_begin_read(r, d)))
        return err;
    err = mr_store_sec_get(r->st, "policy", "current", out, NULL, d);
    if (err == MR_ENOTFOUND) {
        mr_diag_clear(d);
        def = mr_policy_default_json(&len);
        err = mr_buf_add(out, def, len);
    }
    return mr__finish_read(r, a, "policy-read", err, NULL, NULL, NULL, NULL, d);
}

enum mr_err mr_records_policy_set(struct mr_records *r,
                                  const struct mr_actor *a, const char *json,
                                  size_t len, struct mr_diag *d)
{
    struct mr_policy *p = NULL;
    struct mr_buf text = MR_BUF_INIT(MR_POLICY_MAX_BYTES + 1);
    enum mr_err err;

    if ((err = mr__authorize_priv(r, a, MR_PRIV_MANAGE_POLICY, d))) {
        if (!mr__tx_begin(r, d))
            return audited(r, a, "policy-change", NULL, NULL, err, d);
        return err;
    }
    if ((err = mr_policy_load(json, len, &p, d)))
        return err;
    if (!(err = mr_buf_add(&text, json, len)) && !(err = mr__tx_begin(r, d)))
        err = mr_store_sec_put(r->st, "policy", "current", text.ptr, 0, a->user,
                               d);
    else if (err)
        mr_diag_set(d, err, "policy: %s", mr_strerror(err));
    mr_buf_release(&text);
    err = audited(r, a, "policy-change", NULL, NULL, err, d);
    if (!err) {
        mr_policy_free(r->policy);
        r->policy = p;
    } else {
        mr_policy_free(p);
    }
    return err;
}

_Static_assert(MR_RECORDS_TOKEN_MAX >= MR_TOKEN_MAX, "token buffer size");

/* ---- filtering what an operation returns ------------------------------ */

void mr__filter_init(struct mr__filter *f, struct mr_records *r,
                     const struct mr_actor *a, enum mr_action act,
                     mr_store_cb cb, void *ctx)
{
    f->r = r;
    f->a = a;
    f->act = act;
    f->cb = cb;
    f->ctx = ctx;
    f->skipped = 0;
    mr_buf_init(&f->red, MR_MAX_RESOURCE_BYTES * 2);
}

void mr__filter_release(struct mr__filter *f)
{
    mr_buf_release(&f->red);
}

int mr__filter_cb(void *ctx, const struct mr_version *m, const char *json,
                  size_t len)
{
    struct mr__filter *f = ctx;
    struct mr_emergency em;
    struct mr_diag d;
    enum mr_err err;

    if (unrestricted(f->a))
        return f->cb(f->ctx, m, json, len);
    if (!mr_policy_allows(f->r->policy, f->a->role, f->act, m->type)) {
        f->skipped++;
        return 0;
    }
    if (m->deleted || !json || !len)
        return f->cb(f->ctx, m, json, len);
    mr_diag_clear(&d);
    err = mr__visible(f->r, f->a, m->type, m->id, json, len, &f->red, &em, &d);
    if (err == MR_EDENIED || err == MR_ENOTFOUND) {
        f->skipped++;
        return 0;
    }
    if (err)
        return (int)err;
    if (em.used)
        snprintf(f->r->emergency, sizeof(f->r->emergency), "emergency: %s",
                 em.reason);
    if (f->red.len)
        return f->cb(f->ctx, m, f->red.ptr, f->red.len);
    return f->cb(f->ctx, m, json, len);
}
