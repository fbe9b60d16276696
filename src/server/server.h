/*
 * The HTTP adapter: `medrec serve`. http.c runs libmicrohttpd (epoll,
 * thread pool) and turns requests into struct mr_http_req; fhir.c is the
 * FHIR R4 REST API over the records service; errmap.c maps errors to
 * statuses and OperationOutcomes. Nothing here touches the store.
 */
#ifndef MR_SERVER_SERVER_H
#define MR_SERVER_SERVER_H

#include "core/buf.h"
#include "medrec/medrec.h"
#include "records/records.h"
#include "server/mllp.h"

#include <stdio.h>

/* Request bodies above this are refused with 413 (bytes). */
#define MR_HTTP_MAX_BODY (32u << 20)
/* Request line + headers above this are refused by libmicrohttpd. */
#define MR_HTTP_MAX_HEADER (16u << 10)

struct mr_server_config {
    const char *db;
    const char *http;               /* "127.0.0.1:8080"; port 0 picks one */
    unsigned threads;               /* worker threads (default: 2 per core) */
    unsigned timeout_s;             /* idle/slow client time-out */
    FILE *access_log;               /* JSON Lines; NULL for none */
    const char *tls_cert, *tls_key; /* PEM files: serve HTTPS */
    unsigned idle_seconds;          /* session idle time-out (900) */
    int allow_plain_http; /* beyond loopback without TLS (behind a proxy) */
    int require_mfa;      /* admins and clinicians must use a second factor */
    /* Called once listening, with the actual port (for tests). */
    void (*ready)(void *ctx, unsigned port);
    void *ready_ctx;
    /* HL7 v2 over MLLP (src/server/mllp.h): listen on mllp.addr when set;
     * mllp_ready is called with its port. */
    struct mr_mllp_config mllp;
    void (*mllp_ready)(void *ctx, unsigned port);
};

/* Serve until SIGTERM or SIGINT; in-flight requests finish first. */
enum mr_err mr_server_run(const struct mr_server_config *cfg,
                          struct mr_diag *d) MR_WUR;

/* One request as the FHIR layer sees it. */
struct mr_http_req {
    const char *method;
    const char *path;  /* below the FHIR base: "/Patient/123" */
    const char *base;  /* absolute base URL: "http://host:port/fhir" */
    const char *query; /* re-encoded query string, "" when none */
    const char *(*header)(void *ctx, const char *name);
    void *header_ctx;
    const char *body;
    size_t body_len;
    struct mr_records *records;
    struct mr_actor actor;
};

struct mr_http_resp {
    unsigned status;
    struct mr_buf body;
    const char *content_type;
    char location[600];
    char etag[40];
    char last_modified[40];
    const char *route; /* route template for the access log */
    char set_cookie[200];
    int web; /* a page of the web UI: send the browser security headers */
};

/* The web UI's static assets (compiled into the program): GET path ->
 * resp (status, body, content_type, web). Needs no sign-in: the assets
 * hold no health data; the page signs in through /auth. */
void mr_web_handle(const char *method, const char *path,
                   struct mr_http_resp *resp);

/* Handle one FHIR request (path below /fhir). Fills resp. */
void mr_fhir_handle(const struct mr_http_req *req, struct mr_http_resp *resp);

#endif
