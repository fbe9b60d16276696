/*
 * FHIR R4 REST over the records service: capabilities, create
 * (conditional too), read, vread, update (If-Match, update as create),
 * delete, instance history and search. Stored JSON is served as stored.
 */
#include "core/alloc.h"
#include "core/id.h"
#include "core/time.h"
#include "fhir/defs.h"
#include "server/errmap.h"
#include "server/fhir_impl.h"
#include "server/server.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 6

struct route {
    const char *seg[MAX_SEGS];
    size_t nseg;
    char buf[1024];
};

static int split_path(const char *path, struct route *rt)
{
    char *p, *slash;

    rt->nseg = 0;
    if (strlen(path) >= sizeof(rt->buf))
        return -1;
    snprintf(rt->buf, sizeof(rt->buf), "%s", path);
    p = rt->buf;
    while (*p == '/')
        p++;
    while (*p) {
        if (rt->nseg == MAX_SEGS)
            return -1;
        rt->seg[rt->nseg++] = p;
        slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
        if (!*p)
            break;
    }
    return 0;
}

void mr__fhir_fail(struct mr_http_resp *resp, enum mr_err err, const char *msg)
{
    resp->status = mr_errmap_http_status(err);
    mr_buf_reset(&resp->body);
    if (mr_errmap_outcome(&resp->body, err, NULL, msg))
        mr_buf_reset(&resp->body);
}

void mr__fhir_fail_diag(struct mr_http_resp *resp, const struct mr_diag *d)
{
    mr__fhir_fail(resp, d->code ? d->code : MR_EINTERNAL, mr_diag_msg(d));
}

static void http_date(int64_t ms, char out[40])
{
    static const char *const wd[] = {"Thu", "Fri", "Sat", "Sun",
                                     "Mon", "Tue", "Wed"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t secs = ms / 1000, days = secs / 86400, rem = secs % 86400;
    int y;
    unsigned m, d;

    if (rem < 0) {
        rem += 86400;
        days--;
    }
    mr_civil_from_days(days, &y, &m, &d);
    snprintf(out, 40, "%s, %02u %s %04d %02d:%02d:%02d GMT",
             wd[((days % 7) + 7) % 7], d, mon[m - 1], y, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60));
}

static void version_headers(const struct mr_http_req *req,
                            struct mr_http_resp *resp,
                            const struct mr_version *m, int location)
{
    snprintf(resp->etag, sizeof(resp->etag), "W/\"%lld\"",
             (long long)m->version);
    http_date(m->ts, resp->last_modified);
    if (location)
        snprintf(resp->location, sizeof(resp->location),
                 "%s/%s/%s/_history/%lld", req->base, m->type, m->id,
                 (long long)m->version);
}

/* "W/\"3\"" or "3" -> 3; 0 if absent or not a version. */
static int64_t parse_etag(const char *v)
{
    char *end;
    long long n;

    if (!v)
        return 0;
    if (!strncmp(v, "W/", 2))
        v += 2;
    if (*v == '"')
        v++;
    n = strtoll(v, &end, 10);
    /* W/"3", "3" or 3, and nothing after. */
    if (end == v || n < 1)
        return -1;
    if (*end == '"')
        end++;
    if (*end)
        return -1;
    return n;
}

/* 405: the endpoint exists, the method does not apply to it. */
static void method_not_allowed(struct mr_http_resp *resp, const char *msg)
{
    mr__fhir_fail(resp, MR_EUNSUPPORTED, msg);
    resp->status = 405;
}

static int content_type_ok(const struct mr_http_req *req)
{
    const char *ct = req->header(req->header_ctx, "Content-Type");

    if (!ct)
        return 0;
    return !strncmp(ct, "application/fhir+json", 21) ||
           !strncmp(ct, "application/json", 16);
}

static int prefer_minimal(const struct mr_http_req *req)
{
    const char *p = req->header(req->header_ctx, "Prefer");
    return p && strstr(p, "return=minimal");
}

/* ---- capabilities ----------------------------------------------------- */

static const char *sp_type_name(enum mr_sp_type t)
{
    static const char *const names[] = {"number",   "date",      "string",
                                        "token",    "reference", "composite",
                                        "quantity", "uri",       "special"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t]
                                                          : "special";
}

static void capabilities(const struct mr_http_req *req,
                         struct mr_http_resp *resp)
{
    json_t *cs, *rest, *resources, *res, *params, *ints;
    const struct mr_search_param *sp;
    size_t i, k, n;
    char now[32], *text;
    static const char *const interactions[] = {
        "read",   "vread",       "update",       "delete",
        "create", "search-type", "history-type", "history-instance"};

