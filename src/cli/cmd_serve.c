#include "cli/cli.h"
#include "server/server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: medrec serve [--db FILE] [--http ADDR:PORT] [--threads N]\n"
    "                    [--timeout SECONDS] [--access-log FILE|-]\n"
    "\n"
    "Serve the FHIR R4 API at http://ADDR:PORT/fhir (default\n"
    "127.0.0.1:8080; port 0 picks a free one). Prints the base URL on\n"
    "stdout once listening. Until sign-in and TLS arrive only loopback\n"
    "addresses are served, and requests act as the local service user;\n"
    "every access is audited. The access log (JSON Lines, no query\n"
    "strings or health data) goes to stderr unless --access-log says\n"
    "otherwise. SIGTERM or SIGINT stops it after in-flight requests.\n"
    "Limits: request body 32 MiB, headers 16 KiB, idle time-out 30 s.\n";

static void on_ready(void *ctx, unsigned port)
{
    (void)ctx;
    printf("http://127.0.0.1:%u/fhir\n", port);
    fflush(stdout);
    fprintf(stderr, "medrec: serving FHIR R4 at http://127.0.0.1:%u/fhir\n",
            port);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"http", required_argument, NULL, 'h'},
        {"threads", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'o'},
        {"access-log", required_argument, NULL, 'l'},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_server_config cfg = {0};
    struct mr_diag d;
    const char *log = "-";
    FILE *logf = NULL;
    char *end;
    long v;
    int opt, rc = 0;

    cli_init(&c);
    cfg.http = "127.0.0.1:8080";
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 0;
        case 'h':
            cfg.http = optarg;
            break;
        case 't':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 64)
                return cli_usage("serve", "--threads: 1 to 64");
            cfg.threads = (unsigned)v;
            break;
        case 'o':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 3600)
                return cli_usage("serve", "--timeout: 1 to 3600 seconds");
            cfg.timeout_s = (unsigned)v;
            break;
        case 'l':
            log = optarg;
            break;
        default:
            if (!cli_common_option(&c, opt, optarg))
                return cli_usage("serve", "unknown option %s",
                                 argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("serve", "unexpected argument \"%s\"", argv[optind]);
    if (!strcmp(log, "-")) {
        cfg.access_log = stderr;
    } else if (*log) {
        logf = fopen(log, "a");
        if (!logf) {
            perror(log);
            return 1;
        }
        cfg.access_log = logf;
    }
    cfg.db = c.db;
    cfg.ready = on_ready;
    mr_diag_clear(&d);
    if (mr_server_run(&cfg, &d))
        rc = cli_fail(&d);
    else
        fprintf(stderr, "medrec: stopped\n");
    if (logf)
        fclose(logf);
    return rc;
}
