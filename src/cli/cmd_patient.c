#include "cli/cli.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/time.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: medrec patient <add|show|search|update> [options]\n"
    "\n"
    "  medrec patient add --family NAME --given NAME [--given NAME]\n"
    "        --birth-date YYYY-MM-DD --gender male|female|other|unknown\n"
    "        [--phone NUMBER] [--email ADDRESS] [--address \"LINE, CITY, ST "
    "ZIP\"]\n"
    "        [--identifier SYSTEM|VALUE] [--force] [--reason TEXT]\n"
    "  medrec patient add --file patient.json     (a FHIR R4 Patient; - for "
    "stdin)\n"
    "      Registers a patient and prints the new MRN alone on its line.\n"
    "      A patient with the same name, birth date and gender is reported\n"
    "      as a possible duplicate and not registered unless --force.\n"
    "  medrec patient show MRN [--json]\n"
    "      Demographics with the age computed today. MRN may also be\n"
    "      Patient/ID.\n"
    "  medrec patient search [--name TEXT] [--family TEXT] [--given TEXT]\n"
    "        [--birth-date [PREFIX]DATE] [--gender G] [--phone N]\n"
    "        [--identifier [SYSTEM|]VALUE] [--address TEXT] [--count N]\n"
    "        [--query FHIR-QUERY] [--json]\n"
    "      Names match by prefix, ignoring case and accents; dates take\n"
    "      eq, ne, lt, gt, le, ge prefixes (e.g. ge1980-01-01). --query\n"
    "      adds any FHIR search parameters, e.g.\n"
    "      --query '_lastUpdated=ge2026-01-01&family:exact=Rivera'.\n"
    "  medrec patient update MRN --reason TEXT [--family ...] [--given ...]\n"
    "        [--birth-date D] [--gender G] [--phone N] [--email A]\n"
    "        [--address A] [--file patient.json]\n"
    "      Writes a new version; the old one stays in the history.\n"
    "\n"
    "Common options: --db FILE, --as USER, --json, --help.\n";

enum {
    O_FAMILY = 1,
    O_GIVEN,
    O_BIRTH,
    O_GENDER,
    O_PHONE,
    O_EMAIL,
    O_ADDRESS,
    O_IDENT,
    O_FILE,
    O_FORCE,
    O_REASON,
    O_NAME,
    O_COUNT,
    O_EXPECT,
    O_QUERY
};

static const struct option opts[] = {
    CLI_COMMON_OPTIONS,
    {"family", required_argument, NULL, O_FAMILY},
    {"given", required_argument, NULL, O_GIVEN},
    {"birth-date", required_argument, NULL, O_BIRTH},
    {"gender", required_argument, NULL, O_GENDER},
    {"phone", required_argument, NULL, O_PHONE},
    {"email", required_argument, NULL, O_EMAIL},
    {"address", required_argument, NULL, O_ADDRESS},
    {"identifier", required_argument, NULL, O_IDENT},
    {"file", required_argument, NULL, O_FILE},
    {"force", no_argument, NULL, O_FORCE},
    {"reason", required_argument, NULL, O_REASON},
    {"name", required_argument, NULL, O_NAME},
    {"count", required_argument, NULL, O_COUNT},
    {"expect-version", required_argument, NULL, O_EXPECT},
    {"query", required_argument, NULL, O_QUERY},
    {0, 0, 0, 0}};

#define MAX_GIVEN 8

struct popts {
    struct cli c;
    const char *family, *given[MAX_GIVEN], *birth, *gender, *phone, *email,
        *address, *ident, *file, *reason, *name, *count, *query;
    int ngiven, force;
    long long expect;
    const char *arg; /* the positional argument (MRN), if any */
};

