/*
 * The records service: authorize -> validate -> index -> store -> audit
 * -> commit, for every interface.
 */
#include "records/records.h"
#include "core/alloc.h"
#include "core/id.h"
#include "core/text.h"
#include "core/time.h"
#include "fhir/defs.h"
#include "fhir/index.h"
#include "fhir/jsontext.h"
#include "fhir/search.h"
#include "fhir/validate.h"
#include "records/patient.h"
#include "records/records_impl.h"

#include <stdlib.h>
#include <string.h>

enum mr_err mr__tx_begin(struct mr_records *r, struct mr_diag *d)
{
    return r->in_bundle ? MR_OK : mr_store_begin(r->st, 1, d);
}

enum mr_err mr__tx_begin_read(struct mr_records *r, struct mr_diag *d)
{
    if (r->in_bundle)
        return MR_OK;
    return mr_store_begin(r->st, r->deferred ? 0 : 1, d);
}

enum mr_err mr__tx_commit(struct mr_records *r, struct mr_diag *d)
{
    return r->in_bundle ? MR_OK : mr_store_commit(r->st, d);
}

void mr__tx_rollback(struct mr_records *r)
{
    if (!r->in_bundle)
        mr_store_rollback(r->st);
}

void mr_result_init(struct mr_result *res)
{
    memset(&res->meta, 0, sizeof(res->meta));
    mr_buf_init(&res->json, MR_MAX_RESOURCE_BYTES * 2);
}

void mr_result_release(struct mr_result *res)
{
    mr_buf_release(&res->json);
}

enum mr_err mr_records_open(const char *path, int flags,
                            struct mr_records **out, struct mr_diag *d)
{
    struct mr_records *r;
    enum mr_err err;

    r = mr_calloc(1, sizeof(*r));
    if (!r)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    err = mr_store_open(path, flags, &r->st, d);
    if (!err && (err = mr__policy_load(r, d)))
        mr_store_close(r->st);
    if (err) {
        mr_free(r);
        return err;
    }
    mr_ix_init(&r->ix);
    mr_buf_init(&r->out, MR_MAX_RESOURCE_BYTES * 2);
    *out = r;
    return MR_OK;
}

void mr_records_close(struct mr_records *r)
{
    if (!r)
        return;
    mr_store_close(r->st);
    mr_policy_free(r->policy);
    mr_audit_batch_release(&r->denials);
    mr_ix_release(&r->ix);
    mr_buf_release(&r->out);
    mr_free(r);
}

/* ---- helpers ---------------------------------------------------------- */

enum mr_err mr__check_actor(const struct mr_actor *a, struct mr_diag *d)
{
    /* The policy (roles, minimum necessary) is enforced here, in one
     * place, when the security issue lands; for now an actor must be
     * named. */
    if (!a || !a->user || !*a->user)
        return mr_diag_set(d, MR_EDENIED,
                           "no user: every access must be "
                           "attributable");
    return MR_OK;
}

enum mr_err mr__check_type(const char *type, struct mr_diag *d)
{
    if (!type || !mr_fhir_is_resource_type(type))
        return mr_diag_set(d, MR_EINVALID,
                           "\"%s\" is not a FHIR R4 resource type",
                           type ? type : "");
    return MR_OK;
}

/* Parse and structurally validate resource JSON text. *root is a new
 * reference owned by the caller. */
static enum mr_err parse_resource(struct mr_records *r, const char *text,
                                  size_t len, const char *type, json_t **root,
                                  struct mr_diag *d)
{
    json_error_t je;
    json_t *j;
    enum mr_err err;

    if (r->preparsed) {
        const char *rt =
            json_string_value(json_object_get(r->preparsed, "resourceType"));
        j = r->preparsed;
        r->preparsed = NULL;
        if (type && (!rt || strcmp(rt, type)))
            return mr_diag_set(d, MR_EINVALID,
                               "resourceType: expected \"%s\", got \"%s\"",
                               type, rt ? rt : "");
        *root = json_incref(j);
        return MR_OK;
    }

    if (len > MR_MAX_RESOURCE_BYTES)
        return mr_diag_set(d, MR_ETOOBIG,
                           "resource is %zu bytes; the limit is %u bytes "
                           "(4 MiB)",
                           len, MR_MAX_RESOURCE_BYTES);
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return mr_diag_set(d, MR_EJSON,
                           "malformed JSON at line %d, column %d: %s", je.line,
                           je.column, je.text);
    err = mr_fhir_validate(j, type, d);
    if (err) {
        json_decref(j);
        return err;
    }
    *root = j;
    return MR_OK;
}

/* The patient a resource belongs to ("Patient/x"), for the audit trail. */
void mr__patient_of(const char *type, const char *id, const json_t *root,
                    char *out, size_t cap)
{
    static const char *const fields[] = {"subject", "patient", "beneficiary",
                                         NULL};
    const char *const *f;
    const char *ref;

    out[0] = '\0';
    if (!strcmp(type, "Patient")) {
        snprintf(out, cap, "Patient/%s", id);
        return;
    }
    if (!root)
        return;
    for (f = fields; *f; f++) {
        ref = json_string_value(
            json_object_get(json_object_get(root, *f), "reference"));
        if (ref && !strncmp(ref, "Patient/", 8)) {
            snprintf(out, cap, "%s", ref);
            return;
        }
    }
}

enum mr_err mr__audit(struct mr_records *r, const struct mr_actor *a,
                      const char *action, enum mr_err outcome, const char *type,
                      const char *id, const char *patient, const char *query,
                      const char *detail, struct mr_diag *d)
{
    struct mr_audit_entry e = {
        .ts = mr_time_now_ms(),
        .actor = a->user,
        .role = a->role ? a->role : "unknown",
        .source = a->source,
        .action = action,
        .outcome = outcome ? mr_errname(outcome) : "ok",
        .type = type,
        .id = id,
        .patient = patient && *patient ? patient : NULL,
        .query = query,
        .detail = detail,
    };
    return mr_store_audit(r->st, &e, d);
}

const char *mr_patient_mrn(const json_t *patient)
{
    size_t i;
    json_t *e;

    json_array_foreach(json_object_get(patient, "identifier"), i, e)
    {
        const char *sys = json_string_value(json_object_get(e, "system"));
        if (sys && !strcmp(sys, MR_MRN_SYSTEM))
            return json_string_value(json_object_get(e, "value"));
    }
    return NULL;
}

/* A new identifier array: the old one plus {MR, MR_MRN_SYSTEM, mrn}. */
static json_t *identifiers_with_mrn(const json_t *root, const char *mrn)
{
    json_t *arr = json_deep_copy(json_object_get(root, "identifier"));

    if (!arr)
        arr = json_array();
    json_array_append_new(
        arr, json_pack("{s:s,s:{s:[{s:s,s:s,s:s}],s:s},s:s,s:s}", "use",
                       "usual", "type", "coding", "system",
                       "http://terminology.hl7.org/CodeSystem/v2-0203", "code",
                       "MR", "display", "Medical record number", "text", "MRN",
                       "system", MR_MRN_SYSTEM, "value", mrn));
    return arr;
}

static enum mr_err new_mrn(struct mr_records *r, char mrn[24],
                           struct mr_diag *d)
{
    uint64_t seq;
    enum mr_err err = mr_store_next_seq(r->st, "mrn", MR_MRN_START, &seq, d);

    if (!err)
        mr_mrn_format(seq, mrn);
    return err;
}

/* The sequence number inside a valid MRN (its digits less the check
 * digit); 0 if mrn is not a valid MRN. */
static uint64_t mrn_seq(const char *mrn)
{
    size_t n;
    char digits[24];
    char *end;
    unsigned long long v;

    if (!mrn || !mr_mrn_valid(mrn))
        return 0;
    n = strlen(mrn);
    if (n - 1 >= sizeof(digits))
        return 0;
    memcpy(digits, mrn, n - 1);
    digits[n - 1] = '\0';
    v = strtoull(digits, &end, 10);
    return *end ? 0 : (uint64_t)v;
}

/* The first match of a search: its id and "Type/id", and how many. */
struct ref_ctx {
    char id[65];
    char ref[140];
    int n;
};

static int first_id_cb(void *ctx, const struct mr_version *m, const char *json,
                       size_t len)
{
    struct ref_ctx *c = ctx;

    (void)json;
    (void)len;
    if (c->n++ == 0) {
        snprintf(c->id, sizeof(c->id), "%s", m->id);
        snprintf(c->ref, sizeof(c->ref), "%s/%s", m->type, m->id);
    }
    return 0;
}

/* MR_EEXISTS if `mrn` belongs to a Patient other than `id`. */
static enum mr_err mrn_unique(struct mr_records *r, const char *mrn,
                              const char *id, struct mr_diag *d)
{
    struct mr_query q;
    struct ref_ctx c = {"", "", 0};
    char value[128];
    enum mr_err err;

    mr_query_init(&q, "Patient");
    snprintf(value, sizeof(value), "%s|%s", MR_MRN_SYSTEM, mrn);
    err = mr_query_add(&q, "identifier", value, d);
    if (!err) {
        q.count = 2;
        err = mr_store_search(r->st, &q, first_id_cb, &c, NULL, d);
    }
    mr_query_release(&q);
    if (err)
        return err;
    if (c.n > 1 || (c.n == 1 && strcmp(c.id, id)))
        return mr_diag_set(d, MR_EEXISTS,
                           "Patient.identifier: MRN %s already belongs to "
                           "Patient/%s",
                           mrn, c.id);
    return MR_OK;
}

/* Every relative reference ("Type/id") in v must name a stored resource
 * (or one the enclosing Bundle creates); contained ("#x") and absolute
 * URLs are accepted as they are. path names the element for the error. */
static enum mr_err check_refs(struct mr_records *r, const json_t *v,
                              struct mr_buf *path, int depth, struct mr_diag *d)
{
    const char *k, *ref, *slash;
    const json_t *c;
    size_t i, keep = path->len;
    enum mr_err err;
    char type[64];

