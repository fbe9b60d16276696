/* Unit tests for fhir/index: search-index extraction from synthetic
 * Patient and Observation resources, against the generated R4 tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/time.h"
#include "fhir/index.h"

#define DAY_MS 86400000LL

static const char *patient_json =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
    "\"identifier\":[{\"system\":\"urn:mrn\",\"value\":\"12345\"},"
    "                {\"value\":\"no-system\"}],"
    "\"name\":[{\"family\":\"Muñoz\",\"given\":[\"José\",\"María\"],"
    "           \"prefix\":[\"Dr.\"],\"text\":\"Dr. José María Muñoz\"},"
    "          {\"family\":\"Muñoz\",\"given\":[\"Pepe\"]}],"
    "\"telecom\":[{\"system\":\"phone\",\"value\":\"+1 (555) 010-0100\"},"
    "             {\"system\":\"email\",\"value\":\"jose@example.org\"}],"
    "\"gender\":\"male\",\"birthDate\":\"1984-03-09\","
    "\"address\":[{\"line\":[\"1 Calle Mayor\",\"Piso 2\"],"
    "              \"city\":\"Málaga\",\"postalCode\":\"29001\","
    "              \"country\":\"ES\"}],"
    "\"managingOrganization\":{\"reference\":\"Organization/o1\"},"
    "\"generalPractitioner\":[{\"reference\":"
    "    \"Practitioner/dr7/_history/3\"}]}";

static const char *obs_json =
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
    "  \"code\":\"8867-4\",\"display\":\"Heart rate\"},"
    "  {\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}],"
    "  \"text\":\"Pulse\"},"
    "\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"effectivePeriod\":{\"start\":\"2024-01-05T10:00:00Z\"},"
    "\"valueQuantity\":{\"value\":72,\"unit\":\"beats/minute\","
    "  \"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}";

struct fixture {
    json_t *res;
    struct mr_ix ix;
};

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s at %d", e.text, e.position);
    return j;
}

static uint32_t key_of(const char *type, const char *code)
{
    const struct mr_search_param *sp = mr_search_param_find(type, code);
    if (!sp)
        fail_msg("no search parameter %s.%s in the table", type, code);
    return sp->key;
}

static size_t count_key(const struct mr_ix *ix, uint32_t key)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n; i++)
        n += ix->v[i].key == key;
    return n;
}

/* The entry of `key` and `kind` whose s1 and s2 are as given ("*" matches
 * anything, NULL only NULL), or NULL. */
static const struct mr_ix_entry *find(const struct mr_ix *ix, uint32_t key,
                                      enum mr_ix_kind kind, const char *s1,
                                      const char *s2)
{
    for (size_t i = 0; i < ix->n; i++) {
        const struct mr_ix_entry *e = &ix->v[i];
        if (e->key != key || e->kind != kind)
            continue;
        if (!(s1 && strcmp(s1, "*") == 0) &&
            !(s1 ? e->s1 && strcmp(e->s1, s1) == 0 : e->s1 == NULL))
            continue;
        if (!(s2 && strcmp(s2, "*") == 0) &&
            !(s2 ? e->s2 && strcmp(e->s2, s2) == 0 : e->s2 == NULL))
            continue;
        return e;
    }
    return NULL;
}

static void extract(struct mr_ix *ix, const char *json, const char *type)
{
    json_t *res = parse(json);
    assert_int_equal(mr_fhir_extract(res, type, ix), MR_OK);
    json_decref(res);
}

static void test_patient_strings(void **state)
{
    (void)state;
    struct mr_ix ix;
    uint32_t name = key_of("Patient", "name");
    uint32_t family = key_of("Patient", "family");
    uint32_t given = key_of("Patient", "given");
    uint32_t addr = key_of("Patient", "address");
    uint32_t city = key_of("Patient", "address-city");

    mr_ix_init(&ix);
    extract(&ix, patient_json, "Patient");

    /* Every part of every name, folded, with the exact text kept. */
    assert_non_null(find(&ix, name, MR_IX_STRING, "munoz", "Muñoz"));
    assert_non_null(find(&ix, name, MR_IX_STRING, "jose", "José"));
    assert_non_null(find(&ix, name, MR_IX_STRING, "maria", "María"));
    assert_non_null(find(&ix, name, MR_IX_STRING, "pepe", "Pepe"));
    assert_non_null(find(&ix, name, MR_IX_STRING, "dr", "Dr."));
    assert_non_null(find(&ix, name, MR_IX_STRING, "dr jose maria munoz", "*"));
    assert_non_null(
        find(&ix, name, MR_IX_STRING, "jose maria munoz", "José María Muñoz"));
    assert_non_null(find(&ix, name, MR_IX_STRING, "pepe munoz", "*"));
    /* The family name appears in two names but is indexed once. */
    size_t fam = 0;
    for (size_t i = 0; i < ix.n; i++)
        fam += ix.v[i].key == name && strcmp(ix.v[i].s1, "munoz") == 0;
    assert_int_equal(fam, 1);

    assert_int_equal(count_key(&ix, family), 1);
    assert_non_null(find(&ix, family, MR_IX_STRING, "munoz", "Muñoz"));
    assert_int_equal(count_key(&ix, given), 3);
    assert_non_null(find(&ix, given, MR_IX_STRING, "jose", "José"));

    assert_non_null(find(&ix, addr, MR_IX_STRING, "1 calle mayor", "*"));
    assert_non_null(find(&ix, addr, MR_IX_STRING, "piso 2", "*"));
    assert_non_null(find(&ix, addr, MR_IX_STRING, "malaga", "Málaga"));
    assert_non_null(find(&ix, addr, MR_IX_STRING, "29001", "29001"));
    assert_non_null(find(&ix, addr, MR_IX_STRING, "es", "ES"));
    assert_int_equal(count_key(&ix, city), 1);
    assert_non_null(find(&ix, city, MR_IX_STRING, "malaga", "Málaga"));
    mr_ix_release(&ix);
}

