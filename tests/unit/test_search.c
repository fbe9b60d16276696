/* Unit tests for fhir/search: query-string parsing into struct mr_query,
 * against the generated R4 search-parameter tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/time.h"
#include "fhir/search.h"

#define DAY_MS 86400000LL

static enum mr_err parse(struct mr_query *q, const char *type, const char *s,
                         struct mr_diag *d)
{
    mr_diag_clear(d);
    return mr_query_parse(q, type, s, strlen(s), d);
}

/* Parse s, expect success, return the query (release it). */
static void ok(struct mr_query *q, const char *type, const char *s)
{
    struct mr_diag d;
    enum mr_err err = parse(q, type, s, &d);
    if (err)
        fail_msg("parse(\"%s\") failed: %s", s, mr_diag_msg(&d));
}

static void bad(const char *type, const char *s, enum mr_err want,
                const char *msg)
{
    struct mr_query q;
    struct mr_diag d;
    enum mr_err err = parse(&q, type, s, &d);
    if (err != want)
        fail_msg("parse(\"%s\") = %s, want %s (%s)", s, mr_errname(err),
                 mr_errname(want), mr_diag_msg(&d));
    if (msg && strcmp(d.msg, msg) != 0)
        fail_msg("parse(\"%s\") message \"%s\", want \"%s\"", s, d.msg, msg);
    mr_query_release(&q);
}

static void test_basic(void **state)
{
    (void)state;
    struct mr_query q;

    ok(&q, "Patient", "name=Mu%C3%B1oz&birthdate=ge1984-03-09&_count=20");
    assert_int_equal(q.n, 2);
    assert_int_equal(q.count, 20);
    assert_int_equal(q.offset, 0);
    assert_false(q.summary_count);

    const struct mr_q_clause *c = &q.clauses[0];
    assert_ptr_equal(c->param, mr_search_param_find("Patient", "name"));
    assert_int_equal(c->special, MR_Q_PARAM);
    assert_int_equal(c->kind, MR_IX_STRING);
    assert_int_equal(c->modifier, MR_MOD_NONE);
    assert_int_equal(c->nvals, 1);
    assert_string_equal(c->vals[0].s1, "munoz");

    c = &q.clauses[1];
    assert_int_equal(c->kind, MR_IX_DATE);
    assert_int_equal(c->vals[0].prefix, MR_PFX_GE);
    assert_int_equal(c->vals[0].lo, mr_days_from_civil(1984, 3, 9) * DAY_MS);
    assert_int_equal(c->vals[0].hi, c->vals[0].lo + DAY_MS);
    mr_query_release(&q);

    /* Defaults, empty query, leading '?', empty pieces. */
    ok(&q, "Patient", "");
    assert_int_equal(q.n, 0);
    assert_int_equal(q.count, MR_QUERY_DEFAULT_COUNT);
    mr_query_release(&q);
    ok(&q, "Patient", "?&&gender=female&");
    assert_int_equal(q.n, 1);
    assert_string_equal(q.clauses[0].vals[0].s2, "female");
    assert_null(q.clauses[0].vals[0].s1);
    mr_query_release(&q);
}

static void test_prefixes(void **state)
{
    (void)state;
    struct mr_query q;
    static const struct {
        const char *s;
        enum mr_prefix p;
    } cases[] = {
        {"eq", MR_PFX_EQ}, {"ne", MR_PFX_NE}, {"lt", MR_PFX_LT},
        {"gt", MR_PFX_GT}, {"le", MR_PFX_LE}, {"ge", MR_PFX_GE},
        {"sa", MR_PFX_SA}, {"eb", MR_PFX_EB}, {"ap", MR_PFX_AP},
        {"", MR_PFX_EQ},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "birthdate=%s1984", cases[i].s);
        ok(&q, "Patient", buf);
        assert_int_equal(q.clauses[0].vals[0].prefix, cases[i].p);
        assert_int_equal(q.clauses[0].vals[0].lo,
                         mr_days_from_civil(1984, 1, 1) * DAY_MS);
        mr_query_release(&q);
    }

    /* Dates with a time and zone; '+' must be percent-encoded. */
    ok(&q, "Observation", "date=lt2024-01-05T10:00:00%2B01:00");
    assert_int_equal(q.clauses[0].vals[0].prefix, MR_PFX_LT);
    assert_int_equal(q.clauses[0].vals[0].lo,
                     mr_days_from_civil(2024, 1, 5) * DAY_MS + 9 * 3600000LL);
    mr_query_release(&q);
}

