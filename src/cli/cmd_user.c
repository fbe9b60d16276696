/*
 * medrec user, token, policy: who may sign in, with which role, and what
 * each role may do. Every change goes through the records service and is
 * audited there.
 */
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/time.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char user_usage[] =
    "usage: medrec user add NAME --role ROLE [--patient Patient/ID]\n"
    "                   [--password-stdin]\n"
    "       medrec user list [--json]\n"
    "       medrec user passwd NAME [--password-stdin]\n"
    "       medrec user role NAME ROLE\n"
    "       medrec user lock NAME | unlock NAME\n"
    "       medrec user mfa enable NAME | mfa disable NAME\n"
    "\n"
    "Users sign in to `medrec serve`. Passwords: at least 12 characters\n"
    "(up to 128), not a commonly breached one, not the user name; stored\n"
    "as Argon2id hashes. The password is asked for on the terminal, or\n"
    "read as one line from stdin with --password-stdin. Roles come from\n"
    "the access policy (`medrec policy show`); a patient account names\n"
    "its chart with --patient. `mfa enable` prints an otpauth:// URI for\n"
    "an authenticator app; sign-in then needs its 6-digit code. `unlock`\n"
    "also clears the hold after failed sign-ins. Every change is audited.\n"
    "\n"
    "On the command line a registered user (--as NAME) acts with their\n"
    "role; anyone else acts with the rights that access to the database\n"
    "file already gives, named on every audit entry.\n";

static const char token_usage[] =
    "usage: medrec token create NAME --role ROLE [--expires DAYSd]\n"
    "       medrec token revoke NAME\n"
    "\n"
    "API tokens let interfaces and systems call the FHIR API with\n"
    "Authorization: Bearer TOKEN. `create` prints the token alone on\n"
    "stdout (it is shown once; only its hash is kept); the default\n"
    "lifetime is 90 days, at most 400. The role must be one the policy\n"
    "allows for system tokens. A revoked token stops working within\n"
    "30 seconds on a running server.\n";

static const char policy_usage[] =
    "usage: medrec policy show\n"
    "       medrec policy set FILE\n"
    "\n"
    "The access policy: roles, what each may read, search, create, update,\n"
    "delete and export per resource type, sensitivity labels, elements\n"
    "hidden from a role, and what patients see only once released. `set`\n"
    "checks the whole file first and keeps every earlier version; a\n"
    "running server uses it after a restart. See docs/policy.md.\n";

