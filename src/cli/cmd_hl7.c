/*
 * medrec hl7: the HL7 v2 feed from the command line (docs/hl7.md):
 * senders, sending (a small MLLP client), importing files, the interface
 * log, replays and the unmatched queue.
 */
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/time.h"
#include "hl7/mllp.h"
#include "hl7/parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: medrec hl7 sender add --app APP [--facility FAC] --role ROLE\n"
    "                             [--tls-client COMMON-NAME]\n"
    "                             [--processing P,T,D]\n"
    "       medrec hl7 sender remove --app APP [--facility FAC]\n"
    "       medrec hl7 sender list\n"
    "       medrec hl7 send --to HOST:PORT [--timeout SECONDS]\n"
    "                       [--tls-ca PEM [--tls-cert PEM --tls-key PEM]]\n"
    "                       FILE...\n"
    "       medrec hl7 import FILE...\n"
    "       medrec hl7 messages [--status S] [--type ADT^A01] [--limit N]\n"
    "                           [--json]\n"
    "       medrec hl7 show ID\n"
    "       medrec hl7 replay ID\n"
    "       medrec hl7 unmatched [--json]\n"
    "\n"
    "The HL7 v2 feed (docs/hl7.md). A sending system is known by MSH-3\n"
    "(application) and MSH-4 (facility; without --facility, any) and acts\n"
    "with its role, e.g. registration-system for ADT or lab-technician for\n"
    "results and orders. Messages from others are rejected (AR). --app \"\"\n"
    "with --facility registers every application of a facility. Only\n"
    "production messages (MSH-11 P) are applied unless --processing also\n"
    "names T (training) or D (debugging), for a test system.\n"
    "\n"
    "send: an MLLP client. Each FILE holds one message, several, or an\n"
    "FHS/BHS batch; they are sent in order on one connection, each after\n"
    "the previous one's ACK, which is printed (segments one per line, then\n"
    "an empty line). Exit 0 when every ACK is AA. --tls-ca speaks TLS and\n"
    "checks the server's certificate (and name) against that CA;\n"
    "--tls-cert/--tls-key present a client certificate.\n"
    "import: applies the messages of each FILE directly to the database,\n"
    "as the server would, printing one line per message.\n"
    "messages: the interface log, newest first (--status applied,\n"
    "unmatched, error or rejected). unmatched: results and orders for a\n"
    "patient, visit or order medrec does not know; register the patient,\n"
    "then `medrec hl7 replay ID`.\n"
    "\n"
    "Options: --db FILE, --as USER, --json.\n";

/* ---- sender ---------------------------------------------------------- */

static int print_sender(void *ctx, const struct mr_hl7_sender *s)
{
    int *json = ctx;

    if (*json) {
        json_t *o =
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "app", s->app ? s->app : "",
                      "facility", s->facility ? s->facility : "", "role",
                      s->role ? s->role : "", "tls_client",
                      s->tls_client ? s->tls_client : "", "processing",
                      s->processing ? s->processing : "P", "active", s->active);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text)
            puts(text);
        free(text);
        json_decref(o);
    } else {
        printf("%-24s %-24s %-22s %-10s MSH-11 %s%s%s\n",
               s->app && *s->app ? s->app : "(any)",
               s->facility && *s->facility ? s->facility : "(any)",
               s->role ? s->role : "", s->active ? "active" : "withdrawn",
               s->processing ? s->processing : "P",
               s->tls_client && *s->tls_client ? " tls-client=" : "",
               s->tls_client ? s->tls_client : "");
    }
    return 0;
}

