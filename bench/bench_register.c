/*
 * Durable single registrations: each patient is its own transaction
 * (validate, index, store, audit, commit with synchronous=FULL), as when a
 * clerk registers one patient. For comparison, the same machine's plain
 * SQLite rate for one small INSERT per commit in WAL + synchronous=FULL,
 * measured in the same directory.
 *
 * usage: bench_register DIR [N]
 */
#include "bench_common.h"
#include "records/records.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double plain_sqlite(const char *path, int n)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    double t0, t;
    int i;

    unlink(path);
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return 0;
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
                 NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(?1)", -1, &st, NULL);
    t0 = bench_now();
    for (i = 0; i < n; i++) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        sqlite3_bind_text(st, 1, "a small synthetic row of some bytes", -1,
                          SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    t = bench_now() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n / t;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2000;
    char path[4096], plain[4096], json[512];
    struct mr_records *r;
    struct mr_diag d;
    struct mr_actor a = {"bench", NULL, "bench", NULL, 1};
    double t0, t, rate, base, *lat;
    int i;

    snprintf(path, sizeof(path), "%s/bench_register.db", dir);
    snprintf(plain, sizeof(plain), "%s/bench_plain.db", dir);
    unlink(path);
    if (mr_records_open(path, MR_STORE_CREATE, &r, &d)) {
        fprintf(stderr, "bench_register: %s\n", mr_diag_msg(&d));
        return 1;
    }
    lat = calloc((size_t)n, sizeof(*lat));
    t0 = bench_now();
    for (i = 0; i < n; i++) {
        double s = bench_now();
        snprintf(json, sizeof(json),
                 "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
                 "\"Bench%d\",\"given\":[\"Synthetic\"]}],\"gender\":"
                 "\"female\",\"birthDate\":\"19%02d-0%d-1%d\","
                 "\"telecom\":[{\"system\":\"phone\",\"value\":"
                 "\"+1-555-01%02d\"}]}",
                 i, i % 100, 1 + i % 9, i % 10, i % 100);
        if (mr_records_create(r, &a, "Patient", json, strlen(json), "bench",
                              MR_WRITE_FORCE, NULL, &d)) {
            fprintf(stderr, "bench_register: %s\n", mr_diag_msg(&d));
            return 1;
        }
        lat[i] = bench_now() - s;
    }
    t = bench_now() - t0;
    rate = n / t;
    mr_records_close(r);
    base = plain_sqlite(plain, n);
    printf("durable registrations: %d in %.2f s = %.0f /s (p50 %.2f ms, "
           "p99 %.2f ms)\n",
           n, t, rate, bench_percentile(lat, (size_t)n, 50) * 1e3,
           bench_percentile(lat, (size_t)n, 99) * 1e3);
    printf("plain SQLite single-row commits (WAL, synchronous=FULL): "
           "%.0f /s\n",
           base);
    printf("ratio medrec / plain SQLite: %.2f (target >= 0.7)\n",
           base > 0 ? rate / base : 0);
    free(lat);
    unlink(path);
    unlink(plain);
    return 0;
}