static void test_tokens(void **state)
{
    (void)state;
    struct mr_query q;
    const struct mr_q_value *v;

    ok(&q, "Patient",
       "identifier=urn:mrn|12345,|nosys,plain,urn:mrn|&gender:not=male");
    assert_int_equal(q.n, 2);
    assert_int_equal(q.clauses[0].nvals, 4);
    v = q.clauses[0].vals;
    assert_string_equal(v[0].s1, "urn:mrn");
    assert_string_equal(v[0].s2, "12345");
    assert_string_equal(v[1].s1, "");
    assert_string_equal(v[1].s2, "nosys");
    assert_null(v[2].s1);
    assert_string_equal(v[2].s2, "plain");
    assert_string_equal(v[3].s1, "urn:mrn");
    assert_null(v[3].s2);
    assert_int_equal(q.clauses[1].modifier, MR_MOD_NOT);
    mr_query_release(&q);

    /* Escapes: \, and \| are literal. */
    ok(&q, "Patient", "identifier=a\\|b|c\\,d,e");
    assert_int_equal(q.clauses[0].nvals, 2);
    assert_string_equal(q.clauses[0].vals[0].s1, "a|b");
    assert_string_equal(q.clauses[0].vals[0].s2, "c,d");
    assert_string_equal(q.clauses[0].vals[1].s2, "e");
    mr_query_release(&q);

    /* Phone numbers are compared by their digits; emails are not. */
    ok(&q, "Patient",
       "phone=%2B1%20(555)%20010-0100&email=a1@b.org"
       "&telecom=555.0100");
    assert_string_equal(q.clauses[0].vals[0].s2, "15550100100");
    assert_string_equal(q.clauses[1].vals[0].s2, "a1@b.org");
    assert_string_equal(q.clauses[2].vals[0].s2, "5550100");
    mr_query_release(&q);

    /* :text searches the text as a folded string. */
    ok(&q, "Observation", "code:text=Heart%20R%C3%A1te");
    assert_int_equal(q.clauses[0].kind, MR_IX_STRING);
    assert_int_equal(q.clauses[0].modifier, MR_MOD_TEXT);
    assert_string_equal(q.clauses[0].vals[0].s1, "heart rate");
    mr_query_release(&q);

    ok(&q, "Patient", "active=true");
    assert_string_equal(q.clauses[0].vals[0].s2, "true");
    mr_query_release(&q);
}

static void test_strings(void **state)
{
    (void)state;
    struct mr_query q;

    ok(&q, "Patient",
       "family:exact=M%C3%BA%C3%B1oz&given:contains=ari"
       "&name=John+Smith,%C3%85se");
    assert_int_equal(q.clauses[0].modifier, MR_MOD_EXACT);
    assert_string_equal(q.clauses[0].vals[0].s2, "Múñoz");
    assert_string_equal(q.clauses[0].vals[0].s1, "munoz");
    assert_int_equal(q.clauses[1].modifier, MR_MOD_CONTAINS);
    assert_string_equal(q.clauses[1].vals[0].s1, "ari");
    assert_int_equal(q.clauses[2].nvals, 2);
    assert_string_equal(q.clauses[2].vals[0].s1, "john smith");
    assert_string_equal(q.clauses[2].vals[1].s1, "ase");
    mr_query_release(&q);
}

static void test_references(void **state)
{
    (void)state;
    struct mr_query q;
    const struct mr_search_param *subj =
        mr_search_param_find("Observation", "subject");

    ok(&q, "Observation",
       "patient=123&subject=Patient/9/_history/2"
       "&subject:Group=g1&subject=http://x.org/fhir/Patient/5");
    /* patient has one target type: qualified. */
    assert_int_equal(q.clauses[0].nvals, 1);
    assert_string_equal(q.clauses[0].vals[0].s1, "Patient/123");
    assert_string_equal(q.clauses[1].vals[0].s1, "Patient/9");
    assert_string_equal(q.clauses[2].vals[0].s1, "Group/g1");
    assert_string_equal(q.clauses[3].vals[0].s1, "http://x.org/fhir/Patient/5");
    mr_query_release(&q);

    /* subject has several targets: one value per target. */
    assert_non_null(subj);
    assert_true(subj->ntargets > 1);
    ok(&q, "Observation", "subject=abc,def");
    assert_int_equal(q.clauses[0].nvals, 2 * subj->ntargets);
    int found = 0;
    for (size_t i = 0; i < q.clauses[0].nvals; i++) {
        assert_non_null(q.clauses[0].vals[i].s1);
        found += strcmp(q.clauses[0].vals[i].s1, "Patient/abc") == 0 ||
                 strcmp(q.clauses[0].vals[i].s1, "Group/def") == 0;
    }
    assert_int_equal(found, 2);
    mr_query_release(&q);
}

