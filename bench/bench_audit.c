/*
 * Audit appends per second through the store (hash chain and checkpoints
 * included): in transactions of 1000 entries (group commit of concurrent
 * reads), of 100, and one per transaction (each durable on its own).
 *
 * usage: bench_audit DIR [N]
 */
#include "bench_common.h"
#include "core/time.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double run(const char *path, int n, int per_tx)
{
    struct mr_store *st = NULL;
    struct mr_diag d;
    struct mr_audit_entry e = {
        0,         "bench",     "records-technician", "127.0.0.1", "read", "ok",
        "Patient", "p00000001", "Patient/p00000001",  NULL,        NULL};
    double t0;
    int i;

    unlink(path);
    if (mr_store_open(path, MR_STORE_CREATE, &st, &d)) {
        fprintf(stderr, "bench_audit: %s\n", mr_diag_msg(&d));
        return 0;
    }
    t0 = bench_now();
    for (i = 0; i < n; i++) {
        if (i % per_tx == 0 && mr_store_begin(st, 1, &d))
            break;
        e.ts = mr_time_now_ms();
        if (mr_store_audit(st, &e, &d))
            break;
        if ((i + 1) % per_tx == 0 || i + 1 == n)
            if (mr_store_commit(st, &d))
                break;
    }
    t0 = bench_now() - t0;
    mr_store_close(st);
    return i / t0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 100000;
    char path[4096];
    int sizes[] = {1000, 100, 1};

    snprintf(path, sizeof(path), "%s/bench_audit.db", dir);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int m = sizes[k] == 1 ? (n < 3000 ? n : 3000) : n;
        printf("audit appends, %4d per transaction: %.0f entries/s (%d "
               "entries)\n",
               sizes[k], run(path, m, sizes[k]), m);
    }
    unlink(path);
    return 0;
}