static void test_patient_tokens(void **state)
{
    (void)state;
    struct mr_ix ix;
    uint32_t ident = key_of("Patient", "identifier");
    uint32_t phone = key_of("Patient", "phone");
    uint32_t email = key_of("Patient", "email");
    uint32_t telecom = key_of("Patient", "telecom");
    uint32_t gender = key_of("Patient", "gender");
    uint32_t active = key_of("Patient", "active");

    mr_ix_init(&ix);
    extract(&ix, patient_json, "Patient");

    assert_non_null(find(&ix, ident, MR_IX_TOKEN, "urn:mrn", "12345"));
    assert_non_null(find(&ix, ident, MR_IX_TOKEN, NULL, "no-system"));
    assert_int_equal(count_key(&ix, ident), 2);

    /* Phone: as written and digits only; the email is not a phone. */
    assert_non_null(find(&ix, phone, MR_IX_TOKEN, NULL, "+1 (555) 010-0100"));
    assert_non_null(find(&ix, phone, MR_IX_TOKEN, NULL, "15550100100"));
    assert_int_equal(count_key(&ix, phone), 2);
    assert_non_null(find(&ix, email, MR_IX_TOKEN, NULL, "jose@example.org"));
    assert_int_equal(count_key(&ix, email), 1);
    assert_int_equal(count_key(&ix, telecom), 3);

    assert_non_null(find(&ix, gender, MR_IX_TOKEN, NULL, "male"));
    assert_non_null(find(&ix, active, MR_IX_TOKEN, NULL, "true"));
    mr_ix_release(&ix);
}

static void test_patient_dates_refs(void **state)
{
    (void)state;
    struct mr_ix ix;
    uint32_t bd = key_of("Patient", "birthdate");
    uint32_t org = key_of("Patient", "organization");
    uint32_t gp = key_of("Patient", "general-practitioner");
    const struct mr_ix_entry *e;

    mr_ix_init(&ix);
    extract(&ix, patient_json, "Patient");

    assert_int_equal(count_key(&ix, bd), 1);
    e = find(&ix, bd, MR_IX_DATE, NULL, NULL);
    assert_non_null(e);
    assert_int_equal(e->lo, mr_days_from_civil(1984, 3, 9) * DAY_MS);
    assert_int_equal(e->hi, e->lo + DAY_MS);

    assert_non_null(find(&ix, org, MR_IX_REFERENCE, "Organization/o1", NULL));
    /* The version is not part of the reference target. */
    assert_non_null(find(&ix, gp, MR_IX_REFERENCE, "Practitioner/dr7", NULL));
    assert_int_equal(count_key(&ix, gp), 1);
    mr_ix_release(&ix);
}

