/*
 * GET /fhir/AuditEvent: the audit trail as FHIR R4 AuditEvent resources,
 * for auditors (the policy decides; the search is itself audited by the
 * records service). Parameters: patient, agent (user), action (medrec's:
 * read, search, create, disclose ...), type=disclosure, date (ge/gt/le/lt
 * prefixes), _sort on any of date, agent, action, outcome, patient, type,
 * source (leading "-" for descending), _count (default 100).
 */
#include "core/time.h"
#include "server/errmap.h"
#include "server/fhir_impl.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Entries one search may gather before it is sorted. */
#define AUDIT_MAX 10000

struct row {
    int64_t seq;
    json_t *ev;
    int64_t ts;
    char *key; /* the sort key */
};

struct gather {
    struct row *rows;
    size_t n, cap;
    const char *sort; /* field name */
    enum mr_err err;
};

static const char *action_code(const char *a)
{
    if (!strcmp(a, "create"))
        return "C";
    if (!strcmp(a, "update"))
        return "U";
    if (!strcmp(a, "delete"))
        return "D";
    if (!strcmp(a, "read") || !strcmp(a, "vread") || !strcmp(a, "search") ||
        !strcmp(a, "history") || !strcmp(a, "export"))
        return "R";
    return "E";
}

static json_t *event(int64_t seq, const struct mr_audit_entry *e)
{
    char id[32], when[32];
    json_t *ev, *entity = json_array(), *agent;
    int ok = e->outcome && !strcmp(e->outcome, "ok");

    snprintf(id, sizeof(id), "%lld", (long long)seq);
    mr_time_format(e->ts, when);
    agent = json_pack("{s:{s:s},s:b,s:[{s:s}]}", "who", "display",
                      e->actor ? e->actor : "unknown", "requestor", 1, "role",
                      "text", e->role ? e->role : "unknown");
    if (agent && e->source)
        json_object_set_new(
            agent, "network",
            json_pack("{s:s,s:s}", "address", e->source, "type", "2"));
    ev = json_pack(
        "{s:s,s:s,s:{s:s,s:s},s:[{s:s,s:s}],s:s,s:s,s:s,s:s,s:[o],s:{s:{s:s}}}",
        "resourceType", "AuditEvent", "id", id, "type", "system",
        "urn:medrec:audit-action", "code", e->action ? e->action : "unknown",
        "subtype", "system", "urn:medrec:audit-action", "code",
        e->action ? e->action : "unknown", "action",
        action_code(e->action ? e->action : ""), "recorded", when, "outcome",
        ok ? "0" : "4", "outcomeDesc", e->outcome ? e->outcome : "ok", "agent",
        agent, "source", "observer", "display", "medrec");
    if (!ev || !entity) {
        json_decref(ev);
        json_decref(entity);
        return NULL;
    }
    if (e->type && e->id) {
        char ref[160];
        snprintf(ref, sizeof(ref), "%s/%s", e->type, e->id);
        json_array_append_new(entity,
                              json_pack("{s:{s:s}}", "what", "reference", ref));
    }
    if (e->patient && !(e->type && e->id && !strcmp(e->type, "Patient") &&
                        !strcmp(e->patient + 8, e->id)))
        json_array_append_new(
            entity,
            json_pack("{s:{s:s},s:{s:s,s:s,s:s}}", "what", "reference",
                      e->patient, "role", "system",
                      "http://terminology.hl7.org/CodeSystem/object-role",
                      "code", "1", "display", "Patient"));
    if (e->query && *e->query) {
        size_t n = strlen(e->query);
        size_t cap =
            sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        if (b64) {
            sodium_bin2base64(b64, cap, (const unsigned char *)e->query, n,
                              sodium_base64_VARIANT_ORIGINAL);
            json_array_append_new(entity, json_pack("{s:s}", "query", b64));
            free(b64);
        }
    }
    if (json_array_size(entity))
        json_object_set_new(ev, "entity", entity);
    else
        json_decref(entity);
    if (e->detail && !strncmp(e->detail, "emergency", 9))
        json_object_set_new(
            ev, "purposeOfEvent",
            json_pack("[{s:[{s:s,s:s}],s:s}]", "coding", "system",
                      "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                      "code", "ETREAT", "text", e->detail));
    else if (e->detail)
        json_object_set_new(ev, "outcomeDesc",
                            json_string(ok ? e->detail : e->outcome));
    return ev;
}

static const char *sort_field(const char *f, const struct mr_audit_entry *e)
{
    if (!strcmp(f, "agent"))
        return e->actor;
    if (!strcmp(f, "action") || !strcmp(f, "type") || !strcmp(f, "subtype"))
        return e->action;
    if (!strcmp(f, "outcome"))
        return e->outcome;
    if (!strcmp(f, "patient"))
        return e->patient;
    if (!strcmp(f, "source") || !strcmp(f, "address"))
        return e->source;
    if (!strcmp(f, "entity"))
        return e->id;
    return NULL;
}

static int gather(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct gather *g = ctx;
    struct row *r;
    const char *k;

    if (g->n == AUDIT_MAX) {
        g->err = MR_ETOOBIG;
        return (int)MR_ETOOBIG;
    }
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 64;
        struct row *nv = realloc(g->rows, ncap * sizeof(*nv));
        if (!nv)
            return (int)MR_ENOMEM;
        g->rows = nv;
        g->cap = ncap;
    }
    r = &g->rows[g->n];
    r->seq = seq;
    r->ts = e->ts;
    r->ev = event(seq, e);
    k = g->sort ? sort_field(g->sort, e) : NULL;
    r->key = strdup(k ? k : "");
    if (!r->ev || !r->key) {
        json_decref(r->ev);
        free(r->key);
        return (int)MR_ENOMEM;
    }
    g->n++;
    return 0;
}

static int desc_order;
static int by_key(const void *x, const void *y)
{
    const struct row *a = x, *b = y;
    int c = strcmp(a->key, b->key);

    if (!c)
        c = a->seq < b->seq ? -1 : a->seq > b->seq;
    return desc_order ? -c : c;
}
static int by_date(const void *x, const void *y)
{
    const struct row *a = x, *b = y;
    int c = a->ts < b->ts ? -1 : a->ts > b->ts;

    if (!c)
        c = a->seq < b->seq ? -1 : a->seq > b->seq;
    return desc_order ? -c : c;
}

/* One query parameter (decoded by libmicrohttpd and re-encoded by http.c:
 * the values used here carry no escapes worth decoding beyond %XX). */
static int param(const char *q, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = q;

    while (p && *p) {
        if (!strncmp(p, name, n) && p[n] == '=') {
            const char *v = p + n + 1;
            size_t i = 0;
            while (*v && *v != '&' && i + 1 < cap) {
                if (*v == '%' && v[1] && v[2]) {
                    char hex[3] = {v[1], v[2], 0};
                    out[i++] = (char)strtol(hex, NULL, 16);
                    v += 3;
                } else {
                    out[i++] = *v == '+' ? ' ' : *v;
                    v++;
                }
            }
            out[i] = '\0';
            return 1;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return 0;
}

void mr__fhir_audit(const struct mr_http_req *req, struct mr_http_resp *resp)
{
    struct mr_audit_filter f;
    struct gather g = {0};
    struct mr_diag d;
    char patient[128], agent[128], action[64], type[64], date[64], sort[64],
        count[16], ref[140];
    long cnt = 100;
    size_t i;
    json_t *b, *entries;
    char *text;
    enum mr_err err;

    memset(&f, 0, sizeof(f));
    mr_diag_clear(&d);
    if (param(req->query, "patient", patient, sizeof(patient))) {
        if (strncmp(patient, "Patient/", 8))
            snprintf(ref, sizeof(ref), "Patient/%s", patient);
        else
            snprintf(ref, sizeof(ref), "%s", patient);
        f.patient = ref;
    }
    if (param(req->query, "agent", agent, sizeof(agent)) ||
        param(req->query, "user", agent, sizeof(agent)))
        f.actor = agent;
    if (param(req->query, "action", action, sizeof(action)))
        f.action = action;
    if (param(req->query, "type", type, sizeof(type))) {
        if (!strcmp(type, "disclosure"))
            f.action = "disclose";
        else if (!strcmp(type, "emergency"))
            f.emergency = 1;
        else
            f.action = type;
    }
    if (param(req->query, "date", date, sizeof(date))) {
        struct mr_daterange dr;
        const char *v = date;
        int ge = 1;
        if (!strncmp(v, "ge", 2) || !strncmp(v, "gt", 2) ||
            !strncmp(v, "le", 2) || !strncmp(v, "lt", 2)) {
            ge = v[0] == 'g';
            v += 2;
        }
        if (mr_date_parse(v, strlen(v), MR_DATE_DATETIME, &dr)) {
            mr__fhir_fail(resp, MR_EINVALID,
                          "date: expected [ge|gt|le|lt]YYYY-MM-DD[Thh:mm:ss]");
            return;
        }
        if (ge)
            f.since = dr.lo;
        else
            f.until = dr.hi;
    }
    if (param(req->query, "_count", count, sizeof(count))) {
        char *end;
        cnt = strtol(count, &end, 10);
        if (*end || cnt < 1 || cnt > 1000) {
            mr__fhir_fail(resp, MR_EINVALID, "_count: 1 to 1000");
            return;
        }
    }
    desc_order = 1; /* newest first unless asked otherwise */
    if (param(req->query, "_sort", sort, sizeof(sort))) {
        const char *s = sort;
        desc_order = *s == '-';
        if (*s == '-')
            s++;
        if (strcmp(s, "date") && strcmp(s, "agent") && strcmp(s, "action") &&
            strcmp(s, "outcome") && strcmp(s, "patient") &&
            strcmp(s, "source") && strcmp(s, "type") && strcmp(s, "subtype") &&
            strcmp(s, "address") && strcmp(s, "entity")) {
            mr__fhir_fail(resp, MR_EINVALID,
                          "_sort: date, agent, action, outcome, patient, "
                          "type, source or entity");
            return;
        }
        memmove(sort, s, strlen(s) + 1);
        g.sort = strcmp(sort, "date") ? sort : NULL;
    }
    err =
        mr_records_audit_search(req->records, &req->actor, &f, gather, &g, &d);
    if (err) {
        if (g.err == MR_ETOOBIG)
            mr__fhir_fail(resp, MR_ETOOBIG,
                          "more than 10000 audit entries match; narrow the "
                          "search (patient, agent, action, date)");
        else
            mr__fhir_fail_diag(resp, &d);
        goto done;
    }
    if (g.n) /* qsort must not be given NULL, even for no rows */
        qsort(g.rows, g.n, sizeof(*g.rows), g.sort ? by_key : by_date);
    entries = json_array();
    for (i = 0; i < g.n && (long)i < cnt && entries; i++)
        json_array_append_new(
            entries,
            json_pack("{s:s+,s:O}", "fullUrl", "AuditEvent/",
                      json_string_value(json_object_get(g.rows[i].ev, "id")),
                      "resource", g.rows[i].ev));
    b = entries
            ? json_pack("{s:s,s:s,s:I,s:o}", "resourceType", "Bundle", "type",
                        "searchset", "total", (json_int_t)g.n, "entry", entries)
            : NULL;
    text = b ? json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(b);
    if (!text || mr_buf_adds(&resp->body, text))
        mr__fhir_fail(resp, MR_ENOMEM, NULL);
    else
        resp->status = 200;
    free(text);
done:
    for (i = 0; i < g.n; i++) {
        json_decref(g.rows[i].ev);
        free(g.rows[i].key);
    }
    free(g.rows);
}
