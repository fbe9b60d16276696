/* Unit tests for the search features through the records API on a
 * temporary database: _sort, _include/_revinclude, _summary=count,
 * _elements, chained parameters, type/system history, Patient
 * $everything, lenient handling of unknown parameters, and SQL injection
 * attempts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "fhir/search.h"
#include "records/records.h"

static const struct mr_actor ACTOR = {"tester", NULL, "unit-test", NULL, 1};

struct fx {
    char dir[64];
    char path[128];
    struct mr_records *r;
};

static void rm_db(const char *path)
{
    char p[160];
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s.audit-key", path);
    unlink(p);
    unlink(path);
}

static void put(struct mr_records *r, const char *type, const char *id,
                const char *json)
{
    struct mr_diag d;
    enum mr_err err;

    mr_diag_clear(&d);
    err = mr_records_put(r, &ACTOR, type, id, json, strlen(json), 0, NULL,
                         MR_WRITE_UPSERT | MR_WRITE_FORCE, NULL, NULL, &d);
    if (err)
        fail_msg("put %s/%s: %s", type, id, mr_diag_msg(&d));
}

#define PAT(fam, giv, bd, g)                                                   \
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"" fam               \
    "\",\"given\":[\"" giv "\"]}]" bd ",\"gender\":\"" g "\"}"
#define OBS(subj, code, val, extra)                                            \
    "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{"        \
    "\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"" code "\"}]},"   \
    "\"subject\":{\"reference\":\"" subj                                       \
    "\"},\"valueQuantity\":{\"value\":" val "}" extra "}"

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct mr_diag d;

    snprintf(f->dir, sizeof(f->dir), "/tmp/mr-test-searchf-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/a.db", f->dir);
    if (mr_records_open(f->path, MR_STORE_CREATE, &f->r, &d)) {
        fprintf(stderr, "open: %s\n", mr_diag_msg(&d));
        return -1;
    }
    put(f->r, "Patient", "p1",
        PAT("Smith", "Anna", ",\"birthDate\":\"1980-01-01\"", "female"));
    put(f->r, "Patient", "p2",
        PAT("Jones", "Bob", ",\"birthDate\":\"1990-05-05\"", "male"));
    put(f->r, "Patient", "p3",
        PAT("Adams", "Cara", ",\"birthDate\":\"1970-03-03\"", "female"));
    put(f->r, "Patient", "p4", PAT("Zed", "Dan", "", "male"));
    put(f->r, "Encounter", "e1",
        "{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{"
        "\"code\":\"AMB\"},\"subject\":{\"reference\":\"Patient/p1\"}}");
    put(f->r, "Observation", "o1",
        OBS("Patient/p1", "1", "5.50",
            ",\"encounter\":{\"reference\":\"Encounter/e1\"}"));
    put(f->r, "Observation", "o2", OBS("Patient/p1", "2", "7", ""));
    put(f->r, "Observation", "o3", OBS("Patient/p2", "1", "6", ""));
    /* Outside any compartment of interest. */
    put(f->r, "Organization", "g1",
        "{\"resourceType\":\"Organization\",\"name\":\"Clinic\"}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mr_records_close(f->r);
    rm_db(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* Results as "m:Type/id i:Type/id ..." (m match, i include). */
struct got {
    char s[4096];
    char last_json[4096];
};

static void add_got(struct got *g, const char *tag, const struct mr_version *m,
                    const char *json, size_t len)
{
    size_t n = strlen(g->s);
    snprintf(g->s + n, sizeof(g->s) - n, "%s%s:%s/%s", n ? " " : "", tag,
             m->type, m->id);
    snprintf(g->last_json, sizeof(g->last_json), "%.*s", (int)len, json);
}

static int got_match(void *ctx, const struct mr_version *m, const char *json,
                     size_t len)
{
    add_got(ctx, "m", m, json, len);
    return 0;
}

static int got_include(void *ctx, const struct mr_version *m, const char *json,
                       size_t len)
{
    add_got(ctx, "i", m, json, len);
    return 0;
}

static enum mr_err search(struct fx *f, const char *type, const char *q,
                          int flags, struct got *g, struct mr_search_info *info,
                          struct mr_diag *d)
{
    memset(g, 0, sizeof(*g));
    mr_diag_clear(d);
    return mr_records_search_ex(f->r, &ACTOR, type, q, flags, got_match,
                                got_include, g, info, d);
}

static void expect(struct fx *f, const char *type, const char *q,
                   const char *want)
{
    struct got g;
    struct mr_search_info info;
    struct mr_diag d;
    enum mr_err err = search(f, type, q, 0, &g, &info, &d);

    if (err)
        fail_msg("%s?%s: %s", type, q, mr_diag_msg(&d));
    if (strcmp(g.s, want) != 0)
        fail_msg("%s?%s:\n  got  %s\n  want %s", type, q, g.s, want);
}

static void refused(struct fx *f, const char *type, const char *q,
                    const char *msg_part)
{
    struct got g;
    struct mr_diag d;
    enum mr_err err = search(f, type, q, 0, &g, NULL, &d);

    if (err != MR_EINVALID)
        fail_msg("%s?%s: want MR_EINVALID, got %s (%s)", type, q,
                 mr_errname(err), g.s);
    if (msg_part && !strstr(mr_diag_msg(&d), msg_part))
        fail_msg("%s?%s: message \"%s\" lacks \"%s\"", type, q, mr_diag_msg(&d),
                 msg_part);
}

static int64_t count_resources(struct fx *f)
{
    struct got g;
    struct mr_search_info info;
    struct mr_diag d;
    int64_t n = 0;
    static const char *const types[] = {"Patient", "Observation", "Encounter",
                                        "Organization"};

    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            search(f, types[i], "_summary=count", 0, &g, &info, &d), MR_OK);
        n += info.total;
    }
    return n;
}

