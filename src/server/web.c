/*
 * The web UI's assets, compiled in (src/server/gen/web_assets.inc, made
 * from web/ by tools/embed). A placeholder until the workspace lands.
 */
#include "server/server.h"

#include <string.h>

void mr_web_handle(const char *method, const char *path,
                   struct mr_http_resp *resp)
{
    static const char page[] =
        "<!doctype html><meta charset=utf-8><title>medrec</title>"
        "<p>The medrec workspace is being built. The FHIR API is at "
        "<a href=/fhir/metadata>/fhir</a>.</p>\n";

    mr_buf_reset(&resp->body);
    resp->web = 1;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        resp->status = 405;
        resp->content_type = "text/plain; charset=utf-8";
        if (mr_buf_adds(&resp->body, "method not allowed\n"))
            resp->status = 500;
        return;
    }
    if (strcmp(path, "/") && strcmp(path, "/index.html")) {
        resp->status = 404;
        resp->content_type = "text/plain; charset=utf-8";
        if (mr_buf_adds(&resp->body, "not found\n"))
            resp->status = 500;
        return;
    }
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
    if (mr_buf_add(&resp->body, page, sizeof(page) - 1))
        resp->status = 500;
}
