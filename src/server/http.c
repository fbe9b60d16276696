/*
 * HTTP over libmicrohttpd: an epoll thread pool; each worker thread opens
 * its own records-service connection (SQLite handles are per thread).
 * Requests are answered on the handler's second call at the earliest, so
 * libmicrohttpd keeps the connection alive.
 */
#include "core/alloc.h"
#include "core/time.h"
#include "server/errmap.h"
#include "server/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <zlib.h>

#include "server/auth.h"

struct server {
    const struct mr_server_config *cfg;
    char base_host[128];
    pthread_mutex_t lock;
    struct mr_records *handles[256]; /* every worker's, closed at exit */
    unsigned nhandles;
    FILE *log;
    struct mr_queue *queue;
    struct mr_auth *auth;
    const char *scheme; /* "http" or "https" */
};

static _Thread_local struct mr_records *tl_records;

enum rq_state { RQ_NEW, RQ_PENDING, RQ_READY };

struct request {
    struct mr_buf body;
    int too_big;
    double t0;
    enum rq_state state;
    struct server *srv;
    struct MHD_Connection *conn;
    struct mr_http_req req;
    struct mr_http_resp resp;
    struct mr_buf query;
    char base[256];
    char path[2048];
    char method[16];
    /* Headers the FHIR layer reads, copied: a write runs on the
     * committer thread while its connection is suspended. */
    char if_match[64], content_type[128], prefer[512];
    char authorization[256], cookie[4096], reason[512], dupcheck[32];
    struct mr_principal who; /* the signed-in user or token */
    char source[64];         /* client address */
    int gzip;                /* the client accepts gzip */
    char if_none_exist[2048];
    struct mr_audit_batch audit;
    struct mr_job job;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct mr_records *thread_records(struct server *srv, struct mr_diag *d)
{
    struct mr_records *r;

    if (tl_records)
        return tl_records;
    if (mr_records_open(srv->cfg->db, 0, &r, d))
        return NULL;
    pthread_mutex_lock(&srv->lock);
    if (srv->nhandles < sizeof(srv->handles) / sizeof(srv->handles[0])) {
        srv->handles[srv->nhandles++] = r;
        tl_records = r;
    }
    pthread_mutex_unlock(&srv->lock);
    if (!tl_records) {
        mr_records_close(r);
        mr_diag_set(d, MR_EINTERNAL, "too many worker threads");
    }
    return tl_records;
}

/* Decode %XX in place (a reason is sent percent-encoded UTF-8); control
 * characters become spaces. */
static void pct_decode(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (*s == '%' && isxdigit((unsigned char)s[1]) &&
            isxdigit((unsigned char)s[2])) {
            char hex[3] = {s[1], s[2], '\0'};
            *o = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            *o = *s;
        }
        if ((unsigned char)*o < 0x20)
            *o = ' ';
        o++;
    }
    *o = '\0';
}

/* libmicrohttpd's unescaping of paths and query arguments, except that
 * %00 stays as it is: a decoded NUL would end the C string there and make
 * "Patient/x%00junk" act on Patient/x. Left encoded it is refused as an
 * invalid id or simply matches nothing. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    char *o = s, *start = s;

    (void)cls;
    (void)c;
    for (; *s; s++) {
        if (*s == '%' && isxdigit((unsigned char)s[1]) &&
            isxdigit((unsigned char)s[2]) && !(s[1] == '0' && s[2] == '0')) {
            char hex[3] = {s[1], s[2], '\0'};
            *o++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return (size_t)(o - start);
}

/* "127.0.0.1:5000" for the audit trail. */
static void client_address(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr_in *sa;
    char ip[INET_ADDRSTRLEN];

    snprintf(out, cap, "http");
    if (!ci || !ci->client_addr || ci->client_addr->sa_family != AF_INET)
        return;
    sa = (const struct sockaddr_in *)ci->client_addr;
    if (inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip)))
        snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(sa->sin_port));
}