static int cmd_sender(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"app", required_argument, NULL, 'a'},
        {"facility", required_argument, NULL, 'f'},
        {"role", required_argument, NULL, 'r'},
        {"tls-client", required_argument, NULL, 'c'},
        {"processing", required_argument, NULL, 'p'},
        {0, 0, 0, 0}};
    const char *app = NULL, *fac = "", *role = NULL, *cn = NULL, *op;
    char proc[8] = "P";
    struct mr_hl7_sender sd;
    struct mr_records *r;
    struct mr_diag d;
    int opt, rc = 0;

    if (argc < 2)
        return cli_usage("hl7", "sender: add, remove or list");
    op = argv[1];
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 0;
        case 'a':
            app = optarg;
            break;
        case 'f':
            fac = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'c':
            cn = optarg;
            break;
        case 'p': {
            /* "P,T" or "PT" */
            size_t n = 0;
            const char *q;
            for (q = optarg; *q; q++)
                if (*q != ',' && n < sizeof(proc) - 1 && !memchr(proc, *q, n))
                    proc[n++] = *q;
            proc[n] = '\0';
            break;
        }
        default:
            if (!cli_common_option(c, opt, optarg))
                return cli_usage("hl7", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("hl7", "unexpected argument \"%s\"", argv[optind]);
    if (strcmp(op, "list") && !app)
        return cli_usage("hl7", "sender %s: --app is required", op);
    if (!strcmp(op, "add") && !role)
        return cli_usage("hl7", "sender add: --role is required");
    if (strcmp(op, "add") && strcmp(op, "remove") && strcmp(op, "list"))
        return cli_usage("hl7", "sender: add, remove or list, not \"%s\"", op);
    r = cli_open(c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    if (!strcmp(op, "list")) {
        if (mr_records_hl7_senders(r, &c->actor, print_sender, &c->json, &d))
            rc = cli_fail(&d);
    } else if ((sd.app = app, sd.facility = fac, sd.role = role,
                sd.tls_client = cn, sd.processing = proc,
                sd.active = !strcmp(op, "add"),
                mr_records_hl7_sender_set(r, &c->actor, &sd, &d))) {
        rc = cli_fail(&d);
    } else {
        fprintf(stderr, "medrec: sender %s|%s %s\n", app, fac,
                !strcmp(op, "add") ? "registered" : "withdrawn");
    }
    mr_records_close(r);
    return rc;
}

/* ---- send ------------------------------------------------------------ */

static int dial(const char *to, struct mr_diag *d)
{
    char host[256];
    const char *colon = strrchr(to, ':');
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, one = 1, rc;

    if (!colon || colon == to || (size_t)(colon - to) >= sizeof(host)) {
        mr_diag_set(d, MR_EUSAGE, "--to: \"%s\" is not HOST:PORT", to);
        return -1;
    }
    memcpy(host, to, (size_t)(colon - to));
    host[colon - to] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc) {
        mr_diag_set(d, MR_EIO, "%s: %s", to, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        mr_diag_set(d, MR_EIO, "cannot connect to %s: %s", to, strerror(errno));
    else
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* The connection: plain TCP, or TLS over it. */
struct peer {
    int fd;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t cred;
};

static enum mr_err peer_tls(struct peer *p, const char *to, const char *ca,
                            const char *cert, const char *key,
                            struct mr_diag *d)
{
    char host[256];
    const char *colon = strrchr(to, ':');
    int rc;

    snprintf(host, sizeof(host), "%.*s", (int)(colon - to), to);
    rc = gnutls_certificate_allocate_credentials(&p->cred);
    if (!rc && gnutls_certificate_set_x509_trust_file(p->cred, ca,
                                                      GNUTLS_X509_FMT_PEM) <= 0)
        rc = GNUTLS_E_FILE_ERROR;
    if (!rc && cert)
        rc = gnutls_certificate_set_x509_key_file(p->cred, cert, key,
                                                  GNUTLS_X509_FMT_PEM);
    if (!rc)
        rc = gnutls_init(&p->tls, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL);
    if (!rc)
        rc = gnutls_priority_set_direct(
            p->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", NULL);
    if (!rc)
        rc = gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE, p->cred);
    if (rc)
        return mr_diag_set(d, MR_EIO, "TLS: %s", gnutls_strerror(rc));
    gnutls_server_name_set(p->tls, GNUTLS_NAME_DNS, host, strlen(host));
    gnutls_session_set_verify_cert(p->tls, host, 0);
    gnutls_transport_set_int(p->tls, p->fd);
    gnutls_handshake_set_timeout(p->tls, 30000);
    do
        rc = gnutls_handshake(p->tls);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        return mr_diag_set(d, MR_EIO, "TLS handshake with %s: %s", to,
                           gnutls_strerror(rc));
    return MR_OK;
}

static void peer_close(struct peer *p)
{
    if (p->tls) {
        gnutls_bye(p->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(p->tls);
    }
    if (p->cred)
        gnutls_certificate_free_credentials(p->cred);
    if (p->fd >= 0)
        close(p->fd);
}

static ssize_t peer_send(struct peer *p, const char *b, size_t n)
{
    ssize_t w;

    if (!p->tls)
        return send(p->fd, b, n, MSG_NOSIGNAL);
    do
        w = gnutls_record_send(p->tls, b, n);
    while (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED);
    if (w < 0)
        errno = EIO;
    return w < 0 ? -1 : w;
}

static ssize_t peer_recv(struct peer *p, char *b, size_t n)
{
    ssize_t r;

    if (!p->tls)
        return recv(p->fd, b, n, 0);
    do
        r = gnutls_record_recv(p->tls, b, n);
    while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
    if (r < 0)
        errno = EIO;
    return r < 0 ? -1 : r;
}

/* Send one framed message and wait for its ACK (into ack). */
static enum mr_err exchange(struct peer *pe, struct mr_mllp_decoder *dec,
                            const char *msg, size_t len, int timeout_s,
                            struct mr_buf *ack, struct mr_diag *d)
{
    struct mr_buf seg = MR_BUF_INIT(MR_HL7_MAX_BYTES);
    struct mr_buf out = MR_BUF_INIT(MR_HL7_MAX_BYTES + 16);
    char buf[16384];
    const char *p;
    size_t left, i;
    enum mr_err err = MR_OK;

    /* A message file may end its segments with LF or CRLF: MLLP wants
     * CR. */
    for (i = 0; i < len && !err; i++) {
        if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
            continue;
        err = mr_buf_addc(&seg, msg[i] == '\n' ? '\r' : msg[i]);
    }
    if (!err && seg.len && seg.ptr[seg.len - 1] != '\r')
        err = mr_buf_addc(&seg, '\r');
    if (!err)
        err = mr_mllp_encode(&out, seg.ptr, seg.len);
    mr_buf_release(&seg);
    if (err) {
        mr_buf_release(&out);
        return mr_diag_set(d, err,
                           err == MR_EINVALID
                               ? "the message holds an MLLP block character"
                               : "message too large");
    }
    p = out.ptr;
    left = out.len;
    while (left) {
        ssize_t w = peer_send(pe, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            mr_buf_release(&out);
            return mr_diag_set(d, MR_EIO, "send: %s", strerror(errno));
        }
        p += w;
        left -= (size_t)w;
    }
    mr_buf_release(&out);
    for (;;) {
        struct pollfd pf = {pe->fd, POLLIN, 0};
        ssize_t n;
        int pr = pe->tls && gnutls_record_check_pending(pe->tls)
                     ? 1
                     : poll(&pf, 1, timeout_s * 1000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return mr_diag_set(d, MR_EIO, "no ACK within %d s", timeout_s);
        n = peer_recv(pe, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return mr_diag_set(d, MR_EIO,
                               "the connection closed before the ACK");
        p = buf;
        left = (size_t)n;
        while (left) {
            struct mr_mllp_event ev;
            size_t used = 0;
            enum mr_err e = mr_mllp_decode(dec, p, left, &used, &ev, d);
            (void)e;
            p += used;
            left -= used;
            if (ev.kind == MR_MLLP_FRAME) {
                mr_buf_reset(ack);
                if (mr_buf_add(ack, ev.ptr, ev.len))
                    return mr_diag_set(d, MR_ENOMEM, "out of memory");
                if (left)
                    fprintf(stderr,
                            "medrec: %zu bytes after the ACK "
                            "ignored\n",
                            left);
                return MR_OK;
            }
        }
    }
}

/* "AA" etc. from an ACK (MSA-1). */
static void ack_code(const struct mr_buf *ack, char out[4])
{
    const char *p = ack->ptr, *end = ack->ptr + ack->len;

    out[0] = '\0';
    while (p < end) {
        const char *e = memchr(p, '\r', (size_t)(end - p));
        size_t n = e ? (size_t)(e - p) : (size_t)(end - p);
        if (n >= 6 && !memcmp(p, "MSA", 3)) {
            snprintf(out, 4, "%.2s", p + 4);
            return;
        }
        p += n + 1;
    }
}

static int cmd_send(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"to", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'w'},
        {"tls-ca", required_argument, NULL, 'a'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {0, 0, 0, 0}};
    const char *to = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    struct peer pe = {-1, NULL, NULL};
    int timeout = 60, opt, i, rc = 0;
    struct mr_mllp_decoder dec;
    struct mr_buf ack = MR_BUF_INIT(MR_HL7_MAX_BYTES);
    struct mr_diag d;
    char *end;
    long v;
    size_t sent = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 0;
        case 't':
            to = optarg;
            break;
        case 'w':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 3600)
                return cli_usage("hl7", "--timeout: 1 to 3600 seconds");
            timeout = (int)v;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        default:
            if (!cli_common_option(c, opt, optarg))
                return cli_usage("hl7", "unknown option %s", argv[optind - 1]);
        }
    }
    if (!to)
        return cli_usage("hl7", "send: --to HOST:PORT is required");
    if (optind >= argc)
        return cli_usage("hl7", "send: name at least one message file");
    if (!!cert != !!key || (cert && !ca))
        return cli_usage("hl7", "send: --tls-cert and --tls-key go together "
                                "and need --tls-ca");
    mr_diag_clear(&d);
    pe.fd = dial(to, &d);
    if (pe.fd < 0)
        return cli_fail(&d);
    if (ca && peer_tls(&pe, to, ca, cert, key, &d)) {
        peer_close(&pe);
        return cli_fail(&d);
    }
    mr_mllp_decoder_init(&dec, MR_HL7_MAX_BYTES);
    for (i = optind; i < argc && !rc; i++) {
        size_t len, off = 0;
        struct mr_hl7_slice m;
        char *data = cli_read_file(argv[i], 64u << 20, &len, &d);
        if (!data) {
            rc = cli_fail(&d);
            break;
        }
        while (mr_hl7_next_message(data, len, &off, &m)) {
            char code[4];
            size_t k;
            if (exchange(&pe, &dec, m.ptr, m.len, timeout, &ack, &d)) {
                fprintf(stderr, "medrec: %s: message %zu: ", argv[i], sent + 1);
                rc = cli_fail(&d);
                break;
            }
            sent++;
            for (k = 0; k < ack.len; k++)
                putchar(ack.ptr[k] == '\r' ? '\n' : ack.ptr[k]);
            if (ack.len && ack.ptr[ack.len - 1] != '\r')
                putchar('\n');
            putchar('\n');
            fflush(stdout);
            ack_code(&ack, code);
            if (strcmp(code, "AA") && strcmp(code, "CA"))
                rc = 1;
        }
        mr_free(data);
    }
    mr_mllp_decoder_release(&dec);
    mr_buf_release(&ack);
    peer_close(&pe);
    return rc;
}

/* ---- import ---------------------------------------------------------- */

static int cmd_import_hl7(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct mr_buf ack = MR_BUF_INIT(MR_HL7_MAX_BYTES);
    struct mr_records *r;
    struct mr_diag d;
    int opt, i, rc = 0;
    long counts[5] = {0};

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!cli_common_option(c, opt, optarg))
            return cli_usage("hl7", "unknown option %s", argv[optind - 1]);
    }
    if (optind >= argc)
        return cli_usage("hl7", "import: name at least one file");
    r = cli_open(c, 0);
    if (!r)
        return 1;
    for (i = optind; i < argc && !rc; i++) {
        size_t len, off = 0;
        struct mr_hl7_slice m;
        char *data;

        mr_diag_clear(&d);
        data = cli_read_file(argv[i], 64u << 20, &len, &d);
        if (!data) {
            rc = cli_fail(&d);
            break;
        }
        while (mr_hl7_next_message(data, len, &off, &m)) {
            struct mr_hl7_outcome out;
            mr_diag_clear(&d);
            if (mr_records_hl7_receive(r, &c->actor, NULL, m.ptr, m.len, &ack,
                                       &out, &d)) {
                fprintf(stderr, "medrec: %s: ", argv[i]);
                rc = cli_fail(&d);
                break;
            }
            printf("%lld\t%s\t%s%s%s%s\n", (long long)out.id, out.ack_code,
                   out.status, out.repeat ? " (repeat)" : "",
                   out.detail[0] ? "\t" : "", out.detail);
            counts[out.repeat                         ? 4
                   : !strcmp(out.status, "applied")   ? 0
                   : !strcmp(out.status, "unmatched") ? 1
                   : !strcmp(out.status, "error")     ? 2
                                                      : 3]++;
        }
        mr_free(data);
    }
    fprintf(stderr,
            "medrec: %ld applied, %ld unmatched, %ld errors, %ld rejected, "
            "%ld repeats\n",
            counts[0], counts[1], counts[2], counts[3], counts[4]);
    mr_buf_release(&ack);
    mr_records_close(r);
    if (!rc && (counts[2] || counts[3]))
        rc = 1;
    return rc;
}