    if (depth > 64)
        return MR_OK;
    if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            if ((err = check_refs(r, c, path, depth + 1, d)))
                return err;
        }
        return MR_OK;
    }
    if (!json_is_object(v))
        return MR_OK;
    json_object_foreach((json_t *)v, k, c)
    {
        if (!strcmp(k, "contained"))
            continue;
        path->len = keep;
        path->ptr[keep] = '\0';
        if (mr_buf_addc(path, '.') || mr_buf_adds(path, k))
            return mr_diag_set(d, MR_ENOMEM, "out of memory");
        ref = json_string_value(c);
        if (ref && !strcmp(k, "reference")) {
            if (ref[0] == '#' || strstr(ref, "://"))
                continue;
            slash = strchr(ref, '/');
            if (!slash || (size_t)(slash - ref) >= sizeof(type))
                return mr_diag_set(d, MR_EINVALID,
                                   "%s: \"%.80s\" is not a reference this "
                                   "server can resolve",
                                   path->ptr, ref);
            memcpy(type, ref, (size_t)(slash - ref));
            type[slash - ref] = '\0';
            {
                char id[80];
                const char *hist = strstr(slash + 1, "/_history/");
                size_t idlen =
                    hist ? (size_t)(hist - slash - 1) : strlen(slash + 1);
                struct mr_diag ld;
                if (idlen >= sizeof(id))
                    idlen = sizeof(id) - 1;
                memcpy(id, slash + 1, idlen);
                id[idlen] = '\0';
                if (!mr_fhir_is_resource_type(type) || !mr_id_valid(id))
                    return mr_diag_set(d, MR_EINVALID,
                                       "%s: \"%.80s\" is not a valid "
                                       "reference",
                                       path->ptr, ref);
                err = mr_store_read(r->st, type, id, 0, NULL, NULL, &ld);
                /* A resource may refer to itself (a document's
                 * relatesTo, say): it exists once written. */
                if (err == MR_ENOTFOUND && r->self_ref[0] &&
                    !strcmp(type, r->self_type) && !strcmp(id, r->self_id))
                    err = MR_OK;
                if (err == MR_ENOTFOUND && r->ref_planned &&
                    r->ref_planned(r->ref_ctx, ref))
                    err = MR_OK;
                if (err == MR_ENOTFOUND)
                    return mr_diag_set(d, MR_EINVALID,
                                       "%s: \"%.80s\" does not exist",
                                       path->ptr, ref);
                if (err && err != MR_EGONE)
                    return mr_diag_set(d, err, "%s", mr_diag_msg(&ld));
            }
            continue;
        }
        if ((err = check_refs(r, c, path, depth + 1, d)))
            return err;
    }
    path->len = keep;
    path->ptr[keep] = '\0';
    return MR_OK;
}

static enum mr_err check_references(struct mr_records *r, const char *type,
                                    const json_t *root, const char *self_id,
                                    struct mr_diag *d)
{
    struct mr_buf path = MR_BUF_INIT(4096);
    enum mr_err err;

    /* A stored Bundle (a document, a collection) refers within itself,
     * by its entries' fullUrls, not to this server's resources. */
    if (!strcmp(type, "Bundle"))
        return MR_OK;
    err = mr_buf_adds(&path, type);
    snprintf(r->self_type, sizeof(r->self_type), "%s", type);
    snprintf(r->self_id, sizeof(r->self_id), "%s", self_id ? self_id : "");
    r->self_ref[0] = r->self_id[0] ? 1 : 0;

    if (!err)
        err = check_refs(r, root, &path, 0, d);
    r->self_ref[0] = 0;
    mr_buf_release(&path);
    return err;
}

/*
 * Build the stored form of `root` (parsed from src) as version `version`
 * at time ts into r->out, apply the same id/meta/extra members to root so
 * the index is extracted from exactly what is stored, and extract it.
 * `extra` (may be NULL) holds further members to set (stolen).
 */
static enum mr_err prepare_version(struct mr_records *r, const char *type,
                                   const char *src, size_t len, json_t *root,
                                   const char *id, int64_t version, int64_t ts,
                                   json_t *extra, struct mr_diag *d)
{
    json_t *over = extra ? extra : json_object();
    json_t *meta;
    char vbuf[24], tbuf[32];
    enum mr_err err;
    const char *k;
    json_t *v;

    meta = json_deep_copy(json_object_get(root, "meta"));
    if (!meta)
        meta = json_object();
    snprintf(vbuf, sizeof(vbuf), "%lld", (long long)version);
    mr_time_format(ts, tbuf);
    json_object_set_new(meta, "versionId", json_string(vbuf));
    json_object_set_new(meta, "lastUpdated", json_string(tbuf));
    json_object_set_new(over, "id", json_string(id));
    json_object_set_new(over, "meta", meta);

    mr_buf_reset(&r->out);
    err = mr_json_splice(src, len, over, &r->out);
    if (err) {
        json_decref(over);
        return mr_diag_set(d, err, "%s: cannot store the resource: %s", type,
                           mr_strerror(err));
    }
    json_object_foreach(over, k, v)
    {
        json_object_set(root, k, v);
    }
    json_decref(over);
    mr_ix_reset(&r->ix);
    err = mr_fhir_extract(root, type, &r->ix);
    if (err)
        return mr_diag_set(d, err, "%s: indexing failed: %s", type,
                           mr_strerror(err));
    return MR_OK;
}

static enum mr_err fill_result(struct mr_records *r, struct mr_result *res,
                               const char *type, const char *id,
                               int64_t version, int64_t ts,
                               const struct mr_actor *a, const char *reason,
                               struct mr_diag *d)
{
    if (!res)
        return MR_OK;
    memset(&res->meta, 0, sizeof(res->meta));
    snprintf(res->meta.type, sizeof(res->meta.type), "%s", type);
    snprintf(res->meta.id, sizeof(res->meta.id), "%s", id);
    res->meta.version = version;
    res->meta.ts = ts;
    snprintf(res->meta.author, sizeof(res->meta.author), "%s", a->user);
    snprintf(res->meta.reason, sizeof(res->meta.reason), "%s",
             reason ? reason : "");
    mr_buf_reset(&res->json);
    if (mr_buf_add(&res->json, r->out.ptr, r->out.len)) {
        mr_buf_reset(&res->json);
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    return MR_OK;
}

/* ---- duplicate detection ---------------------------------------------- */

struct dup_ctx {
    const char *family, *given; /* folded */
    const char *gender;
    char found_id[65];
    char found_mrn[24];
};

/* 1 if a folds to `folded`, 0 if not, -1 if folding failed. */
static int folded_eq(const char *a, const char *folded)
{
    struct mr_buf b = MR_BUF_INIT(4096);
    int eq = 0;

    if (a) {
        if (mr_text_fold(a, strlen(a), &b))
            eq = -1;
        else
            eq = !strcmp(b.ptr, folded);
    }
    mr_buf_release(&b);
    return eq;
}

static int dup_cb(void *ctx, const struct mr_version *m, const char *json,
                  size_t len)
{
    struct dup_ctx *c = ctx;
    json_t *p = json_loadb(json, len, 0, NULL);
    size_t i, j;
    json_t *n, *g;
    int match = 0;

    if (!p)
        return 0;
    {
        const char *sex = json_string_value(json_object_get(p, "gender"));
        if (!sex || strcmp(sex, c->gender)) {
            json_decref(p);
            return 0;
        }
    }
    json_array_foreach(json_object_get(p, "name"), i, n)
    {
        int eq = folded_eq(json_string_value(json_object_get(n, "family")),
                           c->family);
        if (eq < 0)
            goto nomem;
        if (!eq)
            continue;
        json_array_foreach(json_object_get(n, "given"), j, g)
        {
            eq = folded_eq(json_string_value(g), c->given);
            if (eq < 0)
                goto nomem;
            if (eq)
                match = 1;
        }
    }
    if (match) {
        const char *mrn = mr_patient_mrn(p);
        snprintf(c->found_id, sizeof(c->found_id), "%s", m->id);
        snprintf(c->found_mrn, sizeof(c->found_mrn), "%s", mrn ? mrn : "");
    }
    json_decref(p);
    return match ? MR_EDUPLICATE : 0;
nomem:
    /* A comparison that could not be made must not pass as "no
     * duplicate". */
    json_decref(p);
    return MR_ENOMEM;
}

/* MR_EDUPLICATE if a Patient with the same name, birth date and gender is
 * registered. Runs inside the write transaction. */
static enum mr_err find_duplicate(struct mr_records *r, const json_t *p,
                                  struct mr_diag *d)
{
    const json_t *name = json_array_get(json_object_get(p, "name"), 0);
    const char *family = json_string_value(json_object_get(name, "family"));
    const char *given =
        json_string_value(json_array_get(json_object_get(name, "given"), 0));
    const char *birth = json_string_value(json_object_get(p, "birthDate"));
    const char *gender = json_string_value(json_object_get(p, "gender"));
    struct mr_buf ff = MR_BUF_INIT(4096), fg = MR_BUF_INIT(4096);
    struct mr_query q;
    struct dup_ctx c;
    enum mr_err err;
    struct mr_diag qd;

    if (!family || !given || !birth || !gender)
        return MR_OK;
    memset(&c, 0, sizeof(c));
    mr_query_init(&q, "Patient");
    err = mr_text_fold(family, strlen(family), &ff);
    if (!err)
        err = mr_text_fold(given, strlen(given), &fg);
    if (!err)
        err = mr_query_add(&q, "family", family, &qd);
    if (!err)
        err = mr_query_add(&q, "birthdate", birth, &qd);
    /* Gender is compared on the few candidates rather than searched: as a
     * clause it matches half the patients. */
    if (err) {
        /* A value the search cannot express cannot be compared; anything
         * else (out of memory) must not skip the check. */
        if (err == MR_EINVALID)
            err = MR_OK;
        else
            mr_diag_set(d, err, "duplicate check failed: %s", mr_strerror(err));
        goto done;
    }
    q.count = 1000;
    c.family = ff.ptr;
    c.given = fg.ptr;
    c.gender = gender;
    err = mr_store_search(r->st, &q, dup_cb, &c, NULL, d);
    if (err == MR_ENOMEM)
        mr_diag_set(d, err, "duplicate check failed: out of memory");
    if (err == MR_EDUPLICATE)
        mr_diag_set(
            d, MR_EDUPLICATE,
            "possible duplicate: MRN %s (Patient/%s) has the same "
            "name, birth date and gender; if this is a different person, "
            "register with the override (medrec patient add --force; "
            "over HTTP the header X-Duplicate-Checked: "
            "different-person)",
            c.found_mrn[0] ? c.found_mrn : "-", c.found_id);
done:
    mr_query_release(&q);
    mr_buf_release(&ff);
    mr_buf_release(&fg);
    return err;
}

/* ---- writes ----------------------------------------------------------- */

/* Elements the actor's role does not see may not be written by it. */
static enum mr_err hidden_elements_set(struct mr_records *r,
                                       const struct mr_actor *a,
                                       const char *type, const json_t *root,
                                       struct mr_diag *d)
{
    const char *k;
    json_t *v;