static int parse(const char *sub, int argc, char **argv, struct popts *o)
{
    int opt;
    char *end;

    memset(o, 0, sizeof(*o));
    cli_init(&o->c);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP:
            fputs(usage_text, stdout);
            return -1;
        case O_FAMILY:
            o->family = optarg;
            break;
        case O_GIVEN:
            if (o->ngiven == MAX_GIVEN)
                return cli_usage("patient", "at most %d --given", MAX_GIVEN);
            o->given[o->ngiven++] = optarg;
            break;
        case O_BIRTH:
            o->birth = optarg;
            break;
        case O_GENDER:
            o->gender = optarg;
            break;
        case O_PHONE:
            o->phone = optarg;
            break;
        case O_EMAIL:
            o->email = optarg;
            break;
        case O_ADDRESS:
            o->address = optarg;
            break;
        case O_IDENT:
            o->ident = optarg;
            break;
        case O_FILE:
            o->file = optarg;
            break;
        case O_FORCE:
            o->force = 1;
            break;
        case O_REASON:
            o->reason = optarg;
            break;
        case O_NAME:
            o->name = optarg;
            break;
        case O_COUNT:
            o->count = optarg;
            break;
        case O_QUERY:
            o->query = optarg;
            break;
        case O_EXPECT:
            o->expect = strtoll(optarg, &end, 10);
            if (*end || o->expect < 1)
                return cli_usage(sub,
                                 "--expect-version: \"%s\" is not a "
                                 "version number",
                                 optarg);
            break;
        default:
            if (!cli_common_option(&o->c, opt, optarg))
                return cli_usage(sub, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        o->arg = argv[optind++];
    if (optind < argc)
        return cli_usage(sub, "unexpected argument \"%s\"", argv[optind]);
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ')
        s++;
    e = s + strlen(s);
    while (e > s && e[-1] == ' ')
        *--e = '\0';
    return s;
}

/* "12 Oak St, Springfield, IL 62701" -> line, city, state, postalCode;
 * anything it cannot split stays in text only. */
static json_t *parse_address(const char *text)
{
    json_t *a = json_pack("{s:s,s:s}", "use", "home", "text", text);
    char buf[512], *parts[6], *p, *sp;
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", text);
    p = buf;
    while (n < 6) {
        parts[n++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p++ = '\0';
    }
    if (n >= 1 && *trim(parts[0]))
        json_object_set_new(a, "line", json_pack("[s]", trim(parts[0])));
    if (n >= 2 && *trim(parts[1]))
        json_object_set_new(a, "city", json_string(trim(parts[1])));
    if (n >= 3) {
        char *st = trim(parts[2]);
        sp = strrchr(st, ' ');
        if (sp) {
            *sp = '\0';
            json_object_set_new(a, "state", json_string(trim(st)));
            json_object_set_new(a, "postalCode", json_string(trim(sp + 1)));
        } else if (*st) {
            json_object_set_new(a, "state", json_string(st));
        }
    }
    if (n >= 4 && *trim(parts[3]))
        json_object_set_new(a, "country", json_string(trim(parts[3])));
    return a;
}

static void set_telecom(json_t *p, const char *system, const char *value)
{
    json_t *arr = json_object_get(p, "telecom"), *e;
    size_t i;

    if (!arr) {
        arr = json_array();
        json_object_set_new(p, "telecom", arr);
    }
    json_array_foreach(arr, i, e)
    {
        const char *s = json_string_value(json_object_get(e, "system"));
        if (s && !strcmp(s, system)) {
            json_object_set_new(e, "value", json_string(value));
            return;
        }
    }
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "system", system,
                                         "value", value, "use", "home"));
}

