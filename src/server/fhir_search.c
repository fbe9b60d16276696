/*
 * FHIR search over HTTP: searchset Bundles with paging links.
 */
#include "server/fhir_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- search ----------------------------------------------------------- */

struct bundle_ctx {
    struct mr_buf *out;
    const char *base;
    int n;
    enum mr_err err;
};

static int bundle_entry(void *ctx, const struct mr_version *m, const char *json,
                        size_t len)
{
    struct bundle_ctx *b = ctx;

    b->err =
        mr_buf_addf(b->out,
                    "%s{\"fullUrl\":\"%s/%s/%s\",\"resource\":%.*s,"
                    "\"search\":{\"mode\":\"match\"}}",
                    b->n ? "," : "", b->base, m->type, m->id, (int)len, json);
    b->n++;
    return b->err ? (int)b->err : 0;
}

/* The query without _offset, for building paging links. */
static void strip_offset(const char *q, struct mr_buf *out)
{
    const char *p = q, *amp;
    size_t n;

    while (*p) {
        amp = strchr(p, '&');
        n = amp ? (size_t)(amp - p) : strlen(p);
        if (n && strncmp(p, "_offset=", 8)) {
            if (out->len && mr_buf_addc(out, '&'))
                return;
            if (mr_buf_add(out, p, n))
                return;
        }
        p += n + (amp ? 1 : 0);
    }
}

static long query_int(const char *q, const char *name, long def)
{
    size_t n = strlen(name);
    const char *p = q;

    while (p && *p) {
        if (!strncmp(p, name, n) && p[n] == '=')
            return strtol(p + n + 1, NULL, 10);
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return def;
}

void mr__fhir_search(const struct mr_http_req *req, struct mr_http_resp *resp,
                     const char *type, const char *query)
{
    struct mr_buf entries = MR_BUF_INIT(256u << 20);
    struct mr_buf rest = MR_BUF_INIT(64u << 10);
    struct bundle_ctx b = {&entries, req->base, 0, MR_OK};
    struct mr_diag d;
    int64_t total = 0;
    long count, offset;
    enum mr_err err;

    mr_diag_clear(&d);
    err = mr_records_search(req->records, &req->actor, type, query,
                            bundle_entry, &b, &total, &d);
    if (err) {
        mr__fhir_fail_diag(resp, &d);
        goto done;
    }
    count = query_int(query, "_count", 50);
    offset = query_int(query, "_offset", 0);
    strip_offset(query, &rest);
    err = mr_buf_addf(&resp->body,
                      "{\"resourceType\":\"Bundle\",\"type\":\"searchset\","
                      "\"total\":%lld,\"link\":[{\"relation\":\"self\","
                      "\"url\":\"%s/%s?%s\"}",
                      (long long)total, req->base, type, query);
    if (!err && count > 0 && offset + count < total)
        err = mr_buf_addf(&resp->body,
                          ",{\"relation\":\"next\",\"url\":\"%s/%s?%s%s"
                          "_offset=%ld\"}",
                          req->base, type, rest.ptr, rest.len ? "&" : "",
                          offset + count);
    if (!err && count > 0 && offset > 0)
        err = mr_buf_addf(&resp->body,
                          ",{\"relation\":\"previous\",\"url\":\"%s/%s?%s%s"
                          "_offset=%ld\"}",
                          req->base, type, rest.ptr, rest.len ? "&" : "",
                          offset > count ? offset - count : 0);
    if (!err)
        err = mr_buf_addf(&resp->body, "],\"entry\":[%s]}", entries.ptr);
    if (err)
        mr__fhir_fail(resp, err, NULL);
    else
        resp->status = 200;
done:
    mr_buf_release(&entries);
    mr_buf_release(&rest);
}
