/*
 * Searches through the records service: parse, authorize, run, audit.
 * Also type and system history and Patient $everything, which are reads
 * of many resources at once.
 */
#include "fhir/search.h"
#include "core/id.h"
#include "core/time.h"
#include "fhir/defs.h"
#include "fhir/jsontext.h"
#include "records/records_impl.h"
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Resources in one $everything answer, at most. */
#define EVERYTHING_MAX 20000u

/* ---- _elements ---------------------------------------------------------- */

struct search_ctx {
    mr_store_cb match;
    void *ctx;
    const struct mr_query *q;
    struct mr_buf out;
};

/* Is the top-level member `name` (maybe "_name") kept by _elements? */
static int element_kept(const struct mr_query *q, const char *name)
{
    const struct mr_type *t = mr_fhir_type_find(q->type);
    const struct mr_elem *e;

    if (*name == '_')
        name++;
    if (!strcmp(name, "resourceType") || !strcmp(name, "id") ||
        !strcmp(name, "meta"))
        return 1;
    e = t ? mr_fhir_elem_find(t, name) : NULL;
    for (size_t i = 0; i < q->nelements; i++) {
        if (!strcmp(name, q->elements[i]))
            return 1;
        if (e && e->choice && !strcmp(e->choice, q->elements[i]))
            return 1; /* "value" keeps valueQuantity */
    }
    return 0;
}

/*
 * The resource with only the _elements asked for (plus id, meta and
 * resourceType) and meta.tag SUBSETTED, as FHIR asks of a subset. The
 * kept members keep their bytes (mr_json_splice).
 */
static enum mr_err subset(const struct mr_query *q, const char *json,
                          size_t len, struct mr_buf *out)
{
    json_t *root, *over, *meta, *tags;
    const char *k;
    json_t *v;
    enum mr_err err = MR_ENOMEM;

    root = json_loadb(json, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return MR_EJSON;
    }
    over = json_object();
    meta = json_deep_copy(json_object_get(root, "meta"));
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    tags = json_object_get(meta, "tag");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(meta, "tag", tags);
    }
    json_array_append_new(
        tags, json_pack("{s:s,s:s,s:s}", "system",
                        "http://terminology.hl7.org/CodeSystem/"
                        "v3-ObservationValue",
                        "code", "SUBSETTED", "display", "subsetted"));
    if (over && !json_object_set_new(over, "meta", meta)) {
        json_object_foreach(root, k, v)
        {
            if (!element_kept(q, k) &&
                json_object_set_new(over, k, json_null()))
                goto done;
        }
        mr_buf_reset(out);
        err = mr_json_splice(json, len, over, out);
    }
done:
    json_decref(over);
    json_decref(root);
    return err;
}

static int match_subset(void *ctx, const struct mr_version *m, const char *json,
                        size_t len)
{
    struct search_ctx *s = ctx;
    enum mr_err err = subset(s->q, json, len, &s->out);

    if (err)
        return (int)err;
    return s->match(s->ctx, m, s->out.ptr, s->out.len);
}

/* ---- search ------------------------------------------------------------- */

/* The store calls matches and includes with one context: each goes
 * through its own policy filter. */
struct two_filters {
    struct mr__filter *match, *include;
};

static int match_filtered(void *ctx, const struct mr_version *m,
                          const char *json, size_t len)
{
    return mr__filter_cb(((struct two_filters *)ctx)->match, m, json, len);
}

static int include_filtered(void *ctx, const struct mr_version *m,
                            const char *json, size_t len)
{
    return mr__filter_cb(((struct two_filters *)ctx)->include, m, json, len);
}

enum mr_err mr_records_search_ex(struct mr_records *r, const struct mr_actor *a,
                                 const char *type, const char *query, int flags,
                                 mr_store_cb match, mr_store_cb include,
                                 void *ctx, struct mr_search_info *info,
                                 struct mr_diag *d)
{
    struct mr_query q;
    struct search_ctx sc;
    struct mr_search_info out;
    struct mr__filter fm, fi;
    enum mr_err err;

