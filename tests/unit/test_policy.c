/* Unit tests for security/policy: the shipped policy (it loads, it is the
 * committed JSON, and the issue's examples hold), sensitivity labels and
 * break-the-glass, release to patients, element redaction, strict
 * validation of malformed policies, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "core/alloc.h"
#include "fhir/defs.h"
#include "security/policy.h"

#define ACT "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define CONF "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (j == NULL)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return j;
}

/* jansson's allocator for tests: fail the allocation after n more. */
static int jansson_fail_after = -1;

static void *jansson_malloc(size_t n)
{
    if (jansson_fail_after == 0)
        return NULL;
    if (jansson_fail_after > 0)
        jansson_fail_after--;
    return malloc(n);
}

static struct mr_policy *load_default(void)
{
    struct mr_policy *p = NULL;
    struct mr_diag d;

    mr_diag_clear(&d);
    if (mr_policy_load_default(&p, &d) != MR_OK)
        fail_msg("shipped policy refused: %s", d.msg);
    assert_non_null(p);
    return p;
}

static int setup(void **state)
{
    *state = load_default();
    return 0;
}

static int teardown(void **state)
{
    mr_policy_free(*state);
    return 0;
}

/* ---- the shipped policy ----------------------------------------------- */

static void test_default_loads(void **state)
{
    static const char *const roles[] = {
        "admin",
        "admission-clerk",
        "auditor",
        "clinician",
        "coder",
        "lab-technician",
        "records-technician",
        "patient",
        "registration-system",
    };
    const struct mr_policy *p = *state;
    size_t i, n = sizeof(roles) / sizeof(roles[0]);

    assert_int_equal(mr_policy_role_count(p), n);
    for (i = 0; i < n; i++)
        assert_true(mr_policy_role_known(p, roles[i]));
    /* listed sorted, for `medrec user add --role` messages */
    for (i = 1; i < n; i++)
        assert_true(strcmp(mr_policy_role_name(p, i - 1),
                           mr_policy_role_name(p, i)) < 0);
    assert_null(mr_policy_role_name(p, n));
    assert_false(mr_policy_role_known(p, "system"));
    assert_false(mr_policy_role_known(p, "Clinician"));
    assert_false(mr_policy_role_known(p, ""));
    assert_false(mr_policy_role_known(p, NULL));
    assert_false(mr_policy_role_known(NULL, "admin"));
    assert_int_equal(mr_policy_role_count(NULL), 0);
}

/* The compiled-in bytes are the committed JSON file (the generated
 * fragment was refreshed with tools/embed/embed.sh). */
static void test_default_is_the_json_file(void **state)
{
    const char *suffix = "tests/unit/test_policy.c";
    const char *src = __FILE__;
    size_t slen = strlen(src), len, got;
    const char *bytes = mr_policy_default_json(&len);
    char path[4096], *buf;
    FILE *f;

    (void)state;
    assert_int_equal(strlen(bytes), len);
    if (slen < strlen(suffix) ||
        strcmp(src + slen - strlen(suffix), suffix) != 0 ||
        slen + 32 > sizeof(path))
        skip();
    snprintf(path, sizeof(path), "%.*ssrc/security/policy_default.json",
             (int)(slen - strlen(suffix)), src);
    f = fopen(path, "rb");
    if (f == NULL) {
        printf("no %s; skipping\n", path);
        skip();
    }
    buf = malloc(len + 2);
    assert_non_null(buf);
    got = fread(buf, 1, len + 1, f);
    fclose(f);
    if (got != len || memcmp(buf, bytes, len) != 0) {
        free(buf);
        fail_msg("src/security/gen/policy_default.inc is stale: run "
                 "tools/embed/embed.sh src/security/policy_default.json "
                 "src/security/gen/policy_default.inc");
    }
    free(buf);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mr_policy_action_name(MR_ACT_READ), "read");
    assert_string_equal(mr_policy_action_name(MR_ACT_EXPORT), "export");
    assert_string_equal(mr_policy_action_name(MR_ACT__COUNT), "?");
    assert_string_equal(mr_policy_privilege_name(MR_PRIV_MERGE),
                        "merge-patients");
    assert_string_equal(mr_policy_privilege_name(MR_PRIV__COUNT), "?");
}

#define R MR_ACT_READ
#define S MR_ACT_SEARCH
#define C MR_ACT_CREATE
#define U MR_ACT_UPDATE
#define D MR_ACT_DELETE
#define H MR_ACT_HISTORY
#define X MR_ACT_EXPORT

