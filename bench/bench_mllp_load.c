/*
 * MLLP load generator: CONNECTIONS TCP connections (one thread each), each
 * sending MESSAGES_PER_CONNECTION synthetic HL7 v2.5.1 messages one at a
 * time and waiting for the ACK before the next (durable ACK semantics: an
 * AA means committed). Messages alternate:
 *   ADT^A04 from REG|HOSP registering a new patient, PID-3 B<conn>-<n>
 *           (assigning authority HOSP), synthetic name and birth date;
 *   ORU^R01 from LAB|HOSP for a patient this connection registered
 *           earlier: ORC and OBR with a unique filler order number (no
 *           placer number: an unknown one would hold the result as
 *           unmatched), and three NM OBX with units, reference ranges and
 *           abnormal flags.
 * Every ACK must be AA with MSA-2 the control id sent; anything else is a
 * failure, and an AA carrying an ERR segment (a warning, e.g. an
 * unmatched result) is counted apart. Prints msg/s, latency percentiles,
 * counts, and the first failures.
 *
 * usage: bench_mllp_load HOST:PORT CONNECTIONS MESSAGES_PER_CONNECTION
 *                        [FIRST_CONN]
 *   FIRST_CONN (default 0) numbers the connections FIRST_CONN, +1, ...;
 *   identifiers and control ids derive from it, so a second run against
 *   the same database needs a FIRST_CONN past the first run's to send new
 *   patients and new messages (else they are repeats, acknowledged from
 *   the stored ACK). MEDREC_BENCH_TIMEOUT: seconds to wait for one ACK
 *   (default 30). Exit 0 when every ACK was AA, 1 otherwise.
 */
#include "bench_common.h"
#include "core/buf.h"
#include "hl7/mllp.h"
#include "hl7/parse.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_REPORTED 20

struct conn {
    pthread_t th;
    int no;      /* connection number (identifiers derive from it) */
    int nmsgs;   /* to send */
    double *lat; /* seconds, one per ACK received */
    char *kind;  /* 'A' (ADT) or 'O' (ORU), per lat */
    int nlat;
    int adt, oru; /* ACKed AA */
    int failed;   /* not AA, wrong MSA-2, no ACK, not sent */
    int warned;   /* AA with an ERR segment */
};

static const char *g_host, *g_port;
static double g_timeout = 30;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_reported;

static void report(struct conn *c, const char *fmt, ...) MR_PRINTF(2, 3);
static void report(struct conn *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_lock);
    if (g_reported++ < MAX_REPORTED)
        fprintf(stderr, "bench_mllp_load: connection %d: %s\n", c->no, msg);
    pthread_mutex_unlock(&g_lock);
}

static void timestamp(char out[32])
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, 32, "%Y%m%d%H%M%S+0000", &tm);
}

/* A synthetic family name from a number: letters only, unique per k. */
static void family(char out[32], unsigned long k)
{
    static const char *const syll[] = {"ka", "lo", "mi", "ne", "ru", "sa",
                                       "ti", "vo", "be", "da", "fu", "ga",
                                       "ho", "ji", "pe", "zu"};
    size_t n = 5;

    memcpy(out, "Synth", 5);
    do {
        const char *s = syll[k % 16];
        out[n++] = s[0];
        out[n++] = s[1];
        k /= 16;
    } while (k && n < 32 - 3);
    out[n] = '\0';
}

static int adt_a04(char *out, size_t cap, int conn, int n, const char *ts,
                   char ctl[64])
{
    static const char *const given[] = {"Alex",  "Robin",  "Sam",
                                        "Casey", "Jordan", "Morgan"};
    char fam[32];
    unsigned long k = (unsigned long)conn * 1000003ul + (unsigned long)n;

    family(fam, k);
    snprintf(ctl, 64, "A%d-%d", conn, n);
    return snprintf(
        out, cap,
        "MSH|^~\\&|REG|HOSP|MEDREC|HOSP|%s||ADT^A04^ADT_A01|%s|P|2.5.1\r"
        "EVN|A04|%s\r"
        "PID|1||B%d-%d^^^HOSP^MR||%s^%s^Q||19%02lu%02lu%02lu|%s|||"
        "%lu Bench Street^^Springfield^IL^627%02lu||555-01%02lu\r"
        "PV1|1|O|CLINIC^^^HOSP||||||||||||||||V%d-%d\r",
        ts, ctl, ts, conn, n, fam, given[k % 6], 30 + k % 70, 1 + k % 12,
        1 + k % 28, k % 2 ? "F" : "M", 1 + k % 999, k % 100, k % 100, conn, n);
}