static const char *get_header(void *ctx, const char *name)
{
    struct request *rq = ctx;

    if (!strcasecmp(name, "If-Match"))
        return rq->if_match[0] ? rq->if_match : NULL;
    if (!strcasecmp(name, "If-None-Exist"))
        return rq->if_none_exist[0] ? rq->if_none_exist : NULL;
    if (!strcasecmp(name, "Content-Type"))
        return rq->content_type[0] ? rq->content_type : NULL;
    if (!strcasecmp(name, "Prefer"))
        return rq->prefer[0] ? rq->prefer : NULL;
    if (!strcasecmp(name, "Authorization"))
        return rq->authorization[0] ? rq->authorization : NULL;
    if (!strcasecmp(name, "Cookie"))
        return rq->cookie[0] ? rq->cookie : NULL;
    if (!strcasecmp(name, "X-Reason"))
        return rq->reason[0] ? rq->reason : NULL;
    if (!strcasecmp(name, "X-Duplicate-Checked"))
        return rq->dupcheck[0] ? rq->dupcheck : NULL;
    return NULL;
}

/* Copy a header the handlers read; one that does not fit is refused (1),
 * never dropped: a dropped If-Match would make an update unconditional. */
static int copy_header(struct MHD_Connection *conn, const char *name, char *dst,
                       size_t cap)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

    dst[0] = '\0';
    if (!v)
        return 0;
    if (strlen(v) >= cap)
        return 1;
    snprintf(dst, cap, "%s", v);
    return 0;
}

struct qctx {
    struct mr_buf *q;
    enum mr_err err;
};

static void add_enc(struct qctx *c, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p;

    for (p = (const unsigned char *)s; !c->err && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~:|,$", *p)) {
            c->err = mr_buf_addc(c->q, (char)*p);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            c->err = mr_buf_add(c->q, enc, 3);
        }
    }
}

/* libmicrohttpd hands out decoded arguments; the query parser wants the
 * encoded form, so encode them again. */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
    struct qctx *c = cls;

    (void)kind;
    if (c->q->len && !c->err)
        c->err = mr_buf_addc(c->q, '&');
    add_enc(c, key);
    if (!c->err)
        c->err = mr_buf_addc(c->q, '=');
    if (value)
        add_enc(c, value);
    return c->err ? MHD_NO : MHD_YES;
}

static void log_access(struct server *srv, struct MHD_Connection *conn,
                       const char *method, const struct mr_http_resp *resp,
                       size_t bytes, double t0)
{
    const union MHD_ConnectionInfo *ci;
    char addr[64] = "-", ts[32];

    if (!srv->log)
        return;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET,
                  &((const struct sockaddr_in *)ci->client_addr)->sin_addr,
                  addr, sizeof(addr));
    mr_time_format(mr_time_now_ms(), ts);
    /* No query strings, ids or bodies: they can hold health data. */
    fprintf(srv->log,
            "{\"ts\":\"%s\",\"client\":\"%s\",\"method\":\"%.16s\","
            "\"route\":\"%s\",\"status\":%u,\"bytes\":%zu,\"ms\":%.3f}\n",
            ts, addr, method, resp->route ? resp->route : "-", resp->status,
            bytes, (now_s() - t0) * 1e3);
    fflush(srv->log);
}

/* Bodies smaller than this are not worth compressing. */
#define GZIP_MIN 1024

/* gzip src into a new malloc'd buffer; NULL if it does not pay. */
static unsigned char *gzip_body(const char *src, size_t len, size_t *outlen)
{
    z_stream z;
    unsigned char *out;
    size_t cap = len + len / 1000 + 64;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out >= len) {
        deflateEnd(&z);
        free(out);
        return NULL;
    }
    *outlen = z.total_out;
    deflateEnd(&z);
    return out;
}