/* The examples of the issue, one line each. */
static void test_examples(void **state)
{
    static const struct {
        const char *role;
        enum mr_action act;
        const char *type;
        int want;
    } cases[] = {
        /* admission clerks: demographics, encounters, coverage,
         * appointments; no notes, results, conditions, medications */
        {"admission-clerk", R, "Patient", 1},
        {"admission-clerk", C, "Patient", 1},
        {"admission-clerk", U, "RelatedPerson", 1},
        {"admission-clerk", R, "Encounter", 1},
        {"admission-clerk", C, "Encounter", 1},
        {"admission-clerk", U, "Encounter", 1},
        {"admission-clerk", S, "Coverage", 1},
        {"admission-clerk", C, "Appointment", 1},
        {"admission-clerk", R, "DocumentReference", 0},
        {"admission-clerk", R, "Composition", 0},
        {"admission-clerk", R, "ClinicalImpression", 0},
        {"admission-clerk", R, "Observation", 0},
        {"admission-clerk", S, "Observation", 0},
        {"admission-clerk", R, "DiagnosticReport", 0},
        {"admission-clerk", R, "Condition", 0},
        {"admission-clerk", R, "MedicationRequest", 0},
        {"admission-clerk", R, "MedicationStatement", 0},
        {"admission-clerk", D, "Patient", 0},
        {"admission-clerk", X, "Patient", 0},
        /* lab technicians: orders, specimens, results, patients to match */
        {"lab-technician", R, "ServiceRequest", 1},
        {"lab-technician", U, "ServiceRequest", 1},
        {"lab-technician", C, "Specimen", 1},
        {"lab-technician", C, "Observation", 1},
        {"lab-technician", U, "DiagnosticReport", 1},
        {"lab-technician", S, "Patient", 1},
        {"lab-technician", R, "Patient", 1},
        {"lab-technician", U, "Patient", 0},
        {"lab-technician", R, "DocumentReference", 0},
        {"lab-technician", R, "Composition", 0},
        {"lab-technician", R, "Condition", 0},
        {"lab-technician", R, "MedicationRequest", 0},
        {"lab-technician", D, "Observation", 0},
        /* coders: encounters, conditions, procedures, notes, claims,
         * coverage, accounts; not results */
        {"coder", R, "Encounter", 1},
        {"coder", R, "Condition", 1},
        {"coder", R, "Procedure", 1},
        {"coder", R, "DocumentReference", 1},
        {"coder", S, "Composition", 1},
        {"coder", C, "Claim", 1},
        {"coder", U, "Claim", 1},
        {"coder", R, "Coverage", 1},
        {"coder", U, "Account", 1},
        {"coder", R, "Observation", 0},
        {"coder", S, "DiagnosticReport", 0},
        {"coder", R, "ImagingStudy", 0},
        {"coder", R, "MedicationRequest", 0},
        {"coder", U, "Condition", 0},
        {"coder", U, "Encounter", 0},
        /* auditors: the audit trail, no clinical content */
        {"auditor", R, "AuditEvent", 1},
        {"auditor", S, "AuditEvent", 1},
        {"auditor", X, "AuditEvent", 1},
        {"auditor", C, "AuditEvent", 0},
        {"auditor", R, "Patient", 0},
        {"auditor", R, "Observation", 0},
        {"auditor", R, "DocumentReference", 0},
        /* records technicians: the whole chart, delete is a tombstone */
        {"records-technician", R, "Patient", 1},
        {"records-technician", U, "Patient", 1},
        {"records-technician", D, "Patient", 1},
        {"records-technician", H, "Observation", 1},
        {"records-technician", X, "Observation", 1},
        {"records-technician", C, "DocumentReference", 1},
        {"records-technician", U, "Composition", 1},
        {"records-technician", C, "Provenance", 1},
        {"records-technician", U, "Consent", 1},
        {"records-technician", D, "Claim", 1},
        {"records-technician", R, "AuditEvent", 1},
        {"records-technician", D, "Practitioner", 0},
        /* admin: users, policy and the directory; no patient data */
        {"admin", C, "Practitioner", 1},
        {"admin", D, "Organization", 1},
        {"admin", R, "Patient", 0},
        {"admin", R, "Observation", 0},
        {"admin", R, "Encounter", 0},
        {"admin", R, "AuditEvent", 0},
        /* clinicians: the clinical chart */
        {"clinician", R, "Observation", 1},
        {"clinician", C, "Observation", 1},
        {"clinician", U, "Condition", 1},
        {"clinician", C, "MedicationRequest", 1},
        {"clinician", C, "DocumentReference", 1},
        {"clinician", U, "Composition", 1},
        {"clinician", R, "Patient", 1},
        {"clinician", H, "Encounter", 1},
        {"clinician", C, "Patient", 0},
        {"clinician", D, "Observation", 0},
        {"clinician", X, "Observation", 0},
        {"clinician", R, "Claim", 0},
        {"clinician", R, "AuditEvent", 0},
        /* patients: read their chart (compartment and release are
         * checked per resource), never write */
        {"patient", R, "Observation", 1},
        {"patient", S, "Condition", 1},
        {"patient", R, "Patient", 1},
        {"patient", C, "Observation", 0},
        {"patient", U, "Patient", 0},
        {"patient", H, "Observation", 0},
        {"patient", R, "Claim", 0},
        {"patient", R, "AuditEvent", 0},
        /* unknowns are refused */
        {"nurse", R, "Patient", 0},
        {"clinician", R, "Obsrvation", 0},
        {"clinician", R, "HumanName", 0},
        {"clinician", R, "", 0},
        {"clinician", R, NULL, 0},
        {NULL, R, "Patient", 0},
        {"clinician", (enum mr_action)MR_ACT__COUNT, "Observation", 0},
        {"clinician", (enum mr_action) - 1, "Observation", 0},
    };
    const struct mr_policy *p = *state;
    size_t i, bad = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got =
            mr_policy_allows(p, cases[i].role, cases[i].act, cases[i].type);

        if (got != cases[i].want) {
            printf("  %s %s %s: got %d, want %d\n",
                   cases[i].role ? cases[i].role : "(null)",
                   mr_policy_action_name(cases[i].act),
                   cases[i].type ? cases[i].type : "(null)", got,
                   cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_false(mr_policy_allows(NULL, "admin", C, "Practitioner"));
}

/* Expand a group of the shipped JSON (nested groups included) by name. */
static void expand_group(const json_t *groups, const char *name, json_t *into)
{
    const json_t *v;
    size_t i;

    json_array_foreach(json_object_get(groups, name), i, v)
    {
        const char *s = json_string_value(v);

        if (s[0] >= 'a' && s[0] <= 'z')
            expand_group(groups, s, into);
        else
            json_array_append_new(into, json_string(s));
    }
}

/* Properties the issue states for whole groups, checked over the group
 * definitions of the shipped file itself. */
static void test_group_properties(void **state)
{
    static const char *const no_clinical[] = {"admin", "auditor",
                                              "admission-clerk"};
    const struct mr_policy *p = *state;
    json_t *doc = parse(mr_policy_default_json(NULL));
    json_t *groups = json_object_get(doc, "groups");
    json_t *clinical = json_array(), *chart = json_array(), *v;
    size_t i, j, a, r;

    expand_group(groups, "clinical", clinical);
    expand_group(groups, "chart", chart);
    assert_true(json_array_size(clinical) > 40);
    json_array_foreach(clinical, i, v)
    {
        const char *t = json_string_value(v);

        for (j = 0; j < 3; j++)
            for (a = 0; a < MR_ACT__COUNT; a++)
                if (mr_policy_allows(p, no_clinical[j], (enum mr_action)a, t))
                    fail_msg("%s may %s %s", no_clinical[j],
                             mr_policy_action_name((enum mr_action)a), t);
        assert_true(mr_policy_allows(p, "clinician", R, t));
        assert_true(mr_policy_allows(p, "clinician", U, t));
        assert_false(mr_policy_allows(p, "clinician", D, t));
    }
    /* delete (a tombstone) of chart content is the records technician's */
    json_array_foreach(chart, i, v)
    {
        const char *t = json_string_value(v);

        assert_true(mr_policy_allows(p, "records-technician", D, t));
        for (r = 0; r < mr_policy_role_count(p); r++) {
            const char *role = mr_policy_role_name(p, r);

            if (strcmp(role, "records-technician") != 0 &&
                mr_policy_allows(p, role, D, t))
                fail_msg("%s may delete %s", role, t);
        }
    }
    /* auditors and records technicians (who answer "who looked at this
     * chart") see the trail; nobody writes it */
    for (r = 0; r < mr_policy_role_count(p); r++) {
        const char *role = mr_policy_role_name(p, r);

        assert_int_equal(mr_policy_allows(p, role, R, "AuditEvent"),
                         strcmp(role, "auditor") == 0 ||
                             strcmp(role, "records-technician") == 0);
        assert_false(mr_policy_allows(p, role, C, "AuditEvent"));
        assert_false(mr_policy_allows(p, role, U, "AuditEvent"));
        assert_false(mr_policy_allows(p, role, D, "AuditEvent"));
    }
    json_decref(clinical);
    json_decref(chart);
    json_decref(doc);
}

static void test_role_flags(void **state)
{
    const struct mr_policy *p = *state;
    size_t i;

    assert_true(mr_policy_own_compartment_only(p, "patient"));
    assert_false(mr_policy_own_compartment_only(p, "clinician"));
    assert_false(mr_policy_own_compartment_only(p, "records-technician"));
    assert_true(mr_policy_own_compartment_only(p, "nurse"));

    for (i = 0; i < mr_policy_role_count(p); i++) {
        const char *role = mr_policy_role_name(p, i);

        assert_int_equal(mr_policy_may_break_glass(p, role),
                         strcmp(role, "clinician") == 0);
    }
    assert_false(mr_policy_may_break_glass(p, "nurse"));

    assert_true(mr_policy_system_token_ok(p, "admission-clerk"));
    assert_true(mr_policy_system_token_ok(p, "lab-technician"));
    assert_true(mr_policy_system_token_ok(p, "records-technician"));
    assert_false(mr_policy_system_token_ok(p, "patient"));
    assert_false(mr_policy_system_token_ok(p, "clinician"));
    assert_false(mr_policy_system_token_ok(p, "admin"));
    assert_false(mr_policy_system_token_ok(p, "nurse"));

    assert_true(mr_policy_has_privilege(p, "admin", MR_PRIV_MANAGE_USERS));
    assert_true(mr_policy_has_privilege(p, "admin", MR_PRIV_MANAGE_POLICY));
    assert_false(mr_policy_has_privilege(p, "admin", MR_PRIV_MERGE));
    assert_true(
        mr_policy_has_privilege(p, "records-technician", MR_PRIV_MERGE));
    assert_false(
        mr_policy_has_privilege(p, "records-technician", MR_PRIV_MANAGE_USERS));
    assert_true(mr_policy_has_privilege(p, "clinician", MR_PRIV_RELEASE));
    assert_false(mr_policy_has_privilege(p, "lab-technician", MR_PRIV_RELEASE));
    assert_false(mr_policy_has_privilege(p, "clinician", MR_PRIV__COUNT));
    assert_false(mr_policy_has_privilege(p, "nurse", MR_PRIV_MERGE));
}

/* ---- labels and break-the-glass --------------------------------------- */

/* An Observation carrying security labels (and tags), as JSON text. */
static json_t *labelled(const char *type, const char *security, const char *tag)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\"resourceType\":\"%s\",\"id\":\"x\",\"meta\":{"
             "\"security\":[%s],\"tag\":[%s]},\"status\":\"final\"}",
             type, security, tag);
    return parse(text);
}