    mr_time_format(mr_time_now_ms(), now);
    resources = json_array();
    for (i = 0; i < mr_fhir_types_count; i++) {
        const struct mr_type *t = &mr_fhir_types[i];
        if (t->kind != MR_KIND_RESOURCE || !strcmp(t->name, "Resource") ||
            !strcmp(t->name, "DomainResource"))
            continue;
        ints = json_array();
        for (k = 0; k < sizeof(interactions) / sizeof(interactions[0]); k++)
            json_array_append_new(ints,
                                  json_pack("{s:s}", "code", interactions[k]));
        params = json_array();
        json_array_append_new(
            params, json_pack("{s:s,s:s}", "name", "_id", "type", "token"));
        json_array_append_new(
            params,
            json_pack("{s:s,s:s}", "name", "_lastUpdated", "type", "date"));
        mr_search_params_of(t->name, &sp, &n);
        for (k = 0; k < n; k++) {
            if (!sp[k].npaths || sp[k].type == MR_SP_COMPOSITE ||
                sp[k].type == MR_SP_SPECIAL || !strcmp(sp[k].code, "phonetic"))
                continue;
            json_array_append_new(params,
                                  json_pack("{s:s,s:s}", "name", sp[k].code,
                                            "type", sp_type_name(sp[k].type)));
        }
        res = json_pack("{s:s,s:o,s:s,s:b,s:b,s:o}", "type", t->name,
                        "interaction", ints, "versioning", "versioned",
                        "readHistory", 1, "updateCreate", 1, "searchParam",
                        params);
        json_object_set_new(res, "conditionalCreate", json_true());
        json_object_set_new(res, "searchInclude", json_pack("[s]", "*"));
        json_object_set_new(res, "searchRevInclude", json_pack("[s]", "*"));
        if (!strcmp(t->name, "Patient"))
            json_object_set_new(
                res, "operation",
                json_pack("[{s:s,s:s}]", "name", "everything", "definition",
                          "http://hl7.org/fhir/OperationDefinition/"
                          "Patient-everything"));
        json_array_append_new(resources, res);
    }
    rest = json_pack("{s:s,s:o,s:[{s:s},{s:s},{s:s}]}", "mode", "server",
                     "resource", resources, "interaction", "code",
                     "transaction", "code", "batch", "code", "history-system");
    cs = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:s,s:[s],s:[o]}",
                   "resourceType", "CapabilityStatement", "status", "active",
                   "date", now, "kind", "instance", "publisher", "medrec",
                   "fhirVersion", "4.0.1", "software", "name", "medrec",
                   "version", MEDREC_VERSION, "description",
                   "medrec FHIR R4 server", "format", "json", "rest", rest);
    json_object_set_new(
        cs, "implementation",
        json_pack("{s:s,s:s}", "description", "medrec", "url", req->base));
    text = json_dumps(cs, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(cs);
    if (!text || mr_buf_adds(&resp->body, text)) {
        free(text);
        mr__fhir_fail(resp, MR_ENOMEM, NULL);
        return;
    }
    free(text);
    resp->status = 200;
}

/* ---- history ---------------------------------------------------------- */

int mr__fhir_hist_entry(void *ctx, const struct mr_version *m, const char *json,
                        size_t len)
{
    struct mr__fhir_hist *h = ctx;
    enum mr_err err = mr_history_entry(h->out, h->base, m, json, len, !h->n);

    h->n++;
    return err ? (int)err : 0;
}

/* ---- instance interactions -------------------------------------------- */

static void read_resource(const struct mr_http_req *req,
                          struct mr_http_resp *resp, const char *type,
                          const char *id, int64_t version)
{
    struct mr_result res;
    struct mr_diag d;

    mr_result_init(&res);
    mr_diag_clear(&d);
    if (mr_records_read(req->records, &req->actor, type, id, version, &res,
                        &d)) {
        mr__fhir_fail_diag(resp, &d);
    } else if (mr_buf_add(&resp->body, res.json.ptr, res.json.len)) {
        mr__fhir_fail(resp, MR_ENOMEM, NULL);
    } else {
        resp->status = 200;
        version_headers(req, resp, &res.meta, 0);
    }
    mr_result_release(&res);
}

static void write_result(const struct mr_http_req *req,
                         struct mr_http_resp *resp, struct mr_result *res,
                         unsigned status)
{
    resp->status = status;
    version_headers(req, resp, &res->meta, 1);
    if (prefer_minimal(req))
        return;
    if (mr_buf_add(&resp->body, res->json.ptr, res->json.len))
        mr__fhir_fail(resp, MR_ENOMEM, NULL);
}

struct first {
    struct mr_result *res;
    int n;
};

static int first_match(void *ctx, const struct mr_version *m, const char *json,
                       size_t len)
{
    struct first *f = ctx;

    if (f->n++ == 0) {
        f->res->meta = *m;
        mr_buf_reset(&f->res->json);
        if (mr_buf_add(&f->res->json, json, len))
            return MR_ENOMEM;
    }
    return 0;
}

