#include "cli/cli.h"
#include "store/store.h"

#include <getopt.h>
#include <stdio.h>

static const char usage_text[] =
    "usage: medrec check [--db FILE] [--json]\n"
    "\n"
    "Check the database: SQLite's integrity check, foreign keys, and that\n"
    "every resource's current version is present and holds valid JSON.\n"
    "Prints the schema version and counts; exit 0 if all is well, 1 if\n"
    "anything is wrong (each finding on its own line).\n";

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_buf report = MR_BUF_INIT(1 << 20);
    struct mr_diag d;
    int opt, schema = 0, rc = 0;
    enum mr_err err;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("check", "unknown option %s", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage("check", "unexpected argument \"%s\"", argv[optind]);
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    err = mr_records_check(r, &c.actor, &report, &schema, &d);
    if (c.json) {
        printf("{\"ok\":%s,\"schema\":%d,\"supported_schema\":%d}\n",
               err ? "false" : "true", schema, MR_STORE_SCHEMA_VERSION);
    } else {
        printf("schema version %d (this medrec supports up to %d)\n", schema,
               MR_STORE_SCHEMA_VERSION);
        fputs(report.ptr, stdout);
        if (!err)
            printf("ok\n");
    }
    if (err)
        rc = cli_fail(&d);
    mr_buf_release(&report);
    mr_records_close(r);
    return rc;
}
