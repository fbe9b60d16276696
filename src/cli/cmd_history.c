#include "cli/cli.h"
#include "core/time.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: medrec history [--db FILE] [--json] TYPE/ID\n"
    "\n"
    "Every version of a resource, newest first: version, time (UTC), who\n"
    "and why. With --json, a FHIR history Bundle.\n";

struct hist {
    int json;
    int n;
    struct mr_buf out;
};

static int print_version(void *ctx, const struct mr_version *m,
                         const char *json, size_t len)
{
    struct hist *h = ctx;
    char ts[32];
    enum mr_err err;

    mr_time_format(m->ts, ts);
    if (h->json) {
        err = mr_history_entry(&h->out, "", m, json, len, !h->n);
    } else {
        err = mr_buf_addf(&h->out, "version %-4lld %s  %-8s by %s",
                          (long long)m->version, ts,
                          m->deleted ? "deleted" : "", m->author);
        if (!err && m->reason[0])
            err = mr_buf_addf(&h->out, "  reason: %s", m->reason);
        if (!err)
            err = mr_buf_addc(&h->out, '\n');
    }
    h->n++;
    return err ? (int)err : 0;
}

int cmd_history(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    struct hist h = {0, 0, MR_BUF_INIT(256u << 20)};
    char type[64], id[65];
    int opt, rc = 0;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("history", "unknown option %s", argv[optind - 1]);
    }
    if (optind != argc - 1)
        return cli_usage("history", "expected one TYPE/ID");
    if (cli_split_ref(argv[optind], type, sizeof(type), id, sizeof(id)))
        return cli_usage("history",
                         "\"%s\" is not TYPE/ID (e.g. Patient/"
                         "abc)",
                         argv[optind]);
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    h.json = c.json;
    mr_diag_clear(&d);
    if (mr_records_history(r, &c.actor, type, id, print_version, &h, &d))
        rc = cli_fail(&d);
    else if (c.json)
        printf("{\"resourceType\":\"Bundle\",\"type\":\"history\","
               "\"total\":%d,\"entry\":[%s]}\n",
               h.n, h.out.ptr);
    else
        fputs(h.out.ptr, stdout);
    mr_buf_release(&h.out);
    mr_records_close(r);
    return rc;
}
