/*
 * The web UI's assets, compiled in: src/server/gen/web_assets.inc is made
 * from web/ by tools/embed/embed-web.sh and committed (tests/e2e/
 * web_assets.sh fails when it is stale). The page is one origin with the
 * API, loads nothing from elsewhere and holds no health data of its own, so
 * serving it needs no sign-in. http.c adds the browser security headers
 * (CSP, frame denial, nosniff, no-store) for resp->web.
 */
#include "server/server.h"

#include <string.h>

struct web_asset {
    const char *path; /* "/app.js" */
    const char *content_type;
    const char *bytes;
    size_t len;
};

#include "server/gen/web_assets.inc"

#define NASSETS (sizeof(web_assets) / sizeof(web_assets[0]))

/* The table is sorted by path (the generator sorts in the C locale). */
static const struct web_asset *find_asset(const char *path)
{
    size_t lo = 0, hi = NASSETS;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, web_assets[mid].path);
        if (!c)
            return &web_assets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static void text_answer(struct mr_http_resp *resp, unsigned status,
                        const char *msg)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    if (mr_buf_adds(&resp->body, msg))
        resp->status = 500;
}

void mr_web_handle(const char *method, const char *path,
                   struct mr_http_resp *resp)
{
    const struct web_asset *a;

    mr_buf_reset(&resp->body);
    resp->web = 1;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        text_answer(resp, 405, "method not allowed\n");
        return;
    }
    a = find_asset(strcmp(path, "/") ? path : "/index.html");
    if (!a) {
        text_answer(resp, 404, "not found\n");
        return;
    }
    resp->status = 200;
    resp->content_type = a->content_type;
    if (mr_buf_add(&resp->body, a->bytes, a->len))
        resp->status = 500;
}