#define CODING(sys, code) "{\"system\":\"" sys "\",\"code\":\"" code "\"}"
#define RELEASED CODING(MR_RELEASE_TAG_SYSTEM, MR_RELEASE_TAG_CODE)

enum { HIDDEN, SHOWN, GLASS };

/* visible() without and with the emergency flag: HIDDEN (both 0), SHOWN
 * (1 without emergency, and emergency not reported as used), GLASS (only
 * with emergency, reported as used). */
static int visibility(const struct mr_policy *p, const char *role,
                      const json_t *res)
{
    int used = -1, plain, emerg;

    plain = mr_policy_visible(p, role, NULL, res, 0, &used);
    assert_int_equal(used, 0);
    emerg = mr_policy_visible(p, role, NULL, res, 1, &used);
    if (plain) {
        assert_true(emerg);
        assert_int_equal(used, 0);
        return SHOWN;
    }
    if (emerg) {
        assert_int_equal(used, 1);
        return GLASS;
    }
    assert_int_equal(used, 0);
    return HIDDEN;
}

static void test_labels(void **state)
{
    static const struct {
        const char *type, *security, *role;
        int want;
    } cases[] = {
        /* unlabelled: type permissions only */
        {"Observation", "", "clinician", SHOWN},
        {"Observation", "", "records-technician", SHOWN},
        {"Observation", "", "admission-clerk", HIDDEN},
        /* psychiatry: clinicians break the glass, HIM staff hold it */
        {"Observation", CODING(ACT, "PSY"), "clinician", GLASS},
        {"Observation", CODING(ACT, "PSY"), "records-technician", SHOWN},
        {"Observation", CODING(ACT, "PSY"), "lab-technician", HIDDEN},
        {"Condition", CODING(ACT, "PSY"), "coder", SHOWN},
        /* substance use (42 CFR Part 2): not coders */
        {"Condition", CODING(ACT, "ETH"), "coder", HIDDEN},
        {"Condition", CODING(ACT, "ETH"), "records-technician", SHOWN},
        {"Condition", CODING(ACT, "ETH"), "clinician", GLASS},
        {"Condition", CODING(ACT, "OPIOIDUD"), "clinician", GLASS},
        /* HIV results: the lab that produced them sees them */
        {"Observation", CODING(ACT, "HIV"), "lab-technician", SHOWN},
        {"Observation", CODING(ACT, "HIV"), "clinician", GLASS},
        {"Observation", CODING(ACT, "GDIS"), "lab-technician", SHOWN},
        /* emergency is only for roles that may break the glass */
        {"DocumentReference", CODING(ACT, "PSY"), "coder", SHOWN},
        {"DocumentReference", CODING(ACT, "ETH"), "coder", HIDDEN},
        /* psychotherapy notes: nobody, not even in an emergency */
        {"DocumentReference", CODING(ACT, "PSYTHPN"), "clinician", HIDDEN},
        {"DocumentReference", CODING(ACT, "PSYTHPN"), "records-technician",
         HIDDEN},
        /* confidentiality: R held by HIM staff, V only by breaking glass */
        {"Observation", CODING(CONF, "R"), "records-technician", SHOWN},
        {"Observation", CODING(CONF, "R"), "clinician", GLASS},
        {"Observation", CODING(CONF, "V"), "records-technician", HIDDEN},
        {"Observation", CODING(CONF, "V"), "clinician", GLASS},
        {"Patient", CODING(CONF, "R"), "admission-clerk", SHOWN},
        {"Patient", CODING(CONF, "V"), "admission-clerk", HIDDEN},
        /* every label must be held: one missing hides the resource */
        {"Observation", CODING(ACT, "HIV") "," CODING(ACT, "PSY"),
         "lab-technician", HIDDEN},
        {"Observation", CODING(ACT, "HIV") "," CODING(ACT, "PSYTHPN"),
         "clinician", HIDDEN},
        {"Observation", CODING(ACT, "HIV") "," CODING(CONF, "V"), "clinician",
         GLASS},
        /* codes the policy does not list do not restrict; systems count */
        {"Observation", CODING(CONF, "N"), "clinician", SHOWN},
        {"Observation", CODING(ACT, "HIVX"), "clinician", SHOWN},
        {"Observation", CODING(CONF, "HIV"), "clinician", SHOWN},
        {"Observation", CODING(ACT, "psy"), "clinician", SHOWN},
        {"Observation", "{\"code\":\"PSY\"}", "clinician", SHOWN},
        /* unknown role */
        {"Observation", "", "nurse", HIDDEN},
    };
    const struct mr_policy *p = *state;
    size_t i, bad = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *res = labelled(cases[i].type, cases[i].security, "");
        int got = visibility(p, cases[i].role, res);

        if (got != cases[i].want) {
            printf("  %s %s [%s]: got %d, want %d\n", cases[i].role,
                   cases[i].type, cases[i].security, got, cases[i].want);
            bad++;
        }
        json_decref(res);
    }
    assert_int_equal(bad, 0);
}