/* ---- the log --------------------------------------------------------- */

struct show_ctx {
    int json, raw;
    struct mr_buf out; /* printed only once the listing is audited */
};

static int show_row(void *ctx, const struct mr_hl7_row *row)
{
    struct show_ctx *s = ctx;
    char when[32];
    enum mr_err err;

    mr_time_format(row->received, when);
    if (s->json) {
        json_t *o = json_pack(
            "{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:I}", "id",
            (json_int_t)row->id, "received", when, "sender",
            row->sender ? row->sender : "", "control_id",
            row->control_id ? row->control_id : "", "type",
            row->type ? row->type : "", "status", row->status, "ack",
            row->ack_code ? row->ack_code : "", "detail", row->detail,
            "patient", row->patient, "repeats", (json_int_t)row->repeats);
        char *text;
        if (!o)
            return MR_ENOMEM;
        json_object_set_new(o, "resources",
                            row->resources ? json_loads(row->resources, 0, NULL)
                                           : json_array());
        if (s->raw && row->raw)
            json_object_set_new(o, "message",
                                json_stringn(row->raw, row->raw_len));
        if (row->ack)
            json_object_set_new(o, "ack_message",
                                json_stringn(row->ack, row->ack_len));
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
            return MR_ENOMEM;
        err = mr_buf_addf(&s->out, "%s\n", text);
        free(text);
        return err;
    }
    err = mr_buf_addf(
        &s->out, "%-6lld %s  %-9s %-3s %-10s %-22s %s%s%s%s\n",
        (long long)row->id, when, row->status,
        row->ack_code ? row->ack_code : "", row->type ? row->type : "",
        row->sender ? row->sender : "", row->control_id ? row->control_id : "",
        row->repeats ? " (repeated)" : "",
        row->detail && row->detail[0] ? "  " : "",
        row->detail ? row->detail : "");
    if (!err && s->raw && row->raw) {
        size_t k;
        for (k = 0; k < row->raw_len && !err; k++)
            err =
                mr_buf_addc(&s->out, row->raw[k] == '\r' ? '\n' : row->raw[k]);
        if (!err)
            err = mr_buf_addc(&s->out, '\n');
    }
    return err;
}