/* Apply the demographic options to Patient p (created or updated). */
static void apply(json_t *p, const struct popts *o)
{
    json_t *name, *given, *ids;
    int i;

    if (o->family || o->ngiven) {
        name = json_array_get(json_object_get(p, "name"), 0);
        if (!name) {
            json_t *arr = json_object_get(p, "name");
            if (!arr) {
                arr = json_array();
                json_object_set_new(p, "name", arr);
            }
            name = json_pack("{s:s}", "use", "official");
            json_array_append_new(arr, name);
        }
        if (o->family)
            json_object_set_new(name, "family", json_string(o->family));
        if (o->ngiven) {
            given = json_array();
            for (i = 0; i < o->ngiven; i++)
                json_array_append_new(given, json_string(o->given[i]));
            json_object_set_new(name, "given", given);
        }
    }
    if (o->birth)
        json_object_set_new(p, "birthDate", json_string(o->birth));
    if (o->gender)
        json_object_set_new(p, "gender", json_string(o->gender));
    if (o->phone)
        set_telecom(p, "phone", o->phone);
    if (o->email)
        set_telecom(p, "email", o->email);
    if (o->address) {
        json_t *arr = json_object_get(p, "address");
        if (json_array_size(arr))
            json_array_set_new(arr, 0, parse_address(o->address));
        else
            json_object_set_new(p, "address",
                                json_pack("[o]", parse_address(o->address)));
    }
    if (o->ident) {
        const char *bar = strchr(o->ident, '|');
        ids = json_object_get(p, "identifier");
        if (!ids) {
            ids = json_array();
            json_object_set_new(p, "identifier", ids);
        }
        if (bar)
            json_array_append_new(
                ids, json_pack("{s:s%,s:s}", "system", o->ident,
                               (size_t)(bar - o->ident), "value", bar + 1));
        else
            json_array_append_new(ids, json_pack("{s:s}", "value", o->ident));
    }
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

static int patient_add(int argc, char **argv)
{
    struct popts o;
    struct mr_records *r;
    struct mr_result res;
    struct mr_diag d;
    char *text = NULL;
    size_t len = 0;
    json_t *p = NULL, *stored;
    int rc;

    if ((rc = parse("patient add", argc, argv, &o)))
        return rc < 0 ? 0 : rc;
    if (o.arg)
        return cli_usage("patient add", "unexpected argument \"%s\"", o.arg);
    mr_diag_clear(&d);
    if (o.file) {
        if (o.family || o.ngiven || o.birth || o.gender || o.phone || o.email ||
            o.address || o.ident)
            return cli_usage("patient add",
                             "--file cannot be combined with demographic "
                             "options");
        text = cli_read_file(o.file, MR_MAX_RESOURCE_BYTES, &len, &d);
        if (!text)
            return cli_fail(&d);
    } else {
        if (!o.family && !o.ngiven && !o.ident)
            return cli_usage("patient add",
                             "give --family/--given (or --identifier), or "
                             "--file");
        /* Registration needs what identifies a person and what the
         * duplicate check compares. */
        if (!o.birth)
            return cli_usage("patient add", "--birth-date is required");
        if (!o.gender)
            return cli_usage("patient add", "--gender is required (male, "
                                            "female, other or unknown)");
        p = json_pack("{s:s}", "resourceType", "Patient");
        apply(p, &o);
        text = dump(p);
        len = strlen(text);
    }
    r = cli_open(&o.c, 0);
    if (!r) {
        free(text);
        json_decref(p);
        return 1;
    }
    mr_result_init(&res);
    if (mr_records_create(r, &o.c.actor, "Patient", text, len,
                          o.reason ? o.reason : "registration",
                          o.force ? MR_WRITE_FORCE : 0, &res, &d)) {
        rc = cli_fail(&d);
    } else {
        stored = json_loadb(res.json.ptr, res.json.len, 0, NULL);
        const char *mrn = mr_patient_mrn(stored);
        if (o.c.json)
            printf("%s\n", res.json.ptr);
        else
            printf("%s\n", mrn ? mrn : res.meta.id);
        fprintf(stderr, "medrec: registered Patient/%s\n", res.meta.id);
        json_decref(stored);
    }
    mr_result_release(&res);
    mr_records_close(r);
    if (o.file)
        mr_free(text);
    else
        free(text);
    json_decref(p);
    return rc;
}

static void show_text(const json_t *p)
{
    const json_t *name = json_array_get(json_object_get(p, "name"), 0);
    const char *family = json_string_value(json_object_get(name, "family"));
    const char *birth = json_string_value(json_object_get(p, "birthDate"));
    const char *mrn = mr_patient_mrn(p);
    const json_t *e, *g;
    size_t i, j;
    int age;

    printf("%-12s%s\n", "MRN", mrn ? mrn : "(none)");
    printf("%-12s%s", "Name", family ? family : "");
    json_array_foreach(json_object_get(name, "given"), j, g)
    {
        printf("%s%s", j == 0 && family ? ", " : " ", json_string_value(g));
    }
    if (!name)
        printf("(no name)");
    putchar('\n');
    if (birth) {
        age = mr_age_years(birth, mr_time_now_ms());
        if (json_object_get(p, "deceasedDateTime") ||
            json_is_true(json_object_get(p, "deceasedBoolean")))
            printf("%-12s%s (deceased)\n", "Born", birth);
        else if (age >= 0)
            printf("%-12s%s (age %d)\n", "Born", birth, age);
        else
            printf("%-12s%s\n", "Born", birth);
    }
    if (json_object_get(p, "gender"))
        printf("%-12s%s\n", "Gender",
               json_string_value(json_object_get(p, "gender")));
    json_array_foreach(json_object_get(p, "telecom"), i, e)
    {
        const char *s = json_string_value(json_object_get(e, "system"));
        printf("%-12s%s\n",
               s && !strcmp(s, "email")   ? "Email"
               : s && !strcmp(s, "phone") ? "Phone"
                                          : "Contact",
               json_string_value(json_object_get(e, "value")));
    }
    json_array_foreach(json_object_get(p, "address"), i, e)
    {
        const char *t = json_string_value(json_object_get(e, "text"));
        if (t) {
            printf("%-12s%s\n", "Address", t);
            continue;
        }
        printf("%-12s", "Address");
        json_array_foreach(json_object_get(e, "line"), j, g)
        {
            printf("%s, ", json_string_value(g));
        }
        printf("%s %s %s\n",
               json_string_value(json_object_get(e, "city"))
                   ? json_string_value(json_object_get(e, "city"))
                   : "",
               json_string_value(json_object_get(e, "state"))
                   ? json_string_value(json_object_get(e, "state"))
                   : "",
               json_string_value(json_object_get(e, "postalCode"))
                   ? json_string_value(json_object_get(e, "postalCode"))
                   : "");
    }
    json_array_foreach(json_object_get(p, "identifier"), i, e)
    {
        const char *s = json_string_value(json_object_get(e, "system"));
        printf("%-12s%s%s%s\n", "Identifier", s ? s : "", s ? "|" : "",
               json_string_value(json_object_get(e, "value")));
    }
}

static int patient_show(int argc, char **argv)
{
    struct popts o;
    struct mr_records *r;
    struct mr_result res;
    struct mr_diag d;
    json_t *p;
    char ts[32];
    int rc;

    if ((rc = parse("patient show", argc, argv, &o)))
        return rc < 0 ? 0 : rc;
    if (!o.arg)
        return cli_usage("patient show", "which patient? give an MRN");
    r = cli_open(&o.c, 0);
    if (!r)
        return 1;
    mr_result_init(&res);
    mr_diag_clear(&d);
    if (mr_records_patient_by_mrn(r, &o.c.actor, o.arg, &res, &d)) {
        rc = cli_fail(&d);
    } else if (o.c.json) {
        printf("%s\n", res.json.ptr);
    } else {
        p = json_loadb(res.json.ptr, res.json.len, 0, NULL);
        show_text(p);
        mr_time_format(res.meta.ts, ts);
        printf("%-12sPatient/%s (version %lld, %s by %s)\n", "Record",
               res.meta.id, (long long)res.meta.version, ts, res.meta.author);
        json_decref(p);
    }
    mr_result_release(&res);
    mr_records_close(r);
    return rc;
}

static enum mr_err add_param(struct mr_buf *q, const char *name,
                             const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p;
    enum mr_err err = MR_OK;

    if (q->len)
        err = mr_buf_addc(q, '&');
    if (!err)
        err = mr_buf_adds(q, name);
    if (!err)
        err = mr_buf_addc(q, '=');
    for (p = (const unsigned char *)value; !err && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~|", *p)) {
            err = mr_buf_addc(q, (char)*p);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            err = mr_buf_add(q, enc, 3);
        }
    }
    return err;
}