    if (!a->role || !mr_policy_redacts(r->policy, a->role, type))
        return MR_OK;
    json_object_foreach((json_t *)root, k, v)
    {
        if (mr_policy_element_hidden(r->policy, a->role, type, k))
            return mr_diag_set(d, MR_EDENIED,
                               "%s.%s: a %s may not set this element", type, k,
                               a->role);
    }
    return MR_OK;
}

/* An update by a role that does not see some elements keeps them as they
 * were (added to `extra`, which is spliced into the stored version). */
static enum mr_err keep_hidden(struct mr_records *r, const struct mr_actor *a,
                               const char *type, const struct mr_buf *old,
                               json_t *extra, struct mr_diag *d)
{
    json_t *prev, *v;
    const char *k;

    if (!a->role || !mr_policy_redacts(r->policy, a->role, type))
        return MR_OK;
    prev = json_loadb(old->ptr, old->len, 0, NULL);
    if (!prev)
        return mr_diag_set(d, MR_ECORRUPT, "%s: stored version unreadable",
                           type);
    json_object_foreach(prev, k, v)
    {
        if (strcmp(k, "text") &&
            mr_policy_element_hidden(r->policy, a->role, type, k))
            json_object_set(extra, k, v);
    }
    json_decref(prev);
    return MR_OK;
}

enum mr_err mr_records_create(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *json, size_t len,
                              const char *reason, int flags,
                              struct mr_result *res, struct mr_diag *d)
{
    json_t *root = NULL, *extra = NULL;
    enum mr_err err;
    char id[65], mrn[24], pref[128];
    int64_t now = mr_time_now_ms(), version = 0;
    int is_patient;
    struct mr_put put;

    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    if ((err = mr__authorize(r, a, MR_ACT_CREATE, type, d)))
        return mr__denied(r, a, "create", type, NULL, d);
    err = parse_resource(r, json, len, type, &root, d);
    if (!err && (err = hidden_elements_set(r, a, type, root, d)))
        json_decref(root);
    if (err)
        return err;
    is_patient = !strcmp(type, "Patient");
    if (is_patient && (err = mr_patient_check(root, now, d)))
        goto out;
    err = mr__tx_begin(r, d);
    if (err)
        goto out;
    if (is_patient && !(flags & MR_WRITE_FORCE)) {
        err = find_duplicate(r, root, d);
        if (err)
            goto fail;
    }
    if (r->next_id)
        snprintf(id, sizeof(id), "%s", r->next_id);
    else
        mr_id_new(id);
    extra = json_object();
    if (is_patient && mr_patient_mrn(root)) {
        err = mr_diag_set(d, MR_EINVALID,
                          "Patient.identifier: medical record numbers (%s) "
                          "are assigned by medrec; remove it",
                          MR_MRN_SYSTEM);
        goto fail;
    }
    if (is_patient) {
        err = new_mrn(r, mrn, d);
        if (err)
            goto fail;
        json_object_set_new(extra, "identifier",
                            identifiers_with_mrn(root, mrn));
    }
    err = check_references(r, type, root, NULL, d);
    if (err)
        goto fail;
    err = prepare_version(r, type, json, len, root, id, 1, now, extra, d);
    extra = NULL;
    if (err)
        goto fail;
    put = (struct mr_put){.type = type,
                          .id = id,
                          .expect = MR_PUT_NEW,
                          .json = r->out.ptr,
                          .json_len = r->out.len,
                          .ts = now,
                          .author = a->user,
                          .reason = reason,
                          .ix = &r->ix};
    err = mr_store_put(r->st, &put, &version, d);
    if (err)
        goto fail;
    mr__patient_of(type, id, root, pref, sizeof(pref));
    err = mr__audit(r, a, "create", MR_OK, type, id, pref, NULL, reason, d);
    if (!err)
        err = fill_result(r, res, type, id, version, now, a, reason, d);
    if (err)
        goto fail;
    err = mr__tx_commit(r, d);
    goto out;
fail:
    mr__tx_rollback(r);
out:
    json_decref(extra);
    json_decref(root);
    return err;
}

enum mr_err mr_records_update(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *id,
                              const char *json, size_t len, int64_t expect,
                              const char *reason, struct mr_result *res,
                              struct mr_diag *d)
{
    return mr_records_put(r, a, type, id, json, len, expect, reason, 0, res,
                          NULL, d);
}

enum mr_err mr_records_put(struct mr_records *r, const struct mr_actor *a,
                           const char *type, const char *id, const char *json,
                           size_t len, int64_t expect, const char *reason,
                           int flags, struct mr_result *res, int *created,
                           struct mr_diag *d)
{
    int creating = 0;
    char mrnbuf[24];
    json_t *root = NULL, *old = NULL, *extra = NULL;
    enum mr_err err;
    struct mr_version cur;
    struct mr_buf oldjson = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES * 2);
    const char *given_id, *mrn;
    int64_t now = mr_time_now_ms(), version = 0;
    char pref[128];
    struct mr_put put;

    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    if (!mr_id_valid(id))
        return mr_diag_set(d, MR_EINVALID, "%s.id: \"%s\" is not a valid id",
                           type, id);
    if ((err = mr__authorize(r, a, MR_ACT_UPDATE, type, d)) &&
        (!(flags & MR_WRITE_UPSERT) ||
         mr__authorize(r, a, MR_ACT_CREATE, type, d)))
        return mr__denied(r, a, "update", type, id, d);
    err = parse_resource(r, json, len, type, &root, d);
    if (!err && (err = hidden_elements_set(r, a, type, root, d)))
        json_decref(root);
    if (err)
        return err;
    given_id = json_string_value(json_object_get(root, "id"));
    if (given_id && strcmp(given_id, id)) {
        err = mr_diag_set(d, MR_EINVALID,
                          "%s.id: \"%s\" does not match the id being "
                          "updated (%s)",
                          type, given_id, id);
        goto out;
    }
    if (!strcmp(type, "Patient") && (err = mr_patient_check(root, now, d)))
        goto out;
    err = mr__tx_begin(r, d);
    if (err)
        goto out;
    err = mr_store_read(r->st, type, id, 0, &cur, &oldjson, d);
    if (err == MR_EGONE) {
        /* Writing a deleted resource brings it back as a new version. */
        err = MR_OK;
        mr_buf_reset(&oldjson);
    } else if (err == MR_ENOTFOUND && (flags & MR_WRITE_UPSERT) &&
               expect <= 0) {
        /* Update as create, with the client's id. */
        err = MR_OK;
        creating = 1;
        memset(&cur, 0, sizeof(cur));
        if (!strcmp(type, "Patient") && !(flags & MR_WRITE_FORCE))
            err = find_duplicate(r, root, d);
    }
    if (!err && creating && mr__authorize(r, a, MR_ACT_CREATE, type, d))
        err = mr_diag_set(d, MR_EDENIED, "a %s may not create %s resources",
                          a->role, type);
    if (!err && !creating && oldjson.len)
        /* Nobody changes what they may not see. */
        err = mr__visible(r, a, type, id, oldjson.ptr, oldjson.len, NULL, NULL,
                          d);
    if (err)
        goto fail;
    if (expect > 0 && cur.version != expect) {
        err = mr_diag_set(d, MR_ECONFLICT,
                          "%s/%s: expected version %lld but the current "
                          "version is %lld; reload and try again",
                          type, id, (long long)expect, (long long)cur.version);
        goto fail;
    }
    extra = json_object();
    if (!creating && oldjson.len &&
        (err = keep_hidden(r, a, type, &oldjson, extra, d)))
        goto fail;
    if (creating && !strcmp(type, "Patient")) {
        if (mr_patient_mrn(root)) {
            err = mr_diag_set(d, MR_EINVALID,
                              "Patient.identifier: medical record numbers "
                              "(%s) are assigned by medrec; remove it",
                              MR_MRN_SYSTEM);
            goto fail;
        }
        err = new_mrn(r, mrnbuf, d);
        if (err)
            goto fail;
        json_object_set_new(extra, "identifier",
                            identifiers_with_mrn(root, mrnbuf));
    } else if (!strcmp(type, "Patient")) {
        /* A medical record number is permanent: keep it even when the
         * new version leaves it out. */
        const char *newmrn = mr_patient_mrn(root);
        old =
            oldjson.len ? json_loadb(oldjson.ptr, oldjson.len, 0, NULL) : NULL;
        mrn = old ? mr_patient_mrn(old) : NULL;
        if (newmrn && (!mrn || strcmp(newmrn, mrn))) {
            err = mr_diag_set(d, MR_EINVALID,
                              "Patient.identifier: the medical record "
                              "number cannot be changed (it is %s)",
                              mrn ? mrn : "not assigned");
            goto fail;
        }
        if (mrn && !newmrn)
            json_object_set_new(extra, "identifier",
                                identifiers_with_mrn(root, mrn));
    }
    err = check_references(r, type, root, id, d);
    if (err)
        goto fail;
    err = prepare_version(r, type, json, len, root, id, cur.version + 1, now,
                          extra, d);
    extra = NULL;
    if (err)
        goto fail;
    put = (struct mr_put){.type = type,
                          .id = id,
                          .expect = creating ? MR_PUT_NEW : cur.version,
                          .json = r->out.ptr,
                          .json_len = r->out.len,
                          .ts = now,
                          .author = a->user,
                          .reason = reason,
                          .ix = &r->ix};
    err = mr_store_put(r->st, &put, &version, d);
    if (err)
        goto fail;
    mr__patient_of(type, id, root, pref, sizeof(pref));
    err = mr__audit(r, a, creating ? "create" : "update", MR_OK, type, id, pref,
                    NULL, reason, d);
    if (!err)
        err = fill_result(r, res, type, id, version, now, a, reason, d);
    if (err)
        goto fail;
    err = mr__tx_commit(r, d);
    if (!err && created)
        *created = creating;
    goto out;
fail:
    mr__tx_rollback(r);
out:
    mr_buf_release(&oldjson);
    json_decref(extra);
    json_decref(old);
    json_decref(root);
    return err;
}

