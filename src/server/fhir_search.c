/*
 * FHIR search over HTTP: searchset Bundles with paging links.
 */
#include "core/time.h"
#include "server/fhir_impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- search ----------------------------------------------------------- */

struct bundle_ctx {
    struct mr_buf *out;
    const char *base;
    int n;
    enum mr_err err;
};

static int add_entry(struct bundle_ctx *b, const struct mr_version *m,
                     const char *json, size_t len, const char *mode)
{
    b->err = mr_buf_addf(b->out,
                         "%s{\"fullUrl\":\"%s/%s/%s\",\"resource\":%.*s,"
                         "\"search\":{\"mode\":\"%s\"}}",
                         b->n ? "," : "", b->base, m->type, m->id, (int)len,
                         json, mode);
    b->n++;
    return b->err ? (int)b->err : 0;
}

static int bundle_entry(void *ctx, const struct mr_version *m, const char *json,
                        size_t len)
{
    return add_entry(ctx, m, json, len, "match");
}

static int include_entry(void *ctx, const struct mr_version *m,
                         const char *json, size_t len)
{
    return add_entry(ctx, m, json, len, "include");
}

/* An OperationOutcome entry (search.mode "outcome") warning that the
 * listed parameters were ignored; the names are the client's text, so
 * they are JSON-escaped by jansson. */
static enum mr_err outcome_entry(struct bundle_ctx *b, const char *ignored)
{
    json_t *e;
    char *text;
    enum mr_err err;

    e = json_pack("{s:{s:s,s:[{s:s,s:s,s:s+}]},s:{s:s}}", "resource",
                  "resourceType", "OperationOutcome", "issue", "severity",
                  "warning", "code", "not-supported", "diagnostics",
                  "unknown or unsupported search parameters ignored: ", ignored,
                  "search", "mode", "outcome");
    text = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(e);
    if (!text)
        return MR_ENOMEM;
    err = mr_buf_addf(b->out, "%s%s", b->n ? "," : "", text);
    b->n++;
    free(text);
    return err;
}

/* Prefer: handling=strict (RFC 7240 preferences, comma-separated); the
 * default is lenient: unknown parameters are ignored and reported in an
 * OperationOutcome entry. */
static int prefer_strict(const struct mr_http_req *req)
{
    const char *p = req->header(req->header_ctx, "Prefer");
    return p && strstr(p, "handling=strict") != NULL;
}

static int paging_param(const char *p, size_t n)
{
    static const char *const names[] = {
        "_offset=", "_page_after=", "_page_before="};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (n >= strlen(names[i]) && !strncmp(p, names[i], strlen(names[i])))
            return 1;
    return 0;
}

/* The query without its paging parameters, for building paging links. */
static void strip_offset(const char *q, struct mr_buf *out)
{
    const char *p = q, *amp;
    size_t n;

    while (*p) {
        amp = strchr(p, '&');
        n = amp ? (size_t)(amp - p) : strlen(p);
        if (n && !paging_param(p, n)) {
            if (out->len && mr_buf_addc(out, '&'))
                return;
            if (mr_buf_add(out, p, n))
                return;
        }
        p += n + (amp ? 1 : 0);
    }
}