struct search_out {
    int json;
    int n;
    struct mr_buf *out;
};

static int search_row(void *ctx, const struct mr_version *m, const char *json,
                      size_t len)
{
    struct search_out *s = ctx;
    json_t *p;
    const json_t *name;
    const char *family, *given, *birth, *gender, *mrn;
    int age;
    enum mr_err err;

    if (s->json) {
        err = mr_buf_addf(s->out,
                          "%s{\"fullUrl\":\"Patient/%s\",\"resource\":%.*s,"
                          "\"search\":{\"mode\":\"match\"}}",
                          s->n ? "," : "", m->id, (int)len, json);
        s->n++;
        return err ? (int)err : 0;
    }
    p = json_loadb(json, len, 0, NULL);
    name = json_array_get(json_object_get(p, "name"), 0);
    family = json_string_value(json_object_get(name, "family"));
    given =
        json_string_value(json_array_get(json_object_get(name, "given"), 0));
    birth = json_string_value(json_object_get(p, "birthDate"));
    gender = json_string_value(json_object_get(p, "gender"));
    mrn = mr_patient_mrn(p);
    age = birth ? mr_age_years(birth, mr_time_now_ms()) : -1;
    if (s->n == 0)
        err = mr_buf_addf(s->out, "%-10s %-28s %-10s %4s  %s\n", "MRN", "NAME",
                          "BORN", "AGE", "GENDER");
    else
        err = MR_OK;
    if (!err) {
        char nm[160], agebuf[16] = "";
        snprintf(nm, sizeof(nm), "%s%s%s", family ? family : "",
                 family && given ? ", " : "", given ? given : "");
        if (age >= 0)
            snprintf(agebuf, sizeof(agebuf), "%d", age);
        /* Pad by characters, not bytes, so accented names line up. */
        size_t chars = 0, k;
        for (k = 0; nm[k]; k++)
            chars += ((unsigned char)nm[k] & 0xc0) != 0x80;
        err =
            mr_buf_addf(s->out, "%-10s %s%*s %-10s %4s  %s\n", mrn ? mrn : "-",
                        nm, chars < 28 ? (int)(28 - chars) : 0, "",
                        birth ? birth : "", agebuf, gender ? gender : "");
    }
    json_decref(p);
    s->n++;
    return err ? (int)err : 0;
}

