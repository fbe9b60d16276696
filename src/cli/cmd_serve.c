#include "cli/cli.h"
#include "hl7/parse.h"
#include "server/server.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: medrec serve [--db FILE] [--http ADDR:PORT] [--threads N]\n"
    "                    [--timeout SECONDS] [--access-log FILE|-]\n"
    "                    [--tls-cert PEM --tls-key PEM]\n"
    "                    [--idle-timeout MINUTES|SECONDSs] [--require-mfa]\n"
    "                    [--allow-plain-http]\n"
    "                    [--mllp ADDR:PORT [--mllp-frame-timeout SECONDS]\n"
    "                     [--mllp-max-frame BYTES]\n"
    "                     [--mllp-tls-cert PEM --mllp-tls-key PEM\n"
    "                      [--mllp-client-ca PEM]] [--mllp-allow-remote]]\n"
    "\n"
    "Serve the FHIR R4 API at http://ADDR:PORT/fhir (default\n"
    "127.0.0.1:8080; port 0 picks a free one), https:// with --tls-cert\n"
    "and --tls-key. Prints the base URL on stdout once listening.\n"
    "Addresses other than loopback are served only with TLS (1.2 or\n"
    "1.3), unless --allow-plain-http says a TLS proxy stands in front.\n"
    "\n"
    "Every request is signed in: POST /auth/login with {\"username\",\n"
    "\"password\", \"code\"} gives a session (cookie and token; idle\n"
    "time-out --idle-timeout minutes, default 15; at most 12 hours), or\n"
    "send Authorization: Bearer with a token from `medrec token create`.\n"
    "POST /auth/logout ends a session; POST /auth/break-glass opens a\n"
    "restricted chart for emergency access. --require-mfa makes admins\n"
    "and clinicians sign in with a TOTP code. Every access is audited.\n"
    "\n"
    "The access log (JSON Lines, no query strings or health data) goes to\n"
    "stderr unless --access-log says otherwise. SIGTERM or SIGINT stops it\n"
    "after in-flight requests. Limits: request body 32 MiB, headers\n"
    "16 KiB, idle connection time-out 30 s.\n"
    "\n"
    "--mllp also receives HL7 v2 messages (ADT, ORU^R01, ORM^O01,\n"
    "OML^O21) over MLLP from senders registered with `medrec hl7 sender\n"
    "add`; it prints \"mllp listening on ADDR:PORT\". Each message is\n"
    "acknowledged (AA/AE/AR) after it, its effects and its audit entries\n"
    "are committed. A frame must end within --mllp-frame-timeout seconds\n"
    "(30) of its start and be at most --mllp-max-frame bytes (1048576);\n"
    "a connection silent for an hour is closed. --mllp-tls-cert and\n"
    "--mllp-tls-key serve MLLP over TLS 1.2/1.3; --mllp-client-ca also\n"
    "requires a client certificate signed by that CA (a sender registered\n"
    "with --tls-client NAME must show one named NAME). Addresses other than\n"
    "loopback need TLS, or --mllp-allow-remote behind a TLS tunnel.\n";

static const char *scheme = "http";
static char mllp_host[64];

static void on_mllp_ready(void *ctx, unsigned port)
{
    (void)ctx;
    printf("mllp listening on %s:%u\n", mllp_host, port);
    fflush(stdout);
}

static void on_ready(void *ctx, unsigned port)
{
    (void)ctx;
    printf("%s://127.0.0.1:%u/fhir\n", scheme, port);
    fflush(stdout);
    fprintf(stderr, "medrec: serving FHIR R4 at %s://127.0.0.1:%u/fhir\n",
            scheme, port);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"http", required_argument, NULL, 'h'},
        {"threads", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'o'},
        {"access-log", required_argument, NULL, 'l'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"require-mfa", no_argument, NULL, 'm'},
        {"allow-plain-http", no_argument, NULL, 'p'},
        {"mllp", required_argument, NULL, 'L'},
        {"mllp-frame-timeout", required_argument, NULL, 'F'},
        {"mllp-max-frame", required_argument, NULL, 'M'},
        {"mllp-allow-remote", no_argument, NULL, 'R'},
        {"mllp-tls-cert", required_argument, NULL, 'C'},
        {"mllp-tls-key", required_argument, NULL, 'K'},
        {"mllp-client-ca", required_argument, NULL, 'A'},
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
        case 'c':
            cfg.tls_cert = optarg;
            scheme = "https";
            break;
        case 'k':
            cfg.tls_key = optarg;
            break;
        case 'i':
            /* minutes, or seconds with an "s" */
            v = strtol(optarg, &end, 10);
            if (!strcmp(end, "s") && v >= 1 && v <= 43200)
                cfg.idle_seconds = (unsigned)v;
            else if ((!*end || !strcmp(end, "m")) && v >= 1 && v <= 720)
                cfg.idle_seconds = (unsigned)v * 60;
            else
                return cli_usage("serve", "--idle-timeout: 1 to 720 "
                                          "minutes (or 1s to 43200s)");
            break;
        case 'p':
            cfg.allow_plain_http = 1;
            break;
        case 'L': {
            const char *colon = strrchr(optarg, ':');
            cfg.mllp.addr = optarg;
            snprintf(mllp_host, sizeof(mllp_host), "%.*s",
                     colon ? (int)(colon - optarg) : 0, optarg);
            break;
        }
        case 'F':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 3600)
                return cli_usage("serve",
                                 "--mllp-frame-timeout: 1 to 3600 seconds");
            cfg.mllp.frame_timeout_s = (unsigned)v;
            break;
        case 'M':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1024 || v > (long)MR_HL7_MAX_BYTES)
                return cli_usage("serve", "--mllp-max-frame: 1024 to %u bytes",
                                 MR_HL7_MAX_BYTES);
            cfg.mllp.max_frame = (size_t)v;
            break;
        case 'R':
            cfg.mllp.allow_remote = 1;
            break;
        case 'C':
            cfg.mllp.tls_cert = optarg;
            break;
        case 'K':
            cfg.mllp.tls_key = optarg;
            break;
        case 'A':
            cfg.mllp.client_ca = optarg;
            break;
        case 'm':
            cfg.require_mfa = 1;
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
    cfg.mllp_ready = on_mllp_ready;
    mr_diag_clear(&d);
    if (mr_server_run(&cfg, &d))
        rc = cli_fail(&d);
    else
        fprintf(stderr, "medrec: stopped\n");
    if (logf)
        fclose(logf);
    return rc;
}