/* ---- _sort ------------------------------------------------------------ */

static void test_sort(void **state)
{
    struct fx *f = *state;

    expect(f, "Patient", "_sort=birthdate",
           "m:Patient/p3 m:Patient/p1 m:Patient/p2 m:Patient/p4");
    /* Missing values last either way. */
    expect(f, "Patient", "_sort=-birthdate",
           "m:Patient/p2 m:Patient/p1 m:Patient/p3 m:Patient/p4");
    expect(f, "Patient", "_sort=family",
           "m:Patient/p3 m:Patient/p2 m:Patient/p1 m:Patient/p4");
    expect(f, "Patient", "_sort=-_id",
           "m:Patient/p4 m:Patient/p3 m:Patient/p2 m:Patient/p1");
    /* Token, then ties broken by creation order. */
    expect(f, "Patient", "_sort=gender,-birthdate",
           "m:Patient/p1 m:Patient/p3 m:Patient/p2 m:Patient/p4");
    expect(f, "Observation", "_sort=-value-quantity",
           "m:Observation/o2 m:Observation/o3 m:Observation/o1");
    expect(f, "Patient", "_sort=-_lastUpdated,-_id&_count=1", "m:Patient/p4");
    expect(f, "Patient", "_sort=birthdate&_count=2&_offset=1",
           "m:Patient/p1 m:Patient/p2");
    refused(f, "Patient", "_sort=link", "cannot sort");
    refused(f, "Patient", "_sort=nosuch",
            "\"nosuch\" is not a search parameter");
    refused(f, "Patient", "_sort=", "empty");
    refused(f, "Patient", "_sort=-", "empty");
}

/* ---- _include / _revinclude ------------------------------------------- */