static int patient_search(int argc, char **argv)
{
    struct popts o;
    struct mr_records *r;
    struct mr_diag d;
    struct mr_buf q = MR_BUF_INIT(16384), out = MR_BUF_INIT(64u << 20);
    struct search_out so;
    enum mr_err err = MR_OK;
    int64_t total = 0;
    int rc;
    int i;

    if ((rc = parse("patient search", argc, argv, &o)))
        return rc < 0 ? 0 : rc;
    if (o.arg)
        return cli_usage("patient search", "unexpected argument \"%s\"", o.arg);
    if (o.name)
        err = add_param(&q, "name", o.name);
    if (!err && o.family)
        err = add_param(&q, "family", o.family);
    for (i = 0; !err && i < o.ngiven; i++)
        err = add_param(&q, "given", o.given[i]);
    if (!err && o.birth)
        err = add_param(&q, "birthdate", o.birth);
    if (!err && o.gender)
        err = add_param(&q, "gender", o.gender);
    if (!err && o.phone)
        err = add_param(&q, "phone", o.phone);
    if (!err && o.email)
        err = add_param(&q, "email", o.email);
    if (!err && o.address)
        err = add_param(&q, "address", o.address);
    if (!err && o.ident)
        err = add_param(&q, "identifier", o.ident);
    if (!err && o.count)
        err = add_param(&q, "_count", o.count);
    /* A raw FHIR query (already URL-encoded) for everything else:
     * _id, _lastUpdated, modifiers such as family:exact ... */
    if (!err && o.query && *o.query) {
        if (q.len)
            err = mr_buf_addc(&q, '&');
        if (!err)
            err = mr_buf_adds(&q, o.query);
    }
    if (err) {
        mr_buf_release(&q);
        return cli_usage("patient search", "search too long");
    }
    if (q.len == 0) {
        mr_buf_release(&q);
        return cli_usage("patient search",
                         "give at least one of --name, --family, --given, "
                         "--birth-date, --gender, --phone, --identifier, "
                         "--query");
    }
    r = cli_open(&o.c, 0);
    if (!r) {
        mr_buf_release(&q);
        return 1;
    }
    so.json = o.c.json;
    so.n = 0;
    so.out = &out;
    mr_diag_clear(&d);
    if (mr_records_search(r, &o.c.actor, "Patient", q.ptr, search_row, &so,
                          &total, &d)) {
        rc = cli_fail(&d);
    } else if (o.c.json) {
        printf("{\"resourceType\":\"Bundle\",\"type\":\"searchset\","
               "\"total\":%lld,\"entry\":[%s]}\n",
               (long long)total, out.ptr);
    } else {
        fputs(out.ptr, stdout);
        fprintf(stderr, "medrec: %lld match%s", (long long)total,
                total == 1 ? "" : "es");
        if (total > so.n)
            fprintf(stderr, " (showing %d; use --count)", so.n);
        fputc('\n', stderr);
    }
    mr_buf_release(&q);
    mr_buf_release(&out);
    mr_records_close(r);
    return rc;
}