static void test_quantity_number(void **state)
{
    (void)state;
    struct mr_query q;
    const struct mr_q_value *v;

    ok(&q, "Observation",
       "value-quantity=gt5.4|http://unitsofmeasure.org|mg,5.4||mg,le1e2");
    v = q.clauses[0].vals;
    assert_int_equal(q.clauses[0].kind, MR_IX_QUANTITY);
    assert_int_equal(v[0].prefix, MR_PFX_GT);
    assert_true(v[0].n == 5.4);
    assert_string_equal(v[0].s1, "http://unitsofmeasure.org");
    assert_string_equal(v[0].s2, "mg");
    assert_null(v[1].s1);
    assert_string_equal(v[1].s2, "mg");
    assert_int_equal(v[2].prefix, MR_PFX_LE);
    assert_true(v[2].n == 100.0);
    assert_null(v[2].s1);
    assert_null(v[2].s2);
    mr_query_release(&q);

    bad("Observation", "value-quantity=abc", MR_EINVALID, NULL);
    bad("Observation", "value-quantity=5|mg", MR_EINVALID, NULL);
    bad("Observation", "value-quantity=5|a|b|c", MR_EINVALID, NULL);

    /* A number parameter (RiskAssessment.probability is decimal). */
    const struct mr_search_param *num = NULL;
    for (size_t i = 0; i < mr_search_params_count && !num; i++)
        if (mr_search_params[i].type == MR_SP_NUMBER &&
            mr_search_params[i].npaths > 0)
            num = &mr_search_params[i];
    assert_non_null(num);
    char buf[128];
    snprintf(buf, sizeof(buf), "%s=ne-0.5", num->code);
    ok(&q, num->resource, buf);
    assert_int_equal(q.clauses[0].kind, MR_IX_NUMBER);
    assert_int_equal(q.clauses[0].vals[0].prefix, MR_PFX_NE);
    assert_true(q.clauses[0].vals[0].n == -0.5);
    mr_query_release(&q);
    snprintf(buf, sizeof(buf), "%s=1.2.3", num->code);
    bad(num->resource, buf, MR_EINVALID, NULL);
    snprintf(buf, sizeof(buf), "%s=nan", num->code);
    bad(num->resource, buf, MR_EINVALID, NULL);
}