static int oru_r01(char *out, size_t cap, int conn, int n, int patient,
                   const char *ts, char ctl[64])
{
    unsigned long k = (unsigned long)conn * 7919ul + (unsigned long)n * 31ul;
    int chol = 140 + (int)(k % 110); /* reference range 0-200 */
    int trig = 80 + (int)(k % 120);  /* reference range 0-150 */
    int hdl = 30 + (int)(k % 40);    /* reference range 40-60 */
    const char *fc = chol > 200 ? "H" : "N";
    const char *ft = trig > 150 ? "H" : "N";
    const char *fh = hdl < 40 ? "L" : hdl > 60 ? "H" : "N";

    snprintf(ctl, 64, "O%d-%d", conn, n);
    return snprintf(
        out, cap,
        "MSH|^~\\&|LAB|HOSP|MEDREC|HOSP|%s||ORU^R01^ORU_R01|%s|P|2.5.1\r"
        "PID|1||B%d-%d^^^HOSP^MR\r"
        "ORC|RE||F%d-%d^LAB\r"
        "OBR|1||F%d-%d^LAB|24331-1^Lipid panel^LN|||%s"
        "|||||||||||||||%s|||F\r" /* OBR-22, OBR-25 */
        "OBX|1|NM|2093-3^Cholesterol [Mass/volume] in Serum or Plasma^LN||"
        "%d|mg/dL^^UCUM|0-200|%s|||F|||%s\r"
        "OBX|2|NM|2571-8^Triglyceride [Mass/volume] in Serum or Plasma^LN||"
        "%d|mg/dL^^UCUM|0-150|%s|||F|||%s\r"
        "OBX|3|NM|2085-9^Cholesterol in HDL [Mass/volume] in Serum or "
        "Plasma^LN||%d|mg/dL^^UCUM|40-60|%s|||F|||%s\r",
        ts, ctl, conn, patient, conn, n, conn, n, ts, ts, chol, fc, ts, trig,
        ft, ts, hdl, fh, ts);
}