static void test_include(void **state)
{
    struct fx *f = *state;

    /* The patient once although two matches refer to it. */
    expect(f, "Observation", "subject=Patient/p1&_include=Observation:subject",
           "m:Observation/o1 m:Observation/o2 i:Patient/p1");
    expect(f, "Observation", "_include=Observation:subject:Patient",
           "m:Observation/o1 m:Observation/o2 m:Observation/o3 "
           "i:Patient/p1 i:Patient/p2");
    expect(f, "Observation", "_id=o1&_include=*",
           "m:Observation/o1 i:Patient/p1 i:Encounter/e1");
    expect(f, "Observation", "_id=o1&_include=Observation:*",
           "m:Observation/o1 i:Patient/p1 i:Encounter/e1");
    /* Target type filters. */
    expect(f, "Observation",
           "_id=o1&_include=Observation:encounter:Encounter"
           "&_include=Observation:subject:Group",
           "m:Observation/o1 i:Encounter/e1");
    /* Only the page's matches are followed. */
    expect(f, "Observation", "_count=1&_offset=2&_include=Observation:subject",
           "m:Observation/o3 i:Patient/p2");
    expect(f, "Patient", "_id=p1&_revinclude=Observation:subject",
           "m:Patient/p1 i:Observation/o1 i:Observation/o2");
    expect(f, "Patient",
           "_id=p1,p2&_revinclude=Observation:subject"
           "&_revinclude=Encounter:subject",
           "m:Patient/p1 m:Patient/p2 i:Encounter/e1 i:Observation/o1 "
           "i:Observation/o2 i:Observation/o3");
    /* A match is never repeated as an include. */
    expect(f, "Patient", "_id=p1&_revinclude=Patient:link", "m:Patient/p1");
    expect(f, "Encounter",
           "_revinclude=Observation:encounter"
           "&_include=Encounter:subject",
           "m:Encounter/e1 i:Patient/p1 i:Observation/o1");
    refused(f, "Observation", "_include:iterate=Observation:subject",
            "one level");
    refused(f, "Observation", "_include=Patient:organization", "searched type");
    refused(f, "Observation", "_include=Observation:code", "not a reference");
    refused(f, "Observation", "_include=Observation", "Type:parameter");
    refused(f, "Observation", "_include=Observation:subject:Nope", "target");
    refused(f, "Patient", "_revinclude=Nope:subject", "unknown resource type");
}

/* ---- _summary and _elements ------------------------------------------- */

static void test_summary_elements(void **state)
{
    struct fx *f = *state;
    struct got g;
    struct mr_search_info info;
    struct mr_diag d;

    assert_int_equal(search(f, "Observation",
                            "subject=Patient/p1"
                            "&_summary=count"
                            "&_include=Observation:subject",
                            0, &g, &info, &d),
                     MR_OK);
    assert_int_equal(info.total, 2);
    assert_true(info.summary_count);
    assert_string_equal(g.s, "");

    assert_int_equal(search(f, "Observation", "_id=o1&_elements=value,status",
                            0, &g, &info, &d),
                     MR_OK);
    assert_string_equal(g.s, "m:Observation/o1");
    /* Kept members keep their bytes (5.50, not 5.5). */
    assert_non_null(strstr(g.last_json, "\"valueQuantity\":{\"value\":5.50}"));
    assert_non_null(strstr(g.last_json, "\"status\":\"final\""));
    assert_non_null(strstr(g.last_json, "\"id\":\"o1\""));
    assert_non_null(strstr(g.last_json, "\"versionId\""));
    assert_non_null(strstr(g.last_json, "SUBSETTED"));
    assert_null(strstr(g.last_json, "\"subject\""));
    assert_null(strstr(g.last_json, "\"code\":{"));

    refused(f, "Patient", "_elements=name,'--", "element name");
    refused(f, "Patient", "_summary=true", "not supported");
}

/* ---- chained parameters ----------------------------------------------- */

static void test_chain(void **state)
{
    struct fx *f = *state;

    expect(f, "Observation", "subject:Patient.name=smith",
           "m:Observation/o1 m:Observation/o2");
    expect(f, "Observation", "patient.family=jones", "m:Observation/o3");
    expect(f, "Observation", "patient.birthdate=lt1985",
           "m:Observation/o1 m:Observation/o2");
    expect(f, "Observation", "patient.gender=male", "m:Observation/o3");
    expect(f, "Observation", "patient.gender:not=male",
           "m:Observation/o1 m:Observation/o2");
    expect(f, "Observation", "subject:Patient.family:exact=Smith&code=2",
           "m:Observation/o2");
    expect(f, "Observation", "encounter:Encounter.status=finished",
           "m:Observation/o1");
    expect(f, "Observation", "patient.name=nobody", "");
    /* Several targets, only one of which has the parameter. */
    expect(f, "Observation", "subject.gender=female",
           "m:Observation/o1 m:Observation/o2");
    refused(f, "Patient", "general-practitioner.name=x", "ambiguous");
    refused(f, "Observation", "subject.name.family=x", "one level");
    refused(f, "Observation", "code.name=x", "not a reference");
    refused(f, "Observation", "subject:Encounter.status=x", "target type");
    refused(f, "Observation", "patient.name:missing=true", "missing");
    refused(f, "Observation", "patient.nosuch=x", "not a supported");
}

/* ---- history ---------------------------------------------------------- */

