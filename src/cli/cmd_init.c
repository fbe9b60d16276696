#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: medrec init [--db FILE]\n"
    "\n"
    "Create a medrec database (SQLite, one file) with the current schema.\n"
    "An existing medrec database is left as it is (and upgraded if its\n"
    "schema is older).\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    int opt;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("init", "unknown option %s", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage("init", "unexpected argument \"%s\"", argv[optind]);
    r = cli_open(&c, 1);
    if (!r)
        return 1;
    mr_records_close(r);
    fprintf(stderr, "medrec: database ready: %s\n", c.db);
    return 0;
}