void mr__fhir_search(const struct mr_http_req *req, struct mr_http_resp *resp,
                     const char *type, const char *query)
{
    struct mr_buf entries = MR_BUF_INIT(256u << 20);
    struct mr_buf rest = MR_BUF_INIT(64u << 10);
    struct bundle_ctx b = {&entries, req->base, 0, MR_OK};
    struct mr_search_info info;
    struct mr_diag d;
    long count, offset;
    int64_t total;
    enum mr_err err;

    mr_diag_clear(&d);
    err = mr_records_search_ex(req->records, &req->actor, type, query,
                               prefer_strict(req) ? 0 : MR_SEARCH_LENIENT,
                               bundle_entry, include_entry, &b, &info, &d);
    if (err) {
        mr__fhir_fail_diag(resp, &d);
        goto done;
    }
    total = info.total;
    count = info.count;
    offset = info.offset;
    if (info.ignored[0] && (err = outcome_entry(&b, info.ignored))) {
        mr__fhir_fail(resp, err, NULL);
        goto done;
    }
    strip_offset(query, &rest);
    /* Bundle.total is left out when it was not counted (more than
     * MR_QUERY_TOTAL_CAP matches without _total=accurate). */
    err = mr_buf_adds(&resp->body,
                      "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",");
    if (!err && total >= 0)
        err = mr_buf_addf(&resp->body, "\"total\":%lld,", (long long)total);
    if (!err)
        err = mr_buf_addf(&resp->body,
                          "\"link\":[{\"relation\":\"self\",\"url\":\"%s/%s?"
                          "%s\"}",
                          req->base, type, query);
    if (!err && !info.summary_count && info.keyset) {
        /* Creation order: cursors, which stay put while data changes. */
        if (info.page.more_after && info.page.last)
            err = mr_buf_addf(&resp->body,
                              ",{\"relation\":\"next\",\"url\":\"%s/%s?%s%s"
                              "_page_after=%lld\"}",
                              req->base, type, rest.ptr, rest.len ? "&" : "",
                              (long long)info.page.last);
        if (!err && info.page.more_before && info.page.first)
            err = mr_buf_addf(&resp->body,
                              ",{\"relation\":\"previous\",\"url\":\"%s/%s?%s"
                              "%s_page_before=%lld\"}",
                              req->base, type, rest.ptr, rest.len ? "&" : "",
                              (long long)info.page.first);
    } else if (!err && !info.summary_count) {
        if (count > 0 &&
            (total >= 0 ? offset + count < total : info.page.more_after))
            err = mr_buf_addf(&resp->body,
                              ",{\"relation\":\"next\",\"url\":\"%s/%s?%s%s"
                              "_offset=%ld\"}",
                              req->base, type, rest.ptr, rest.len ? "&" : "",
                              offset + count);
        if (!err && count > 0 && offset > 0)
            err = mr_buf_addf(&resp->body,
                              ",{\"relation\":\"previous\",\"url\":\"%s/%s?"
                              "%s%s_offset=%ld\"}",
                              req->base, type, rest.ptr, rest.len ? "&" : "",
                              offset > count ? offset - count : 0);
    }
    /* _summary=count: the total only (an outcome entry still says what
     * was ignored). */
    if (!err && (!info.summary_count || b.n))
        err = mr_buf_addf(&resp->body, "],\"entry\":[%s]}", entries.ptr);
    else if (!err)
        err = mr_buf_adds(&resp->body, "]}");
    if (err)
        mr__fhir_fail(resp, err, NULL);
    else
        resp->status = 200;
done:
    mr_buf_release(&entries);
    mr_buf_release(&rest);
}

/* ---- type and system history ---------------------------------------- */

void mr__fhir_history_all(const struct mr_http_req *req,
                          struct mr_http_resp *resp, const char *type,
                          const char *id)
{
    struct mr_buf entries = MR_BUF_INIT(256u << 20);
    struct mr_buf rest = MR_BUF_INIT(64u << 10);
    struct mr__fhir_hist h = {&entries, req->base, 0};
    struct mr_diag d;
    int64_t total = 0, next = 0;
    char path[200];
    enum mr_err err;

    mr_diag_clear(&d);
    snprintf(path, sizeof(path), "%s%s%s%s/_history", type ? "/" : "",
             type ? type : "", id ? "/" : "", id ? id : "");
    if (mr_records_history_all(req->records, &req->actor, type, id, req->query,
                               mr__fhir_hist_entry, &h, &total, &next, &d)) {
        mr__fhir_fail_diag(resp, &d);
        goto done;
    }
    strip_offset(req->query, &rest);
    err = mr_buf_addf(&resp->body,
                      "{\"resourceType\":\"Bundle\",\"type\":\"history\","
                      "\"total\":%lld,\"link\":[{\"relation\":\"self\","
                      "\"url\":\"%s%s%s%s\"}",
                      (long long)total, req->base, path,
                      req->query[0] ? "?" : "", req->query);
    if (!err && next)
        err = mr_buf_addf(&resp->body,
                          ",{\"relation\":\"next\",\"url\":\"%s%s?%s%s"
                          "_page_after=%lld\"}",
                          req->base, path, rest.ptr, rest.len ? "&" : "",
                          (long long)next);
    if (!err)
        err = mr_buf_addf(&resp->body, "],\"entry\":[%s]}", entries.ptr);
    if (err)
        mr__fhir_fail(resp, MR_ENOMEM, NULL);
    else
        resp->status = 200;
done:
    mr_buf_release(&entries);
    mr_buf_release(&rest);
}

/* ---- Patient $everything -------------------------------------------- */

void mr__fhir_everything(const struct mr_http_req *req,
                         struct mr_http_resp *resp, const char *id)
{
    struct mr_buf entries = MR_BUF_INIT(256u << 20);
    struct bundle_ctx b = {&entries, req->base, 0, MR_OK};
    struct mr_diag d;
    int64_t total = 0;

    mr_diag_clear(&d);
    if (mr_records_everything(req->records, &req->actor, id, bundle_entry, &b,
                              &total, &d)) {
        mr__fhir_fail_diag(resp, &d);
    } else if (mr_buf_addf(&resp->body,
                           "{\"resourceType\":\"Bundle\",\"type\":"
                           "\"searchset\",\"total\":%lld,\"link\":[{"
                           "\"relation\":\"self\",\"url\":\"%s/Patient/%s/"
                           "$everything\"}],\"entry\":[%s]}",
                           (long long)total, req->base, id, entries.ptr)) {
        mr__fhir_fail(resp, MR_ENOMEM, NULL);
    } else {
        resp->status = 200;
    }
    mr_buf_release(&entries);
}