static int got_hist(void *ctx, const struct mr_version *m, const char *json,
                    size_t len)
{
    struct got *g = ctx;
    size_t n = strlen(g->s);
    (void)json;
    (void)len;
    snprintf(g->s + n, sizeof(g->s) - n, "%s%s/%s/%lld", n ? " " : "", m->type,
             m->id, (long long)m->version);
    return 0;
}

static void test_history(void **state)
{
    struct fx *f = *state;
    struct got g;
    struct mr_diag d;
    int64_t total = 0;

    put(f->r, "Patient", "p2",
        PAT("Jones", "Robert", ",\"birthDate\":\"1990-05-05\"", "male"));
    memset(&g, 0, sizeof(g));
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, "Patient", NULL,
                                            "_count=3", got_hist, &g, &total,
                                            NULL, &d),
                     MR_OK);
    assert_int_equal(total, 5);
    assert_string_equal(g.s, "Patient/p2/2 Patient/p4/1 Patient/p3/1");

    memset(&g, 0, sizeof(g));
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL,
                                            "_count=2", got_hist, &g, &total,
                                            NULL, &d),
                     MR_OK);
    assert_int_equal(total, 10);
    assert_string_equal(g.s, "Patient/p2/2 Organization/g1/1");

    memset(&g, 0, sizeof(g));
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL,
                                            "_since=2999-01-01T00%3A00%3A00Z",
                                            got_hist, &g, &total, NULL, &d),
                     MR_OK);
    assert_int_equal(total, 0);
    assert_string_equal(g.s, "");
    assert_int_equal(
        mr_records_history_all(f->r, &ACTOR, NULL, NULL,
                               "_since=2000-01-01T00:00:00%2B01:00", got_hist,
                               &g, &total, NULL, &d),
        MR_OK);
    assert_int_equal(total, 10);

    assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL,
                                            "_since=2020-01-01", got_hist, &g,
                                            &total, NULL, &d),
                     MR_EINVALID);
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL,
                                            "_count=0", got_hist, &g, &total,
                                            NULL, &d),
                     MR_EINVALID);
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL, "name=x",
                                            got_hist, &g, &total, NULL, &d),
                     MR_EINVALID);
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, "Nope", NULL, "",
                                            got_hist, &g, &total, NULL, &d),
                     MR_EINVALID);
    /* Paging by cursor: pages of 3 through the system history give every
     * version once, newest first, and a write in between does not shift
     * the pages already cut. */
    {
        char all[4096] = "", q[64] = "_count=3";
        int64_t next = 0;
        int pages = 0;
        memset(&g, 0, sizeof(g));
        assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL,
                                                "_count=100", got_hist, &g,
                                                &total, &next, &d),
                         MR_OK);
        assert_int_equal(next, 0);
        snprintf(all, sizeof(all), "%s", g.s);
        char walked[4096] = "";
        do {
            memset(&g, 0, sizeof(g));
            assert_int_equal(mr_records_history_all(f->r, &ACTOR, NULL, NULL, q,
                                                    got_hist, &g, &total, &next,
                                                    &d),
                             MR_OK);
            assert_int_equal(total, pages == 0 ? 10 : 11);
            assert_true(strlen(walked) + strlen(g.s) + 2 < sizeof(walked));
            if (walked[0])
                strcat(walked, " ");
            strcat(walked, g.s);
            if (pages == 0) /* a new version after the first page */
                put(f->r, "Patient", "p3",
                    PAT("Later", "Ann", ",\"birthDate\":\"1991-05-05\"",
                        "female"));
            snprintf(q, sizeof(q), "_count=3&_page_after=%lld",
                     (long long)next);
            pages++;
        } while (next && pages < 10);
        assert_int_equal(pages, 4);
        assert_string_equal(walked, all);
    }
    /* Instance history: its own versions, a missing resource is 404. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, "Patient", "p3",
                                            "_count=1", got_hist, &g, &total,
                                            NULL, &d),
                     MR_OK);
    assert_int_equal(total, 2);
    assert_string_equal(g.s, "Patient/p3/2");
    assert_int_equal(mr_records_history_all(f->r, &ACTOR, "Patient", "nosuch",
                                            "", got_hist, &g, &total, NULL, &d),
                     MR_ENOTFOUND);
}

/* ---- $everything ------------------------------------------------------ */

struct audit_ctx {
    int reads;
    char query[64];
};

