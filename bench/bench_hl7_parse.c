/*
 * HL7 v2 ER7 parsing speed over the shared sample corpus: every *.hl7 file
 * in a directory is split into messages (mr_hl7_next_message, so batches
 * and back-to-back messages count one by one), then the messages that
 * parse are parsed again and again for MEDREC_BENCH_SECONDS (default 3)
 * seconds, twice: parse only, and parse plus a walk of every value with
 * the accessors (each repetition, component and subcomponent of every
 * field of every segment, PID-5 and OBX-5 component counts), as an
 * interface does when it maps a message. Messages the parser refuses are
 * counted and set aside; they are not timed. Throughput is over the bytes
 * of the messages that parse.
 *
 * usage: bench_hl7_parse [DIR]
 *   MEDREC_BENCH_VERBOSE=1 lists each refused message and the reason.
 *   DIR defaults to $MEDREC_SHARED_DATA/hl7v2, else ../shared/data/hl7v2
 *   beside the source tree.
 */
#include "bench_common.h"
#include "hl7/parse.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

struct corpus {
    char **files; /* file contents, owned */
    size_t nfiles;
    char **names;              /* file names, owned */
    struct mr_hl7_slice *msgs; /* slices into files[] */
    size_t *from;              /* msgs[i] is in names[from[i]] */
    size_t nmsgs;
};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) != NULL) {
        if (fread(p, 1, (size_t)n, f) != (size_t)n) {
            free(p);
            p = NULL;
        } else {
            p[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return p;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load(const char *dir, struct corpus *c)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t nnames = 0, cap = 0, mcap = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (!has_suffix(e->d_name, ".hl7"))
            continue;
        if (nnames == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
        }
        names[nnames++] = strdup(e->d_name);
    }
    closedir(d);
    if (nnames)
        qsort(names, nnames, sizeof(*names), by_name);
    c->files = calloc(nnames ? nnames : 1, sizeof(*c->files));
    c->names = calloc(nnames ? nnames : 1, sizeof(*c->names));
    for (size_t i = 0; i < nnames; i++) {
        char path[4096];
        size_t len = 0, off = 0;
        struct mr_hl7_slice m;
        char *data;

        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >=
            (int)sizeof(path))
            data = NULL;
        else
            data = read_file(path, &len);
        if (!data) {
            free(names[i]);
            continue;
        }
        c->names[c->nfiles] = names[i];
        c->files[c->nfiles++] = data;
        while (mr_hl7_next_message(data, len, &off, &m)) {
            if (c->nmsgs == mcap) {
                mcap = mcap ? mcap * 2 : 256;
                c->msgs = realloc(c->msgs, mcap * sizeof(*c->msgs));
                c->from = realloc(c->from, mcap * sizeof(*c->from));
            }
            c->from[c->nmsgs] = c->nfiles - 1;
            c->msgs[c->nmsgs++] = m;
        }
    }
    free(names);
    return 0;
}

/* Visit every value of m through the accessors; returns a checksum so the
 * work cannot be optimised away. */
static size_t walk(const struct mr_hl7_msg *m)
{
    size_t sum = 0;
    const struct mr_hl7_seg *s;
    struct mr_hl7_slice v;

    for (size_t i = 0; i < m->nsegs; i++) {
        s = &m->segs[i];
        for (size_t f = 1; f <= s->nfields; f++) {
            size_t nrep = mr_hl7_count(m, s, f, 0, 0);
            for (size_t r = 1; r <= nrep; r++) {
                size_t ncomp = mr_hl7_count(m, s, f, r, 0);
                for (size_t k = 1; k <= ncomp; k++) {
                    size_t nsub = mr_hl7_count(m, s, f, r, k);
                    for (size_t u = 1; u <= nsub; u++)
                        if (mr_hl7_seg_get(m, s, f, r, k, u, &v) == MR_OK)
                            sum += v.len + (size_t)mr_hl7_is_null(v);
                }
            }
        }
    }
    /* What a mapping looks at first: patient name parts, result values. */
    s = mr_hl7_find(m, "PID", 1);
    if (s)
        for (size_t r = 1, n = mr_hl7_count(m, s, 5, 0, 0); r <= n; r++)
            sum += mr_hl7_count(m, s, 5, r, 0);
    for (size_t o = 1; (s = mr_hl7_find(m, "OBX", o)) != NULL; o++) {
        sum += mr_hl7_count(m, s, 5, 1, 0);
        if (mr_hl7_get(m, "OBX", o, 5, 1, 1, 0, &v) == MR_OK)
            sum += v.len;
    }
    return sum;
}

struct result {
    double seconds, passes;
    size_t checksum;
};

