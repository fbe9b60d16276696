#include "cli/cli.h"
#include "core/alloc.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"init", cmd_init, "create a database"},
    {"patient", cmd_patient, "register, show, search and update patients"},
    {"history", cmd_history, "every version of a resource: who, when, why"},
    {"export", cmd_export, "write every current resource as FHIR NDJSON"},
    {"import", cmd_import, "read FHIR NDJSON resources into the database"},
    {"check", cmd_check, "check storage integrity and the schema version"},
    {"serve", cmd_serve, "serve the FHIR R4 API over HTTP"},
    {"user", cmd_user, "add, list, lock and unlock users; MFA"},
    {"token", cmd_token, "API tokens for interfaces and systems"},
    {"policy", cmd_policy, "show or replace the access policy"},
    {"audit", cmd_audit, "search and verify the audit trail"},
    {"disclose", cmd_disclose, "record a disclosure of a patient's record"},
    {"disclosures", cmd_disclosures, "accounting of disclosures for a patient"},
    {"hl7", cmd_hl7, "HL7 v2 feed: senders, send, import, log, replay"},
};

static void usage(FILE *f)
{
    size_t i;

    fprintf(f, "usage: medrec <command> [options]\n\ncommands:\n");
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nEvery command takes --help. The database is --db FILE, "
               "else $MEDREC_DB, else ./medrec.db.\n");
}

void cli_init(struct cli *c)
{
    static char login[128];
    const char *env = getenv("MEDREC_DB");
    struct passwd pw, *res = NULL;
    char buf[1024];

    memset(c, 0, sizeof(*c));
    c->db = env && *env ? env : "medrec.db";
    if (!login[0]) {
        const char *u = getenv("USER");
        if (u && *u)
            snprintf(login, sizeof(login), "%s", u);
        else if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
            snprintf(login, sizeof(login), "%s", pw.pw_name);
        else
            snprintf(login, sizeof(login), "uid%u", (unsigned)getuid());
    }
    c->user = login;
}

int cli_common_option(struct cli *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_DB:
        c->db = arg;
        return 1;
    case OPT_AS:
        c->user = arg;
        return 1;
    case OPT_JSON:
        c->json = 1;
        return 1;
    }
    return 0;
}

struct mr_records *cli_open(struct cli *c, int create)
{
    struct mr_records *r = NULL;
    struct mr_diag d;

    mr_diag_clear(&d);
    c->actor.user = c->user;
    c->actor.role = NULL;
    c->actor.source = "cli";
    c->actor.patient = NULL;
    c->actor.local = 1;
    if (mr_records_open(c->db, create ? MR_STORE_CREATE : 0, &r, &d)) {
        cli_fail(&d);
        return NULL;
    }
    /* A registered user (--as or the login name) acts with their role.
     * Otherwise the command line has the rights of whoever can open the
     * database file, which no policy can take away; it is still named
     * on every audit entry. */
    if (mr_records_user_role(r, c->user, c->role, sizeof(c->role), c->patient,
                             sizeof(c->patient), &d) == MR_OK) {
        c->actor.role = c->role;
        c->actor.patient = c->patient[0] ? c->patient : NULL;
    }
    return r;
}

int cli_fail(const struct mr_diag *d)
{
    fprintf(stderr, "medrec: %s\n", mr_diag_msg(d));
    if (d->code == MR_EDUPLICATE)
        fprintf(stderr, "medrec: use --force to register anyway\n");
    return d->code == MR_EUSAGE ? EXIT_USAGE : 1;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "medrec %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see medrec %s --help)\n", cmd);
    return EXIT_USAGE;
}

char *cli_read_file(const char *path, size_t max, size_t *len,
                    struct mr_diag *d)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    char *buf, *nb;
    size_t n = 0, cap = 65536, got;

    if (!f) {
        mr_diag_set(d, MR_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = mr_malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap > max) {
                mr_free(buf);
                buf = NULL;
                mr_diag_set(d, MR_ETOOBIG,
                            "%s: larger than the limit of %zu bytes", path,
                            max);
                break;
            }
            cap *= 2;
            nb = mr_realloc(buf, cap + 1);
            if (!nb) {
                mr_free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (buf && ferror(f)) {
        mr_diag_set(d, MR_EIO, "%s: read error", path);
        mr_free(buf);
        buf = NULL;
    } else if (buf && n > max) {
        mr_diag_set(d, MR_ETOOBIG,
                    "%s: %zu bytes or more; the limit is %zu bytes", path, n,
                    max);
        mr_free(buf);
        buf = NULL;
    } else if (!buf && d->code == MR_OK) {
        mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    if (f != stdin)
        fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

int cli_split_ref(const char *ref, char *type, size_t tcap, char *id,
                  size_t icap)
{
    const char *slash = strchr(ref, '/');

    if (!slash || slash == ref || !slash[1] || strchr(slash + 1, '/'))
        return -1;
    if ((size_t)(slash - ref) >= tcap || strlen(slash + 1) >= icap)
        return -1;
    snprintf(type, tcap, "%.*s", (int)(slash - ref), ref);
    snprintf(id, icap, "%s", slash + 1);
    return 0;
}

int main(int argc, char **argv)
{
    size_t i;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("medrec %s\n", MEDREC_VERSION);
        return 0;
    }
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            optind = 1;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "medrec: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