static int patient_update(int argc, char **argv)
{
    struct popts o;
    struct mr_records *r;
    struct mr_result cur, res;
    struct mr_diag d;
    json_t *p = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = 0, from_file = 0;

    if ((rc = parse("patient update", argc, argv, &o)))
        return rc < 0 ? 0 : rc;
    if (!o.arg)
        return cli_usage("patient update", "which patient? give an MRN");
    if (!o.reason || !*o.reason)
        return cli_usage("patient update",
                         "--reason is required: say why the record "
                         "changes");
    if (o.ident)
        return cli_usage("patient update",
                         "--identifier is for add; edit identifiers with "
                         "--file");
    mr_diag_clear(&d);
    r = cli_open(&o.c, 0);
    if (!r)
        return 1;
    mr_result_init(&cur);
    mr_result_init(&res);
    if (mr_records_patient_by_mrn(r, &o.c.actor, o.arg, &cur, &d)) {
        rc = cli_fail(&d);
        goto done;
    }
    if (o.expect && o.expect != cur.meta.version) {
        mr_diag_set(&d, MR_ECONFLICT,
                    "Patient/%s: expected version %lld but the current "
                    "version is %lld; nothing changed",
                    cur.meta.id, o.expect, (long long)cur.meta.version);
        rc = cli_fail(&d);
        goto done;
    }
    if (o.file) {
        from_file = 1;
        text = cli_read_file(o.file, MR_MAX_RESOURCE_BYTES, &len, &d);
        if (!text) {
            rc = cli_fail(&d);
            goto done;
        }
    } else {
        p = json_loadb(cur.json.ptr, cur.json.len, JSON_DECODE_ANY, NULL);
        if (!p) {
            mr_diag_set(&d, MR_ECORRUPT, "stored Patient/%s is unreadable",
                        cur.meta.id);
            rc = cli_fail(&d);
            goto done;
        }
        json_object_del(p, "meta");
        apply(p, &o);
        text = dump(p);
        len = strlen(text);
    }
    if (mr_records_update(r, &o.c.actor, "Patient", cur.meta.id, text, len,
                          o.expect ? o.expect : cur.meta.version, o.reason,
                          &res, &d)) {
        rc = cli_fail(&d);
        goto done;
    }
    if (o.c.json)
        printf("%s\n", res.json.ptr);
    else
        printf("Patient/%s version %lld\n", res.meta.id,
               (long long)res.meta.version);
done:
    if (from_file)
        mr_free(text);
    else
        free(text);
    json_decref(p);
    mr_result_release(&cur);
    mr_result_release(&res);
    mr_records_close(r);
    return rc;
}

int cmd_patient(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "add"))
        return patient_add(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show"))
        return patient_show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "search"))
        return patient_search(argc - 1, argv + 1);
    if (!strcmp(argv[1], "update"))
        return patient_update(argc - 1, argv + 1);
    return cli_usage("patient", "unknown subcommand \"%s\"", argv[1]);
}
