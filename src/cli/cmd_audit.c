/*
 * medrec audit, disclose, disclosures: the audit trail and the accounting
 * of disclosures (docs/audit.md).
 */
#include "cli/cli.h"
#include "core/buf.h"
#include "core/time.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char audit_usage[] =
    "usage: medrec audit <verify|search|new-key> [options]\n"
    "\n"
    "  medrec audit verify [--anchor SEQ:HASH] [--json]\n"
    "      Recompute the hash chain of the audit trail and check every\n"
    "      signed checkpoint. Exit 0 if intact, 1 naming the first bad\n"
    "      entry. --anchor: an entry number and hash printed by an earlier\n"
    "      verify (keep them outside the database); the trail must still\n"
    "      hold that entry with that hash, which also catches a trail cut\n"
    "      short together with its last checkpoints.\n"
    "  medrec audit search [--patient MRN] [--user USER] [--action ACTION]\n"
    "        [--since DATE] [--until DATE] [--emergency] [--json]\n"
    "      Who did what, oldest first: one line per entry (time in UTC,\n"
    "      user, role, action, outcome, Type/id, source, detail) or, with\n"
    "      --json, one JSON object per line. --patient takes an MRN or\n"
    "      Patient/ID; DATE is YYYY-MM-DD or an instant (--until includes\n"
    "      the whole day). --emergency: only emergency (break-the-glass)\n"
    "      accesses. The search is itself audited.\n"
    "  medrec audit new-key\n"
    "      Make a new checkpoint signing key (DATABASE.audit-key) after the\n"
    "      old one was lost; its public key is registered in the database.\n"
    "\n"
    "Common options: --db FILE, --as USER, --json, --help.\n";

static const char disclose_usage[] =
    "usage: medrec disclose MRN --to RECIPIENT --purpose TEXT [--what TEXT]\n"
    "                       [--date YYYY-MM-DD] [--db FILE] [--as USER]\n"
    "\n"
    "Record a disclosure of a patient's record (to whom, why, what, when;\n"
    "the date defaults to today, UTC) for the accounting of disclosures.\n"
    "It is kept as an audit entry; write no clinical content beyond the\n"
    "description of what was disclosed.\n";

static const char disclosures_usage[] =
    "usage: medrec disclosures MRN [--json] [--db FILE] [--as USER]\n"
    "\n"
    "The accounting of disclosures: every disclosure of the patient's\n"
    "record dated in the last 6 years, oldest first (date, recipient,\n"
    "purpose, what, recorded by), tab-separated with a header line, or one\n"
    "JSON object per line with --json. Listing them is audited.\n";

/* What a search prints is kept here until its audit entry is committed. */
#define OUT_MAX (256u << 20)

enum { O_ANCHOR = 1, O_PATIENT, O_USER, O_ACTION, O_SINCE, O_UNTIL, O_EMERG };

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

/* ---- audit search ------------------------------------------------------- */

struct search_out {
    struct mr_buf buf;
    int json;
};

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int search_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct search_out *o = ctx;
    char t[32], ref[200];
    enum mr_err err;
    json_t *j;
    char *text;

    mr_time_format(e->ts, t);
    if (o->json) {
        j = json_pack(
            "{sI ss so so so so so so so so so so}", "seq", (json_int_t)seq,
            "time", t, "actor", str_or_null(e->actor), "role",
            str_or_null(e->role), "source", str_or_null(e->source), "action",
            str_or_null(e->action), "outcome", str_or_null(e->outcome), "type",
            str_or_null(e->type), "id", str_or_null(e->id), "patient",
            str_or_null(e->patient), "query", str_or_null(e->query), "detail",
            str_or_null(e->detail));
        text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!text)
            return MR_ENOMEM;
        err = mr_buf_addf(&o->buf, "%s\n", text);
        free(text);
        return err;
    }
    if (e->type && e->id)
        snprintf(ref, sizeof(ref), "%s/%s", e->type, e->id);
    else
        snprintf(ref, sizeof(ref), "%s", dash(e->type));
    err = mr_buf_addf(&o->buf, "%s %s %s %s %s %s %s", t, dash(e->actor),
                      dash(e->role), dash(e->action), dash(e->outcome), ref,
                      dash(e->source));
    if (!err && e->detail) {
        /* Quoted and escaped, so an entry stays on one line. */
        j = json_string(e->detail);
        text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
        json_decref(j);
        err = text ? mr_buf_addf(&o->buf, " %s", text) : MR_ENOMEM;
        free(text);
    }
    if (!err)
        err = mr_buf_addc(&o->buf, '\n');
    return err;
}

static int parse_when(const char *opt, const char *s, int64_t *lo, int64_t *hi)
{
    struct mr_daterange dr;

    if (mr_date_parse_search(s, strlen(s), &dr) != MR_OK) {
        cli_usage("audit",
                  "%s: \"%s\" is not a date (YYYY-MM-DD) or an instant", opt,
                  s);
        return -1;
    }
    *lo = dr.lo;
    *hi = dr.hi;
    return 0;
}