static int duplicate_checked(const struct mr_http_req *req)
{
    const char *v = req->header(req->header_ctx, "X-Duplicate-Checked");
    return v && !strcmp(v, "different-person");
}

/* Why a change is made (X-Reason, percent-decoded by http.c): kept with
 * the version and shown in its history. */
static const char *reason_of(const struct mr_http_req *req)
{
    const char *r = req->header(req->header_ctx, "X-Reason");
    return r && *r ? r : NULL;
}

static void create(const struct mr_http_req *req, struct mr_http_resp *resp,
                   const char *type)
{
    struct mr_result res;
    struct mr_diag d;
    const char *cond = req->header(req->header_ctx, "If-None-Exist");
    struct first f;
    int64_t total = 0;

    mr_result_init(&res);
    mr_diag_clear(&d);
    if (cond && *cond) {
        /* Conditional create: none -> create, one -> return it, more ->
         * the condition is not selective enough. */
        f.res = &res;
        f.n = 0;
        if (mr_records_search(req->records, &req->actor, type, cond,
                              first_match, &f, &total, &d)) {
            mr__fhir_fail_diag(resp, &d);
            goto done;
        }
        if (total == 1) {
            write_result(req, resp, &res, 200);
            goto done;
        }
        if (total > 1) {
            mr__fhir_fail(resp, MR_ECONFLICT,
                          "If-None-Exist matches more than one resource");
            goto done;
        }
    }
    /* A clerk who has checked that a possible duplicate is a different
     * person says so (X-Duplicate-Checked: different-person); the reason
     * stays on the version. */
    if (mr_records_create(req->records, &req->actor, type, req->body,
                          req->body_len, reason_of(req),
                          duplicate_checked(req) ? MR_WRITE_FORCE : 0, &res,
                          &d))
        mr__fhir_fail_diag(resp, &d);
    else
        write_result(req, resp, &res, 201);
done:
    mr_result_release(&res);
}

static void update(const struct mr_http_req *req, struct mr_http_resp *resp,
                   const char *type, const char *id)
{
    struct mr_result res;
    struct mr_diag d;
    int64_t expect = parse_etag(req->header(req->header_ctx, "If-Match"));
    int created = 0;

    if (expect < 0) {
        mr__fhir_fail(resp, MR_EINVALID,
                      "If-Match: expected a version ETag such as "
                      "W/\"3\"");
        return;
    }
    mr_result_init(&res);
    mr_diag_clear(&d);
    if (mr_records_put(req->records, &req->actor, type, id, req->body,
                       req->body_len, expect, reason_of(req), MR_WRITE_UPSERT,
                       &res, &created, &d)) {
        mr__fhir_fail_diag(resp, &d);
        if (d.code == MR_ENOTFOUND && expect > 0)
            resp->status = 412;
    } else {
        write_result(req, resp, &res, created ? 201 : 200);
    }
    mr_result_release(&res);
}

static void delete_resource(const struct mr_http_req *req,
                            struct mr_http_resp *resp, const char *type,
                            const char *id)
{
    struct mr_diag d;
    int64_t expect = parse_etag(req->header(req->header_ctx, "If-Match"));
    enum mr_err err;

    if (expect < 0) {
        mr__fhir_fail(resp, MR_EINVALID,
                      "If-Match: expected a version ETag such as "
                      "W/\"3\"");
        return;
    }
    mr_diag_clear(&d);
    err = mr_records_delete(req->records, &req->actor, type, id, expect,
                            reason_of(req), &d);
    if (err == MR_OK || err == MR_EGONE)
        resp->status = 204; /* deleting twice is not an error */
    else
        mr__fhir_fail_diag(resp, &d);
}

static void bundle(const struct mr_http_req *req, struct mr_http_resp *resp)
{
    struct mr_diag d;

    mr_diag_clear(&d);
    if (mr_records_bundle(req->records, &req->actor, req->body, req->body_len,
                          &resp->body, &d))
        mr__fhir_fail_diag(resp, &d);
    else
        resp->status = 200;
}

/* ---- dispatch --------------------------------------------------------- */

static int is_get(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD");
}