enum mr_err mr_records_delete(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *id, int64_t expect,
                              const char *reason, struct mr_diag *d)
{
    enum mr_err err;
    int64_t version, now = mr_time_now_ms();
    char pref[128];
    struct mr_put put = {.type = type,
                         .id = id,
                         .expect = expect > 0 ? expect : MR_PUT_ANY,
                         .json = NULL,
                         .ts = now,
                         .author = a ? a->user : NULL,
                         .reason = reason};

    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    if ((err = mr__authorize(r, a, MR_ACT_DELETE, type, d)))
        return mr__denied(r, a, "delete", type, id, d);
    err = mr__tx_begin(r, d);
    if (err)
        return err;
    if (a->role) {
        /* Nobody deletes what they may not see. */
        struct mr_version cur;
        struct mr_buf cj = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES * 2);
        err = mr_store_read(r->st, type, id, 0, &cur, &cj, d);
        if (!err)
            err = mr__visible(r, a, type, id, cj.ptr, cj.len, NULL, NULL, d);
        else if (err == MR_ENOTFOUND || err == MR_EGONE)
            err = MR_OK; /* the store answers for these */
        mr_buf_release(&cj);
    }
    if (!err)
        err = mr_store_put(r->st, &put, &version, d);
    if (!err) {
        mr__patient_of(type, id, NULL, pref, sizeof(pref));
        err = mr__audit(r, a, "delete", MR_OK, type, id, pref, NULL, reason, d);
    }
    if (err) {
        mr__tx_rollback(r);
        return err;
    }
    return mr__tx_commit(r, d);
}

/* ---- reads ------------------------------------------------------------ */

/* Finish a read: audit (with the outcome, so failed look-ups are on the
 * trail too) and commit. Returns the read's error if there was one. */
void mr_audit_batch_init(struct mr_audit_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void mr_audit_batch_release(struct mr_audit_batch *b)
{
    mr_free(b->v);
    mr_arena_release(&b->arena);
    memset(b, 0, sizeof(*b));
}

void mr_records_defer_audit(struct mr_records *r, struct mr_audit_batch *b)
{
    r->deferred = b;
}

static const char *adup(struct mr_arena *a, const char *s, int *fail)
{
    char *c;

    if (!s)
        return NULL;
    c = mr_arena_strdup(a, s);
    if (!c)
        *fail = 1;
    return c;
}

static enum mr_err defer_audit(struct mr_records *r, const struct mr_actor *a,
                               const char *action, enum mr_err outcome,
                               const char *type, const char *id,
                               const char *patient, const char *query,
                               const char *detail)
{
    struct mr_audit_batch *b = r->deferred;
    struct mr_audit_entry *e;
    int fail = 0;

    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4;
        struct mr_audit_entry *nv = mr_realloc(b->v, ncap * sizeof(*nv));
        if (!nv)
            return MR_ENOMEM;
        b->v = nv;
        b->cap = ncap;
    }
    e = &b->v[b->n];
    memset(e, 0, sizeof(*e));
    e->ts = mr_time_now_ms();
    e->actor = adup(&b->arena, a->user, &fail);
    e->role = adup(&b->arena, a->role ? a->role : "unknown", &fail);
    e->source = adup(&b->arena, a->source, &fail);
    e->action = adup(&b->arena, action, &fail);
    e->outcome = adup(&b->arena, outcome ? mr_errname(outcome) : "ok", &fail);
    e->type = adup(&b->arena, type, &fail);
    e->id = adup(&b->arena, id, &fail);
    e->patient = patient && *patient ? adup(&b->arena, patient, &fail) : NULL;
    e->query = adup(&b->arena, query, &fail);
    e->detail = adup(&b->arena, detail, &fail);
    if (fail)
        return MR_ENOMEM;
    b->n++;
    return MR_OK;
}

enum mr_err mr_records_write_audits(struct mr_records *r,
                                    const struct mr_audit_batch *b,
                                    struct mr_diag *d)
{
    size_t i;
    enum mr_err err;

    for (i = 0; i < b->n; i++) {
        err = mr_store_audit(r->st, &b->v[i], d);
        if (err)
            return err;
    }
    return MR_OK;
}

enum mr_err mr__finish_read(struct mr_records *r, const struct mr_actor *a,
                            const char *action, enum mr_err rerr,
                            const char *type, const char *id,
                            const char *patient, const char *query,
                            struct mr_diag *d)
{
    struct mr_diag ad;
    enum mr_err err;
    /* An access that needed emergency (break-the-glass) rights says so. */
    const char *detail = r->emergency[0] ? r->emergency : NULL;

#ifdef MEDREC_BENCH_NO_READ_AUDIT
    /* A benchmark build only (bench/audit.sh): the read is not audited. */
    (void)a, (void)action, (void)type, (void)id, (void)patient, (void)query;
    (void)detail, (void)ad;
    r->emergency[0] = '\0';
    if (r->deferred && !r->in_bundle)
        mr_store_rollback(r->st);
    else
        mr__tx_commit(r, d) ? mr__tx_rollback(r) : (void)0;
    return rerr;
#endif

    if (r->deferred && !r->in_bundle) {
        /* Group commit: the entry is committed by the queue before the
         * answer is released. */
        mr_store_rollback(r->st);
        err = defer_audit(r, a, action, rerr, type, id, patient, query, detail);
        r->emergency[0] = '\0';
        if (err)
            return mr_diag_set(d, err, "audit: %s", mr_strerror(err));
        return rerr;
    }
    err = mr__audit(r, a, action, rerr, type, id, patient, query, detail, &ad);
    r->emergency[0] = '\0';
    if (!err)
        err = mr__tx_commit(r, &ad);
    else
        mr__tx_rollback(r);
    if (err) {
        /* Without its audit entry the read did not happen. */
        if (d)
            *d = ad;
        return err;
    }
    return rerr;
}

enum mr_err mr__denied(struct mr_records *r, const struct mr_actor *a,
                       const char *action, const char *type, const char *id,
                       struct mr_diag *d)
{
    enum mr_err err = d->code ? d->code : MR_EDENIED;
    struct mr_diag ad;

    if (!a || !a->user)
        return err; /* unattributable */
    if (r->in_bundle) {
        /* Inside a group commit (or a Bundle), whose savepoint a failed
         * request rolls back: kept aside and written after it. */
        struct mr_audit_batch *keep = r->deferred;
        r->deferred = &r->denials;
        if (defer_audit(r, a, action, err, type, id, NULL, NULL, NULL))
            err = mr_diag_set(d, MR_ENOMEM, "audit: out of memory");
        r->deferred = keep;
        return err;
    }
    if (r->deferred)
        return defer_audit(r, a, action, err, type, id, NULL, NULL, NULL)
                   ? mr_diag_set(d, MR_ENOMEM, "audit: out of memory")
                   : err;
    if (mr_store_begin(r->st, 1, &ad))
        return err;
    if (mr__audit(r, a, action, err, type, id, NULL, NULL, NULL, &ad) ||
        mr_store_commit(r->st, &ad))
        mr_store_rollback(r->st);
    return err;
}

/* A stored resource the actor may see, redacted if need be, else the
 * read fails (restricted: MR_EDENIED; a patient's, not theirs:
 * MR_ENOTFOUND). */
static enum mr_err visible_result(struct mr_records *r,
                                  const struct mr_actor *a, const char *type,
                                  const char *id, struct mr_result *res,
                                  struct mr_diag *d)
{
    struct mr_buf red = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES * 2);
    struct mr_emergency em;
    enum mr_err err;

    err =
        mr__visible(r, a, type, id, res->json.ptr, res->json.len, &red, &em, d);
    if (!err && red.len) {
        mr_buf_reset(&res->json);
        err = mr_buf_add(&res->json, red.ptr, red.len);
    }
    if (!err && em.used)
        snprintf(r->emergency, sizeof(r->emergency), "emergency: %s",
                 em.reason);
    mr_buf_release(&red);
    return err;
}

enum mr_err mr_records_read(struct mr_records *r, const struct mr_actor *a,
                            const char *type, const char *id, int64_t version,
                            struct mr_result *res, struct mr_diag *d)
{
    enum mr_err err;
    char pref[128] = "";
    json_t *root;

    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    if (!mr_id_valid(id))
        return mr_diag_set(d, MR_EINVALID, "%s.id: \"%s\" is not a valid id",
                           type, id);
    if ((err = mr__authorize(r, a, MR_ACT_READ, type, d)))
        return mr__denied(r, a, version ? "vread" : "read", type, id, d);
    err = mr__tx_begin_read(r, d);
    if (err)
        return err;
    err = mr_store_read(r->st, type, id, version, &res->meta, &res->json, d);
    if (!err)
        err = visible_result(r, a, type, id, res, d);
    if (!err && strcmp(type, "Patient")) {
        root = json_loadb(res->json.ptr, res->json.len, 0, NULL);
        mr__patient_of(type, id, root, pref, sizeof(pref));
        json_decref(root);
    } else if (!strcmp(type, "Patient")) {
        mr__patient_of(type, id, NULL, pref, sizeof(pref));
    }
    return mr__finish_read(r, a, version ? "vread" : "read", err, type, id,
                           pref, NULL, d);
}

struct first_ctx {
    struct mr_result *res;
    int n;
    enum mr_err err;
};

static int first_cb(void *ctx, const struct mr_version *m, const char *json,
                    size_t len)
{
    struct first_ctx *c = ctx;

    c->n++;
    if (c->n > 1)
        return 0;
    c->res->meta = *m;
    mr_buf_reset(&c->res->json);
    c->err = mr_buf_add(&c->res->json, json, len);
    return 0;
}

enum mr_err mr_records_patient_by_mrn(struct mr_records *r,
                                      const struct mr_actor *a, const char *mrn,
                                      struct mr_result *res, struct mr_diag *d)
{
    struct mr_query q;
    struct first_ctx c = {res, 0, MR_OK};
    enum mr_err err;
    char value[128], pref[128] = "";
    const char *p;
    int digits = 1;

    if ((err = mr__check_actor(a, d)))
        return err;
    if (!strncmp(mrn, "Patient/", 8))
        return mr_records_read(r, a, "Patient", mrn + 8, 0, res, d);
    for (p = mrn; *p; p++)
        if (*p < '0' || *p > '9')
            digits = 0;
    if (!*mrn)
        return mr_diag_set(d, MR_EINVALID, "MRN: empty");
    if (!digits)
        return mr_records_read(r, a, "Patient", mrn, 0, res, d);
    if (!mr_mrn_valid(mrn))
        return mr_diag_set(d, MR_EINVALID,
                           "MRN \"%s\": the check digit does not match "
                           "(mistyped?)",
                           mrn);
    if ((err = mr__authorize(r, a, MR_ACT_READ, "Patient", d)))
        return mr__denied(r, a, "read", "Patient", NULL, d);
    mr_query_init(&q, "Patient");
    snprintf(value, sizeof(value), "%s|%s", MR_MRN_SYSTEM, mrn);
    err = mr_query_add(&q, "identifier", value, d);
    if (err) {
        mr_query_release(&q);
        return err;
    }
    q.count = 2;
    err = mr__tx_begin_read(r, d);
    if (err) {
        mr_query_release(&q);
        return err;
    }
    err = mr_store_search(r->st, &q, first_cb, &c, NULL, d);
    mr_query_release(&q);
    if (!err && c.err)
        err = mr_diag_set(d, c.err, "reading MRN %s", mrn);
    if (!err && c.n == 0)
        err = mr_diag_set(d, MR_ENOTFOUND, "no patient with MRN %s", mrn);
    if (!err && c.n > 1)
        err = mr_diag_set(d, MR_ECORRUPT,
                          "MRN %s is assigned to more than one patient", mrn);
    if (!err)
        err = visible_result(r, a, "Patient", res->meta.id, res, d);
    if (!err)
        snprintf(pref, sizeof(pref), "Patient/%s", res->meta.id);
    snprintf(value, sizeof(value), "identifier=%s|%s", MR_MRN_SYSTEM, mrn);
    return mr__finish_read(r, a, "read", err, "Patient",
                           err ? NULL : res->meta.id, pref, value, d);
}