static int audit_search(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"patient", required_argument, NULL, O_PATIENT},
        {"user", required_argument, NULL, O_USER},
        {"action", required_argument, NULL, O_ACTION},
        {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},
        {"emergency", no_argument, NULL, O_EMERG},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_audit_filter f;
    struct search_out o;
    struct mr_diag d;
    int64_t lo, hi;
    int opt, rc = 0;

    cli_init(&c);
    memset(&f, 0, sizeof(f));
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(audit_usage, stdout);
            return 0;
        case O_PATIENT:
            f.patient = optarg;
            break;
        case O_USER:
            f.actor = optarg;
            break;
        case O_ACTION:
            f.action = optarg;
            break;
        case O_SINCE:
            if (parse_when("--since", optarg, &lo, &hi))
                return EXIT_USAGE;
            f.since = lo;
            break;
        case O_UNTIL:
            if (parse_when("--until", optarg, &lo, &hi))
                return EXIT_USAGE;
            f.until = hi;
            break;
        case O_EMERG:
            f.emergency = 1;
            break;
        default:
            if (!cli_common_option(&c, opt, optarg))
                return cli_usage("audit", "unknown option %s",
                                 argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("audit", "unexpected argument \"%s\"", argv[optind]);
    if (f.since && f.until && f.since >= f.until)
        return cli_usage("audit", "--since must come before --until");
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    mr_buf_init(&o.buf, OUT_MAX);
    o.json = c.json;
    mr_diag_clear(&d);
    if (mr_records_audit_search(r, &c.actor, &f, search_cb, &o, &d)) {
        if (d.code == MR_ETOOBIG && !d.msg[0])
            mr_diag_set(&d, MR_ETOOBIG,
                        "audit search: more than 256 MiB of entries; narrow "
                        "it with --since, --until, --user or --patient");
        rc = cli_fail(&d);
    } else if (fwrite(o.buf.ptr, 1, o.buf.len, stdout) != o.buf.len ||
               fflush(stdout) != 0) {
        fprintf(stderr, "medrec: writing the result failed\n");
        rc = 1;
    }
    mr_buf_release(&o.buf);
    mr_records_close(r);
    return rc;
}

/* ---- audit verify ------------------------------------------------------- */

static const char *signer_state(enum mr_audit_signer_state s)
{
    switch (s) {
    case MR_SIGNER_OK:
        return "present";
    case MR_SIGNER_MISSING:
        return "missing";
    default:
        return "none";
    }
}

static void print_report(const struct mr_audit_report *rep, int json,
                         int intact)
{
    char t[32];
    json_t *j, *sig = json_null();
    char *text;

    if (rep->signed_seq)
        mr_time_format(rep->signed_ts, t);
    if (json) {
        if (rep->signed_seq)
            sig = json_pack("{sI ss ss ss}", "seq", (json_int_t)rep->signed_seq,
                            "time", t, "hash", rep->signed_hash, "key",
                            rep->signed_key);
        j = json_pack(
            "{sb sI sI sI sI so sI ss so so}", "intact", intact, "entries",
            (json_int_t)rep->entries, "checkpoints",
            (json_int_t)rep->checkpoints, "keys", (json_int_t)rep->keys,
            "last_entry", (json_int_t)rep->last_seq, "signed", sig, "uncovered",
            (json_int_t)rep->uncovered, "signing_key",
            signer_state(rep->signer.state), "bad_entry",
            rep->bad_seq ? json_integer(rep->bad_seq) : json_null(), "problem",
            rep->problem[0] ? json_string(rep->problem) : json_null());
        text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
        return;
    }
    if (!intact)
        return;
    printf("audit trail intact: %lld entries, %lld checkpoints\n",
           (long long)rep->entries, (long long)rep->checkpoints);
    if (rep->signed_seq) {
        printf("last signed checkpoint: entry %lld at %s, key %s\n",
               (long long)rep->signed_seq, t, rep->signed_key);
        printf("anchor: %lld:%s\n", (long long)rep->signed_seq,
               rep->signed_hash);
    }
    if (rep->uncovered)
        printf("not yet covered by a signed checkpoint: %lld entries after "
               "entry %lld\n",
               (long long)rep->uncovered, (long long)rep->signed_seq);
}

