/*
 * The MLLP listener of `medrec serve --mllp` (docs/hl7.md). One thread
 * per connection (up to MAX_CONNS), blocking sockets with poll. Each
 * connection takes its frames in order: a frame becomes a job on the
 * server's group-commit queue (the same committer as HTTP writes), and
 * its ACK is written only after the commit that holds the message, its
 * effects and its audit entries. A message is never acknowledged before
 * it is on disk, and an ACK always answers its own message (MSA-2), since
 * a connection has one message in flight at a time.
 */
#include "server/mllp.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/time.h"
#include "hl7/ack.h"
#include "hl7/mllp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

struct mr_mllp_server {
    struct mr_mllp_config cfg;
    struct mr_queue *queue;
    int fd;
    int wake[2]; /* written to on stop */
    pthread_t acceptor;
    gnutls_certificate_credentials_t cred; /* NULL: plain MLLP */
    gnutls_priority_t prio;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned conns;
    int stop;
};

struct conn {
    struct mr_mllp_server *srv;
    int fd;
    gnutls_session_t tls;
    char peer[64];
    char cn[200]; /* the verified client certificate's common name */
};

static ssize_t conn_recv(struct conn *c, char *buf, size_t n)
{
    ssize_t r;

    if (!c->tls)
        return recv(c->fd, buf, n, 0);
    do
        r = gnutls_record_recv(c->tls, buf, n);
    while (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN);
    if (r < 0) {
        errno = EIO;
        return -1;
    }
    return r;
}

static int write_all(struct conn *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w;
        if (c->tls) {
            w = gnutls_record_send(c->tls, p, n);
            if (w == GNUTLS_E_INTERRUPTED || w == GNUTLS_E_AGAIN)
                continue;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* TLS handshake (bounded by the frame time-out) and the client's name. */
static int conn_tls(struct conn *c)
{
    struct mr_mllp_server *s = c->srv;
    unsigned n = 0;
    const gnutls_datum_t *certs;
    int rc;

    if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0) {
        c->tls = NULL;
        return -1;
    }
    gnutls_priority_set(c->tls, s->prio);
    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, s->cred);
    if (s->cfg.client_ca) {
        gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(c->tls, NULL, 0);
    }
    gnutls_transport_set_int(c->tls, c->fd);
    gnutls_handshake_set_timeout(c->tls, s->cfg.frame_timeout_s * 1000);
    do
        rc = gnutls_handshake(c->tls);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        fprintf(stderr, "medrec: mllp: %s: TLS handshake failed: %s\n", c->peer,
                gnutls_strerror(rc));
        return -1;
    }
    certs = gnutls_certificate_get_peers(c->tls, &n);
    if (s->cfg.client_ca && certs && n) {
        gnutls_x509_crt_t crt;
        size_t sz = sizeof(c->cn) - 1;
        if (!gnutls_x509_crt_init(&crt)) {
            if (!gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) &&
                gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
                                              0, 0, c->cn, &sz) >= 0)
                c->cn[sz] = '\0';
            else
                c->cn[0] = '\0';
            gnutls_x509_crt_deinit(crt);
        }
    }
    return 0;
}