static void test_observation(void **state)
{
    (void)state;
    struct mr_ix ix;
    uint32_t code = key_of("Observation", "code");
    uint32_t subject = key_of("Observation", "subject");
    uint32_t patient = key_of("Observation", "patient");
    uint32_t date = key_of("Observation", "date");
    uint32_t vq = key_of("Observation", "value-quantity");
    uint32_t status = key_of("Observation", "status");
    const struct mr_ix_entry *e;

    mr_ix_init(&ix);
    extract(&ix, obs_json, "Observation");

    /* Two identical codings give one token; text and display are STRING
     * entries under the same key for :text. */
    assert_non_null(find(&ix, code, MR_IX_TOKEN, "http://loinc.org", "8867-4"));
    size_t ntok = 0;
    for (size_t i = 0; i < ix.n; i++)
        ntok += ix.v[i].key == code && ix.v[i].kind == MR_IX_TOKEN;
    assert_int_equal(ntok, 1);
    assert_non_null(find(&ix, code, MR_IX_STRING, "pulse", "Pulse"));
    assert_non_null(find(&ix, code, MR_IX_STRING, "heart rate", "Heart rate"));

    assert_non_null(find(&ix, subject, MR_IX_REFERENCE, "Patient/p1", NULL));
    assert_non_null(find(&ix, patient, MR_IX_REFERENCE, "Patient/p1", NULL));
    assert_non_null(find(&ix, status, MR_IX_TOKEN, NULL, "final"));

    /* An open-ended period. */
    e = find(&ix, date, MR_IX_DATE, NULL, NULL);
    assert_non_null(e);
    assert_int_equal(e->lo,
                     mr_days_from_civil(2024, 1, 5) * DAY_MS + 36000000LL);
    assert_int_equal(e->hi, INT64_MAX);

    e = find(&ix, vq, MR_IX_QUANTITY, "http://unitsofmeasure.org", "/min");
    assert_non_null(e);
    assert_true(e->n == 72.0);
    assert_non_null(find(&ix, vq, MR_IX_QUANTITY, NULL, "beats/minute"));
    mr_ix_release(&ix);
}

static void test_patient_ref_filter(void **state)
{
    (void)state;
    struct mr_ix ix;
    uint32_t subject = key_of("Observation", "subject");
    uint32_t patient = key_of("Observation", "patient");
    uint32_t date = key_of("Observation", "date");

    mr_ix_init(&ix);
    extract(&ix,
            "{\"resourceType\":\"Observation\",\"status\":\"final\","
            "\"code\":{\"text\":\"x\"},"
            "\"subject\":{\"reference\":\"Group/g1\"},"
            "\"effectiveDateTime\":\"2024-13-01\"}",
            "Observation");
    assert_non_null(find(&ix, subject, MR_IX_REFERENCE, "Group/g1", NULL));
    /* patient is subject.where(resolve() is Patient): not a Group. */
    assert_int_equal(count_key(&ix, patient), 0);
    /* An invalid date is skipped, not an error. */
    assert_int_equal(count_key(&ix, date), 0);

    mr_ix_reset(&ix);
    assert_int_equal(ix.n, 0);
    extract(&ix,
            "{\"resourceType\":\"Observation\","
            "\"subject\":{\"reference\":"
            "   \"https://other.example/fhir/Patient/p9\"},"
            "\"effectiveTiming\":{\"event\":[\"2024-01-01\",\"2024-01-02\"]}}",
            "Observation");
    assert_non_null(find(&ix, patient, MR_IX_REFERENCE,
                         "https://other.example/fhir/Patient/p9", NULL));
    assert_int_equal(count_key(&ix, date), 2);
    mr_ix_release(&ix);
}

static void test_robustness(void **state)
{
    (void)state;
    struct mr_ix ix;
    json_t *res;

    mr_ix_init(&ix);
    /* Wrong JSON types everywhere: nothing indexed, no crash. */
    extract(&ix,
            "{\"resourceType\":\"Patient\",\"name\":\"x\",\"gender\":5,"
            "\"telecom\":[[{\"value\":\"1\"}]],\"birthDate\":19840309,"
            "\"identifier\":{\"value\":7},\"address\":[null,1,\"a\"],"
            "\"managingOrganization\":{\"reference\":5},"
            "\"active\":\"yes\"}",
            "Patient");
    /* "active": "yes" is a string token: accepted as a code. */
    for (size_t i = 0; i < ix.n; i++)
        assert_int_equal(ix.v[i].key, key_of("Patient", "active"));

    /* Unknown type: no parameters, no entries. */
    mr_ix_reset(&ix);
    extract(&ix, "{\"x\":1}", "NoSuchType");
    assert_int_equal(ix.n, 0);

    res = json_string("x");
    assert_int_equal(mr_fhir_extract(res, "Patient", &ix), MR_EINVALID);
    json_decref(res);
    mr_ix_release(&ix);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    json_t *res = parse(patient_json);
    int ok = 0;

    /* Fail each allocation in turn: an error, never a crash or leak. */
    for (long n = 0; n < 200 && !ok; n++) {
        struct mr_ix ix;
        enum mr_err err;
        mr_ix_init(&ix);
        mr_alloc_fail_after(n);
        err = mr_fhir_extract(res, "Patient", &ix);
        mr_alloc_fail_after(-1);
        assert_true(err == MR_OK || err == MR_ENOMEM);
        ok = err == MR_OK;
        mr_ix_release(&ix);
    }
    assert_true(ok);
    json_decref(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patient_strings),
        cmocka_unit_test(test_patient_tokens),
        cmocka_unit_test(test_patient_dates_refs),
        cmocka_unit_test(test_observation),
        cmocka_unit_test(test_patient_ref_filter),
        cmocka_unit_test(test_robustness),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