static int audit_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"anchor", required_argument, NULL, O_ANCHOR},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_audit_report rep;
    struct mr_diag d;
    const char *anchor = NULL;
    enum mr_err err;
    int opt, rc = 0;

    cli_init(&c);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(audit_usage, stdout);
            return 0;
        }
        if (opt == O_ANCHOR) {
            anchor = optarg;
            continue;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("audit", "unknown option %s", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage("audit", "unexpected argument \"%s\"", argv[optind]);
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    memset(&rep, 0, sizeof(rep));
    mr_diag_clear(&d);
    err = mr_records_audit_verify(r, &c.actor, anchor, &rep, &d);
    if (!err || (err == MR_ECORRUPT && rep.problem[0]))
        print_report(&rep, c.json, !err);
    if (!err && rep.signer.state == MR_SIGNER_MISSING)
        fprintf(stderr,
                "medrec: warning: the signing key %s is missing: new entries "
                "are not covered by signed checkpoints (medrec audit new-key "
                "makes a new key)\n",
                rep.signer.key_path);
    if (err)
        rc = cli_fail(&d);
    mr_records_close(r);
    return rc;
}

/* ---- audit new-key ------------------------------------------------------ */

static int audit_new_key(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_diag d;
    char id[MR_AUDIT_KEY_ID_LEN + 1];
    int opt, rc = 0;

    cli_init(&c);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(audit_usage, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("audit", "unknown option %s", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage("audit", "unexpected argument \"%s\"", argv[optind]);
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    if (mr_records_audit_new_key(r, &c.actor, id, &d))
        rc = cli_fail(&d);
    else
        printf("%s\n", id);
    mr_records_close(r);
    return rc;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2) {
        fputs(audit_usage, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(audit_usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "verify"))
        return audit_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "search"))
        return audit_search(argc - 1, argv + 1);
    if (!strcmp(argv[1], "new-key"))
        return audit_new_key(argc - 1, argv + 1);
    return cli_usage("audit", "unknown subcommand \"%s\"", argv[1]);
}

/* ---- disclose ----------------------------------------------------------- */

enum { O_TO = 1, O_PURPOSE, O_WHAT, O_DATE };

int cmd_disclose(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"to", required_argument, NULL, O_TO},
        {"purpose", required_argument, NULL, O_PURPOSE},
        {"what", required_argument, NULL, O_WHAT},
        {"date", required_argument, NULL, O_DATE},
        {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct mr_disclosure dsc;
    struct mr_diag d;
    const char *mrn;
    int opt, rc = 0;

    cli_init(&c);
    memset(&dsc, 0, sizeof(dsc));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(disclose_usage, stdout);
            return 0;
        case O_TO:
            dsc.recipient = optarg;
            break;
        case O_PURPOSE:
            dsc.purpose = optarg;
            break;
        case O_WHAT:
            dsc.what = optarg;
            break;
        case O_DATE:
            dsc.date = optarg;
            break;
        default:
            if (!cli_common_option(&c, opt, optarg))
                return cli_usage("disclose", "unknown option %s",
                                 argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage("disclose", "no MRN given");
    if (optind + 1 < argc)
        return cli_usage("disclose", "unexpected argument \"%s\"",
                         argv[optind + 1]);
    if (!dsc.recipient || !*dsc.recipient)
        return cli_usage("disclose", "--to RECIPIENT is required");
    if (!dsc.purpose || !*dsc.purpose)
        return cli_usage("disclose", "--purpose TEXT is required");
    mrn = argv[optind];
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    mr_diag_clear(&d);
    if (mr_records_disclose(r, &c.actor, mrn, &dsc, &d))
        rc = cli_fail(&d);
    else
        fprintf(stderr, "medrec: disclosure recorded for %s\n", mrn);
    mr_records_close(r);
    return rc;
}

/* ---- disclosures -------------------------------------------------------- */

struct disc_out {
    int json;
    int64_t n;
};

static int disc_print(void *ctx, const struct mr_disclosure *x)
{
    struct disc_out *o = ctx;
    char t[32], *text;
    json_t *j;

    mr_time_format(x->recorded, t);
    if (o->json) {
        j = json_pack("{ss ss ss so ss ss}", "date", x->date, "recipient",
                      x->recipient ? x->recipient : "", "purpose",
                      x->purpose ? x->purpose : "", "what",
                      x->what ? json_string(x->what) : json_null(),
                      "recorded_by", x->by, "recorded", t);
        text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!text)
            return MR_ENOMEM;
        printf("%s\n", text);
        free(text);
    } else {
        if (o->n == 0)
            printf("DATE\tRECIPIENT\tPURPOSE\tWHAT\tRECORDED BY\n");
        printf("%s\t%s\t%s\t%s\t%s (%s)\n", x->date, dash(x->recipient),
               dash(x->purpose), dash(x->what), x->by, t);
    }
    o->n++;
    return 0;
}

int cmd_disclosures(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    struct cli c;
    struct mr_records *r;
    struct disc_out o = {0, 0};
    struct mr_diag d;
    int opt, rc = 0;

    cli_init(&c);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(disclosures_usage, stdout);
            return 0;
        }
        if (!cli_common_option(&c, opt, optarg))
            return cli_usage("disclosures", "unknown option %s",
                             argv[optind - 1]);
    }
    if (optind >= argc)
        return cli_usage("disclosures", "no MRN given");
    if (optind + 1 < argc)
        return cli_usage("disclosures", "unexpected argument \"%s\"",
                         argv[optind + 1]);
    r = cli_open(&c, 0);
    if (!r)
        return 1;
    o.json = c.json;
    mr_diag_clear(&d);
    if (mr_records_disclosures(r, &c.actor, argv[optind], disc_print, &o, &d))
        rc = cli_fail(&d);
    else if (o.n == 0 && !o.json)
        printf("no disclosures in the last %d years\n", MR_DISCLOSURE_YEARS);
    mr_records_close(r);
    return rc;
}