static void test_labels_edge_cases(void **state)
{
    const struct mr_policy *p = *state;
    json_t *res;
    int used = 7;

    /* a label on a contained resource counts */
    res = parse("{\"resourceType\":\"Observation\",\"status\":\"final\","
                "\"contained\":[{\"resourceType\":\"Condition\",\"meta\":{"
                "\"security\":[" CODING(ACT, "HIV") "]}}]}");
    assert_int_equal(visibility(p, "clinician", res), GLASS);
    assert_int_equal(visibility(p, "lab-technician", res), SHOWN);
    json_decref(res);

    /* malformed meta: nothing can be trusted, nothing is shown */
    res = parse("{\"resourceType\":\"Observation\",\"meta\":[]}");
    assert_int_equal(visibility(p, "records-technician", res), HIDDEN);
    json_decref(res);
    res = parse("{\"resourceType\":\"Observation\",\"meta\":{\"security\":"
                "{\"system\":\"" ACT "\",\"code\":\"PSY\"}}}");
    assert_int_equal(visibility(p, "records-technician", res), HIDDEN);
    json_decref(res);
    res = parse("{\"resourceType\":\"Observation\",\"meta\":{\"security\":"
                "[\"PSY\"]}}");
    assert_int_equal(visibility(p, "records-technician", res), HIDDEN);
    json_decref(res);
    res = parse("{\"resourceType\":\"Observation\",\"contained\":{}}");
    assert_int_equal(visibility(p, "records-technician", res), HIDDEN);
    json_decref(res);

    /* the type: from resourceType, and it must agree */
    res = parse("{\"resourceType\":\"Observation\"}");
    assert_true(mr_policy_visible(p, "clinician", "Observation", res, 0, NULL));
    assert_false(mr_policy_visible(p, "clinician", "Patient", res, 0, &used));
    assert_int_equal(used, 0);
    assert_false(mr_policy_visible(p, "admission-clerk", NULL, res, 1, NULL));
    json_decref(res);
    res = parse("{\"status\":\"final\"}");
    assert_true(mr_policy_visible(p, "clinician", "Observation", res, 0, NULL));
    assert_false(mr_policy_visible(p, "clinician", NULL, res, 0, NULL));
    json_decref(res);
    res = json_string("Observation");
    assert_false(
        mr_policy_visible(p, "clinician", "Observation", res, 0, NULL));
    json_decref(res);
    assert_false(
        mr_policy_visible(p, "clinician", "Observation", NULL, 0, NULL));
    /* the auditor (and the records technician) see audit events (no
     * labels there by default); a coder does not */
    res = parse("{\"resourceType\":\"AuditEvent\"}");
    assert_true(mr_policy_visible(p, "auditor", NULL, res, 0, NULL));
    assert_true(mr_policy_visible(p, "records-technician", NULL, res, 0, NULL));
    assert_false(mr_policy_visible(p, "coder", NULL, res, 1, NULL));
    json_decref(res);
}

/* ---- release to patients ---------------------------------------------- */

static void test_release(void **state)
{
    static const struct {
        const char *type, *security, *tag, *role;
        int want;
    } cases[] = {
        /* results and notes wait for release */
        {"Observation", "", "", "patient", HIDDEN},
        {"Observation", "", RELEASED, "patient", SHOWN},
        {"DiagnosticReport", "", "", "patient", HIDDEN},
        {"DiagnosticReport", "", RELEASED, "patient", SHOWN},
        {"DocumentReference", "", "", "patient", HIDDEN},
        {"DocumentReference", "", RELEASED, "patient", SHOWN},
        {"Composition", "", "", "patient", HIDDEN},
        {"ImagingStudy", "", "", "patient", HIDDEN},
        {"ImagingStudy", "", RELEASED, "patient", SHOWN},
        /* a tag that merely looks like it does not release */
        {"Observation", "", CODING("urn:medrec:release", "pending"), "patient",
         HIDDEN},
        {"Observation", "", CODING("urn:other", "released"), "patient", HIDDEN},
        {"Observation", "", "{\"code\":\"released\"}", "patient", HIDDEN},
        {"Observation", "", CODING("urn:other", "x") "," RELEASED, "patient",
         SHOWN},
        /* other chart content is not held */
        {"Condition", "", "", "patient", SHOWN},
        {"Encounter", "", "", "patient", SHOWN},
        {"Patient", "", "", "patient", SHOWN},
        /* release does not lift labels, labels do not lift release */
        {"Observation", CODING(ACT, "HIV"), RELEASED, "patient", SHOWN},
        {"DocumentReference", CODING(ACT, "PSYTHPN"), RELEASED, "patient",
         HIDDEN},
        {"Observation", CODING(CONF, "V"), RELEASED, "patient", SHOWN},
        /* staff do not wait for release */
        {"Observation", "", "", "clinician", SHOWN},
        {"Observation", "", "", "lab-technician", SHOWN},
        {"DocumentReference", "", "", "coder", SHOWN},
        /* nor does anything released reach roles without the type */
        {"Observation", "", RELEASED, "admission-clerk", HIDDEN},
        {"Claim", "", RELEASED, "patient", HIDDEN},
    };
    const struct mr_policy *p = *state;
    size_t i, bad = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *res = labelled(cases[i].type, cases[i].security, cases[i].tag);
        int got = visibility(p, cases[i].role, res);

        if (got != cases[i].want) {
            printf("  %s %s [%s] [%s]: got %d, want %d\n", cases[i].role,
                   cases[i].type, cases[i].security, cases[i].tag, got,
                   cases[i].want);
            bad++;
        }
        json_decref(res);
    }
    assert_int_equal(bad, 0);
}