static enum MHD_Result send_resp(struct server *srv,
                                 struct MHD_Connection *conn,
                                 const char *method, struct mr_http_resp *resp,
                                 double t0, int gzip)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    size_t len = resp->body.len, zlen = 0;
    unsigned char *z = NULL;

    if (gzip && len >= GZIP_MIN && len <= UINT32_MAX)
        z = gzip_body(resp->body.ptr, len, &zlen);
    if (z)
        r = MHD_create_response_from_buffer(zlen, z, MHD_RESPMEM_MUST_FREE);
    else
        r = MHD_create_response_from_buffer(len, resp->body.ptr,
                                            MHD_RESPMEM_MUST_COPY);
    if (!r) {
        free(z);
        return MHD_NO;
    }
    if (z)
        MHD_add_response_header(r, "Content-Encoding", "gzip");
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    if (len || resp->status != 204)
        MHD_add_response_header(r, "Content-Type",
                                resp->content_type
                                    ? resp->content_type
                                    : "application/fhir+json; charset=utf-8");
    if (resp->location[0])
        MHD_add_response_header(r, "Location", resp->location);
    if (resp->etag[0])
        MHD_add_response_header(r, "ETag", resp->etag);
    if (resp->last_modified[0])
        MHD_add_response_header(r, "Last-Modified", resp->last_modified);
    if (resp->set_cookie[0])
        MHD_add_response_header(r, "Set-Cookie", resp->set_cookie);
    if (resp->status == 401)
        MHD_add_response_header(r, "WWW-Authenticate",
                                "Bearer realm=\"medrec\"");
    if (resp->web) {
        /* No inline script, nothing from elsewhere, no framing. */
        MHD_add_response_header(
            r, "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    }
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    ret = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    log_access(srv, conn, method, resp, len, t0);
    return ret;
}

static void error_resp(struct mr_http_resp *resp, enum mr_err err,
                       const char *msg)
{
    resp->status = mr_errmap_http_status(err);
    mr_buf_reset(&resp->body);
    if (mr_errmap_outcome(&resp->body, err, NULL, msg))
        mr_buf_reset(&resp->body);
}

static int is_write(const char *method, const char *url)
{
    size_t n = strlen(url);

    if (!strcmp(method, "PUT") || !strcmp(method, "DELETE"))
        return 1;
    return !strcmp(method, "POST") &&
           !(n >= 8 && !strcmp(url + n - 8, "/_search"));
}

/* Committer thread: the whole FHIR write runs inside the group
 * transaction; a failed request's changes are undone by its savepoint. */
static int run_write(void *ctx, struct mr_records *r)
{
    struct request *rq = ctx;

    rq->req.records = r;
    mr_fhir_handle(&rq->req, &rq->resp);
    return rq->resp.status >= 400;
}

static int run_audit(void *ctx, struct mr_records *r)
{
    struct request *rq = ctx;
    struct mr_diag d;

    return mr_records_write_audits(r, &rq->audit, &d) != MR_OK;
}

static void job_done(void *ctx, enum mr_err commit)
{
    struct request *rq = ctx;

    if (commit) {
        /* Not durable, so not answered with success, and a read's data
         * is not released without its audit entry. */
        rq->resp.location[0] = rq->resp.etag[0] = '\0';
        rq->resp.last_modified[0] = '\0';
        error_resp(&rq->resp, commit,
                   "the request could not be committed; nothing was "
                   "changed or disclosed");
    }
    rq->state = RQ_READY;
    MHD_resume_connection(rq->conn);
}

static void suspend_for(struct request *rq,
                        int (*run)(void *ctx, struct mr_records *r))
{
    rq->state = RQ_PENDING;
    rq->job.run = run;
    rq->job.done = job_done;
    rq->job.ctx = rq;
    rq->job.flags = run == run_audit ? MR_JOB_APPEND : 0;
    MHD_suspend_connection(rq->conn);
    mr_queue_submit(rq->srv->queue, &rq->job);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct server *srv = cls;
    struct request *rq = *con_cls;
    struct qctx qc;
    struct mr_diag d;
    struct mr_records *records;
    const char *host;
    int auth = 0, signed_in, long_hdr = 0;

    (void)version;
    if (!rq) {
        rq = mr_calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        mr_buf_init(&rq->body, MR_HTTP_MAX_BODY);
        mr_buf_init(&rq->query, 64u << 10);
        mr_buf_init(&rq->resp.body, 256u << 20);
        mr_audit_batch_init(&rq->audit);
        rq->t0 = now_s();
        rq->srv = srv;
        rq->conn = conn;
        *con_cls = rq;
        return MHD_YES;
    }
    if (rq->state == RQ_READY)
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    if (rq->state == RQ_PENDING)
        return MHD_YES;
    if (*upload_size) {
        /* Past the limit the rest is read and dropped, never kept. */
        if (!rq->too_big && mr_buf_add(&rq->body, upload, *upload_size)) {
            rq->too_big = 1;
            mr_buf_release(&rq->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }

    snprintf(rq->method, sizeof(rq->method), "%s", method);
    rq->resp.status = 500;
    mr_diag_clear(&d);
    if (rq->too_big) {
        rq->resp.route = "-";
        mr_diag_set(&d, MR_ETOOBIG,
                    "request body exceeds the limit of %u bytes",
                    MR_HTTP_MAX_BODY);
        error_resp(&rq->resp, MR_ETOOBIG, d.msg);
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    {
        const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Accept-Encoding");
        rq->gzip = ae && strstr(ae, "gzip") != NULL;
    }
    if (!strncmp(url, "/auth/", 6) && strlen(url) < sizeof(rq->path)) {
        auth = 1;
    } else if (strncmp(url, "/fhir", 5) != 0 && strlen(url) < 256) {
        rq->resp.route = "/web";
        mr_web_handle(method, url, &rq->resp);
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    } else if (strncmp(url, "/fhir", 5) != 0 ||
               (url[5] != '/' && url[5] != '\0') ||
               strlen(url) >= sizeof(rq->path) + 5) {
        rq->resp.route = "-";
        error_resp(&rq->resp, MR_ENOTFOUND,
                   "no such endpoint; the FHIR API is at /fhir");
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    qc.q = &rq->query;
    qc.err = MR_OK;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &qc);
    if (qc.err) {
        rq->resp.route = "-";
        error_resp(&rq->resp, MR_ETOOBIG, "query string too long");
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    snprintf(rq->base, sizeof(rq->base), "%s://%s/fhir", srv->scheme,
             host && strlen(host) < 200 && !strpbrk(host, "\"\\ /")
                 ? host
                 : srv->base_host);
    snprintf(rq->path, sizeof(rq->path), "%s", url + 5);
    long_hdr |=
        copy_header(conn, "If-Match", rq->if_match, sizeof(rq->if_match));
    long_hdr |= copy_header(conn, "If-None-Exist", rq->if_none_exist,
                            sizeof(rq->if_none_exist));
    long_hdr |= copy_header(conn, "Content-Type", rq->content_type,
                            sizeof(rq->content_type));
    long_hdr |= copy_header(conn, "Prefer", rq->prefer, sizeof(rq->prefer));
    /* An overlong credential is no credential: 401. */
    (void)copy_header(conn, "Authorization", rq->authorization,
                      sizeof(rq->authorization));
    (void)copy_header(conn, "Cookie", rq->cookie, sizeof(rq->cookie));
    long_hdr |= copy_header(conn, "X-Reason", rq->reason, sizeof(rq->reason));
    long_hdr |= copy_header(conn, "X-Duplicate-Checked", rq->dupcheck,
                            sizeof(rq->dupcheck));
    pct_decode(rq->reason);
    if (long_hdr) {
        rq->resp.route = "-";
        error_resp(&rq->resp, MR_EINVALID,
                   "a header (If-Match, If-None-Exist, Content-Type, Prefer, "
                   "X-Reason) is longer than this server reads; nothing was "
                   "done");
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    client_address(conn, rq->source, sizeof(rq->source));
    rq->req.method = rq->method;
    rq->req.path = rq->path;
    rq->req.base = rq->base;
    rq->req.query = rq->query.ptr;
    rq->req.header = get_header;
    rq->req.header_ctx = rq;
    rq->req.body = rq->body.ptr;
    rq->req.body_len = rq->body.len;
    rq->req.actor.user = "-";
    rq->req.actor.role = NULL;
    rq->req.actor.source = rq->source;
    rq->req.actor.patient = NULL;
    rq->req.actor.local = 0;

    records = thread_records(srv, &d);
    if (!records) {
        rq->resp.route = "-";
        error_resp(&rq->resp, d.code, mr_diag_msg(&d));
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    rq->req.records = records;
    /* Everyone is signed in, except for signing in and the
     * CapabilityStatement (public, as SMART clients expect). */
    signed_in =
        mr_auth_check(srv->auth, &rq->req, records, &rq->who, &d) == MR_OK;
    if (signed_in) {
        rq->req.actor.user = rq->who.user;
        rq->req.actor.role = rq->who.role;
        rq->req.actor.patient = rq->who.patient[0] ? rq->who.patient : NULL;
    }
    if (auth) {
        snprintf(rq->path, sizeof(rq->path), "%s", url + 5);
        rq->req.path = rq->path;
        mr_auth_handle(srv->auth, &rq->req, &rq->resp, signed_in);
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    if (!signed_in &&
        !(!strcmp(rq->path, "/metadata") && !strcmp(method, "GET"))) {
        rq->resp.route = "-";
        error_resp(&rq->resp, MR_EUNAUTH, mr_diag_msg(&d));
        return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
    }
    if (is_write(method, url)) {
        suspend_for(rq, run_write);
        return MHD_YES;
    }
    mr_records_defer_audit(records, &rq->audit);
    mr_fhir_handle(&rq->req, &rq->resp);
    mr_records_defer_audit(records, NULL);
    if (rq->audit.n) {
        suspend_for(rq, run_audit);
        return MHD_YES;
    }
    return send_resp(srv, conn, rq->method, &rq->resp, rq->t0, rq->gzip);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (!rq)
        return;
    mr_buf_release(&rq->body);
    mr_buf_release(&rq->query);
    mr_buf_release(&rq->resp.body);
    mr_audit_batch_release(&rq->audit);
    mr_free(rq);
    *con_cls = NULL;
}

static int parse_addr(const char *spec, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    char *end;
    long port;

    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -1;
    return 0;
}

/* A PEM file, whole (at most 1 MiB). */
static char *read_pem(const char *path, struct mr_diag *d)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        mr_diag_set(d, MR_EIO, "%s: cannot open", path);
        return NULL;
    }
    buf = malloc(1u << 20);
    n = buf ? fread(buf, 1, (1u << 20) - 1, f) : 0;
    fclose(f);
    if (!buf || !n) {
        free(buf);
        mr_diag_set(d, MR_EIO, "%s: cannot read", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

enum mr_err mr_server_run(const struct mr_server_config *cfg, struct mr_diag *d)
{
    struct server srv;
    struct MHD_Daemon *daemon;
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;
    sigset_t set;
    int sig = 0;
    unsigned port, i, threads;
    struct mr_records *probe;
    char host[64], *cert = NULL, *key = NULL;
    struct MHD_OptionItem tls_opts[4];
    struct mr_mllp_server *mllp = NULL;

    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    srv.log = cfg->access_log;
    pthread_mutex_init(&srv.lock, NULL);
    if (parse_addr(cfg->http ? cfg->http : "127.0.0.1:8080", &sa))
        return mr_diag_set(d, MR_EUSAGE,
                           "--http: \"%s\" is not ADDRESS:PORT (IPv4)",
                           cfg->http);
    /* Beyond this machine, only with TLS: passwords and health data
     * never cross a network in clear text. */
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127 && !cfg->tls_cert &&
        !cfg->allow_plain_http)
        return mr_diag_set(d, MR_EDENIED,
                           "--http: addresses other than loopback "
                           "(127.x.x.x) need --tls-cert and --tls-key (or, "
                           "behind a TLS-terminating proxy, "
                           "--allow-plain-http)");
    if (!!cfg->tls_cert != !!cfg->tls_key)
        return mr_diag_set(d, MR_EUSAGE,
                           "--tls-cert and --tls-key go together");
    srv.scheme = cfg->tls_cert ? "https" : "http";
    if (cfg->tls_cert && (!(cert = read_pem(cfg->tls_cert, d)) ||
                          !(key = read_pem(cfg->tls_key, d)))) {
        free(cert);
        return d->code;
    }
    /* Open once up front so a bad database fails here, not per request. */
    if (mr_records_open(cfg->db, 0, &probe, d))
        goto fail;
    mr_records_close(probe);
    if (mr_auth_new(cfg->idle_seconds, cfg->require_mfa, &srv.auth, d))
        goto fail;
    if (mr_queue_start(cfg->db, &srv.queue, d))
        goto fail;

    /* Workers inherit this mask; the main thread takes the signals. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    threads = cfg->threads ? cfg->threads : 4;
    {
        /* TLS 1.2 and 1.3 only. */
        static char prio[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
        struct MHD_OptionItem t[4] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
                                      {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
                                      {MHD_OPTION_HTTPS_PRIORITIES, 0, prio},
                                      {MHD_OPTION_END, 0, NULL}};
        memcpy(tls_opts, t, sizeof(t));
    }
    daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
            MHD_ALLOW_SUSPEND_RESUME | (cert ? MHD_USE_TLS : 0),
        0, NULL, NULL, handler, &srv, MHD_OPTION_ARRAY,
        cert ? tls_opts : tls_opts + 3, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(cfg->timeout_s ? cfg->timeout_s : 30),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MR_HTTP_MAX_HEADER,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!daemon) {
        mr_queue_stop(srv.queue);
        mr_diag_set(d, MR_EIO, "cannot listen on %s%s",
                    cfg->http ? cfg->http : "127.0.0.1:8080",
                    cert ? " (or the TLS certificate and key do not fit)" : "");
        goto fail;
    }
    info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : ntohs(sa.sin_port);
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
    snprintf(srv.base_host, sizeof(srv.base_host), "%s:%u", host, port);
    if (cfg->mllp.addr) {
        unsigned mport = 0;
        if (mr_mllp_server_start(&cfg->mllp, srv.queue, &mllp, &mport, d)) {
            MHD_stop_daemon(daemon);
            mr_queue_stop(srv.queue);
            goto fail;
        }
        if (cfg->mllp_ready)
            cfg->mllp_ready(cfg->ready_ctx, mport);
    }
    if (cfg->ready)
        cfg->ready(cfg->ready_ctx, port);

    while (sigwait(&set, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
        ;
    /* Stop accepting, let in-flight requests and messages finish, then
     * close. */
    MHD_quiesce_daemon(daemon);
    mr_mllp_server_stop(mllp);
    mr_queue_stop(srv.queue); /* commits and resumes what is pending */
    MHD_stop_daemon(daemon);
    for (i = 0; i < srv.nhandles; i++)
        mr_records_close(srv.handles[i]);
    pthread_mutex_destroy(&srv.lock);
    mr_auth_free(srv.auth);
    free(cert);
    if (key)
        sodium_memzero(key, strlen(key));
    free(key);
    return MR_OK;
fail:
    mr_auth_free(srv.auth);
    free(cert);
    free(key);
    return d->code;
}
