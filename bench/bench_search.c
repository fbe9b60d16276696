/*
 * Patient search latency through the records service (parse, search,
 * audit entry, commit): name prefix (3 letters of a family name) plus
 * birth date, for queries sampled from the patients in the database.
 *
 * usage: bench_search DB [QUERIES]
 */
#include "bench_common.h"
#include "records/records.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

struct q {
    char text[160];
};

static int count_cb(void *ctx, const struct mr_version *m, const char *json,
                    size_t len)
{
    (void)m;
    (void)json;
    (void)len;
    (*(int *)ctx)++;
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "medrec.db";
    int nq = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2000;
    sqlite3 *db;
    sqlite3_stmt *st;
    struct q *qs;
    int n = 0, i, found = 0, hits;
    double *lat, t0;
    struct mr_records *r;
    struct mr_diag d;
    struct mr_actor a = {"bench", NULL, "bench", NULL, 1};
    int64_t total;

    /* Sample real (synthetic) patients so every query has an answer. */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return 1;
    qs = calloc((size_t)nq, sizeof(*qs));
    lat = calloc((size_t)nq, sizeof(*lat));
    /* Every k-th patient, spread over the whole table. */
    sqlite3_prepare_v2(db,
                       "SELECT v.json FROM resource r JOIN version v"
                       " ON v.rid = r.rid AND v.version = r.version"
                       " WHERE r.type = 'Patient' AND r.rid % ?1 = 0"
                       " LIMIT ?2",
                       -1, &st, NULL);
    {
        sqlite3_stmt *c;
        int64_t maxrid = 0;
        sqlite3_prepare_v2(db, "SELECT max(rid) FROM resource", -1, &c, NULL);
        if (sqlite3_step(c) == SQLITE_ROW)
            maxrid = sqlite3_column_int64(c, 0);
        sqlite3_finalize(c);
        sqlite3_bind_int64(st, 1, maxrid / nq > 1 ? maxrid / nq : 1);
    }
    sqlite3_bind_int(st, 2, nq);
    while (sqlite3_step(st) == SQLITE_ROW && n < nq) {
        json_t *p =
            json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        const char *fam = json_string_value(json_object_get(
            json_array_get(json_object_get(p, "name"), 0), "family"));
        const char *bd = json_string_value(json_object_get(p, "birthDate"));
        if (fam && bd && strlen(fam) >= 3 && (unsigned char)fam[0] < 128 &&
            (unsigned char)fam[1] < 128 && (unsigned char)fam[2] < 128)
            snprintf(qs[n++].text, sizeof(qs[0].text), "name=%.3s&birthdate=%s",
                     fam, bd);
        json_decref(p);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (n == 0) {
        fprintf(stderr, "bench_search: no patients in %s\n", path);
        return 1;
    }
    if (mr_records_open(path, 0, &r, &d)) {
        fprintf(stderr, "bench_search: %s\n", mr_diag_msg(&d));
        return 1;
    }
    for (i = 0; i < n; i++) {
        hits = 0;
        t0 = bench_now();
        if (mr_records_search(r, &a, "Patient", qs[i].text, count_cb, &hits,
                              &total, &d)) {
            fprintf(stderr, "bench_search: %s\n", mr_diag_msg(&d));
            return 1;
        }
        lat[i] = bench_now() - t0;
        found += hits > 0;
    }
    mr_records_close(r);
    printf("patient search (name prefix + birth date, audited): %d queries, "
           "%d with matches; p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           n, found, bench_percentile(lat, (size_t)n, 50) * 1e3,
           bench_percentile(lat, (size_t)n, 99) * 1e3,
           bench_percentile(lat, (size_t)n, 100) * 1e3);
    free(qs);
    free(lat);
    return 0;
}