enum mr_err mr_records_history(struct mr_records *r, const struct mr_actor *a,
                               const char *type, const char *id, mr_store_cb cb,
                               void *ctx, struct mr_diag *d)
{
    enum mr_err err;
    char pref[128];

    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    if (!mr_id_valid(id))
        return mr_diag_set(d, MR_EINVALID, "%s.id: \"%s\" is not a valid id",
                           type, id);
    if ((err = mr__authorize(r, a, MR_ACT_HISTORY, type, d)))
        return mr__denied(r, a, "history", type, id, d);
    err = mr__tx_begin_read(r, d);
    if (err)
        return err;
    {
        struct mr__filter f;
        mr__filter_init(&f, r, a, MR_ACT_HISTORY, cb, ctx);
        err = mr_store_history(r->st, type, id, mr__filter_cb, &f, d);
        mr__filter_release(&f);
    }
    mr__patient_of(type, id, NULL, pref, sizeof(pref));
    return mr__finish_read(r, a, "history", err, type, id, pref, NULL, d);
}

/* ---- export / import -------------------------------------------------- */

struct export_ctx {
    FILE *out;
    int64_t n;
};

static int export_cb(void *ctx, const struct mr_version *m, const char *json,
                     size_t len)
{
    struct export_ctx *c = ctx;

    (void)m;
    if (fwrite(json, 1, len, c->out) != len || fputc('\n', c->out) == EOF)
        return MR_EIO;
    c->n++;
    return 0;
}

enum mr_err mr_records_export(struct mr_records *r, const struct mr_actor *a,
                              FILE *out, int64_t *count, struct mr_diag *d)
{
    struct export_ctx c = {out, 0};
    struct mr__filter f;
    enum mr_err err;

    if ((err = mr__check_actor(a, d)))
        return err;
    if (a->role && (err = mr__authorize(r, a, MR_ACT_EXPORT, NULL, d)))
        return mr__denied(r, a, "export", NULL, NULL, d);
    /* The disclosure is on the trail before any byte leaves. */
    err = mr_store_begin(r->st, 1, d);
    if (err)
        return err;
    err = mr__audit(r, a, "export", MR_OK, NULL, NULL, NULL, NULL,
                    "all current resources as NDJSON", d);
    if (err) {
        mr_store_rollback(r->st);
        return err;
    }
    err = mr_store_commit(r->st, d);
    if (err)
        return err;
    err = mr_store_begin(r->st, 0, d);
    if (err)
        return err;
    /* Only the types and resources the actor may export. */
    mr__filter_init(&f, r, a, MR_ACT_EXPORT, export_cb, &c);
    err = mr_store_scan(r->st, NULL, mr__filter_cb, &f, d);
    mr__filter_release(&f);
    mr_store_rollback(r->st);
    if (err == MR_EIO)
        return mr_diag_set(d, MR_EIO, "writing the export failed");
    if (!err && fflush(out) != 0)
        return mr_diag_set(d, MR_EIO, "writing the export failed");
    if (!err && count)
        *count = c.n;
    return err;
}

/* Read one line of at most max bytes into b (without the newline).
 * Returns 1 on a line, 0 at EOF, -1 on a line that is too long (the rest
 * of it is skipped, never buffered). */
static int read_line(FILE *in, struct mr_buf *b, size_t max)
{
    char chunk[65536];
    size_t n;
    int toolong = 0, any = 0;

    mr_buf_reset(b);
    while (fgets(chunk, sizeof(chunk), in)) {
        any = 1;
        n = strlen(chunk);
        int nl = n > 0 && chunk[n - 1] == '\n';
        if (nl)
            n--;
        if (!toolong && (b->len + n > max || mr_buf_add(b, chunk, n))) {
            toolong = 1;
            mr_buf_reset(b);
        }
        if (nl)
            return toolong ? -1 : 1;
    }
    if (toolong)
        return -1;
    return any ? 1 : 0;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r')
            return 0;
    return 1;
}

/* Import one resource line inside the current transaction. */
static enum mr_err import_one(struct mr_records *r, const struct mr_actor *a,
                              const char *line, size_t len, const char *why,
                              struct mr_diag *d)
{
    json_t *root = NULL, *extra = NULL;
    enum mr_err err;
    const char *type, *id, *vid, *lu;
    char newid[65], typebuf[64], mrn[24];
    int64_t version = 1, ts = mr_time_now_ms(), got;
    struct mr_version cur;
    struct mr_daterange dr;
    struct mr_put put;
    char *end;
    int exists;

    err = parse_resource(r, line, len, NULL, &root, d);
    if (err)
        return err;
    /* Copies: prepare_version replaces members of root. */
    snprintf(typebuf, sizeof(typebuf), "%s",
             json_string_value(json_object_get(root, "resourceType")));
    type = typebuf;
    id = json_string_value(json_object_get(root, "id"));
    if (id)
        snprintf(newid, sizeof(newid), "%s", id);
    else
        mr_id_new(newid);
    id = newid;
    if (!strcmp(type, "Patient") && (err = mr_patient_check(root, ts, d)))
        goto out;
    err = mr_store_read(r->st, type, id, 0, &cur, NULL, d);
    exists = err == MR_OK || err == MR_EGONE;
    if (err && err != MR_ENOTFOUND && err != MR_EGONE)
        goto out;
    err = MR_OK;
    if (exists) {
        version = cur.version + 1;
    } else {
        /* A resource new to this database keeps its version and time, so
         * an export imported elsewhere exports again byte for byte. */
        vid = json_string_value(
            json_object_get(json_object_get(root, "meta"), "versionId"));
        lu = json_string_value(
            json_object_get(json_object_get(root, "meta"), "lastUpdated"));
        if (vid) {
            long long v = strtoll(vid, &end, 10);
            if (*end == '\0' && v > 0)
                version = v;
        }
        if (lu && !mr_date_parse(lu, strlen(lu), MR_DATE_INSTANT, &dr))
            ts = dr.lo;
    }
    extra = json_object();
    if (!strcmp(type, "Patient")) {
        const char *have = mr_patient_mrn(root);
        uint64_t seq = mrn_seq(have);
        if (have && !seq) {
            err = mr_diag_set(d, MR_EINVALID,
                              "Patient.identifier: MRN \"%s\" has a wrong "
                              "check digit",
                              have);
            goto out;
        }
        if (have) {
            /* A restored MRN stays unique, and new registrations are
             * numbered after it. */
            err = mrn_unique(r, have, id, d);
            if (!err)
                err = mr_store_seq_used(
                    r->st, "mrn", seq < MR_MRN_START ? MR_MRN_START - 1 : seq,
                    d);
        } else {
            err = new_mrn(r, mrn, d);
            if (!err)
                json_object_set_new(extra, "identifier",
                                    identifiers_with_mrn(root, mrn));
        }
        if (err)
            goto out;
    }
    err = prepare_version(r, type, line, len, root, id, version, ts, extra, d);
    extra = NULL;
    if (err)
        goto out;
    put = (struct mr_put){.type = type,
                          .id = id,
                          .expect = exists ? cur.version : MR_PUT_NEW,
                          .set_version = exists ? 0 : version,
                          .json = r->out.ptr,
                          .json_len = r->out.len,
                          .ts = ts,
                          .author = a->user,
                          .reason = why,
                          .ix = &r->ix};
    err = mr_store_put(r->st, &put, &got, d);
out:
    json_decref(extra);
    json_decref(root);
    return err;
}

enum mr_err mr_records_import(struct mr_records *r, const struct mr_actor *a,
                              FILE *in, const char *name, size_t batch,
                              void (*progress)(void *ctx, int64_t n), void *ctx,
                              struct mr_diag *d)
{
    struct mr_buf line = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES + 1);
    enum mr_err err = MR_OK;
    int64_t committed = 0, lineno = 0;
    size_t inbatch = 0;
    int rl, open_tx = 0;
    char why[256], detail[320];
    struct mr_diag ld;

    if ((err = mr__check_actor(a, d)))
        return err;
    if (batch == 0)
        batch = 1000;
    snprintf(why, sizeof(why), "import from %s", name);
    for (;;) {
        rl = read_line(in, &line, MR_MAX_RESOURCE_BYTES);
        if (rl == 0)
            break;
        lineno++;
        if (rl < 0) {
            err = mr_diag_set(d, MR_ETOOBIG,
                              "%s line %lld: longer than the limit of %u "
                              "bytes",
                              name, (long long)lineno, MR_MAX_RESOURCE_BYTES);
            break;
        }
        if (blank(line.ptr))
            continue;
        if (!open_tx) {
            err = mr_store_begin(r->st, 1, d);
            if (err)
                break;
            open_tx = 1;
        }
        err = import_one(r, a, line.ptr, line.len, why, &ld);
        if (err) {
            mr_diag_set(d, err, "%s line %lld: %s", name, (long long)lineno,
                        mr_diag_msg(&ld));
            break;
        }
        if (++inbatch == batch) {
            snprintf(detail, sizeof(detail), "%zu resources from %s", inbatch,
                     name);
            err = mr__audit(r, a, "import", MR_OK, NULL, NULL, NULL, NULL,
                            detail, d);
            if (!err)
                err = mr_store_commit(r->st, d);
            open_tx = 0;
            if (err)
                break;
            committed += (int64_t)inbatch;
            inbatch = 0;
            if (progress)
                progress(ctx, committed);
        }
    }
    if (!err && ferror(in))
        err = mr_diag_set(d, MR_EIO, "%s: read error", name);
    if (!err && open_tx) {
        snprintf(detail, sizeof(detail), "%zu resources from %s", inbatch,
                 name);
        err =
            mr__audit(r, a, "import", MR_OK, NULL, NULL, NULL, NULL, detail, d);
        if (!err)
            err = mr_store_commit(r->st, d);
        open_tx = 0;
        if (!err) {
            committed += (int64_t)inbatch;
            if (progress)
                progress(ctx, committed);
        }
    }
    if (open_tx)
        mr_store_rollback(r->st);
    mr_buf_release(&line);
    return err;
}