    memset(&out, 0, sizeof(out));
    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    if ((err = mr__authorize(r, a, MR_ACT_SEARCH, type, d)))
        return mr__denied(r, a, "search", type, NULL, d);
    err = mr_query_parse(&q, type, query, strlen(query), d);
    if (!err && q.nunknown && !(flags & MR_SEARCH_LENIENT))
        /* Refused rather than ignored: a mistyped parameter must not
         * silently widen a search. */
        err = mr_diag_set(d, MR_EINVALID,
                          "%s: \"%s\" is not a supported search parameter",
                          type, q.unknown[0]);
    if (err) {
        mr_query_release(&q);
        return err;
    }
    for (size_t i = 0; i < q.nunknown; i++) {
        size_t used = strlen(out.ignored);
        snprintf(out.ignored + used, sizeof(out.ignored) - used, "%s%s",
                 i ? ", " : "", q.unknown[i]);
    }
    if (flags & MR_SEARCH_EXACT_TOTAL)
        q.total_mode = MR_TOTAL_ACCURATE;
    /* What the actor may not see is not matched (nor counted). */
    if ((err = mr__restrict_query(r, a, &q, d))) {
        mr_query_release(&q);
        return err;
    }
    out.count = q.count;
    out.offset = q.offset;
    out.keyset = q.nsort == 0;
    q.page = &out.page;
    out.summary_count = q.summary_count;
    sc.match = match;
    sc.ctx = ctx;
    sc.q = &q;
    mr_buf_init(&sc.out, MR_MAX_RESOURCE_BYTES + 4096);
    mr__filter_init(&fm, r, a, MR_ACT_SEARCH,
                    q.nelements && match ? match_subset : match,
                    q.nelements && match ? (void *)&sc : ctx);
    mr__filter_init(&fi, r, a, MR_ACT_SEARCH, include, ctx);
    err = mr__tx_begin_read(r, d);
    if (!err) {
        struct two_filters tf = {&fm, &fi};
        err = mr_store_search_ex(r->st, &q, match ? match_filtered : NULL,
                                 include ? include_filtered : NULL, &tf,
                                 &out.total, d);
        err = mr__finish_read(r, a, "search", err, type, NULL, NULL, query, d);
    }
    mr_buf_release(&sc.out);
    mr__filter_release(&fm);
    mr__filter_release(&fi);
    mr_query_release(&q);
    if (!err && info)
        *info = out;
    return err;
}

enum mr_err mr_records_search(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *query,
                              mr_store_cb cb, void *ctx, int64_t *total,
                              struct mr_diag *d)
{
    struct mr_search_info info;
    enum mr_err err;

    err = mr_records_search_ex(r, a, type, query, MR_SEARCH_EXACT_TOTAL, cb,
                               NULL, ctx, &info, d);
    if (!err && total)
        *total = info.total;
    return err;
}

/* ---- type and system history -------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) ('+' is a space) into out (cap bytes). */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (j + 1 >= cap)
            return -1;
        out[j++] = (char)c;
    }
    out[j] = '\0';
    return 0;
}