static int cmd_messages(struct cli *c, int argc, char **argv,
                        const char *status_fixed, int show)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"status", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'},
        {"limit", required_argument, NULL, 'n'},
        {0, 0, 0, 0}};
    struct mr_hl7_filter f;
    struct show_ctx s;
    struct mr_records *r;
    struct mr_diag d;
    int opt, rc = 0;
    char *end;
    long long v;

    memset(&f, 0, sizeof(f));
    memset(&s, 0, sizeof(s));
    f.status = status_fixed;
    f.limit = 1000;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 0;
        case 's':
            if (strcmp(optarg, "applied") && strcmp(optarg, "unmatched") &&
                strcmp(optarg, "error") && strcmp(optarg, "rejected") &&
                strcmp(optarg, "received"))
                return cli_usage("hl7", "--status: applied, unmatched, "
                                        "error or rejected");
            f.status = optarg;
            break;
        case 't':
            f.type = optarg;
            break;
        case 'n':
            v = strtoll(optarg, &end, 10);
            if (*end || v < 1 || v > 1000000)
                return cli_usage("hl7", "--limit: 1 to 1000000");
            f.limit = v;
            break;
        default:
            if (!cli_common_option(c, opt, optarg))
                return cli_usage("hl7", "unknown option %s", argv[optind - 1]);
        }
    }
    if (show) {
        if (optind + 1 != argc)
            return cli_usage("hl7", "show: one message id");
        v = strtoll(argv[optind], &end, 10);
        if (*end || v < 1)
            return cli_usage("hl7", "show: \"%s\" is not a message id",
                             argv[optind]);
        f.id = v;
        f.with_raw = 1;
        s.raw = 1;
    } else if (optind < argc) {
        return cli_usage("hl7", "unexpected argument \"%s\"", argv[optind]);
    }
    s.json = c->json;
    mr_buf_init(&s.out, 1u << 30);
    r = cli_open(c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    if (mr_records_hl7_messages(r, &c->actor, &f, show_row, &s, &d))
        rc = cli_fail(&d);
    else
        fwrite(s.out.ptr, 1, s.out.len, stdout);
    if (!rc && show && !s.out.len) {
        fprintf(stderr, "medrec: no message %lld in the log\n",
                (long long)f.id);
        rc = 1;
    }
    mr_buf_release(&s.out);
    mr_records_close(r);
    return rc;
}