enum mr_err mr_records_check(struct mr_records *r, const struct mr_actor *a,
                             struct mr_buf *report, int *schema,
                             struct mr_diag *d)
{
    enum mr_err err;

    if ((err = mr__check_actor(a, d)))
        return err;
    err = mr_store_begin(r->st, 0, d);
    if (err)
        return err;
    err = mr_store_check(r->st, report, d);
    if (!err || err == MR_ECORRUPT) {
        /* A medical record number names one patient. */
        const struct mr_search_param *sp =
            mr_search_param_find("Patient", "identifier");
        int64_t shared = 0;
        char first[64];
        struct mr_diag sd;
        enum mr_err e2 =
            sp ? mr_store_shared_tokens(r->st, sp->key, MR_MRN_SYSTEM, &shared,
                                        first, sizeof(first), &sd)
               : MR_OK;
        if (e2) {
            *d = sd;
            err = e2;
        } else if (shared) {
            if (mr_buf_addf(report,
                            "%lld medical record numbers shared by more "
                            "than one patient (e.g. %s)\n",
                            (long long)shared, first))
                err = mr_diag_set(d, MR_ENOMEM, "out of memory");
            else if (!err)
                err = mr_diag_set(d, MR_ECORRUPT,
                                  "integrity check failed: duplicate "
                                  "medical record numbers");
        }
    }
    mr_store_rollback(r->st);
    if (schema)
        *schema = mr_store_schema(r->st);
    return err;
}

enum mr_err mr_records_audit_scan(struct mr_records *r,
                                  const struct mr_actor *a, const char *patient,
                                  mr_audit_cb cb, void *ctx, struct mr_diag *d)
{
    enum mr_err err;

    if ((err = mr__check_actor(a, d)))
        return err;
    err = mr_store_begin(r->st, 0, d);
    if (err)
        return err;
    err = mr_store_audit_scan(r->st, patient, cb, ctx, d);
    mr_store_rollback(r->st);
    return err;
}

/* ---- batch and transaction Bundles ------------------------------------ */

struct plan {
    const char *method; /* POST, PUT, DELETE, GET */
    char type[64];
    char id[65];
    const char *url;
    const char *full_url;
    const char *if_none_exist;
    const char *if_match;
    const char *cond;   /* conditional PUT/DELETE: the query after '?' */
    const char *query;  /* GET search: the query after '?' (may be "") */
    int64_t vread;      /* GET Type/id/_history/N */
    struct mr_buf body; /* GET: the resource or searchset Bundle */
    struct mr_span res;
    json_t *resource; /* entry.resource in the parsed Bundle */
    /* results */
    unsigned status;
    int64_t version;
    int64_t ts;
    int skipped;     /* conditional create matched an existing resource */
    enum mr_err err; /* a failed batch entry's error */
    char msg[512];
};

struct urlmap {
    const char *from;
    char to[140];
};

struct bundle_ctx {
    int transaction; /* validated whole: entries may skip re-validation */
    struct plan *plans;
    size_t nplans;
    struct mr_records *r;
    const struct mr_actor *a;
    struct urlmap *map;
    size_t nmap;
    struct mr_arena arena;
    enum mr_err err;
    struct mr_diag *d;
};

/* Is ref ("Type/id") one that a POST or PUT of this Bundle writes? */
static int planned_ref(void *ctx, const char *ref)
{
    struct bundle_ctx *b = ctx;
    size_t i, tl;

    for (i = 0; i < b->nplans; i++) {
        const struct plan *p = &b->plans[i];
        if (!p->method || !strcmp(p->method, "DELETE"))
            continue;
        tl = strlen(p->type);
        if (!strncmp(ref, p->type, tl) && ref[tl] == '/' &&
            !strcmp(ref + tl + 1, p->id))
            return 1;
    }
    return 0;
}

static int urlmap_cmp(const void *x, const void *y)
{
    return strcmp(((const struct urlmap *)x)->from,
                  ((const struct urlmap *)y)->from);
}

/* The first two matches of a conditional "Type?query" inside a Bundle,
 * searched as the actor: search rights on the type, and only what the
 * actor may see (a conditional must not reveal what a search would
 * not). Unknown parameters are refused: ignoring one would widen it. */
static enum mr_err conditional_matches(struct bundle_ctx *b, const char *type,
                                       const char *qs, size_t len,
                                       struct ref_ctx *c, struct mr_diag *d)
{
    struct mr_query query;
    enum mr_err err;

    if ((err = mr__authorize(b->r, b->a, MR_ACT_SEARCH, type, d)))
        return err;
    err = mr_query_parse(&query, type, qs, len, d);
    if (!err && query.nunknown)
        err = mr_diag_set(d, MR_EINVALID,
                          "%s: \"%s\" is not a supported search parameter",
                          type, query.unknown[0]);
    if (!err)
        err = mr__restrict_query(b->r, b->a, &query, d);
    if (!err) {
        query.count = 2;
        err = mr_store_search(b->r->st, &query, first_id_cb, c, NULL, d);
    }
    mr_query_release(&query);
    return err;
}

/* Resolve "Type?query" to the one matching "Type/id" (or NULL with
 * b->err set). Runs inside the bundle's transaction. */
static const char *resolve_conditional(struct bundle_ctx *b, const char *s,
                                       size_t n)
{
    char type[64], *ref;
    const char *q = memchr(s, '?', n);
    struct ref_ctx c = {"", "", 0};
    enum mr_err err;

    if (!q || (size_t)(q - s) >= sizeof(type))
        return NULL;
    memcpy(type, s, (size_t)(q - s));
    type[q - s] = '\0';
    if (!mr_fhir_is_resource_type(type))
        return NULL;
    err =
        conditional_matches(b, type, q + 1, n - (size_t)(q - s) - 1, &c, b->d);
    if (!err && c.n != 1)
        err = mr_diag_set(b->d, c.n ? MR_ECONFLICT : MR_ENOTFOUND,
                          "conditional reference \"%.*s\" matches %d "
                          "resources; it must match exactly one",
                          (int)n, s, c.n);
    if (err) {
        b->err = err;
        return NULL;
    }
    ref = mr_arena_strdup(&b->arena, c.ref);
    if (!ref)
        b->err = MR_ENOMEM;
    return ref;
}

static const char *bundle_repl(void *ctx, const char *s, size_t n)
{
    struct bundle_ctx *b = ctx;
    struct urlmap key, *hit;
    char buf[256];

    if (b->err)
        return NULL;
    if (n > 9 && !memcmp(s, "urn:uuid:", 9) && n < sizeof(buf)) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        key.from = buf;
        hit = bsearch(&key, b->map, b->nmap, sizeof(*b->map), urlmap_cmp);
        return hit ? hit->to : NULL;
    }
    /* A conditional reference: "Patient?identifier=...". */
    if (n > 2 && s[0] >= 'A' && s[0] <= 'Z' && memchr(s, '?', n) &&
        !memchr(s, ' ', n) && !memchr(s, '\\', n))
        return resolve_conditional(b, s, n);
    return NULL;
}

static const char *status_text(unsigned st)
{
    switch (st) {
    case 200:
        return "200 OK";
    case 201:
        return "201 Created";
    case 204:
        return "204 No Content";
    default:
        return NULL;
    }
}

/* The HTTP status line of a failed batch entry. */
static const char *batch_status(enum mr_err err)
{
    switch (err) {
    case MR_EINVALID:
    case MR_EJSON:
    case MR_EUSAGE:
        return "400 Bad Request";
    case MR_EDENIED:
        return "403 Forbidden";
    case MR_ENOTFOUND:
        return "404 Not Found";
    case MR_EDUPLICATE:
    case MR_EEXISTS:
        return "409 Conflict";
    case MR_EGONE:
        return "410 Gone";
    case MR_ECONFLICT:
        return "412 Precondition Failed";
    case MR_ETOOBIG:
        return "413 Payload Too Large";
    case MR_EUNSUPPORTED:
        return "501 Not Implemented";
    default:
        return "500 Internal Server Error";
    }
}

/* Order of processing within a transaction (FHIR 3.1.0.11.2). */
static int method_rank(const char *m)
{
    if (!strcmp(m, "DELETE"))
        return 0;
    if (!strcmp(m, "POST"))
        return 1;
    if (!strcmp(m, "PUT"))
        return 2;
    return 3;
}

/* GET entries: "Type/id", "Type/id/_history/N", "Type" or "Type?query". */
static enum mr_err plan_get(struct plan *p, size_t i, const char *url,
                            struct mr_diag *d)
{
    const char *q = strchr(url, '?');
    size_t tl = q ? (size_t)(q - url) : strcspn(url, "/");
    const char *rest = url + tl;
    char *end;

    if (!tl || tl >= sizeof(p->type))
        goto bad;
    snprintf(p->type, sizeof(p->type), "%.*s", (int)tl, url);
    if (!mr_fhir_is_resource_type(p->type))
        return mr_diag_set(d, MR_EINVALID,
                           "Bundle.entry[%zu].request.url: \"%s\" is not a "
                           "resource type",
                           i, p->type);
    mr_buf_init(&p->body, MR_MAX_BUNDLE_BYTES);
    if (q || !*rest) {
        p->query = q ? q + 1 : "";
        return MR_OK;
    }
    rest++; /* the id */
    tl = strcspn(rest, "/");
    if (tl >= sizeof(p->id))
        goto bad;
    snprintf(p->id, sizeof(p->id), "%.*s", (int)tl, rest);
    if (!mr_id_valid(p->id))
        goto bad;
    rest += tl;
    if (!*rest)
        return MR_OK;
    if (strncmp(rest, "/_history/", 10))
        goto bad;
    p->vread = strtoll(rest + 10, &end, 10);
    if (*end || p->vread < 1 || end == rest + 10)
        goto bad;
    return MR_OK;
bad:
    return mr_diag_set(d, MR_EINVALID,
                       "Bundle.entry[%zu].request.url: a GET takes Type/id, "
                       "Type/id/_history/N or Type?search, got \"%s\"",
                       i, url);
}

static enum mr_err plan_entry(const json_t *e, size_t i, struct plan *p,
                              struct mr_diag *d)
{
    const json_t *rq = json_object_get(e, "request");
    const char *url;