static void test_specials(void **state)
{
    (void)state;
    struct mr_query q;

    ok(&q, "Patient",
       "_id=a,b&_lastUpdated=gt2024-01-01&_offset=40"
       "&_summary=count&_format=json&_pretty=true"
       "&_sort=-birthdate&_include=Patient:organization"
       "&_revinclude=Observation:subject&_elements=id"
       "&nosuch=1&subject.name=x&deceased=true"
       "&_sort=name");
    assert_int_equal(q.n, 2);
    assert_int_equal(q.clauses[0].special, MR_Q_ID);
    assert_null(q.clauses[0].param);
    assert_int_equal(q.clauses[0].nvals, 2);
    assert_string_equal(q.clauses[0].vals[1].s2, "b");
    assert_int_equal(q.clauses[1].special, MR_Q_LASTUPDATED);
    assert_int_equal(q.clauses[1].kind, MR_IX_DATE);
    assert_int_equal(q.clauses[1].vals[0].prefix, MR_PFX_GT);
    assert_int_equal(q.offset, 40);
    assert_true(q.summary_count);
    /* _sort, _include, _revinclude and _elements are parsed; unknown
     * names are reported, each once; _format and _pretty are ignored. */
    assert_int_equal(q.nsort, 2);
    assert_int_equal(q.sort[0].desc, 1);
    assert_int_equal(q.ninclude, 2);
    assert_int_equal(q.nelements, 1);
    static const char *const unknown[] = {"nosuch", "subject.name", "deceased"};
    assert_int_equal(q.nunknown, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(q.unknown[i], unknown[i]);
    mr_query_release(&q);

    /* Composite parameters are not supported: reported. */
    ok(&q, "Observation", "code-value-quantity=x$5");
    assert_int_equal(q.n, 0);
    assert_int_equal(q.nunknown, 1);
    mr_query_release(&q);
}

static void test_missing(void **state)
{
    (void)state;
    struct mr_query q;

    ok(&q, "Patient", "birthdate:missing=true&name:missing=false");
    assert_int_equal(q.n, 2);
    assert_int_equal(q.clauses[0].modifier, MR_MOD_MISSING);
    assert_int_equal(q.clauses[0].kind, MR_IX_DATE);
    assert_int_equal(q.clauses[0].vals[0].missing, 1);
    assert_int_equal(q.clauses[1].vals[0].missing, 0);
    mr_query_release(&q);
    bad("Patient", "birthdate:missing=yes", MR_EINVALID, NULL);
}

static void test_errors(void **state)
{
    (void)state;
    bad("Patient", "birthdate=1984-13", MR_EINVALID,
        "birthdate: \"1984-13\" is not a valid date");
    bad("Patient", "birthdate=ge1983-02-29", MR_EINVALID,
        "birthdate: \"ge1983-02-29\" is not a valid date");
    bad("Patient", "_count=0", MR_EINVALID,
        "_count: must be an integer 1..1000");
    bad("Patient", "_count=1001", MR_EINVALID, NULL);
    bad("Patient", "_count=abc", MR_EINVALID, NULL);
    bad("Patient", "_count=-5", MR_EINVALID, NULL);
    bad("Patient", "_count=", MR_EINVALID, NULL);
    bad("Patient", "_offset=-1", MR_EINVALID, NULL);
    bad("Patient", "name=", MR_EINVALID, "name: empty value");
    bad("Patient", "name", MR_EINVALID, "name: empty value");
    bad("Patient", "name=a,,b", MR_EINVALID, "name: empty value");
    bad("Patient", "name=a,", MR_EINVALID, "name: empty value");
    bad("Patient", "name=...", MR_EINVALID, "name: empty value");
    bad("Patient", "identifier=|", MR_EINVALID, NULL);
    bad("Patient", "name:not=x", MR_EINVALID,
        "name: unsupported modifier \":not\"");
    bad("Patient", "gender:exact=x", MR_EINVALID, NULL);
    bad("Patient", "birthdate:contains=1984", MR_EINVALID, NULL);
    bad("Patient", "organization:NotAType=1", MR_EINVALID, NULL);
    bad("Patient", "name=%ZZ", MR_EINVALID, NULL);
    bad("Patient", "name=%4", MR_EINVALID, NULL);
    bad("Patient", "name=a%00b", MR_EINVALID, NULL);
    bad("Patient", "name=%C3", MR_EINVALID, NULL);
    bad("Patient", "=x", MR_EINVALID, NULL);
    struct mr_query q;
    struct mr_diag d;
    assert_int_equal(mr_query_parse(&q, "Patient", "name=a\0b", 8, &d),
                     MR_EINVALID);
    mr_query_release(&q);
    bad("Observation", "date=2024-01-05T25:00", MR_EINVALID, NULL);
}

static void test_limits(void **state)
{
    (void)state;
    struct mr_query q;
    char *big = mr_malloc(20000);
    size_t n = 0;

    /* 64 clauses are fine, 65 are not. */
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(big + n, 20000 - n, "gender=male&");
    ok(&q, "Patient", big);
    assert_int_equal(q.n, 64);
    mr_query_release(&q);
    n += (size_t)snprintf(big + n, 20000 - n, "gender=male");
    bad("Patient", big, MR_ETOOBIG, NULL);

    /* 64 values are fine, 65 are not. */
    n = (size_t)snprintf(big, 20000, "gender=a");
    for (int i = 1; i < 64; i++)
        n += (size_t)snprintf(big + n, 20000 - n, ",a");
    ok(&q, "Patient", big);
    assert_int_equal(q.clauses[0].nvals, 64);
    mr_query_release(&q);
    n += (size_t)snprintf(big + n, 20000 - n, ",a");
    bad("Patient", big, MR_ETOOBIG, NULL);

    /* 16 KiB of query at most. */
    memset(big, 'a', 16385);
    memcpy(big, "name=", 5);
    big[16385] = '\0';
    bad("Patient", big, MR_ETOOBIG, NULL);
    big[16384] = '\0';
    ok(&q, "Patient", big);
    mr_query_release(&q);
    mr_free(big);
}

static void test_add_and_alloc_failures(void **state)
{
    (void)state;
    struct mr_query q;
    struct mr_diag d;
    const char *qs = "name=Smith&identifier=a|b&subject=x&_id=1,2"
                     "&birthdate=ge1984&_sort=date";
    int done = 0;

    mr_query_init(&q, "Patient");
    assert_int_equal(mr_query_add(&q, "family:exact", "Ødegård", &d), MR_OK);
    assert_string_equal(q.clauses[0].vals[0].s1, "odegard");
    assert_string_equal(q.clauses[0].vals[0].s2, "Ødegård");
    mr_query_release(&q);

    for (long n = 0; n < 100 && !done; n++) {
        enum mr_err err;
        mr_alloc_fail_after(n);
        err = mr_query_parse(&q, "Observation", qs, strlen(qs), &d);
        mr_alloc_fail_after(-1);
        assert_true(err == MR_OK || err == MR_ENOMEM);
        done = err == MR_OK;
        mr_query_release(&q);
    }
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_quantity_number),
        cmocka_unit_test(test_specials),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_add_and_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