enum mr_err mr_records_history_all(struct mr_records *r,
                                   const struct mr_actor *a, const char *type,
                                   const char *id, const char *query,
                                   mr_store_cb cb, void *ctx, int64_t *total,
                                   int64_t *next, struct mr_diag *d)
{
    int64_t since = INT64_MIN, after = 0;
    long count = MR_QUERY_DEFAULT_COUNT;
    const char *p = query ? query : "";
    enum mr_err err;
    struct mr_history_q hq;
    char pref[128];

    if ((err = mr__check_actor(a, d)) ||
        (type && (err = mr__check_type(type, d))))
        return err;
    if (id && (!type || !mr_id_valid(id)))
        return mr_diag_set(d, MR_EINVALID, "%s.id: \"%s\" is not a valid id",
                           type ? type : "Resource", id);
    if (type && (err = mr__authorize(r, a, MR_ACT_HISTORY, type, d)))
        return mr__denied(r, a, "history", type, id, d);
    if (!type && a->role &&
        (err = mr__authorize(r, a, MR_ACT_HISTORY, NULL, d)))
        return mr__denied(r, a, "history", NULL, NULL, d);
    if (strlen(p) > 4096)
        return mr_diag_set(d, MR_ETOOBIG, "history query too long");
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        char name[64], value[256];
        size_t nl = eq ? (size_t)(eq - p) : n;

        if (n && (!eq || decode(p, nl, name, sizeof(name)) ||
                  decode(eq + 1, n - nl - 1, value, sizeof(value))))
            return mr_diag_set(d, MR_EINVALID,
                               "history: malformed query parameter");
        if (!n) {
            /* empty piece: skip */
        } else if (!strcmp(name, "_since")) {
            struct mr_daterange dr;
            if (mr_date_parse(value, strlen(value), MR_DATE_INSTANT, &dr))
                return mr_diag_set(d, MR_EINVALID,
                                   "_since: \"%s\" is not an instant "
                                   "(YYYY-MM-DDThh:mm:ss with a zone)",
                                   value);
            since = dr.lo;
        } else if (!strcmp(name, "_count")) {
            char *end;
            errno = 0;
            count = strtol(value, &end, 10);
            if (errno || *end || end == value || count < 1 ||
                count > MR_QUERY_MAX_COUNT)
                return mr_diag_set(d, MR_EINVALID,
                                   "_count: must be an integer 1..%d",
                                   MR_QUERY_MAX_COUNT);
        } else if (!strcmp(name, "_page_after")) {
            char *end;
            errno = 0;
            after = strtoll(value, &end, 10);
            if (errno || *end || end == value || after < 1)
                return mr_diag_set(d, MR_EINVALID,
                                   "_page_after: must be a cursor from a "
                                   "paging link");
        } else if (strcmp(name, "_format") && strcmp(name, "_pretty")) {
            return mr_diag_set(d, MR_EINVALID,
                               "history: \"%s\" is not supported (only "
                               "_since, _count and _page_after)",
                               name);
        }
        p += n + (amp ? 1 : 0);
    }
    err = mr__tx_begin_read(r, d);
    if (err)
        return err;
    hq.type = type;
    hq.id = id;
    hq.since = since;
    hq.after = after;
    hq.limit = (uint32_t)count;
    hq.next = 0;
    {
        /* Versions the actor may not see are left out of the page. */
        struct mr__filter f;
        mr__filter_init(&f, r, a, MR_ACT_HISTORY, cb, ctx);
        err = mr_store_history_all(r->st, &hq, mr__filter_cb, &f, total, d);
        mr__filter_release(&f);
    }
    if (next)
        *next = err ? 0 : hq.next;
    pref[0] = '\0';
    if (id)
        mr__patient_of(type, id, NULL, pref, sizeof(pref));
    return mr__finish_read(r, a, "history", err, type, id,
                           pref[0] ? pref : NULL, query, d);
}

/* ---- Patient $everything ----------------------------------------------- */

struct counter {
    mr_store_cb cb;
    void *ctx;
    int64_t n;
};

static int count_cb(void *ctx, const struct mr_version *m, const char *json,
                    size_t len)
{
    struct counter *c = ctx;

    c->n++;
    return c->cb(c->ctx, m, json, len);
}

enum mr_err mr_records_everything(struct mr_records *r,
                                  const struct mr_actor *a, const char *id,
                                  mr_store_cb cb, void *ctx, int64_t *total,
                                  struct mr_diag *d)
{
    struct mr_buf json = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES + 4096);
    struct mr_version meta;
    struct counter c = {cb, ctx, 0};
    struct mr__filter f;
    char ref[128];
    enum mr_err err;

    if ((err = mr__check_actor(a, d)))
        return err;
    if (!mr_id_valid(id))
        return mr_diag_set(d, MR_EINVALID,
                           "Patient.id: \"%s\" is not a valid id", id);
    mr__filter_init(&f, r, a, MR_ACT_READ, count_cb, &c);
    snprintf(ref, sizeof(ref), "Patient/%s", id);
    if ((err = mr__authorize(r, a, MR_ACT_READ, "Patient", d))) {
        mr_buf_release(&json);
        return mr__denied(r, a, "read", "Patient", id, d);
    }
    err = mr__tx_begin_read(r, d);
    if (err) {
        mr_buf_release(&json);
        return err;
    }
    err = mr_store_read(r->st, "Patient", id, 0, &meta, &json, d);
    /* The Patient must be visible; then each resource of the chart is
     * passed on only if the actor may read its type and see it. */
    if (!err)
        err =
            mr__visible(r, a, "Patient", id, json.ptr, json.len, NULL, NULL, d);
    if (!err) {
        int rc = mr__filter_cb(&f, &meta, json.ptr, json.len);
        if (rc)
            err = mr_diag_set(d,
                              rc > 0 && rc < MR__ERR_COUNT ? (enum mr_err)rc
                                                           : MR_EINTERNAL,
                              "$everything: could not write the answer");
    }
    if (!err)
        err = mr_store_compartment(r->st, ref, EVERYTHING_MAX - 1,
                                   mr__filter_cb, &f, d);
    mr_buf_release(&json);
    mr__filter_release(&f);
    err = mr__finish_read(r, a, "read", err, "Patient", id, ref, "$everything",
                          d);
    if (!err && total)
        *total = c.n;
    return err;
}