    p->resource = json_object_get(e, "resource");
    p->method = json_string_value(json_object_get(rq, "method"));
    url = json_string_value(json_object_get(rq, "url"));
    /* "/Patient/1" is how some clients (and HL7's own examples) write
     * the url relative to the base. */
    if (url && url[0] == '/')
        url++;
    p->url = url;
    p->full_url = json_string_value(json_object_get(e, "fullUrl"));
    p->if_none_exist = json_string_value(json_object_get(rq, "ifNoneExist"));
    p->if_match = json_string_value(json_object_get(rq, "ifMatch"));
    if (!p->method || !url)
        return mr_diag_set(d, MR_EINVALID,
                           "Bundle.entry[%zu].request: method and url are "
                           "required",
                           i);
    const char *slash;
    if (strcmp(p->method, "POST") && strcmp(p->method, "PUT") &&
        strcmp(p->method, "DELETE") && strcmp(p->method, "GET"))
        return mr_diag_set(d, MR_EINVALID,
                           "Bundle.entry[%zu].request.method: \"%s\" is not "
                           "supported",
                           i, p->method);
    if (!strcmp(p->method, "GET"))
        return plan_get(p, i, url, d);
    slash = strchr(url, '/');
    if (strchr(url, '?')) {
        const char *q = strchr(url, '?');
        if (!strcmp(p->method, "POST"))
            return mr_diag_set(d, MR_EINVALID,
                               "Bundle.entry[%zu].request.url: POST takes a "
                               "resource type; use ifNoneExist for a "
                               "conditional create",
                               i);
        if ((slash && slash < q) || (size_t)(q - url) >= sizeof(p->type) ||
            q == url || !q[1])
            return mr_diag_set(d, MR_EINVALID,
                               "Bundle.entry[%zu].request.url: expected "
                               "Type?search for a conditional %s, got "
                               "\"%s\"",
                               i, p->method, url);
        snprintf(p->type, sizeof(p->type), "%.*s", (int)(q - url), url);
        if (!mr_fhir_is_resource_type(p->type))
            return mr_diag_set(d, MR_EINVALID,
                               "Bundle.entry[%zu].request.url: \"%s\" is not "
                               "a resource type",
                               i, p->type);
        p->cond = q + 1;
    } else if (!strcmp(p->method, "POST")) {
        if (slash || strlen(url) >= sizeof(p->type) ||
            !mr_fhir_is_resource_type(url))
            return mr_diag_set(d, MR_EINVALID,
                               "Bundle.entry[%zu].request.url: POST needs a "
                               "resource type, got \"%s\"",
                               i, url);
        snprintf(p->type, sizeof(p->type), "%s", url);
        mr_id_new(p->id);
    } else {
        if (!slash || (size_t)(slash - url) >= sizeof(p->type) ||
            strchr(slash + 1, '/') || !mr_id_valid(slash + 1))
            return mr_diag_set(d, MR_EINVALID,
                               "Bundle.entry[%zu].request.url: expected "
                               "Type/id, got \"%s\"",
                               i, url);
        snprintf(p->type, sizeof(p->type), "%.*s", (int)(slash - url), url);
        snprintf(p->id, sizeof(p->id), "%s", slash + 1);
        if (!mr_fhir_is_resource_type(p->type))
            return mr_diag_set(d, MR_EINVALID,
                               "Bundle.entry[%zu].request.url: \"%s\" is not "
                               "a resource type",
                               i, p->type);
    }
    if (strcmp(p->method, "DELETE") && !json_object_get(e, "resource"))
        return mr_diag_set(d, MR_EINVALID,
                           "Bundle.entry[%zu]: %s needs a resource", i,
                           p->method);
    return MR_OK;
}

/* The same rewriting as mr_json_replace_strings, on the parsed tree (the
 * index is extracted from the tree, the stored bytes from the text). */
static void rewrite_tree(struct bundle_ctx *b, json_t *v)
{
    const char *k, *str, *rep;
    json_t *c;
    size_t i;

    if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            rewrite_tree(b, c);
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, c)
        {
            str = json_string_value(c);
            if (str) {
                rep = bundle_repl(b, str, json_string_length(c));
                if (rep)
                    json_string_set(c, rep);
            } else {
                rewrite_tree(b, c);
            }
        }
    }
}

/* A conditional PUT or DELETE ("Type?query"): find its target. No match
 * gives a PUT a new id and a DELETE nothing to do; more than one is a
 * conflict. Unknown parameters are refused: ignoring one would widen the
 * match. */
static enum mr_err resolve_target(struct bundle_ctx *b, struct plan *p,
                                  struct mr_diag *d)
{
    struct ref_ctx c = {"", "", 0};
    enum mr_err err;

    err = conditional_matches(b, p->type, p->cond, strlen(p->cond), &c, d);
    if (err)
        return err;
    if (c.n > 1)
        return mr_diag_set(d, MR_ECONFLICT,
                           "conditional %s %s?%s matches more than one "
                           "resource",
                           p->method, p->type, p->cond);
    if (c.n == 1)
        snprintf(p->id, sizeof(p->id), "%s", c.id);
    else if (!strcmp(p->method, "PUT"))
        mr_id_new(p->id);
    else
        p->id[0] = '\0'; /* DELETE of nothing */
    p->cond = NULL;
    return MR_OK;
}

struct get_ctx {
    struct mr_buf *out;
    int64_t n;
};

static int get_entry(void *ctx, const struct mr_version *m, const char *json,
                     size_t len)
{
    struct get_ctx *g = ctx;

    return (int)mr_buf_addf(g->out,
                            "%s{\"fullUrl\":\"%s/%s\",\"resource\":%.*s,"
                            "\"search\":{\"mode\":\"match\"}}",
                            g->n++ ? "," : "", m->type, m->id, (int)len, json);
}

/* A GET entry: a read, vread or search, audited like any other. */
static enum mr_err run_get(struct bundle_ctx *b, struct plan *p,
                           struct mr_result *res, struct mr_diag *d)
{
    struct mr_buf entries = MR_BUF_INIT(MR_MAX_BUNDLE_BYTES);
    struct get_ctx g = {&entries, 0};
    int64_t total = 0;
    enum mr_err err;

    p->status = 200;
    if (!p->query) {
        err = mr_records_read(b->r, b->a, p->type, p->id, p->vread, res, d);
        if (!err && (err = mr_buf_add(&p->body, res->json.ptr, res->json.len)))
            mr_diag_set(d, err, "%s", mr_strerror(err));
        if (!err) {
            p->version = res->meta.version;
            p->ts = res->meta.ts;
        }
        return err;
    }
    err = mr_records_search(b->r, b->a, p->type, p->query, get_entry, &g,
                            &total, d);
    if (!err)
        err = mr_buf_addf(&p->body,
                          "{\"resourceType\":\"Bundle\",\"type\":"
                          "\"searchset\",\"total\":%lld,\"entry\":[%s]}",
                          (long long)total, entries.ptr);
    if (err && !d->msg[0])
        mr_diag_set(d, err, "%s", mr_strerror(err));
    mr_buf_release(&entries);
    return err;
}

/* Run one planned entry (inside the bundle's transaction, or its own). */
static enum mr_err run_entry(struct bundle_ctx *b, struct plan *p, size_t i,
                             struct mr_buf *text, struct mr_diag *d)
{
    struct mr_records *r = b->r;
    struct mr_result res;
    enum mr_err err = MR_OK;
    int created = 0;
    int64_t expect = 0, total = 0;
    struct first_ctx fc;

    mr_result_init(&res);
    if (p->if_match) {
        const char *v = p->if_match;
        if (!strncmp(v, "W/", 2))
            v += 2;
        if (*v == '"')
            v++;
        expect = strtoll(v, NULL, 10);
    }
    if (!strcmp(p->method, "GET")) {
        err = run_get(b, p, &res, d);
        goto done;
    }
    if (p->cond && (err = resolve_target(b, p, d)))
        goto done;
    if (!strcmp(p->method, "DELETE") && !p->id[0]) {
        p->status = 204; /* a conditional delete that matched nothing */
        goto done;
    }
    if (!strcmp(p->method, "DELETE")) {
        err = mr_records_delete(r, b->a, p->type, p->id, expect, NULL, d);
        if (err == MR_EGONE || err == MR_ENOTFOUND)
            err = MR_OK; /* deleting what is not there is not an error */
        p->status = 204;
        goto done;
    }
    mr_buf_reset(text);
    b->err = MR_OK;
    err = mr_json_replace_strings(p->res.ptr, p->res.len, bundle_repl, b, text);
    if (!err && b->err)
        err = b->err;
    if (err) {
        if (!d->msg[0])
            mr_diag_set(d, err, "%s", mr_strerror(err));
        goto done;
    }
    if (b->transaction && p->resource) {
        /* A transaction was validated whole: hand the parsed entry on. */
        rewrite_tree(b, p->resource);
        if (b->err) {
            err = b->err;
            goto done;
        }
    }
    if (!strcmp(p->method, "POST")) {
        if (p->if_none_exist && *p->if_none_exist) {
            fc.res = &res;
            fc.n = 0;
            fc.err = MR_OK;
            err = mr_records_search(r, b->a, p->type, p->if_none_exist,
                                    first_cb, &fc, &total, d);
            if (!err && total > 1)
                err = mr_diag_set(d, MR_ECONFLICT,
                                  "ifNoneExist matches %lld resources",
                                  (long long)total);
            if (!err && total == 1) {
                p->skipped = 1;
                p->status = 200;
                snprintf(p->id, sizeof(p->id), "%s", res.meta.id);
                p->version = res.meta.version;
                p->ts = res.meta.ts;
                goto done;
            }
            if (err)
                goto done;
        }
        r->next_id = p->id;
        r->preparsed = b->transaction ? p->resource : NULL;
        err = mr_records_create(r, b->a, p->type, text->ptr, text->len, NULL, 0,
                                &res, d);
        r->next_id = NULL;
        r->preparsed = NULL;
        p->status = 201;
    } else {
        r->preparsed = b->transaction ? p->resource : NULL;
        err = mr_records_put(r, b->a, p->type, p->id, text->ptr, text->len,
                             expect, NULL, MR_WRITE_UPSERT, &res, &created, d);
        p->status = created ? 201 : 200;
    }
    if (!err) {
        p->version = res.meta.version;
        p->ts = res.meta.ts;
    }
done:
    (void)i;
    mr_result_release(&res);
    return err;
}