/* One message on the queue. */
struct msg_job {
    struct mr_job job;
    const char *bytes;
    size_t len;
    struct mr_actor via;
    const char *cn;
    struct mr_buf ack;
    struct mr_hl7_outcome out;
    struct mr_diag d;
    enum mr_err err, commit;
    int done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void logf_(const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const char *peer, const char *fmt, ...)
{
    char line[600], ts[32];
    va_list ap;
    size_t n;

    /* One write per line, so lines of concurrent connections never
     * interleave. */
    mr_time_format(mr_time_now_ms(), ts);
    n = (size_t)snprintf(line, sizeof(line),
                         "{\"ts\":\"%s\",\"mllp\":\"%s\",\"event\":\"", ts,
                         peer);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    if (n > sizeof(line) - 4)
        n = sizeof(line) - 4;
    memcpy(line + n, "\"}\n", 4);
    fwrite(line, 1, n + 3, stderr);
}

static int job_run(void *ctx, struct mr_records *r)
{
    struct msg_job *j = ctx;

    j->err = mr_records_hl7_receive(r, &j->via, j->cn, j->bytes, j->len,
                                    &j->ack, &j->out, &j->d);
    return j->err != MR_OK;
}

static void job_done(void *ctx, enum mr_err commit)
{
    struct msg_job *j = ctx;

    pthread_mutex_lock(&j->mu);
    j->commit = commit;
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int send_frame(struct conn *c, const char *payload, size_t n)
{
    struct mr_buf out = MR_BUF_INIT((size_t)n + 16);
    int rc = -1;

    if (!mr_mllp_encode(&out, payload, n))
        rc = write_all(c, out.ptr, out.len);
    mr_buf_release(&out);
    return rc;
}

/* An AR for bytes medrec could not take (too big, or its own failure). */
static int send_refusal(struct conn *c, const char *bytes, size_t len,
                        const char *reason)
{
    struct mr_buf ack = MR_BUF_INIT(64u << 10);
    struct mr_hl7_ack a;
    struct mr_diag d;
    char ctrl[40], ts[32];
    int64_t now = mr_time_now_ms();
    int rc = -1;

    memset(&a, 0, sizeof(a));
    mr_diag_clear(&d);
    snprintf(ctrl, sizeof(ctrl), "MRX%lld", (long long)now);
    mr_hl7_timestamp(now, ts);
    a.code = MR_HL7_AR;
    a.control_id = ctrl;
    a.timestamp = ts;
    a.reason = reason;
    if (!mr_hl7_ack_unparsed(bytes, len, &a, &ack, &d))
        rc = send_frame(c, ack.ptr, ack.len);
    mr_buf_release(&ack);
    return rc;
}

/* Apply one frame through the queue and answer it. */
static int handle_frame(struct conn *c, const char *bytes, size_t len)
{
    struct msg_job j;
    int rc;

    memset(&j, 0, sizeof(j));
    j.bytes = bytes;
    j.len = len;
    j.via.user = "mllp";
    j.via.source = c->peer;
    j.cn = c->cn[0] ? c->cn : NULL;
    mr_buf_init(&j.ack, 1u << 20);
    mr_diag_clear(&j.d);
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    j.job.run = job_run;
    j.job.done = job_done;
    j.job.ctx = &j;
    mr_queue_submit(c->srv->queue, &j.job);
    pthread_mutex_lock(&j.mu);
    while (!j.done)
        pthread_cond_wait(&j.cv, &j.mu);
    pthread_mutex_unlock(&j.mu);
    if (!j.err && !j.commit) {
        rc = send_frame(c, j.ack.ptr, j.ack.len);
        logf_(c->peer, "message %lld %s%s: %s", (long long)j.out.id,
              j.out.status, j.out.repeat ? " (repeat)" : "", j.out.ack_code);
    } else {
        /* Nothing was kept: AR, and the sender sends it again. */
        logf_(c->peer, "message not stored: %s",
              j.err ? mr_errname(j.err) : mr_errname(j.commit));
        rc = send_refusal(c, bytes, len,
                          "medrec could not store the message; send it "
                          "again");
    }
    mr_buf_release(&j.ack);
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.cv);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct mr_mllp_server *s = c->srv;
    struct mr_mllp_decoder dec;
    char buf[64u << 10];
    int64_t frame_start = 0, last = now_ms();
    int open = 1;

    mr_mllp_decoder_init(&dec, s->cfg.max_frame);
    if (s->cred && conn_tls(c))
        open = 0;
    else
        logf_(c->peer, c->tls
                           ? (c->cn[0] ? "connected (TLS, client certificate)"
                                       : "connected (TLS)")
                           : "connected");
    while (open) {
        struct pollfd pf[2] = {{c->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
        int64_t t = now_ms(), limit;
        ssize_t n;
        int pr;

        if (mr_mllp_in_frame(&dec)) {
            limit = frame_start + (int64_t)s->cfg.frame_timeout_s * 1000;
            if (t >= limit) {
                logf_(c->peer,
                      "partial frame of %zu bytes timed out after %u s: "
                      "dropped, connection closed",
                      mr_mllp_pending(&dec), s->cfg.frame_timeout_s);
                break;
            }
        } else {
            limit = last + (int64_t)s->cfg.idle_timeout_s * 1000;
            if (t >= limit) {
                logf_(c->peer, "idle for %u s: connection closed",
                      s->cfg.idle_timeout_s);
                break;
            }
        }
        if (c->tls && gnutls_record_check_pending(c->tls))
            pr = 1, pf[0].revents = POLLIN, pf[1].revents = 0;
        else
            pr = poll(pf, 2, (int)(limit - t > 1000 ? 1000 : limit - t));
        if (pr < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break; /* stopping: in-flight messages were answered */
        if (pr <= 0 || !pf[0].revents)
            continue;
        n = conn_recv(c, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            if (mr_mllp_in_frame(&dec))
                logf_(c->peer,
                      "connection closed in the middle of a frame (%zu "
                      "bytes): dropped, not acknowledged",
                      mr_mllp_pending(&dec));
            break;
        }
        last = now_ms();
        {
            const char *p = buf;
            size_t left = (size_t)n;
            while (left && open) {
                struct mr_mllp_event ev;
                struct mr_diag d;
                size_t used = 0;
                int was_in = mr_mllp_in_frame(&dec);
                enum mr_err err;

                mr_diag_clear(&d);
                err = mr_mllp_decode(&dec, p, left, &used, &ev, &d);
                p += used;
                left -= used;
                if (!was_in && mr_mllp_in_frame(&dec))
                    frame_start = now_ms();
                switch (ev.kind) {
                case MR_MLLP_FRAME:
                    if (handle_frame(c, ev.ptr, ev.len))
                        open = 0;
                    frame_start = now_ms();
                    break;
                case MR_MLLP_GARBAGE:
                    logf_(c->peer, "%zu bytes outside a frame ignored", ev.len);
                    break;
                case MR_MLLP_TOOBIG:
                    logf_(c->peer,
                          "frame larger than %zu bytes refused (AR), "
                          "connection closed",
                          s->cfg.max_frame);
                    {
                        char reason[120];
                        snprintf(reason, sizeof(reason),
                                 "message larger than the limit of %zu bytes",
                                 s->cfg.max_frame);
                        send_refusal(c, "", 0, reason);
                    }
                    open = 0;
                    break;
                case MR_MLLP_BROKEN:
                    logf_(c->peer, "broken frame dropped (%s)",
                          err ? mr_errname(err) : "framing");
                    break;
                case MR_MLLP_NONE:
                    break;
                }
            }
        }
    }
    mr_mllp_decoder_release(&dec);
    if (c->tls) {
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(c->tls);
    }
    close(c->fd);
    pthread_mutex_lock(&s->mu);
    s->conns--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    mr_free(c);
    return NULL;
}

static void *acceptor(void *arg)
{
    struct mr_mllp_server *s = arg;

    for (;;) {
        struct pollfd pf[2] = {{s->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        struct conn *c;
        pthread_t t;
        pthread_attr_t at;
        int fd, one = 1;
        char host[32];

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (!pf[0].revents)
            continue;
        fd = accept(s->fd, (struct sockaddr *)&sa, &sl);
        if (fd < 0)
            continue;
        inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
        pthread_mutex_lock(&s->mu);
        if (s->conns >= MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            fprintf(stderr,
                    "medrec: mllp: %s:%u refused: %u connections "
                    "open already\n",
                    host, ntohs(sa.sin_port), MAX_CONNS);
            close(fd);
            continue;
        }
        s->conns++;
        pthread_mutex_unlock(&s->mu);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = mr_calloc(1, sizeof(*c));
        if (c) {
            c->srv = s;
            c->fd = fd;
            snprintf(c->peer, sizeof(c->peer), "%s:%u", host,
                     ntohs(sa.sin_port));
            pthread_attr_init(&at);
            pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&at, 1u << 20);
            if (pthread_create(&t, &at, conn_main, c)) {
                mr_free(c);
                c = NULL;
            }
            pthread_attr_destroy(&at);
        }
        if (!c) {
            close(fd);
            pthread_mutex_lock(&s->mu);
            s->conns--;
            pthread_mutex_unlock(&s->mu);
        }
    }
    return NULL;
}

enum mr_err mr_mllp_server_start(const struct mr_mllp_config *cfg,
                                 struct mr_queue *q,
                                 struct mr_mllp_server **out, unsigned *port,
                                 struct mr_diag *d)
{
    struct mr_mllp_server *s;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    char host[64];
    const char *colon;
    char *end;
    long p;
    int one = 1;

    colon = strrchr(cfg->addr, ':');
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (!colon || (size_t)(colon - cfg->addr) >= sizeof(host))
        return mr_diag_set(d, MR_EUSAGE,
                           "--mllp: \"%s\" is not ADDRESS:PORT (IPv4)",
                           cfg->addr);
    memcpy(host, cfg->addr, (size_t)(colon - cfg->addr));
    host[colon - cfg->addr] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return mr_diag_set(d, MR_EUSAGE,
                           "--mllp: \"%s\" is not ADDRESS:PORT (IPv4)",
                           cfg->addr);
    sa.sin_port = htons((uint16_t)p);
    if (!!cfg->tls_cert != !!cfg->tls_key || (cfg->client_ca && !cfg->tls_cert))
        return mr_diag_set(d, MR_EUSAGE,
                           "--mllp-tls-cert and --mllp-tls-key go together, "
                           "and --mllp-client-ca needs them");
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127 && !cfg->allow_remote &&
        !cfg->tls_cert)
        return mr_diag_set(d, MR_EDENIED,
                           "--mllp: addresses other than loopback "
                           "(127.x.x.x) need TLS (--mllp-tls-cert and "
                           "--mllp-tls-key), or a TLS tunnel in front and "
                           "--mllp-allow-remote");
    s = mr_calloc(1, sizeof(*s));
    if (!s)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    s->cfg = *cfg;
    if (!s->cfg.frame_timeout_s)
        s->cfg.frame_timeout_s = 30;
    if (!s->cfg.idle_timeout_s)
        s->cfg.idle_timeout_s = 3600;
    if (!s->cfg.max_frame)
        s->cfg.max_frame = MR_MLLP_MAX_FRAME;
    s->queue = q;
    if (cfg->tls_cert) {
        int rc = gnutls_certificate_allocate_credentials(&s->cred);
        if (!rc)
            rc = gnutls_certificate_set_x509_key_file(
                s->cred, cfg->tls_cert, cfg->tls_key, GNUTLS_X509_FMT_PEM);
        if (!rc && cfg->client_ca &&
            gnutls_certificate_set_x509_trust_file(s->cred, cfg->client_ca,
                                                   GNUTLS_X509_FMT_PEM) <= 0)
            rc = GNUTLS_E_FILE_ERROR;
        if (!rc)
            rc = gnutls_priority_init(
                &s->prio, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", NULL);
        if (rc) {
            if (s->cred)
                gnutls_certificate_free_credentials(s->cred);
            mr_free(s);
            return mr_diag_set(d, MR_EIO,
                               "--mllp-tls-cert/--mllp-tls-key/"
                               "--mllp-client-ca: %s",
                               gnutls_strerror(rc));
        }
    }
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || pipe(s->wake)) {
        if (s->fd >= 0)
            close(s->fd);
        mr_free(s);
        return mr_diag_set(d, MR_EIO, "--mllp: %s", strerror(errno));
    }
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(s->fd, 128) ||
        getsockname(s->fd, (struct sockaddr *)&sa, &sl)) {
        int e = errno;
        close(s->fd);
        close(s->wake[0]);
        close(s->wake[1]);
        mr_free(s);
        return mr_diag_set(d, MR_EIO, "--mllp: cannot listen on %s: %s",
                           cfg->addr, strerror(e));
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->acceptor, NULL, acceptor, s)) {
        close(s->fd);
        close(s->wake[0]);
        close(s->wake[1]);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        mr_free(s);
        return mr_diag_set(d, MR_EINTERNAL, "--mllp: cannot start");
    }
    *port = ntohs(sa.sin_port);
    *out = s;
    return MR_OK;
}

void mr_mllp_server_stop(struct mr_mllp_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    if (write(s->wake[1], "x", 1) < 0)
        perror("medrec: mllp stop");
    pthread_join(s->acceptor, NULL);
    close(s->fd);
    /* Connections see the wake pipe after their message in flight is
     * answered (the queue still runs). */
    pthread_mutex_lock(&s->mu);
    while (s->conns)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    if (s->cred) {
        gnutls_priority_deinit(s->prio);
        gnutls_certificate_free_credentials(s->cred);
    }
    mr_free(s);
}
