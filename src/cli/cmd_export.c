#include "cli/cli.h"
#include "core/alloc.h"
#include "fhir/jsontext.h"

#include <jansson.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char export_usage[] =
    "usage: medrec export [--db FILE] [--as USER] > all.ndjson\n"
    "\n"
    "Write every current (not deleted) resource as FHIR NDJSON, one\n"
    "resource per line, in the order they were created. The export is\n"
    "recorded in the audit trail before any data is written.\n";

static const char import_usage[] =
    "usage: medrec import [--db FILE] [--as USER] [--batch N] FILE...\n"
    "\n"
    "Read FHIR NDJSON (one resource per line; \"-\" reads stdin). Resource\n"
    "ids are kept; a resource new to this database keeps its\n"
    "meta.versionId and meta.lastUpdated, so an export imported into an\n"
    "empty database exports again unchanged. Resources are validated and\n"
    "committed in batches of N (default 1000); after each commit a line\n"
    "\"committed N\" goes to stdout: those records are durable. The first\n"
    "bad line stops the import with its line number; earlier batches stay.\n"
    "Lines are limited to 4 MiB.\n"
    "A FILE ending in .json holds one resource or a batch/transaction\n"
    "Bundle (e.g. Synthea output), processed as POST /fhir would: a\n"
    "transaction is all or nothing (limit 32 MiB, 10,000 entries).\n";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    int opt, rc = 0;
    int64_t n = 0;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(export_usage, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("export", "unknown option %s", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage("export", "unexpected argument \"%s\"", argv[optind]);
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    if (mr_records_export(r, &c.actor, stdout, &n, &d))
        rc = cli_fail(&d);
    else
        fprintf(stderr, "medrec: exported %lld resources\n", (long long)n);
    mr_records_close(r);
    return rc;
}

struct prog {
    int64_t base; /* committed by earlier files */
    int64_t last; /* committed from the current file */
};

static void progress(void *ctx, int64_t n)
{
    struct prog *p = ctx;

    p->last = n;
    printf("committed %lld\n", (long long)(p->base + n));
    fflush(stdout);
}

/* A .json file holds one FHIR resource or a batch/transaction Bundle,
 * processed exactly as POST /fhir would. */
static int import_bundle(struct mr_records *r, struct cli *c, const char *path,
                         struct prog *pg)
{
    struct mr_diag d;
    struct mr_buf out = MR_BUF_INIT(64u << 20);
    size_t len = 0;
    char *text, rtbuf[64];
    const char *rt;
    int rc = 0;

    mr_diag_clear(&d);
    text = cli_read_file(path, MR_MAX_BUNDLE_BYTES, &len, &d);
    if (!text)
        return cli_fail(&d);
    if (len > MR_MAX_RESOURCE_BYTES && !strstr(text, "\"Bundle\"")) {
        fprintf(stderr,
                "medrec: %s: resource is %zu bytes; the limit is %u bytes "
                "(4 MiB)\n",
                path, len, MR_MAX_RESOURCE_BYTES);
        mr_free(text);
        return 1;
    }
    /* A cheap look at resourceType: the records service parses it. */
    if (mr_json_member_string(text, len, "resourceType", rtbuf, sizeof(rtbuf)))
        rtbuf[0] = '\0';
    rt = rtbuf;
    if (!strcmp(rt, "Bundle")) {
        if (mr_records_bundle(r, &c->actor, text, len, &out, &d)) {
            fprintf(stderr, "medrec: %s: %s\n", path, mr_diag_msg(&d));
            rc = 1;
        } else {
            size_t nent = 0;
            if (mr_json_bundle_resources(text, len, NULL, 0, &nent))
                nent = 0;
            pg->base += (int64_t)nent;
            printf("committed %lld\n", (long long)pg->base);
            fflush(stdout);
        }
    } else {
        struct mr_result res;
        mr_result_init(&res);
        if (mr_records_create(r, &c->actor, rt, text, len, "import", 0, &res,
                              &d)) {
            fprintf(stderr, "medrec: %s: %s\n", path, mr_diag_msg(&d));
            rc = 1;
        } else {
            pg->base++;
            printf("committed %lld\n", (long long)pg->base);
        }
        mr_result_release(&res);
    }
    mr_buf_release(&out);
    mr_free(text);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"batch", required_argument, NULL, 'b'},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    int opt, rc = 0, i;
    long batch = 1000;
    char *end;
    struct prog pg = {0, 0};

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(import_usage, stdout);
            return 0;
        }
        if (opt == 'b') {
            batch = strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 1000000)
                return cli_usage("import",
                                 "--batch: \"%s\" is not a "
                                 "number from 1 to 1000000",
                                 optarg);
            continue;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("import", "unknown option %s", argv[optind - 1]);
    }
    if (optind >= argc)
        return cli_usage("import", "no input file");
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    for (i = optind; i < argc && rc == 0; i++) {
        size_t nlen = strlen(argv[i]);
        if (nlen > 5 && !strcmp(argv[i] + nlen - 5, ".json")) {
            rc = import_bundle(r, &c, argv[i], &pg);
            continue;
        }
        FILE *f = strcmp(argv[i], "-") ? fopen(argv[i], "rb") : stdin;
        if (!f) {
            fprintf(stderr, "medrec: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
            break;
        }
        mr_diag_clear(&d);
        /* progress() reports totals across files. */
        if (mr_records_import(r, &c.actor, f, argv[i], (size_t)batch, progress,
                              &pg, &d))
            rc = cli_fail(&d);
        if (f != stdin)
            fclose(f);
        pg.base += pg.last;
        pg.last = 0;
    }
    if (rc == 0)
        fprintf(stderr, "medrec: imported %lld resources\n",
                (long long)pg.base);
    mr_records_close(r);
    return rc;
}