static int audit_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct audit_ctx *a = ctx;
    (void)seq;
    if (!strcmp(e->action, "read")) {
        a->reads++;
        snprintf(a->query, sizeof(a->query), "%s", e->query ? e->query : "");
    }
    return 0;
}

static void test_everything(void **state)
{
    struct fx *f = *state;
    struct got g;
    struct mr_diag d;
    struct audit_ctx a = {0, ""};
    int64_t total = 0;

    memset(&g, 0, sizeof(g));
    assert_int_equal(
        mr_records_everything(f->r, &ACTOR, "p1", got_match, &g, &total, &d),
        MR_OK);
    assert_string_equal(g.s, "m:Patient/p1 m:Encounter/e1 m:Observation/o1 "
                             "m:Observation/o2");
    assert_int_equal(total, 4);
    assert_int_equal(
        mr_records_audit_scan(f->r, &ACTOR, "Patient/p1", audit_cb, &a, &d),
        MR_OK);
    assert_int_equal(a.reads, 1);
    assert_string_equal(a.query, "$everything");

    memset(&g, 0, sizeof(g));
    assert_int_equal(
        mr_records_everything(f->r, &ACTOR, "p3", got_match, &g, &total, &d),
        MR_OK);
    assert_string_equal(g.s, "m:Patient/p3");
    assert_int_equal(
        mr_records_everything(f->r, &ACTOR, "nope", got_match, &g, &total, &d),
        MR_ENOTFOUND);
    assert_int_equal(
        mr_records_everything(f->r, &ACTOR, "a'b", got_match, &g, &total, &d),
        MR_EINVALID);
    /* The generated compartment knows Observation.subject. */
    int found = 0;
    for (size_t i = 0; i < mr_patient_compartment_count; i++)
        found |= !strcmp(mr_patient_compartment[i].resource, "Observation") &&
                 !strcmp(mr_patient_compartment[i].code, "subject");
    assert_true(found);
}

/* ---- Prefer: handling ------------------------------------------------- */

static void test_lenient(void **state)
{
    struct fx *f = *state;
    struct got g;
    struct mr_search_info info;
    struct mr_diag d;

    refused(f, "Patient", "nosuch=1&gender=male", "nosuch");
    assert_int_equal(search(f, "Patient",
                            "nosuch=1&gender=male&x.y=2"
                            "&_sort=birthdate",
                            MR_SEARCH_LENIENT, &g, &info, &d),
                     MR_OK);
    assert_string_equal(g.s, "m:Patient/p2 m:Patient/p4");
    assert_string_equal(info.ignored, "nosuch, x.y");
    /* An unknown sort is refused even so: it cannot be left out. */
    assert_int_equal(search(f, "Patient", "gender=male&_sort=bad",
                            MR_SEARCH_LENIENT, &g, &info, &d),
                     MR_EINVALID);
    assert_int_equal(
        search(f, "Patient", "gender=male", MR_SEARCH_LENIENT, &g, &info, &d),
        MR_OK);
    assert_string_equal(info.ignored, "");
    /* Lenient is about unknown names, not bad values. */
    assert_int_equal(search(f, "Patient", "birthdate=notadate",
                            MR_SEARCH_LENIENT, &g, &info, &d),
                     MR_EINVALID);
}

/* ---- injection -------------------------------------------------------- */

static void test_injection(void **state)
{
    struct fx *f = *state;
    int64_t before = count_resources(f);

    refused(f, "Patient", "_sort=name;DROP TABLE resource", NULL);
    refused(f, "Patient", "_sort=name%27--", NULL);
    refused(f, "Patient", "_sort=birthdate%20DESC", NULL);
    refused(f, "Patient", "_include=Patient:link;DROP TABLE version", NULL);
    refused(f, "Patient", "_elements=name)--", NULL);
    expect(f, "Patient", "name=%27%20OR%201%3D1--", "");
    expect(f, "Patient", "family=x%27);DROP%20TABLE%20resource;--", "");
    expect(f, "Observation", "subject:Patient.name=x%27--", "");
    expect(f, "Observation", "patient.identifier=a%27|b--", "");
    expect(f, "Patient", "_id=p1%27--", "");
    assert_int_equal(count_resources(f), before);
    expect(f, "Patient", "_sort=_id&_count=1", "m:Patient/p1");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sort),    T(test_include),   T(test_summary_elements),
        T(test_chain),   T(test_history),   T(test_everything),
        T(test_lenient), T(test_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