static int cmd_replay(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct mr_buf ack = MR_BUF_INIT(MR_HL7_MAX_BYTES);
    struct mr_hl7_outcome out;
    struct mr_records *r;
    struct mr_diag d;
    int opt, rc = 0;
    char *end;
    long long id;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!cli_common_option(c, opt, optarg))
            return cli_usage("hl7", "unknown option %s", argv[optind - 1]);
    }
    if (optind + 1 != argc)
        return cli_usage("hl7", "replay: one message id");
    id = strtoll(argv[optind], &end, 10);
    if (*end || id < 1)
        return cli_usage("hl7", "replay: \"%s\" is not a message id",
                         argv[optind]);
    r = cli_open(c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    if (mr_records_hl7_replay(r, &c->actor, id, &ack, &out, &d)) {
        rc = cli_fail(&d);
    } else {
        printf("%lld\t%s\t%s%s%s\n", (long long)out.id, out.ack_code,
               out.status, out.detail[0] ? "\t" : "", out.detail);
        if (strcmp(out.status, "applied"))
            rc = 1;
    }
    mr_buf_release(&ack);
    mr_records_close(r);
    return rc;
}

int cmd_hl7(int argc, char **argv)
{
    struct cli c;
    const char *sub = argc > 1 ? argv[1] : NULL;

    cli_init(&c);
    opterr = 0;
    if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fputs(usage_text, sub ? stdout : stderr);
        return sub ? 0 : EXIT_USAGE;
    }
    argc--;
    argv++;
    if (!strcmp(sub, "sender"))
        return cmd_sender(&c, argc, argv);
    if (!strcmp(sub, "send"))
        return cmd_send(&c, argc, argv);
    if (!strcmp(sub, "import"))
        return cmd_import_hl7(&c, argc, argv);
    if (!strcmp(sub, "messages"))
        return cmd_messages(&c, argc, argv, NULL, 0);
    if (!strcmp(sub, "unmatched"))
        return cmd_messages(&c, argc, argv, "unmatched", 0);
    if (!strcmp(sub, "show"))
        return cmd_messages(&c, argc, argv, NULL, 1);
    if (!strcmp(sub, "replay"))
        return cmd_replay(&c, argc, argv);
    return cli_usage("hl7", "unknown subcommand \"%s\"", sub);
}