void mr_fhir_handle(const struct mr_http_req *req, struct mr_http_resp *resp)
{
    struct route rt;
    const char *m = req->method, *type;
    char *end;
    long long vid;

    if (split_path(req->path, &rt)) {
        resp->route = "-";
        mr__fhir_fail(resp, MR_ENOTFOUND, "no such endpoint");
        return;
    }
    if (rt.nseg == 0) {
        resp->route = "/fhir";
        if (strcmp(m, "POST")) {
            method_not_allowed(
                resp,
                "the base URL takes POST of a batch or transaction Bundle");
            return;
        }
        if (!content_type_ok(req)) {
            resp->status = 415;
            if (mr_errmap_outcome(&resp->body, MR_EINVALID, NULL,
                                  "Content-Type must be application/fhir+json"))
                mr_buf_reset(&resp->body);
            return;
        }
        bundle(req, resp);
        return;
    }
    if (rt.nseg == 1 && !strcmp(rt.seg[0], "metadata")) {
        resp->route = "/fhir/metadata";
        if (is_get(m))
            capabilities(req, resp);
        else
            method_not_allowed(resp, "metadata is read-only");
        return;
    }
    if (rt.nseg == 1 && !strcmp(rt.seg[0], "_history") && is_get(m)) {
        resp->route = "/fhir/_history";
        mr__fhir_history_all(req, resp, NULL, NULL);
        return;
    }
    type = rt.seg[0];
    if (!mr_fhir_is_resource_type(type)) {
        resp->route = "/fhir/:unknown";
        mr__fhir_fail(resp, MR_ENOTFOUND, "unknown resource type");
        return;
    }
    if ((!strcmp(m, "POST") || !strcmp(m, "PUT")) &&
        !(rt.nseg == 2 && !strcmp(rt.seg[1], "_search")) &&
        !content_type_ok(req)) {
        resp->route = "/fhir/:type";
        resp->status = 415;
        if (mr_errmap_outcome(&resp->body, MR_EINVALID, NULL,
                              "Content-Type must be application/fhir+json"))
            mr_buf_reset(&resp->body);
        return;
    }
    if (rt.nseg == 1 && !strcmp(type, "AuditEvent") && is_get(m)) {
        /* The audit trail itself, not stored AuditEvent resources. */
        resp->route = "/fhir/AuditEvent";
        mr__fhir_audit(req, resp);
        return;
    }
    if (rt.nseg == 1) {
        resp->route = "/fhir/:type";
        if (is_get(m))
            mr__fhir_search(req, resp, type, req->query);
        else if (!strcmp(m, "POST"))
            create(req, resp, type);
        else
            method_not_allowed(resp, "method not allowed here");
        return;
    }
    if (rt.nseg == 2 && !strcmp(rt.seg[1], "_search")) {
        struct mr_buf q = MR_BUF_INIT(64u << 10);
        resp->route = "/fhir/:type/_search";
        if (strcmp(m, "POST")) {
            method_not_allowed(resp, "_search takes POST");
            return;
        }
        /* Form body and URL parameters together. */
        if (mr_buf_adds(&q, req->query) ||
            (req->body_len && q.len && mr_buf_addc(&q, '&')) ||
            mr_buf_add(&q, req->body, req->body_len))
            mr__fhir_fail(resp, MR_ETOOBIG, "search too long");
        else
            mr__fhir_search(req, resp, type, q.ptr);
        mr_buf_release(&q);
        return;
    }
    if (rt.nseg == 2 && !strcmp(rt.seg[1], "_history") && is_get(m)) {
        resp->route = "/fhir/:type/_history";
        mr__fhir_history_all(req, resp, type, NULL);
        return;
    }
    if (rt.nseg == 3 && !strcmp(type, "Patient") &&
        !strcmp(rt.seg[2], "$everything") && is_get(m) &&
        mr_id_valid(rt.seg[1])) {
        resp->route = "/fhir/Patient/:id/$everything";
        mr__fhir_everything(req, resp, rt.seg[1]);
        return;
    }
    if (!mr_id_valid(rt.seg[1])) {
        resp->route = "/fhir/:type/:id";
        mr__fhir_fail(resp, MR_EINVALID, "not a valid resource id");
        return;
    }
    if (rt.nseg == 2) {
        resp->route = "/fhir/:type/:id";
        if (is_get(m))
            read_resource(req, resp, type, rt.seg[1], 0);
        else if (!strcmp(m, "PUT"))
            update(req, resp, type, rt.seg[1]);
        else if (!strcmp(m, "DELETE"))
            delete_resource(req, resp, type, rt.seg[1]);
        else
            method_not_allowed(resp, "method not allowed here");
        return;
    }
    if (rt.nseg == 3 && !strcmp(rt.seg[2], "_history") && is_get(m)) {
        resp->route = "/fhir/:type/:id/_history";
        mr__fhir_history_all(req, resp, type, rt.seg[1]);
        return;
    }
    if (rt.nseg == 4 && !strcmp(rt.seg[2], "_history") && is_get(m)) {
        resp->route = "/fhir/:type/:id/_history/:vid";
        vid = strtoll(rt.seg[3], &end, 10);
        if (*end || vid < 1)
            mr__fhir_fail(resp, MR_EINVALID, "not a valid version id");
        else
            read_resource(req, resp, type, rt.seg[1], vid);
        return;
    }
    resp->route = "-";
    mr__fhir_fail(resp, MR_ENOTFOUND, "no such endpoint");
}