/* ---- redaction -------------------------------------------------------- */

static const char encounter[] =
    "{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"meta\":{\"versionId\":"
    "\"2\"},\"text\":{\"status\":\"generated\",\"div\":\"<div>Admitted for "
    "chest pain</div>\"},\"status\":\"in-progress\",\"class\":{\"code\":"
    "\"IMP\"},\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"period\":{\"start\":\"2024-05-01\"},"
    "\"reasonCode\":[{\"text\":\"chest pain\"}],"
    "\"reasonReference\":[{\"reference\":\"Condition/c1\"}],"
    "\"diagnosis\":[{\"condition\":{\"reference\":\"Condition/c1\"}}],"
    "\"location\":[{\"location\":{\"reference\":\"Location/w3\"}}]}";

static const char patient[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{\"family\":"
    "\"Doe\"}],\"birthDate\":\"1970-01-01\",\"_birthDate\":{\"id\":\"b\"},"
    "\"gender\":\"female\",\"telecom\":[{\"system\":\"phone\",\"value\":"
    "\"555\"}],\"photo\":[{\"contentType\":\"image/png\",\"data\":\"aGk=\"}],"
    "\"contact\":[{\"name\":{\"family\":\"Roe\"}}]}";

/* Redact text for role; expect the result to equal want_text exactly. */
static void expect_redact(const struct mr_policy *p, const char *role,
                          const char *type, const char *text,
                          const char *want_text, int want_rc)
{
    json_t *res = parse(text), *want = parse(want_text);

    assert_int_equal(mr_policy_redact(p, role, type, res), want_rc);
    if (!json_equal(res, want)) {
        char *got = json_dumps(res, JSON_SORT_KEYS | JSON_COMPACT);

        fail_msg("%s %s redacted to %s", role, type, got);
    }
    json_decref(res);
    json_decref(want);
}

static void test_redact(void **state)
{
    const struct mr_policy *p = *state;

    /* admission clerks: the encounter without its clinical reasons (and
     * without the narrative, which may repeat them) */
    expect_redact(p, "admission-clerk", "Encounter", encounter,
                  "{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"meta\":"
                  "{\"versionId\":\"2\"},\"status\":\"in-progress\","
                  "\"class\":{\"code\":\"IMP\"},\"subject\":{\"reference\":"
                  "\"Patient/p1\"},\"period\":{\"start\":\"2024-05-01\"},"
                  "\"location\":[{\"location\":{\"reference\":"
                  "\"Location/w3\"}}]}",
                  1);
    /* coders and lab technicians: the patient without photo and contacts */
    expect_redact(p, "coder", "Patient", patient,
                  "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{"
                  "\"family\":\"Doe\"}],\"birthDate\":\"1970-01-01\","
                  "\"_birthDate\":{\"id\":\"b\"},\"gender\":\"female\","
                  "\"telecom\":[{\"system\":\"phone\",\"value\":\"555\"}]}",
                  1);
    expect_redact(p, "lab-technician", "Patient", patient,
                  "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{"
                  "\"family\":\"Doe\"}],\"birthDate\":\"1970-01-01\","
                  "\"_birthDate\":{\"id\":\"b\"},\"gender\":\"female\","
                  "\"telecom\":[{\"system\":\"phone\",\"value\":\"555\"}]}",
                  1);
    /* roles without redactions, types without redactions: untouched */
    expect_redact(p, "clinician", "Encounter", encounter, encounter, 0);
    expect_redact(p, "coder", "Encounter", encounter, encounter, 0);
    expect_redact(p, "admission-clerk", "Patient", patient, patient, 0);
    expect_redact(p, "records-technician", "Patient", patient, patient, 0);
    /* nothing to remove: the narrative stays */
    expect_redact(p, "admission-clerk", "Encounter",
                  "{\"resourceType\":\"Encounter\",\"status\":\"planned\","
                  "\"text\":{\"status\":\"generated\",\"div\":\"<div/>\"}}",
                  "{\"resourceType\":\"Encounter\",\"status\":\"planned\","
                  "\"text\":{\"status\":\"generated\",\"div\":\"<div/>\"}}",
                  0);
    /* unknown role or type: nothing (the role sees nothing anyway) */
    expect_redact(p, "nurse", "Encounter", encounter, encounter, 0);
    expect_redact(p, "admission-clerk", "Nope", encounter, encounter, 0);

    assert_true(mr_policy_element_hidden(p, "admission-clerk", "Encounter",
                                         "diagnosis"));
    assert_true(mr_policy_element_hidden(p, "admission-clerk", "Encounter",
                                         "reasonCode"));
    assert_false(
        mr_policy_element_hidden(p, "admission-clerk", "Encounter", "period"));
    assert_false(
        mr_policy_element_hidden(p, "clinician", "Encounter", "diagnosis"));
    assert_true(mr_policy_element_hidden(p, "coder", "Patient", "photo"));
    assert_true(mr_policy_element_hidden(p, "coder", "Patient", "_photo"));
    assert_false(mr_policy_element_hidden(p, "coder", "Patient", "name"));
    assert_true(mr_policy_element_hidden(p, "nurse", "Patient", "name"));
}

/* A role may neither set nor erase what it cannot see. */
static void test_restore_hidden(void **state)
{
    const struct mr_policy *p = *state;
    json_t *current = parse(encounter);
    json_t *in, *want;

    /* a clerk's update of the redacted encounter keeps the diagnosis */
    in = parse("{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":"
               "\"finished\",\"diagnosis\":[{\"condition\":{\"reference\":"
               "\"Condition/forged\"}}],\"_reasonCode\":[{\"id\":\"z\"}]}");
    assert_int_equal(mr_policy_restore_hidden(p, "admission-clerk", "Encounter",
                                              in, current),
                     MR_OK);
    want = parse("{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":"
                 "\"finished\",\"reasonCode\":[{\"text\":\"chest pain\"}],"
                 "\"reasonReference\":[{\"reference\":\"Condition/c1\"}],"
                 "\"diagnosis\":[{\"condition\":{\"reference\":"
                 "\"Condition/c1\"}}]}");
    assert_true(json_equal(in, want));
    json_decref(in);
    json_decref(want);

    /* a create: whatever hidden elements it carries are dropped */
    in = parse("{\"resourceType\":\"Encounter\",\"status\":\"planned\","
               "\"reasonCode\":[{\"text\":\"x\"}]}");
    assert_int_equal(
        mr_policy_restore_hidden(p, "admission-clerk", "Encounter", in, NULL),
        MR_OK);
    want = parse("{\"resourceType\":\"Encounter\",\"status\":\"planned\"}");
    assert_true(json_equal(in, want));
    json_decref(want);

    /* roles without redactions write what they send */
    assert_int_equal(
        mr_policy_restore_hidden(p, "clinician", "Encounter", in, current),
        MR_OK);
    want = parse("{\"resourceType\":\"Encounter\",\"status\":\"planned\"}");
    assert_true(json_equal(in, want));
    json_decref(want);
    assert_int_equal(
        mr_policy_restore_hidden(p, "nurse", "Encounter", in, current),
        MR_EDENIED);
    json_decref(in);

    /* a copy that cannot be allocated is reported, never half-stored */
    {
        int n, rc;

        for (n = 0;; n++) {
            in = parse("{\"resourceType\":\"Encounter\"}");
            jansson_fail_after = n;
            rc = mr_policy_restore_hidden(p, "admission-clerk", "Encounter", in,
                                          current);
            jansson_fail_after = -1;
            json_decref(in);
            if (rc == MR_OK)
                break;
            assert_int_equal(rc, MR_ENOMEM);
        }
        assert_true(n > 0);
    }
    json_decref(current);
}

/* ---- custom policies: "*", deny, nested groups, choice elements ------- */

/* A policy document with the required roles. top goes before "roles"
 * (with its trailing comma); coder is the coder role's object; tail goes
 * after the roles (with a leading comma). */
static char *policy_with(const char *top, const char *coder, const char *tail)
{
    static char buf[8192];

    snprintf(buf, sizeof(buf),
             "{\"version\":1,%s\"roles\":{\"admin\":{\"allow\":[]},"
             "\"records-technician\":{\"allow\":[]},\"clinician\":{"
             "\"allow\":[]},\"admission-clerk\":{\"allow\":[]},"
             "\"lab-technician\":{\"allow\":[]},\"coder\":%s,\"auditor\":{"
             "\"allow\":[]},\"patient\":{\"allow\":[],"
             "\"own_compartment_only\":true}}%s}",
             top, coder, tail);
    return buf;
}

static struct mr_policy *load_ok(const char *text)
{
    struct mr_policy *p = NULL;
    struct mr_diag d;

    mr_diag_clear(&d);
    if (mr_policy_load(text, strlen(text), &p, &d) != MR_OK)
        fail_msg("policy refused: %s\n  %s", d.msg, text);
    return p;
}

static void test_custom_policy(void **state)
{
    struct mr_policy *p;
    json_t *res;
    size_t t, n = 0;

    (void)state;
    p = load_ok(policy_with(
        "\"groups\":{\"a\":[\"Patient\"],\"b\":[\"a\",\"Observation\"]},"
        "\"labels\":{\"x\":[{\"system\":\"s\",\"code\":\"X\"}]},",
        "{\"allow\":[{\"actions\":[\"*\"],\"types\":[\"*\"]},"
        "{\"actions\":[\"read\"],\"types\":[\"b\"]}],"
        "\"deny\":[{\"actions\":[\"delete\",\"export\"],\"types\":[\"b\"]},"
        "{\"actions\":[\"*\"],\"types\":[\"Claim\"]}],"
        "\"redact\":{\"Observation\":[\"value[x]\",\"note\"]},"
        "\"labels\":[\"x\"],\"own_compartment_only\":false}",
        ",\"system_tokens\":[\"coder\"]"));
    /* "*" is every resource type, deny wins over allow */
    for (t = 0; t < mr_fhir_types_count; t++) {
        const struct mr_type *ty = &mr_fhir_types[t];

        if (ty->kind != MR_KIND_RESOURCE) {
            assert_false(mr_policy_allows(p, "coder", R, ty->name));
            continue;
        }
        n++;
        if (strcmp(ty->name, "Claim") == 0) {
            assert_false(mr_policy_allows(p, "coder", R, ty->name));
            continue;
        }
        assert_true(mr_policy_allows(p, "coder", R, ty->name));
        assert_int_equal(mr_policy_allows(p, "coder", D, ty->name),
                         strcmp(ty->name, "Patient") != 0 &&
                             strcmp(ty->name, "Observation") != 0 &&
                             strcmp(ty->name, "AuditEvent") != 0);
        assert_int_equal(mr_policy_allows(p, "coder", C, ty->name),
                         strcmp(ty->name, "AuditEvent") != 0);
    }
    assert_true(n > 100);
    assert_false(mr_policy_allows(p, "coder", X, "Patient"));
    assert_true(mr_policy_allows(p, "coder", U, "Patient"));
    assert_false(mr_policy_allows(p, "clinician", R, "Patient"));
    assert_true(mr_policy_system_token_ok(p, "coder"));
    assert_false(mr_policy_system_token_ok(p, "lab-technician"));

    /* value[x] hides every choice of value */
    res = parse("{\"resourceType\":\"Observation\",\"status\":\"final\","
                "\"valueQuantity\":{\"value\":1},\"_valueString\":{},"
                "\"note\":[{\"text\":\"n\"}],\"code\":{\"text\":\"c\"}}");
    assert_int_equal(mr_policy_redact(p, "coder", "Observation", res), 1);
    assert_int_equal(json_object_size(res), 3);
    assert_non_null(json_object_get(res, "code"));
    assert_true(mr_policy_element_hidden(p, "coder", "Observation",
                                         "valueCodeableConcept"));
    json_decref(res);

    /* a site's own label */
    res = parse("{\"resourceType\":\"Patient\",\"meta\":{\"security\":[{"
                "\"system\":\"s\",\"code\":\"X\"}]}}");
    assert_true(mr_policy_visible(p, "coder", NULL, res, 0, NULL));
    json_decref(res);
    mr_policy_free(p);
    mr_policy_free(NULL);
}

/* ---- malformed policies ----------------------------------------------- */

struct bad_case {
    const char *text; /* the whole document, or NULL: use coder/top */
    const char *top, *coder, *tail;
    enum mr_err code;
    const char *msg; /* exact, or a prefix when it ends in "..." */
};

static void expect_refused(const struct bad_case *bc)
{
    static long long marker;
    struct mr_policy *p = (struct mr_policy *)&marker;
    const char *text = bc->text;
    struct mr_diag d;
    enum mr_err rc;
    size_t n = strlen(bc->msg);

    if (text == NULL)
        text = policy_with(bc->top ? bc->top : "",
                           bc->coder ? bc->coder : "{\"allow\":[]}",
                           bc->tail ? bc->tail : "");
    mr_diag_clear(&d);
    rc = mr_policy_load(text, strlen(text), &p, &d);
    if (rc != bc->code)
        fail_msg("expected %s \"%s\", got %s \"%s\"\n  for %s",
                 mr_errname(bc->code), bc->msg, mr_errname(rc), d.msg, text);
    assert_ptr_equal(p, (struct mr_policy *)&marker);
    if (n > 3 && strcmp(bc->msg + n - 3, "...") == 0) {
        if (strncmp(d.msg, bc->msg, n - 3) != 0)
            fail_msg("expected \"%s\"\n       got \"%s\"", bc->msg, d.msg);
    } else if (strcmp(d.msg, bc->msg) != 0) {
        fail_msg("expected \"%s\"\n       got \"%s\"", bc->msg, d.msg);
    }
}

static void test_malformed(void **state)
{
    static const struct bad_case cases[] = {
        {"{\"version\":1,", NULL, NULL, NULL, MR_EJSON,
         "policy: line 1 column ..."},
        {"{\"version\":1,\"version\":1}", NULL, NULL, NULL, MR_EJSON,
         "policy: line 1 column 22: duplicate object key..."},
        {"[]", NULL, NULL, NULL, MR_EINVALID, "policy: must be a JSON object"},
        {"{\"roles\":{}}", NULL, NULL, NULL, MR_EINVALID,
         "policy: \"version\" is missing"},
        {"{\"version\":\"1\"}", NULL, NULL, NULL, MR_EINVALID,
         "policy.version: must be an integer"},
        {"{\"version\":2,\"roles\":{},\"new\":1}", NULL, NULL, NULL,
         MR_EINVALID,
         "policy.version: 2 is not supported (this medrec reads version 1)"},
        {"{\"version\":1}", NULL, NULL, NULL, MR_EINVALID,
         "policy: \"roles\" is missing"},
        {NULL, "\"colour\":\"red\",", NULL, NULL, MR_EINVALID,
         "policy.colour: unknown key (expected one of: version, "
         "description, groups, labels, roles, system_tokens)"},
        /* a control character in a key cannot forge a line */
        {NULL, "\"a\\nb\":1,", NULL, NULL, MR_EINVALID,
         "policy.a?b: unknown key ..."},
        /* the example of the issue */
        {NULL, NULL,
         "{\"allow\":[{\"actions\":[\"read\"],\"types\":[\"Patient\"]},"
         "{\"actions\":[\"read\"],\"types\":[\"Encounter\"]},"
         "{\"actions\":[\"read\"],\"types\":[\"Claim\"]},"
         "{\"actions\":[\"read\"],\"types\":[\"Obsrvation\"]}]}",
         NULL, MR_EINVALID,
         "policy.roles.coder.allow[3].types[0]: \"Obsrvation\" is not a "
         "resource type"},
        {NULL, NULL,
         "{\"allow\":[{\"actions\":[\"read\"],\"types\":[\"HumanName\"]}]}",
         NULL, MR_EINVALID,
         "policy.roles.coder.allow[0].types[0]: \"HumanName\" is not a "
         "resource type"},
        {NULL, NULL,
         "{\"allow\":[{\"actions\":[\"read\",\"write\"],\"types\":[\"*\"]}]}",
         NULL, MR_EINVALID,
         "policy.roles.coder.allow[0].actions[1]: \"write\" is not an action "
         "(read, search, create, update, delete, history, export or "
         "\"*\")"},
        {NULL, NULL, "{\"alow\":[]}", NULL, MR_EINVALID,
         "policy.roles.coder.alow: unknown key (expected one of: "
         "description, allow, deny, labels, break_glass, "
         "hold_until_released, redact, own_compartment_only, privileges)"},
        {NULL, NULL, "{\"deny\":[]}", NULL, MR_EINVALID,
         "policy.roles.coder: \"allow\" is missing"},
        {NULL, NULL, "{\"allow\":{}}", NULL, MR_EINVALID,
         "policy.roles.coder.allow: must be an array of {\"actions\", "
         "\"types\"} rules"},
        {NULL, NULL, "{\"allow\":[{\"actions\":[\"read\"]}]}", NULL,
         MR_EINVALID, "policy.roles.coder.allow[0]: \"types\" is missing"},
        {NULL, NULL,
         "{\"allow\":[{\"actions\":[\"read\"],\"types\":[],\"x\":1}]}", NULL,
         MR_EINVALID,
         "policy.roles.coder.allow[0].x: unknown key (expected one of: "
         "actions, types)"},
        {NULL, NULL, "{\"allow\":[{\"actions\":[\"read\"],\"types\":[]}]}",
         NULL, MR_EINVALID,
         "policy.roles.coder.allow[0].types: must not be empty"},
        {NULL, NULL,
         "{\"allow\":[],\"deny\":[{\"actions\":[\"read\"],\"types\":[7]}]}",
         NULL, MR_EINVALID,
         "policy.roles.coder.deny[0].types[0]: must be a string (a "
         "resource type, a group or \"*\")"},
        {NULL, "\"groups\":{\"lab\":[\"Observation\"]},",
         "{\"allow\":[{\"actions\":[\"read\"],\"types\":[\"labs\"]}]}", NULL,
         MR_EINVALID,
         "policy.roles.coder.allow[0].types[0]: \"labs\" is not a group "
         "defined in policy.groups"},
        {NULL, "\"groups\":{\"a\":[\"b\"],\"b\":[\"Patient\"]},", NULL, NULL,
         MR_EINVALID,
         "policy.groups.a[0]: \"b\" is defined further down: a group may "
         "only use groups above it"},
        {NULL, "\"groups\":{\"a\":[\"Patient\",\"a\"]},", NULL, NULL,
         MR_EINVALID,
         "policy.groups.a[1]: \"a\": a group cannot contain itself"},
        {NULL, "\"groups\":{\"Notes\":[\"Patient\"]},", NULL, NULL, MR_EINVALID,
         "policy.groups.Notes: \"Notes\" is not a valid group name ..."},
        {NULL, NULL, "{\"allow\":[],\"labels\":[\"hiv\"]}", NULL, MR_EINVALID,
         "policy.roles.coder.labels[0]: \"hiv\" is not a label defined in "
         "policy.labels"},
        {NULL, "\"labels\":{\"hiv\":[{\"system\":\"s\",\"code\":\"HIV\"}]},",
         "{\"allow\":[],\"break_glass\":[\"hiv\",\"psy\"]}", NULL, MR_EINVALID,
         "policy.roles.coder.break_glass[1]: \"psy\" is not a label defined "
         "in policy.labels"},
        {NULL,
         "\"labels\":{\"a\":[{\"system\":\"s\",\"code\":\"X\"}],"
         "\"b\":[{\"system\":\"s\",\"code\":\"X\"}]},",
         NULL, NULL, MR_EINVALID,
         "policy.labels.b[0]: \"s\" \"X\" already marks label \"a\""},
        {NULL, "\"labels\":{\"a\":[{\"system\":\"s\"}]},", NULL, NULL,
         MR_EINVALID, "policy.labels.a[0].code: must be a non-empty string"},
        {NULL,
         "\"labels\":{\"a\":[{\"system\":\"s\",\"code\":\"X\","
         "\"sytem\":\"t\"}]},",
         NULL, NULL, MR_EINVALID,
         "policy.labels.a[0].sytem: unknown key (expected one of: system, "
         "code, display)"},
        {NULL, NULL, "{\"allow\":[],\"redact\":{\"Patient\":[\"fotos\"]}}",
         NULL, MR_EINVALID,
         "policy.roles.coder.redact.Patient[0]: \"fotos\" is not an element "
         "of Patient"},
        {NULL, NULL, "{\"allow\":[],\"redact\":{\"Patinet\":[\"photo\"]}}",
         NULL, MR_EINVALID,
         "policy.roles.coder.redact.Patinet: \"Patinet\" is not a resource "
         "type"},
        {NULL, NULL, "{\"allow\":[],\"redact\":{\"Patient\":[\"meta\"]}}", NULL,
         MR_EINVALID,
         "policy.roles.coder.redact.Patient[0]: \"meta\" cannot be hidden: "
         "medrec needs it to handle the resource"},
        {NULL, NULL, "{\"allow\":[],\"redact\":{\"Patient\":[\"value[x]\"]}}",
         NULL, MR_EINVALID,
         "policy.roles.coder.redact.Patient[0]: \"value[x]\" is not an "
         "element of Patient"},
        {NULL, NULL, "{\"allow\":[],\"privileges\":[\"superuser\"]}", NULL,
         MR_EINVALID,
         "policy.roles.coder.privileges[0]: \"superuser\" is not a "
         "privilege (manage-users, manage-policy, merge-patients, "
         "release-to-patient, manage-interfaces)"},
        {NULL, NULL, "{\"allow\":[],\"own_compartment_only\":\"yes\"}", NULL,
         MR_EINVALID,
         "policy.roles.coder.own_compartment_only: must be true or false"},
        {NULL, NULL, "{\"allow\":[],\"description\":7}", NULL, MR_EINVALID,
         "policy.roles.coder.description: must be a string"},
        {NULL, NULL, "[]", NULL, MR_EINVALID,
         "policy.roles.coder: must be an object"},
        {NULL, NULL, NULL, ",\"system_tokens\":[\"coder\",\"nurse\"]",
         MR_EINVALID,
         "policy.system_tokens[1]: \"nurse\" is not a role defined in "
         "policy.roles"},
        {"{\"version\":1,\"roles\":{\"admin\":{\"allow\":[]}}}", NULL, NULL,
         NULL, MR_EINVALID,
         "policy.roles: required role \"records-technician\" is missing"},
        {"{\"version\":1,\"roles\":{\"Admin\":{\"allow\":[]}}}", NULL, NULL,
         NULL, MR_EINVALID,
         "policy.roles.Admin: \"Admin\" is not a valid role name "
         "(lowercase letters, digits and '-', starting with a letter, at "
         "most 32 bytes)"},
        {"{\"version\":1,\"roles\":{\"admin\":{\"allow\":[]},"
         "\"records-technician\":{\"allow\":[]},\"clinician\":{"
         "\"allow\":[]},\"admission-clerk\":{\"allow\":[]},"
         "\"lab-technician\":{\"allow\":[]},\"coder\":{\"allow\":[]},"
         "\"auditor\":{\"allow\":[]},\"patient\":{\"allow\":[]}}}",
         NULL, NULL, NULL, MR_EINVALID,
         "policy.roles.patient.own_compartment_only: must be true for the "
         "patient role"},
        {"{\"version\":1,\"roles\":{}}", NULL, NULL, NULL, MR_EINVALID,
         "policy.roles: must define the roles"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_refused(&cases[i]);
}

static void test_limits(void **state)
{
    static long long marker;
    struct mr_policy *p = (struct mr_policy *)&marker;
    struct mr_diag d;
    char *big;

    (void)state;
    big = malloc(MR_POLICY_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, ' ', MR_POLICY_MAX_BYTES + 1);
    big[MR_POLICY_MAX_BYTES + 1] = '\0';
    assert_int_equal(mr_policy_load(big, MR_POLICY_MAX_BYTES + 1, &p, &d),
                     MR_ETOOBIG);
    free(big);
    assert_int_equal(mr_policy_load(NULL, 0, &p, &d), MR_EINVALID);
    assert_ptr_equal(p, (struct mr_policy *)&marker);

    /* len is honoured: the bytes after it are not read */
    {
        size_t len;
        const char *json = mr_policy_default_json(&len);

        assert_int_equal(mr_policy_load(json, len - 10, &p, &d), MR_EJSON);
    }
    /* no diag: the code alone */
    assert_int_equal(mr_policy_load("[]", 2, &p, NULL), MR_EINVALID);
    assert_ptr_equal(p, (struct mr_policy *)&marker);
}

/* Fail each allocation of a load in turn: an error or success, never a
 * leak or a crash (the sanitizer build checks the leaks). */
static void test_alloc_failures(void **state)
{
    struct mr_policy *p = NULL;
    struct mr_diag d;
    enum mr_err rc;
    long n;

    (void)state;
    for (n = 0;; n++) {
        mr_alloc_fail_after(n);
        rc = mr_policy_load_default(&p, &d);
        mr_alloc_fail_after(-1);
        if (rc == MR_OK)
            break;
        assert_int_equal(rc, MR_ENOMEM);
        assert_string_equal(d.msg, "policy: out of memory");
        assert_true(n < 10000);
    }
    assert_true(n > 5);
    assert_true(mr_policy_allows(p, "clinician", R, "Observation"));
    mr_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_loads, setup, teardown),
        cmocka_unit_test(test_default_is_the_json_file),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_examples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels_edge_cases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_hidden, setup, teardown),
        cmocka_unit_test(test_custom_policy),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_alloc_failures),
    };

    json_set_alloc_funcs(jansson_malloc, free);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