/* One line of password: from the terminal with echo off, else stdin. */
static int read_password(int from_stdin, char *buf, size_t cap)
{
    struct termios old, quiet;
    int tty = !from_stdin && isatty(STDIN_FILENO);
    size_t n;

    if (tty) {
        fprintf(stderr, "password: ");
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = 0;
        }
    }
    if (!fgets(buf, (int)cap, stdin))
        buf[0] = '\0';
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    n = strlen(buf);
    if (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (n && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return n ? 0 : -1;
}

static int print_user(void *ctx, const struct mr_user_info *u)
{
    int json = *(int *)ctx;
    char held[32] = "";

    if (u->held_until > mr_time_now_ms())
        mr_time_format(u->held_until, held);
    if (json)
        printf("{\"name\":\"%s\",\"role\":\"%s\",\"mfa\":%s,\"locked\":%s,"
               "\"failures\":%d%s%s%s%s%s%s}\n",
               u->name, u->role, u->mfa ? "true" : "false",
               u->locked ? "true" : "false", u->failures,
               held[0] ? ",\"held_until\":\"" : "", held, held[0] ? "\"" : "",
               u->patient[0] ? ",\"patient\":\"" : "", u->patient,
               u->patient[0] ? "\"" : "");
    else
        printf("%-20s %-20s mfa=%s%s%s%s%s\n", u->name, u->role,
               u->mfa ? "on" : "off", u->locked ? " LOCKED" : "",
               held[0] ? " held until " : "", held,
               u->patient[0] ? u->patient : "");
    return 0;
}

int cmd_user(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"role", required_argument, NULL, 'r'},
        {"patient", required_argument, NULL, 'p'},
        {"password-stdin", no_argument, NULL, 's'},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    struct mr_buf uri = MR_BUF_INIT(4096);
    const char *role = NULL, *patient = NULL, *verb, *name = NULL;
    char pw[600];
    int opt, from_stdin = 0, rc = 0;
    enum mr_err err = MR_OK;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(user_usage, stdout);
            return 0;
        case 'r':
            role = optarg;
            break;
        case 'p':
            patient = optarg;
            break;
        case 's':
            from_stdin = 1;
            break;
        default:
            if (!cli_common_option(&c, opt, optarg))
                return cli_usage("user", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage("user", "say what to do: add, list, passwd, role, "
                                 "lock, unlock or mfa");
    verb = argv[optind++];
    if (!strcmp(verb, "mfa")) {
        if (optind + 2 != argc ||
            (strcmp(argv[optind], "enable") && strcmp(argv[optind], "disable")))
            return cli_usage("user", "mfa enable NAME or mfa disable NAME");
        verb = !strcmp(argv[optind], "enable") ? "mfa-on" : "mfa-off";
        name = argv[optind + 1];
    } else if (!strcmp(verb, "role")) {
        if (optind + 2 != argc)
            return cli_usage("user", "role NAME ROLE");
        name = argv[optind];
        role = argv[optind + 1];
    } else if (!strcmp(verb, "list")) {
        if (optind != argc)
            return cli_usage("user", "list takes no arguments");
    } else if (!strcmp(verb, "add") || !strcmp(verb, "passwd") ||
               !strcmp(verb, "lock") || !strcmp(verb, "unlock")) {
        if (optind + 1 != argc)
            return cli_usage("user", "%s NAME", verb);
        name = argv[optind];
        if (!strcmp(verb, "add") && !role)
            return cli_usage("user", "add needs --role");
    } else {
        return cli_usage("user", "unknown action \"%s\"", verb);
    }
    if ((!strcmp(verb, "add") || !strcmp(verb, "passwd")) &&
        read_password(from_stdin, pw, sizeof(pw))) {
        fprintf(stderr, "medrec: no password given\n");
        return 1;
    }
    if (!(r = cli_open(&c, 0))) {
        sodium_memzero(pw, sizeof(pw));
        return 1;
    }
    mr_diag_clear(&d);
    if (!strcmp(verb, "add"))
        err = mr_records_user_add(r, &c.actor, name, role, pw, strlen(pw),
                                  patient, &d);
    else if (!strcmp(verb, "list"))
        err = mr_records_user_list(r, &c.actor, print_user, &c.json, &d);
    else if (!strcmp(verb, "passwd"))
        err = mr_records_user_change(r, &c.actor, name, "password", pw,
                                     strlen(pw), NULL, &d);
    else if (!strcmp(verb, "role"))
        err = mr_records_user_change(r, &c.actor, name, "role", role,
                                     strlen(role), NULL, &d);
    else
        err =
            mr_records_user_change(r, &c.actor, name, verb, NULL, 0, &uri, &d);
    sodium_memzero(pw, sizeof(pw));
    if (err) {
        rc = cli_fail(&d);
    } else if (!strcmp(verb, "mfa-on")) {
        printf("%s\n", uri.ptr);
        fprintf(stderr, "medrec: add this to an authenticator app (or show "
                        "it as a QR code); sign-in now needs its code\n");
    } else if (!strcmp(verb, "add")) {
        fprintf(stderr, "medrec: added %s as %s\n", name, role);
    }
    if (uri.len)
        sodium_memzero(uri.ptr, uri.len);
    mr_buf_release(&uri);
    mr_records_close(r);
    return rc;
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"role", required_argument, NULL, 'r'},
        {"expires", required_argument, NULL, 'e'},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    const char *role = NULL, *verb, *name;
    char tok[MR_RECORDS_TOKEN_MAX], *end;
    long days = 90;
    int opt, rc = 0;
    enum mr_err err;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(token_usage, stdout);
            return 0;
        case 'r':
            role = optarg;
            break;
        case 'e':
            days = strtol(optarg, &end, 10);
            if ((*end && strcmp(end, "d")) || days < 1 || days > 400)
                return cli_usage("token", "--expires: 1d to 400d");
            break;
        default:
            if (!cli_common_option(&c, opt, optarg))
                return cli_usage("token", "unknown option %s",
                                 argv[optind - 1]);
        }
    }
    if (optind + 2 != argc)
        return cli_usage("token", "create NAME --role ROLE, or revoke NAME");
    verb = argv[optind];
    name = argv[optind + 1];
    if (strcmp(verb, "create") && strcmp(verb, "revoke"))
        return cli_usage("token", "unknown action \"%s\"", verb);
    if (!strcmp(verb, "create") && !role)
        return cli_usage("token", "create needs --role");
    if (!(r = cli_open(&c, 0)))
        return 1;
    mr_diag_clear(&d);
    if (!strcmp(verb, "create"))
        err = mr_records_token_create(r, &c.actor, name, role,
                                      (int64_t)days * 86400000, tok, &d);
    else
        err = mr_records_token_revoke(r, &c.actor, name, &d);
    if (err)
        rc = cli_fail(&d);
    else if (!strcmp(verb, "create"))
        printf("%s\n", tok);
    sodium_memzero(tok, sizeof(tok));
    mr_records_close(r);
    return rc;
}

int cmd_policy(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    struct mr_buf out = MR_BUF_INIT(1u << 20);
    char *text = NULL;
    size_t len = 0;
    int opt, rc = 0;
    enum mr_err err;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(policy_usage, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("policy", "unknown option %s", argv[optind - 1]);
    }
    if (optind >= argc ||
        (strcmp(argv[optind], "show") && strcmp(argv[optind], "set")) ||
        (!strcmp(argv[optind], "show") && optind + 1 != argc) ||
        (!strcmp(argv[optind], "set") && optind + 2 != argc))
        return cli_usage("policy", "show, or set FILE");
    mr_diag_clear(&d);
    if (!strcmp(argv[optind], "set") &&
        !(text = cli_read_file(argv[optind + 1], 1u << 20, &len, &d)))
        return cli_fail(&d);
    if (!(r = cli_open(&c, 0))) {
        mr_free(text);
        return 1;
    }
    if (text)
        err = mr_records_policy_set(r, &c.actor, text, len, &d);
    else
        err = mr_records_policy_get(r, &c.actor, &out, &d);
    if (err)
        rc = cli_fail(&d);
    else if (!text)
        fwrite(out.ptr, 1, out.len, stdout);
    else
        fprintf(stderr, "medrec: policy replaced; restart the server to use "
                        "it\n");
    mr_free(text);
    mr_buf_release(&out);
    mr_records_close(r);
    return rc;
}