static int dial(struct conn *c)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, one = 1, rc;
    struct timeval tv;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(g_host, g_port, &hints, &res)) != 0) {
        report(c, "%s:%s: %s", g_host, g_port, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        report(c, "connect %s:%s: %s", g_host, g_port, strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tv.tv_sec = (time_t)g_timeout;
    tv.tv_usec = (suseconds_t)((g_timeout - (double)tv.tv_sec) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until the decoder yields one frame; copies it into ack. Returns 0,
 * or -1 with a reason in why. Bytes after the frame are kept in rb. */
struct rbuf {
    char data[65536];
    size_t off, len;
};

static int read_ack(int fd, struct mr_mllp_decoder *dec, struct rbuf *rb,
                    struct mr_buf *ack, char why[256])
{
    for (;;) {
        while (rb->off < rb->len) {
            size_t used;
            struct mr_mllp_event ev;
            struct mr_diag d;
            enum mr_err err = mr_mllp_decode(dec, rb->data + rb->off,
                                             rb->len - rb->off, &used, &ev, &d);
            rb->off += used;
            if (ev.kind == MR_MLLP_FRAME) {
                mr_buf_reset(ack);
                if (mr_buf_add(ack, ev.ptr, ev.len) != MR_OK) {
                    snprintf(why, 256, "out of memory");
                    return -1;
                }
                return 0;
            }
            if (ev.kind == MR_MLLP_GARBAGE) {
                snprintf(why, 256, "%zu bytes outside a frame", ev.len);
                return -1;
            }
            if (err != MR_OK) {
                snprintf(why, 256, "bad framing: %s", mr_diag_msg(&d));
                return -1;
            }
        }
        rb->off = rb->len = 0;
        ssize_t r = recv(fd, rb->data, sizeof(rb->data), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            snprintf(why, 256, "no ACK within %.0f s", g_timeout);
            return -1;
        }
        if (r < 0) {
            snprintf(why, 256, "recv: %s", strerror(errno));
            return -1;
        }
        if (r == 0) {
            snprintf(why, 256, "connection closed by the server%s",
                     mr_mllp_in_frame(dec) ? " inside a frame" : "");
            return -1;
        }
        rb->len = (size_t)r;
    }
}

static void printable(char *out, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++)
        out[j++] = s[i] == '\r' ? '/' : (s[i] < ' ' ? '?' : s[i]);
    out[j] = '\0';
}

/* 1 if the ACK is AA for ctl, 0 otherwise (reported). *warn set when an
 * AA carries an ERR segment. */
static int check_ack(struct conn *c, const char *what, const char *ctl,
                     const struct mr_buf *ack, int *warn)
{
    struct mr_hl7_msg m;
    struct mr_hl7_slice code, id;
    struct mr_diag d;
    char text[600];
    int ok;

    *warn = 0;
    if (mr_hl7_parse(&m, ack->ptr, ack->len, NULL, NULL, &d) != MR_OK) {
        printable(text, 300, ack->ptr, ack->len);
        report(c, "%s %s: ACK does not parse (%s): %s", what, ctl,
               mr_diag_msg(&d), text);
        return 0;
    }
    if (mr_hl7_get(&m, "MSA", 1, 1, 0, 0, 0, &code) != MR_OK ||
        mr_hl7_get(&m, "MSA", 1, 2, 0, 0, 0, &id) != MR_OK) {
        printable(text, 300, ack->ptr, ack->len);
        report(c, "%s %s: ACK has no MSA: %s", what, ctl, text);
        mr_hl7_release(&m);
        return 0;
    }
    ok = mr_hl7_eq(code, "AA") && mr_hl7_eq(id, ctl);
    if (!ok) {
        printable(text, sizeof(text), ack->ptr, ack->len);
        report(c, "%s %s: %.*s for MSA-2 \"%.*s\": %s", what, ctl,
               (int)code.len, code.ptr, (int)id.len, id.ptr, text);
    } else if (mr_hl7_find(&m, "ERR", 1)) {
        *warn = 1;
        printable(text, sizeof(text), ack->ptr, ack->len);
        report(c, "%s %s: AA with a warning: %s", what, ctl, text);
    }
    mr_hl7_release(&m);
    return ok;
}

static void *worker(void *arg)
{
    struct conn *c = arg;
    struct mr_mllp_decoder dec;
    struct mr_buf frame = MR_BUF_INIT(1u << 20), ack = MR_BUF_INIT(1u << 20);
    struct rbuf *rb = calloc(1, sizeof(*rb));
    int *patients = calloc((size_t)c->nmsgs + 1, sizeof(int));
    int npatients = 0, fd, i;
    unsigned long rnd = 2463534242ul + (unsigned long)c->no * 2654435761ul;
    char msg[4096], ctl[64], ts[32], why[256];

    c->lat = calloc((size_t)c->nmsgs + 1, sizeof(double));
    c->kind = calloc((size_t)c->nmsgs + 1, 1);
    mr_mllp_decoder_init(&dec, 0);
    fd = dial(c);
    if (fd < 0) {
        c->failed = c->nmsgs;
        goto out;
    }
    for (i = 0; i < c->nmsgs; i++) {
        int adt = (i % 2 == 0) || npatients == 0, len, warn;
        const char *what = adt ? "ADT^A04" : "ORU^R01";
        double t0;

        timestamp(ts);
        if (adt) {
            len = adt_a04(msg, sizeof(msg), c->no, i, ts, ctl);
        } else {
            rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
            len = oru_r01(msg, sizeof(msg), c->no, i,
                          patients[rnd % (unsigned long)npatients], ts, ctl);
        }
        mr_buf_reset(&frame);
        if (len < 0 || (size_t)len >= sizeof(msg) ||
            mr_mllp_encode(&frame, msg, (size_t)len) != MR_OK) {
            report(c, "%s %s: cannot build the frame", what, ctl);
            c->failed += c->nmsgs - i;
            break;
        }
        t0 = bench_now();
        if (send_all(fd, frame.ptr, frame.len) != 0) {
            report(c, "%s %s: send: %s (%d messages not sent)", what, ctl,
                   strerror(errno), c->nmsgs - i);
            c->failed += c->nmsgs - i;
            break;
        }
        if (read_ack(fd, &dec, rb, &ack, why) != 0) {
            report(c, "%s %s: %s (%d messages not acknowledged)", what, ctl,
                   why, c->nmsgs - i);
            c->failed += c->nmsgs - i;
            break;
        }
        c->kind[c->nlat] = adt ? 'A' : 'O';
        c->lat[c->nlat++] = bench_now() - t0;
        if (!check_ack(c, what, ctl, &ack, &warn)) {
            c->failed++;
            continue;
        }
        c->warned += warn;
        if (adt) {
            c->adt++;
            patients[npatients++] = i;
        } else {
            c->oru++;
        }
    }
    close(fd);
out:
    mr_mllp_decoder_release(&dec);
    mr_buf_release(&frame);
    mr_buf_release(&ack);
    free(rb);
    free(patients);
    return NULL;
}

int main(int argc, char **argv)
{
    char hostport[512], *colon;
    int nconn, per, first = 0, adt = 0, oru = 0, failed = 0, warned = 0;
    size_t nlat = 0, na = 0, no = 0;
    struct conn *cs;
    double *lat, *la, *lo, t0, t;
    const char *env = getenv("MEDREC_BENCH_TIMEOUT");

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: bench_mllp_load HOST:PORT CONNECTIONS "
                        "MESSAGES_PER_CONNECTION [FIRST_CONN]\n");
        return 2;
    }
    snprintf(hostport, sizeof(hostport), "%s", argv[1]);
    colon = strrchr(hostport, ':');
    nconn = (int)strtol(argv[2], NULL, 10);
    per = (int)strtol(argv[3], NULL, 10);
    if (argc > 4)
        first = (int)strtol(argv[4], NULL, 10);
    if (!colon || colon == hostport || !colon[1] || nconn < 1 || nconn > 4096 ||
        per < 1 || first < 0) {
        fprintf(stderr, "bench_mllp_load: bad arguments\n");
        return 2;
    }
    *colon = '\0';
    g_host = hostport;
    g_port = colon + 1;
    if (g_host[0] == '[' && colon[-1] == ']') { /* [::1]:2575 */
        g_host++;
        colon[-1] = '\0';
    }
    if (env && strtod(env, NULL) > 0)
        g_timeout = strtod(env, NULL);

    cs = calloc((size_t)nconn, sizeof(*cs));
    t0 = bench_now();
    for (int i = 0; i < nconn; i++) {
        cs[i].no = first + i;
        cs[i].nmsgs = per;
        if (pthread_create(&cs[i].th, NULL, worker, &cs[i]) != 0) {
            fprintf(stderr, "bench_mllp_load: cannot start thread %d\n", i);
            nconn = i;
            break;
        }
    }
    for (int i = 0; i < nconn; i++)
        pthread_join(cs[i].th, NULL);
    t = bench_now() - t0;

    lat = calloc((size_t)nconn * (size_t)per + 1, sizeof(double));
    la = calloc((size_t)nconn * (size_t)per + 1, sizeof(double));
    lo = calloc((size_t)nconn * (size_t)per + 1, sizeof(double));
    for (int i = 0; i < nconn; i++) {
        memcpy(lat + nlat, cs[i].lat, (size_t)cs[i].nlat * sizeof(double));
        nlat += (size_t)cs[i].nlat;
        for (int k = 0; k < cs[i].nlat; k++) {
            if (cs[i].kind[k] == 'A')
                la[na++] = cs[i].lat[k];
            else
                lo[no++] = cs[i].lat[k];
        }
        free(cs[i].kind);
        adt += cs[i].adt;
        oru += cs[i].oru;
        failed += cs[i].failed;
        warned += cs[i].warned;
        free(cs[i].lat);
    }
    printf("mllp load, %d connection%s x %d messages: %d AA in %.2f s = "
           "%.0f msg/s (ADT^A04 %d, ORU^R01 %d); ACK latency p50 %.2f ms, "
           "p99 %.2f ms, max %.2f ms; failures %d",
           nconn, nconn == 1 ? "" : "s", per, adt + oru, t, (adt + oru) / t,
           adt, oru, bench_percentile(lat, nlat, 50) * 1e3,
           bench_percentile(lat, nlat, 99) * 1e3,
           bench_percentile(lat, nlat, 100) * 1e3, failed);
    if (warned)
        printf(", AA with warnings %d", warned);
    if (failed || warned)
        printf(" (up to %d listed on stderr)", MAX_REPORTED);
    printf(
        "\n  by type: ADT^A04 p50 %.2f ms, p99 %.2f ms; ORU^R01 p50 %.2f "
        "ms, p99 %.2f ms\n",
        bench_percentile(la, na, 50) * 1e3, bench_percentile(la, na, 99) * 1e3,
        bench_percentile(lo, no, 50) * 1e3, bench_percentile(lo, no, 99) * 1e3);
    free(la);
    free(lo);
    free(lat);
    free(cs);
    return failed ? 1 : 0;
}