enum mr_err mr_records_bundle(struct mr_records *r, const struct mr_actor *a,
                              const char *json, size_t len, struct mr_buf *out,
                              struct mr_diag *d)
{
    json_t *root = NULL, *entries;
    const char *btype;
    struct plan *plans = NULL;
    struct mr_span *spans = NULL;
    size_t n = 0, i, k, *order = NULL;
    struct bundle_ctx b;
    struct mr_buf text = MR_BUF_INIT(MR_MAX_BUNDLE_BYTES);
    enum mr_err err;
    int transaction, rank, outer = r->in_bundle;
    struct mr_diag ed;
    char ts[32];

    memset(&b, 0, sizeof(b));
    if ((err = mr__check_actor(a, d)))
        return err;
    if (len > MR_MAX_BUNDLE_BYTES)
        return mr_diag_set(d, MR_ETOOBIG,
                           "Bundle is %zu bytes; the limit is %u bytes", len,
                           MR_MAX_BUNDLE_BYTES);
    {
        json_error_t je;
        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
            return mr_diag_set(d, MR_EJSON,
                               "malformed JSON at line %d, column %d: %s",
                               je.line, je.column, je.text);
    }
    entries = json_object_get(root, "entry");
    n = json_array_size(entries);
    if (n > MR_MAX_BUNDLE_ENTRIES) {
        err = mr_diag_set(d, MR_ETOOBIG,
                          "Bundle has %zu entries; the limit is %u", n,
                          MR_MAX_BUNDLE_ENTRIES);
        goto out;
    }
    btype = json_string_value(json_object_get(root, "type"));
    /* A transaction is validated whole (all or nothing anyway); a batch's
     * entries are validated one by one so one bad entry fails alone. */
    if (btype && !strcmp(btype, "transaction")) {
        err = mr_fhir_validate(root, "Bundle", d);
        if (err)
            goto out;
    } else if (!json_is_array(entries) && entries) {
        err = mr_diag_set(d, MR_EINVALID, "Bundle.entry: must be an array");
        goto out;
    }
    if (!btype || (strcmp(btype, "transaction") && strcmp(btype, "batch"))) {
        err = mr_diag_set(d, MR_EINVALID,
                          "Bundle.type: \"%s\" cannot be processed; send a "
                          "transaction or a batch",
                          btype ? btype : "");
        goto out;
    }
    transaction = !strcmp(btype, "transaction");
    plans = mr_calloc(n ? n : 1, sizeof(*plans));
    spans = mr_calloc(n ? n : 1, sizeof(*spans));
    order = mr_calloc(n ? n : 1, sizeof(*order));
    b.map = mr_calloc(n ? n : 1, sizeof(*b.map));
    if (!plans || !spans || !order || !b.map) {
        err = mr_diag_set(d, MR_ENOMEM, "out of memory");
        goto out;
    }
    err = mr_json_bundle_resources(json, len, spans, n, &k);
    if (!err && k != n)
        err = MR_EJSON;
    if (err) {
        err = mr_diag_set(d, err, "Bundle: cannot read its entries");
        goto out;
    }
    for (i = 0; i < n; i++) {
        mr_diag_clear(&ed);
        plans[i].res = spans[i];
        err = plan_entry(json_array_get(entries, i), i, &plans[i], &ed);
        if (err && transaction) {
            *d = ed;
            goto out;
        }
        if (err) {
            plans[i].status = 0;
            plans[i].err = err;
            plans[i].method = NULL;
            snprintf(plans[i].msg, sizeof(plans[i].msg), "%s", ed.msg);
            continue;
        }
        if (plans[i].full_url && plans[i].id[0] &&
            !strncmp(plans[i].full_url, "urn:uuid:", 9)) {
            b.map[b.nmap].from = plans[i].full_url;
            snprintf(b.map[b.nmap].to, sizeof(b.map[0].to), "%s/%s",
                     plans[i].type, plans[i].id);
            b.nmap++;
        }
    }
    qsort(b.map, b.nmap, sizeof(*b.map), urlmap_cmp);
    k = 0;
    for (rank = 0; rank < 4; rank++)
        for (i = 0; i < n; i++)
            if ((plans[i].method ? method_rank(plans[i].method) : 3) == rank)
                order[k++] = i;

    b.r = r;
    b.a = a;
    b.transaction = transaction;
    r->ref_planned = planned_ref;
    r->ref_ctx = &b;
    b.plans = plans;
    b.nplans = n;
    /* Inside a group commit (outer) a savepoint stands in for the
     * transaction. */
    if (transaction) {
        err = outer ? mr_store_savepoint(r->st, MR_SP_OPEN, d)
                    : mr_store_begin(r->st, 1, d);
        if (err)
            goto out;
        r->in_bundle = 1;
        /* Conditional targets are found before anything is written, so
         * references to their fullUrls resolve like any other. */
        for (i = 0; i < n; i++) {
            struct plan *p = &plans[i];
            if (!p->method || !p->cond)
                continue;
            mr_diag_clear(&ed);
            b.d = &ed;
            err = resolve_target(&b, p, &ed);
            if (err) {
                r->in_bundle = outer;
                if (outer) {
                    struct mr_diag sd;
                    if (mr_store_savepoint(r->st, MR_SP_ROLLBACK, &sd))
                        mr_store_rollback(r->st);
                } else {
                    mr_store_rollback(r->st);
                }
                mr_diag_set(d, err, "Bundle.entry[%zu] (%s %s): %s", i,
                            p->method, p->url, mr_diag_msg(&ed));
                goto out;
            }
            if (p->id[0] && p->full_url &&
                !strncmp(p->full_url, "urn:uuid:", 9)) {
                b.map[b.nmap].from = p->full_url;
                snprintf(b.map[b.nmap].to, sizeof(b.map[0].to), "%s/%s",
                         p->type, p->id);
                b.nmap++;
            }
        }
        qsort(b.map, b.nmap, sizeof(*b.map), urlmap_cmp);
    }
    for (k = 0; k < n; k++) {
        struct plan *p = &plans[order[k]];
        if (!p->method)
            continue;
        mr_diag_clear(&ed);
        b.d = &ed;
        if (!transaction && outer &&
            (err = mr_store_savepoint(r->st, MR_SP_OPEN, &ed)))
            goto out;
        err = run_entry(&b, p, order[k], &text, &ed);
        if (!transaction && outer) {
            enum mr_err e2 = mr_store_savepoint(
                r->st, err ? MR_SP_ROLLBACK : MR_SP_RELEASE, &ed);
            if (e2) {
                err = e2;
                goto out;
            }
        }
        if (err && transaction) {
            r->in_bundle = outer;
            if (outer) {
                struct mr_diag sd;
                if (mr_store_savepoint(r->st, MR_SP_ROLLBACK, &sd))
                    mr_store_rollback(r->st);
            } else {
                mr_store_rollback(r->st);
            }
            mr_diag_set(d, err, "Bundle.entry[%zu] (%s %s): %s", order[k],
                        p->method, p->url, mr_diag_msg(&ed));
            goto out;
        }
        if (err) {
            p->status = 0;
            snprintf(p->msg, sizeof(p->msg), "%s", mr_diag_msg(&ed));
            p->err = err; /* kept for the response */
            err = MR_OK;
        }
    }
    if (transaction) {
        r->in_bundle = outer;
        err = outer ? mr_store_savepoint(r->st, MR_SP_RELEASE, d)
                    : mr_store_commit(r->st, d);
        if (err)
            goto out;
    }

    err = mr_buf_addf(out,
                      "{\"resourceType\":\"Bundle\",\"type\":\"%s-response\","
                      "\"entry\":[",
                      btype);
    for (i = 0; !err && i < n; i++) {
        struct plan *p = &plans[i];
        const char *st = status_text(p->status);
        if (i)
            err = mr_buf_addc(out, ',');
        if (err)
            break;
        if (!st) {
            /* A failed batch entry: its status and an outcome. */
            json_t *o = json_pack("{s:{s:s,s:{s:s,s:[{s:s,s:s,s:s}]}}}",
                                  "response", "status", batch_status(p->err),
                                  "outcome", "resourceType", "OperationOutcome",
                                  "issue", "severity", "error", "code",
                                  "processing", "diagnostics", p->msg);
            char *t =
                o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            err = t ? mr_buf_adds(out, t) : MR_ENOMEM;
            free(t);
            json_decref(o);
            continue;
        }
        mr_time_format(p->ts, ts);
        if (!strcmp(p->method, "GET") && p->query)
            err = mr_buf_addf(out,
                              "{\"resource\":%s,\"response\":{\"status\":"
                              "\"%s\"}}",
                              p->body.ptr, st);
        else if (!strcmp(p->method, "GET"))
            err = mr_buf_addf(out,
                              "{\"fullUrl\":\"%s/%s\",\"resource\":%s,"
                              "\"response\":{\"status\":\"%s\",\"etag\":"
                              "\"W/\\\"%lld\\\"\",\"lastModified\":\"%s\"}}",
                              p->type, p->id, p->body.ptr, st,
                              (long long)p->version, ts);
        else if (p->status == 204)
            err = mr_buf_addf(out, "{\"response\":{\"status\":\"%s\"}}", st);
        else
            err = mr_buf_addf(out,
                              "{\"fullUrl\":\"%s/%s\",\"response\":{"
                              "\"status\":\"%s\",\"location\":\"%s/%s/"
                              "_history/%lld\",\"etag\":\"W/\\\"%lld\\\"\","
                              "\"lastModified\":\"%s\"}}",
                              p->type, p->id, st, p->type, p->id,
                              (long long)p->version, (long long)p->version, ts);
    }
    if (!err)
        err = mr_buf_adds(out, "]}");
    if (err)
        mr_diag_set(d, err, "building the response: %s", mr_strerror(err));
out:
    r->in_bundle = outer;
    if (!outer && r->denials.n) {
        /* Refusals inside a Bundle of our own: on the trail even though
         * the Bundle's changes were undone. */
        struct mr_diag ad;
        if (!mr_store_begin(r->st, 1, &ad)) {
            if (mr_records_write_audits(r, &r->denials, &ad) ||
                mr_store_commit(r->st, &ad))
                mr_store_rollback(r->st);
        }
        mr_audit_batch_release(&r->denials);
    }
    r->next_id = NULL;
    r->ref_planned = NULL;
    r->ref_ctx = NULL;
    mr_arena_release(&b.arena);
    mr_free(b.map);
    for (i = 0; plans && i < n; i++)
        mr_buf_release(&plans[i].body);
    mr_free(plans);
    mr_free(spans);
    mr_free(order);
    mr_buf_release(&text);
    json_decref(root);
    return err;
}