static struct result run(const struct mr_hl7_slice *msgs, size_t n,
                         double seconds, int do_walk)
{
    struct result res = {0, 0, 0};
    double t0 = bench_now(), t;
    struct mr_hl7_msg m;

    do {
        for (size_t i = 0; i < n; i++) {
            if (mr_hl7_parse(&m, msgs[i].ptr, msgs[i].len, NULL, NULL, NULL) !=
                MR_OK)
                continue; /* cannot happen: only parsing ones are here */
            res.checksum += m.nsegs;
            if (do_walk)
                res.checksum += walk(&m);
            mr_hl7_release(&m);
        }
        res.passes++;
        t = bench_now() - t0;
    } while (t < seconds);
    res.seconds = t;
    return res;
}

int main(int argc, char **argv)
{
    char dir[4096];
    const char *env = getenv("MEDREC_BENCH_SECONDS");
    double seconds = env ? strtod(env, NULL) : 3;
    struct corpus c = {NULL, 0, NULL, NULL, NULL, 0};
    const char *verbose = getenv("MEDREC_BENCH_VERBOSE");
    struct mr_hl7_slice *ok;
    size_t nok = 0, bytes_ok = 0, bytes_all = 0;
    size_t refused[MR__ERR_COUNT] = {0};
    struct mr_hl7_msg m;
    struct mr_diag d;
    struct result r;

    if (seconds <= 0)
        seconds = 3;
    if (argc > 1) {
        snprintf(dir, sizeof(dir), "%s", argv[1]);
    } else if ((env = getenv("MEDREC_SHARED_DATA")) != NULL && *env) {
        snprintf(dir, sizeof(dir), "%s/hl7v2", env);
    } else {
        /* __FILE__ is .../bench/bench_hl7_parse.c as CMake passes it. */
        const char *slash = strrchr(__FILE__, '/');
        int n = slash ? (int)(slash - __FILE__) : 0;
        snprintf(dir, sizeof(dir), "%.*s%s../../shared/data/hl7v2", n, __FILE__,
                 n ? "/" : "");
    }
    if (load(dir, &c) != 0) {
        fprintf(stderr, "bench_hl7_parse: cannot read %s\n", dir);
        return 1;
    }
    if (c.nmsgs == 0) {
        fprintf(stderr, "bench_hl7_parse: no messages in %s/*.hl7\n", dir);
        return 1;
    }
    ok = calloc(c.nmsgs, sizeof(*ok));
    for (size_t i = 0; i < c.nmsgs; i++) {
        enum mr_err err;
        bytes_all += c.msgs[i].len;
        err = mr_hl7_parse(&m, c.msgs[i].ptr, c.msgs[i].len, NULL, NULL, &d);
        if (err == MR_OK) {
            ok[nok++] = c.msgs[i];
            bytes_ok += c.msgs[i].len;
            mr_hl7_release(&m);
        } else {
            refused[err]++;
            if (verbose && *verbose && *verbose != '0')
                fprintf(stderr, "refused: %s: %s\n", c.names[c.from[i]],
                        mr_diag_msg(&d));
        }
    }
    printf("hl7 corpus: %zu files, %zu messages (%zu bytes): %zu parse, "
           "%zu refused",
           c.nfiles, c.nmsgs, bytes_all, nok, c.nmsgs - nok);
    if (nok < c.nmsgs) {
        const char *sep = " (";
        for (int e = 0; e < MR__ERR_COUNT; e++)
            if (refused[e]) {
                printf("%s%zu %s", sep, refused[e], mr_errname((enum mr_err)e));
                sep = ", ";
            }
        printf(")");
    }
    printf("\n");
    if (nok == 0) {
        fprintf(stderr, "bench_hl7_parse: no message parses\n");
        return 1;
    }
    r = run(ok, nok, seconds, 0);
    printf("hl7 parse only:               %6.1f MB/s, %7.0f messages/s "
           "(%zu messages x %.0f passes in %.2f s)\n",
           r.passes * (double)bytes_ok / r.seconds / 1e6,
           r.passes * (double)nok / r.seconds, nok, r.passes, r.seconds);
    r = run(ok, nok, seconds, 1);
    printf("hl7 parse + walk every value: %6.1f MB/s, %7.0f messages/s "
           "(%zu messages x %.0f passes in %.2f s; checksum %zu)\n",
           r.passes * (double)bytes_ok / r.seconds / 1e6,
           r.passes * (double)nok / r.seconds, nok, r.passes, r.seconds,
           r.checksum);
    for (size_t i = 0; i < c.nfiles; i++) {
        free(c.files[i]);
        free(c.names[i]);
    }
    free(c.files);
    free(c.names);
    free(c.msgs);
    free(c.from);
    free(ok);
    return 0;
}
