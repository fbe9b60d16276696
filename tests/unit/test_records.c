/* Unit tests for records/records.h end to end in-process over temporary
 * databases: registration with MRNs, duplicates, updates, deletes, reads,
 * the audit trail, rejected inputs, export and import. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/id.h"
#include "records/records.h"

static const struct mr_actor ACTOR = {"tester", NULL, "unit-test", NULL, 1};

struct fx {
    char dir[64];
    char path[128];
    char path2[128];
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

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct mr_diag d;

    snprintf(f->dir, sizeof(f->dir), "/tmp/mr-test-records-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/a.db", f->dir);
    snprintf(f->path2, sizeof(f->path2), "%s/b.db", f->dir);
    if (mr_records_open(f->path, MR_STORE_CREATE, &f->r, &d)) {
        fprintf(stderr, "open: %s\n", mr_diag_msg(&d));
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mr_records_close(f->r);
    rm_db(f->path);
    rm_db(f->path2);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---------------------------------------------------------- */

struct audit_log {
    int n;
    char action[32];
    char outcome[32];
    char type[64];
    char id[80];
    char patient[96];
    char query[160];
};

static int audit_cb(void *ctx, int64_t seq, const struct mr_audit_entry *e)
{
    struct audit_log *a = ctx;
    (void)seq;
    a->n++;
    snprintf(a->action, sizeof(a->action), "%s", e->action);
    snprintf(a->outcome, sizeof(a->outcome), "%s", e->outcome);
    snprintf(a->type, sizeof(a->type), "%s", e->type ? e->type : "");
    snprintf(a->id, sizeof(a->id), "%s", e->id ? e->id : "");
    snprintf(a->patient, sizeof(a->patient), "%s",
             e->patient ? e->patient : "");
    snprintf(a->query, sizeof(a->query), "%.150s", e->query ? e->query : "");
    return 0;
}

/* The number of audit entries and the newest one. */
static struct audit_log audit_log(struct mr_records *r, const char *patient)
{
    struct audit_log a;
    struct mr_diag d;
    memset(&a, 0, sizeof(a));
    if (mr_records_audit_scan(r, &ACTOR, patient, audit_cb, &a, &d))
        fail_msg("audit scan: %s", mr_diag_msg(&d));
    return a;
}

static int audit_count(struct mr_records *r)
{
    return audit_log(r, NULL).n;
}

/* Export everything into a heap string (caller frees). */
static char *export_all(struct mr_records *r, int64_t *count)
{
    FILE *fp = tmpfile();
    struct mr_diag d;
    long n;
    char *s;

    assert_non_null(fp);
    if (mr_records_export(r, &ACTOR, fp, count, &d))
        fail_msg("export: %s", mr_diag_msg(&d));
    n = ftell(fp);
    rewind(fp);
    s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

static enum mr_err create(struct mr_records *r, const char *type,
                          const char *json, int flags, struct mr_result *res,
                          struct mr_diag *d)
{
    mr_diag_clear(d);
    return mr_records_create(r, &ACTOR, type, json, strlen(json), "test", flags,
                             res, d);
}

static json_t *parse(const struct mr_result *res)
{
    json_error_t je;
    json_t *j =
        json_loadb(res->json.ptr, res->json.len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        fail_msg("stored JSON does not parse: %s (%s)", je.text, res->json.ptr);
    return j;
}

static const char *ANA =
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Rivera\","
    "\"given\":[\"Ana\"]}],\"gender\":\"female\","
    "\"birthDate\":\"1984-03-09\",\"telecom\":[{\"system\":\"phone\","
    "\"value\":\"+1 555 010 0199\"}]}";
static const char *BEN =
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\","
    "\"given\":[\"Ben\"]}],\"gender\":\"male\",\"birthDate\":\"1970-01-02\"}";

/* Create a patient, return its id and MRN. */
static void register_patient(struct mr_records *r, const char *json,
                             char id[65], char mrn[24])
{
    struct mr_result res;
    struct mr_diag d;
    json_t *j;

    mr_result_init(&res);
    if (create(r, "Patient", json, 0, &res, &d))
        fail_msg("create: %s", mr_diag_msg(&d));
    snprintf(id, 65, "%s", res.meta.id);
    j = parse(&res);
    const char *m = mr_patient_mrn(j);
    assert_non_null(m);
    snprintf(mrn, 24, "%s", m);
    json_decref(j);
    mr_result_release(&res);
}

/* ---- create ----------------------------------------------------------- */

static void test_create_patient_mrn(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    json_t *j;
    struct audit_log a;

    mr_result_init(&res);
    assert_int_equal(create(f->r, "Patient", ANA, 0, &res, &d), MR_OK);
    assert_int_equal(res.meta.version, 1);
    assert_int_equal(strlen(res.meta.id), MR_ID_LEN);
    assert_string_equal(res.meta.type, "Patient");
    assert_string_equal(res.meta.author, "tester");
    j = parse(&res);
    assert_string_equal(json_string_value(json_object_get(j, "id")),
                        res.meta.id);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "meta"), "versionId")),
                        "1");
    assert_non_null(json_object_get(json_object_get(j, "meta"), "lastUpdated"));
    const char *mrn = mr_patient_mrn(j);
    assert_non_null(mrn);
    assert_true(mr_mrn_valid(mrn));
    char want[24];
    mr_mrn_format(MR_MRN_START, want);
    assert_string_equal(mrn, want);
    /* The MRN identifier has the MR type. */
    json_t *ids = json_object_get(j, "identifier");
    assert_int_equal(json_array_size(ids), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(ids, 0), "system")),
        MR_MRN_SYSTEM);
    /* The client's bytes are kept: resourceType first, then id, meta. */
    assert_memory_equal(res.json.ptr,
                        "{\"resourceType\":\"Patient\",\"id\":", 31);
    assert_non_null(strstr(res.json.ptr, "\"+1 555 010 0199\""));
    json_decref(j);

    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.action, "create");
    assert_string_equal(a.outcome, "ok");
    assert_string_equal(a.type, "Patient");
    assert_string_equal(a.id, res.meta.id);
    char pref[100];
    snprintf(pref, sizeof(pref), "Patient/%s", res.meta.id);
    assert_string_equal(a.patient, pref);
    assert_int_equal(audit_log(f->r, pref).n, 1);

    /* A second patient gets the next number; an id in the input is
     * replaced. */
    mr_result_release(&res);
    mr_result_init(&res);
    assert_int_equal(create(f->r, "Patient",
                            "{\"resourceType\":\"Patient\",\"id\":\"mine\","
                            "\"name\":[{\"family\":\"Lee\"}]}",
                            0, &res, &d),
                     MR_OK);
    assert_string_not_equal(res.meta.id, "mine");
    j = parse(&res);
    mr_mrn_format(MR_MRN_START + 1, want);
    assert_string_equal(mr_patient_mrn(j), want);
    json_decref(j);
    mr_result_release(&res);
    /* res may be NULL. */
    assert_int_equal(create(f->r, "Patient",
                            "{\"resourceType\":\"Patient\",\"name\":[{"
                            "\"family\":\"Kim\"}]}",
                            0, NULL, &d),
                     MR_OK);
    assert_int_equal(audit_count(f->r), 3);
}

static void test_duplicate(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    char id[65], mrn[24];
    int64_t n = 0;

    register_patient(f->r, ANA, id, mrn);
    mr_result_init(&res);
    /* Same name (other case and spacing), birth date and gender. */
    const char *again =
        "{\"resourceType\":\"Patient\",\"gender\":\"female\","
        "\"birthDate\":\"1984-03-09\",\"name\":[{\"family\":\"RIVERA\","
        "\"given\":[\"ana\"]}]}";
    assert_int_equal(create(f->r, "Patient", again, 0, &res, &d),
                     MR_EDUPLICATE);
    assert_int_equal(d.code, MR_EDUPLICATE);
    assert_non_null(strstr(d.msg, mrn));
    assert_non_null(strstr(d.msg, id));
    assert_int_equal(audit_count(f->r), 1);
    free(export_all(f->r, &n));
    assert_int_equal(n, 1);

    /* Other birth date: not a duplicate. */
    assert_int_equal(create(f->r, "Patient",
                            "{\"resourceType\":\"Patient\",\"gender\":"
                            "\"female\",\"birthDate\":\"1984-03-10\","
                            "\"name\":[{\"family\":\"Rivera\",\"given\":"
                            "[\"Ana\"]}]}",
                            0, NULL, &d),
                     MR_OK);

    /* FORCE registers it with a new MRN. */
    assert_int_equal(create(f->r, "Patient", again, MR_WRITE_FORCE, &res, &d),
                     MR_OK);
    json_t *j = parse(&res);
    assert_string_not_equal(mr_patient_mrn(j), mrn);
    json_decref(j);
    mr_result_release(&res);
}

static void test_patient_by_mrn(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    char id[65], mrn[24], id2[65], mrn2[24], bad[24];
    struct audit_log a;

    register_patient(f->r, ANA, id, mrn);
    register_patient(f->r, BEN, id2, mrn2);
    mr_result_init(&res);
    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, mrn, &res, &d),
                     MR_OK);
    assert_string_equal(res.meta.id, id);
    assert_non_null(strstr(res.json.ptr, "Rivera"));
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, 3);
    assert_string_equal(a.action, "read");
    assert_string_equal(a.outcome, "ok");
    assert_string_equal(a.id, id);

    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, mrn2, &res, &d),
                     MR_OK);
    assert_string_equal(res.meta.id, id2);

    /* One digit changed: the check digit catches it. */
    snprintf(bad, sizeof(bad), "%s", mrn);
    bad[3] = bad[3] == '9' ? '0' : (char)(bad[3] + 1);
    mr_diag_clear(&d);
    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, bad, &res, &d),
                     MR_EINVALID);
    assert_non_null(strstr(d.msg, "check digit"));

    /* Valid but unassigned MRN: NOTFOUND, audited. */
    char unused[24];
    mr_mrn_format(MR_MRN_START + 500, unused);
    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, unused, &res, &d),
                     MR_ENOTFOUND);
    a = audit_log(f->r, NULL);
    assert_string_equal(a.outcome, "NOTFOUND");

    /* "Patient/id" and a bare id work too. */
    char ref[80];
    snprintf(ref, sizeof(ref), "Patient/%s", id2);
    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, ref, &res, &d),
                     MR_OK);
    assert_string_equal(res.meta.id, id2);
    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, id, &res, &d),
                     MR_OK);
    assert_string_equal(res.meta.id, id);
    assert_int_equal(mr_records_patient_by_mrn(f->r, &ACTOR, "", &res, &d),
                     MR_EINVALID);
    mr_result_release(&res);
}

/* ---- update, delete, read --------------------------------------------- */

static void test_update(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    char id[65], mrn[24];
    json_t *j;
    struct audit_log a;
    const char *v2 = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
                     "\"Rivera\",\"given\":[\"Ana\",\"Maria\"]}],"
                     "\"gender\":\"female\",\"birthDate\":\"1984-03-09\"}";

    register_patient(f->r, ANA, id, mrn);
    mr_result_init(&res);
    /* The new JSON has no identifier: the MRN is kept. */
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", id, v2,
                                       strlen(v2), 1, "add name", &res, &d),
                     MR_OK);
    assert_int_equal(res.meta.version, 2);
    j = parse(&res);
    assert_string_equal(mr_patient_mrn(j), mrn);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "meta"), "versionId")),
                        "2");
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.action, "update");
    assert_string_equal(a.id, id);

    /* Stale expect: CONFLICT, nothing written. */
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", id, v2,
                                       strlen(v2), 1, NULL, &res, &d),
                     MR_ECONFLICT);
    assert_int_equal(audit_count(f->r), 2);
    /* The id in the JSON must match. */
    const char *wrong = "{\"resourceType\":\"Patient\",\"id\":\"other\","
                        "\"name\":[{\"family\":\"X\"}]}";
    mr_diag_clear(&d);
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", id, wrong,
                                       strlen(wrong), 0, NULL, &res, &d),
                     MR_EINVALID);
    assert_non_null(strstr(d.msg, "other"));
    /* Updating a missing id. */
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", "nope", v2,
                                       strlen(v2), 0, NULL, &res, &d),
                     MR_ENOTFOUND);
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", "bad_id", v2,
                                       strlen(v2), 0, NULL, &res, &d),
                     MR_EINVALID);
    assert_int_equal(audit_count(f->r), 2);

    /* expect 0 skips the check; the id may be given when it matches. */
    char same[256];
    snprintf(same, sizeof(same),
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"name\":[{"
             "\"family\":\"Rivera\"}]}",
             id);
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", id, same,
                                       strlen(same), 0, NULL, &res, &d),
                     MR_OK);
    assert_int_equal(res.meta.version, 3);
    j = parse(&res);
    assert_string_equal(mr_patient_mrn(j), mrn);
    json_decref(j);
    mr_result_release(&res);
}

struct hcount {
    int n;
    int64_t first;
};

static int hcb(void *ctx, const struct mr_version *m, const char *json,
               size_t len)
{
    struct hcount *h = ctx;
    (void)json;
    (void)len;
    if (!h->n)
        h->first = m->version;
    h->n++;
    return 0;
}

static void test_delete_read_history_audit(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    char id[65], mrn[24];
    struct audit_log a;
    struct hcount h = {0, 0};
    int n0;

    register_patient(f->r, ANA, id, mrn);
    mr_result_init(&res);
    n0 = audit_count(f->r);

    assert_int_equal(mr_records_read(f->r, &ACTOR, "Patient", id, 0, &res, &d),
                     MR_OK);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 1);
    assert_string_equal(a.action, "read");
    assert_string_equal(a.outcome, "ok");

    assert_int_equal(mr_records_read(f->r, &ACTOR, "Patient", id, 1, &res, &d),
                     MR_OK);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 2);
    assert_string_equal(a.action, "vread");

    /* A missing id: NOTFOUND, audited with that outcome. */
    assert_int_equal(
        mr_records_read(f->r, &ACTOR, "Patient", "nothere", 0, &res, &d),
        MR_ENOTFOUND);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 3);
    assert_string_equal(a.action, "read");
    assert_string_equal(a.outcome, "NOTFOUND");
    assert_string_equal(a.id, "nothere");

    assert_int_equal(mr_records_delete(f->r, &ACTOR, "Patient", id, 0,
                                       "entered in error", &d),
                     MR_OK);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 4);
    assert_string_equal(a.action, "delete");
    assert_string_equal(a.outcome, "ok");

    assert_int_equal(mr_records_read(f->r, &ACTOR, "Patient", id, 0, &res, &d),
                     MR_EGONE);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 5);
    assert_string_equal(a.outcome, "GONE");
    assert_int_equal(
        mr_records_delete(f->r, &ACTOR, "Patient", id, 0, NULL, &d), MR_EGONE);
    assert_int_equal(audit_count(f->r), n0 + 5);

    assert_int_equal(
        mr_records_history(f->r, &ACTOR, "Patient", id, hcb, &h, &d), MR_OK);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.first, 2);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 6);
    assert_string_equal(a.action, "history");

    int64_t total = -1;
    assert_int_equal(mr_records_search(f->r, &ACTOR, "Patient", "name=riv", hcb,
                                       &h, &total, &d),
                     MR_OK);
    assert_int_equal(total, 0);
    a = audit_log(f->r, NULL);
    assert_int_equal(a.n, n0 + 7);
    assert_string_equal(a.action, "search");
    assert_string_equal(a.query, "name=riv");

    /* No actor: denied, not audited. */
    struct mr_actor nobody = {NULL, NULL, NULL, NULL, 0};
    assert_int_equal(mr_records_read(f->r, &nobody, "Patient", id, 0, &res, &d),
                     MR_EDENIED);
    assert_int_equal(audit_count(f->r), n0 + 7);
    mr_result_release(&res);
}

/* ---- bad inputs ------------------------------------------------------- */

static void test_bad_inputs_change_nothing(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    char id[65], mrn[24];
    char *before, *after;
    int n0;
    static const struct {
        const char *type, *json;
        enum mr_err want;
    } cases[] = {
        {"Patient", "{\"resourceType\":\"Patient\",", MR_EJSON},
        {"Patient", "", MR_EJSON},
        {"Patient", "[1,2]", MR_EINVALID},
        {"Patient",
         "{\"resourceType\":\"Observation\",\"status\":\"final\","
         "\"code\":{\"text\":\"x\"}}",
         MR_EINVALID},
        {"Patient",
         "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
         "\"A\"}],\"favouriteColour\":\"blue\"}",
         MR_EINVALID},
        {"Patient",
         "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
         "\"A\"}],\"birthDate\":\"2999-01-01\"}",
         MR_EINVALID},
        {"Patient",
         "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
         "\"A\"}],\"telecom\":[{\"system\":\"phone\",\"value\":"
         "\"call me\"}]}",
         MR_EINVALID},
        {"Patient",
         "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
         "\"A\"}],\"name\":[]}",
         MR_EJSON},
        {"Patient", "{\"resourceType\":\"Patient\"}", MR_EINVALID},
        {"NoSuchType", "{\"resourceType\":\"NoSuchType\"}", MR_EINVALID},
    };

    register_patient(f->r, ANA, id, mrn);
    n0 = audit_count(f->r);
    before = export_all(f->r, NULL);
    n0++; /* the export's own entry */

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum mr_err err =
            create(f->r, cases[i].type, cases[i].json, 0, NULL, &d);
        if (err != cases[i].want)
            fail_msg("case %zu: %s, want %s (%s)", i, mr_errname(err),
                     mr_errname(cases[i].want), mr_diag_msg(&d));
        assert_true(d.msg[0] != '\0');
        /* As an update of the existing patient, too. */
        err = mr_records_update(f->r, &ACTOR, cases[i].type, id, cases[i].json,
                                strlen(cases[i].json), 0, NULL, NULL, &d);
        assert_int_not_equal(err, MR_OK);
        assert_int_equal(audit_count(f->r), n0);
    }

    /* Too big: refused before parsing. */
    size_t big = MR_MAX_RESOURCE_BYTES + 100;
    char *s = malloc(big + 1);
    int k = snprintf(s, big,
                     "{\"resourceType\":\"Patient\",\"name\":[{"
                     "\"family\":\"A\"}],\"gender\":\"male\"");
    memset(s + k, ' ', big - (size_t)k - 1);
    s[big - 1] = '}';
    s[big] = '\0';
    assert_int_equal(create(f->r, "Patient", s, 0, NULL, &d), MR_ETOOBIG);
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", id, s, big, 0,
                                       NULL, NULL, &d),
                     MR_ETOOBIG);
    free(s);

    assert_int_equal(audit_count(f->r), n0);
    after = export_all(f->r, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* ---- export / import -------------------------------------------------- */

static void progress_cb(void *ctx, int64_t n)
{
    *(int64_t *)ctx = n;
}

static void test_export_import_roundtrip(void **state)
{
    struct fx *f = *state;
    struct mr_records *r2;
    struct mr_diag d;
    char id[65], mrn[24];
    int64_t n1 = 0, n2 = 0, prog = 0;
    char *e1, *e2;
    FILE *fp;

    register_patient(f->r, ANA, id, mrn);
    register_patient(f->r, BEN, id, mrn);
    const char *obs = "{\"resourceType\":\"Observation\",\"status\":"
                      "\"final\",\"code\":{\"text\":\"height\"},"
                      "\"subject\":{\"reference\":\"Patient/%s\"},"
                      "\"valueQuantity\":{\"value\":178.88023499217553,"
                      "\"unit\":\"cm\"}}";
    char buf[512];
    snprintf(buf, sizeof(buf), obs, id);
    assert_int_equal(create(f->r, "Observation", buf, 0, NULL, &d), MR_OK);
    const char *v2 = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
                     "\"Okafor\",\"given\":[\"Ben\"]}],\"gender\":\"male\","
                     "\"birthDate\":\"1970-01-02\",\"multipleBirthInteger\":"
                     "2}";
    assert_int_equal(mr_records_update(f->r, &ACTOR, "Patient", id, v2,
                                       strlen(v2), 1, NULL, NULL, &d),
                     MR_OK);

    e1 = export_all(f->r, &n1);
    assert_int_equal(n1, 3);
    assert_non_null(strstr(e1, "178.88023499217553"));
    assert_non_null(strstr(e1, "\"versionId\":\"2\""));

    assert_int_equal(mr_records_open(f->path2, MR_STORE_CREATE, &r2, &d),
                     MR_OK);
    fp = tmpfile();
    fputs(e1, fp);
    rewind(fp);
    assert_int_equal(mr_records_import(r2, &ACTOR, fp, "e1.ndjson", 2,
                                       progress_cb, &prog, &d),
                     MR_OK);
    fclose(fp);
    assert_int_equal(prog, 3);
    e2 = export_all(r2, &n2);
    assert_int_equal(n2, 3);
    assert_string_equal(e1, e2);

    /* Import audit: one entry per batch (2 + 1), then the export. */
    struct audit_log a = audit_log(r2, NULL);
    assert_int_equal(a.n, 3);
    assert_string_equal(a.action, "export");

    struct mr_buf report = MR_BUF_INIT(4096);
    int schema = 0;
    assert_int_equal(mr_records_check(r2, &ACTOR, &report, &schema, &d), MR_OK);
    assert_int_equal(schema, MR_STORE_SCHEMA_VERSION);
    mr_buf_release(&report);
    mr_records_close(r2);
    free(e1);
    free(e2);
}

static void test_import_mrn_sequence(void **state)
{
    struct fx *f = *state;
    struct mr_records *r2;
    struct mr_diag d;
    char id[65], mrn[24], id2[65], mrn2[24];
    struct mr_result res;
    FILE *fp;
    char *e1;

    register_patient(f->r, ANA, id, mrn);
    e1 = export_all(f->r, NULL);
    assert_int_equal(mr_records_open(f->path2, MR_STORE_CREATE, &r2, &d),
                     MR_OK);
    fp = tmpfile();
    fputs(e1, fp);
    rewind(fp);
    assert_int_equal(
        mr_records_import(r2, &ACTOR, fp, "e1.ndjson", 10, NULL, NULL, &d),
        MR_OK);
    fclose(fp);
    free(e1);

    /* Regression test (bug found by this test, now fixed): import keeps the
     * MRNs of imported patients but does not move the "mrn" sequence past them,
     * so the next registration in the new database is given an MRN already in
     * use, and look-up by that MRN then fails with MR_ECORRUPT ("assigned to
     * more than one patient"). Repro: create a Patient in db A (MRN 10000004),
     * export A, import into a fresh db B, create any other Patient in B: it
     * also gets 10000004. */
    register_patient(r2, BEN, id2, mrn2);
    mr_result_init(&res);
    enum mr_err err = mr_records_patient_by_mrn(r2, &ACTOR, mrn, &res, &d);
    int same_id = !strcmp(res.meta.id, id);
    mr_result_release(&res);
    mr_records_close(r2);
    assert_string_not_equal(mrn2, mrn);
    assert_int_equal(err, MR_OK);
    assert_true(same_id);
}

static void test_import_stops_at_bad_line(void **state)
{
    struct fx *f = *state;
    struct mr_diag d;
    int64_t prog = 0, n = 0;
    FILE *fp = tmpfile();
    char *e;

    fputs("{\"resourceType\":\"Patient\",\"id\":\"imp-1\",\"name\":[{"
          "\"family\":\"One\"}]}\n",
          fp);
    fputs("\n", fp); /* blank lines are skipped but counted */
    fputs("{\"resourceType\":\"Patient\",\"id\":\"imp-2\",\"name\":[{"
          "\"family\":\"Two\"}]}\n",
          fp);
    fputs("{\"resourceType\":\"Patient\",\"id\":\"imp-3\",\"nme\":[]}\n", fp);
    fputs("{\"resourceType\":\"Patient\",\"id\":\"imp-4\",\"name\":[{"
          "\"family\":\"Four\"}]}\n",
          fp);
    rewind(fp);
    mr_diag_clear(&d);
    assert_int_equal(mr_records_import(f->r, &ACTOR, fp, "in.ndjson", 1,
                                       progress_cb, &prog, &d),
                     MR_EINVALID);
    fclose(fp);
    assert_non_null(strstr(d.msg, "in.ndjson line 4"));
    assert_int_equal(prog, 2);
    e = export_all(f->r, &n);
    assert_int_equal(n, 2);
    assert_non_null(strstr(e, "\"imp-1\""));
    assert_non_null(strstr(e, "\"imp-2\""));
    assert_null(strstr(e, "imp-4"));
    free(e);
    /* Imported patients without an MRN get one. */
    struct mr_result res;
    mr_result_init(&res);
    assert_int_equal(
        mr_records_read(f->r, &ACTOR, "Patient", "imp-1", 0, &res, &d), MR_OK);
    json_t *j = parse(&res);
    assert_non_null(mr_patient_mrn(j));
    assert_true(mr_mrn_valid(mr_patient_mrn(j)));
    json_decref(j);
    mr_result_release(&res);
}

static void test_client_supplied_mrn(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    char id[65], mrn[24], json[512];
    enum mr_err err;

    register_patient(f->r, ANA, id, mrn);
    /* Another person whose JSON claims Ana's MRN. */
    snprintf(json, sizeof(json),
             "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
             "\"Other\"}],\"identifier\":[{\"system\":\"%s\","
             "\"value\":\"%s\"}]}",
             MR_MRN_SYSTEM, mrn);
    err = create(f->r, "Patient", json, 0, NULL, &d);
    (void)err;
    /* Regression test (bug found by this test, now fixed): mr_records_create
     * keeps an MRN-system identifier supplied by the client
     * (mr_patient_mrn(root) != NULL skips assignment) without checking its
     * check digit or that it is free, so two patients share one MRN and
     * mr_records_patient_by_mrn answers MR_ECORRUPT ("MRN ... is assigned to
     * more than one patient"). The same goes for an update that changes the
     * MRN. Repro: register A (MRN m); create Patient
     * {"name":[{"family":"Other"}],"identifier":[{"system":
     * "urn:medrec:mrn","value":m}]} -> MR_OK; patient_by_mrn(m) ->
     * MR_ECORRUPT. Either the create must be refused or B must get its own
     * MRN; A must stay reachable by its MRN. */
    mr_result_init(&res);
    err = mr_records_patient_by_mrn(f->r, &ACTOR, mrn, &res, &d);
    int same_id = !strcmp(res.meta.id, id);
    mr_result_release(&res);
    if (err)
        fail_msg("patient_by_mrn(%s): %s (%s)", mrn, mr_errname(err),
                 mr_diag_msg(&d));
    assert_true(same_id);
}

/* ---- stored JSON must be what the store says ------------------------- */

static void test_escaped_id_key(void **state)
{
    struct fx *f = *state;
    struct mr_result res;
    struct mr_diag d;
    json_error_t je;
    json_t *j;
    const char *in = "{\"resourceType\":\"Patient\",\"\\u0069d\":\"evil\","
                     "\"name\":[{\"family\":\"Escape\"}]}";

    mr_result_init(&res);
    assert_int_equal(create(f->r, "Patient", in, 0, &res, &d), MR_OK);
    /* Regression test (bug found by this test, now fixed): the JSON splice does
     * not recognise a key spelled "\u0069d" as "id", so the stored resource
     * carries two id members (the assigned one and "evil"); jansson keeps the
     * last, and an export of this database cannot be imported (duplicate key).
     * Repro: create a Patient from {"resourceType":"Patient","\u0069d":"evil",
     * "name":[{"family":"Escape"}]} and read it back. */
    j = json_loadb(res.json.ptr, res.json.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        char got[1024];
        snprintf(got, sizeof(got), "%s", res.json.ptr);
        mr_result_release(&res);
        fail_msg("stored JSON has duplicate members: %s", got);
    }
    int same =
        !strcmp(json_string_value(json_object_get(j, "id")), res.meta.id);
    json_decref(j);
    mr_result_release(&res);
    assert_true(same);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_patient_mrn),
        T(test_duplicate),
        T(test_patient_by_mrn),
        T(test_update),
        T(test_delete_read_history_audit),
        T(test_bad_inputs_change_nothing),
        T(test_export_import_roundtrip),
        T(test_import_mrn_sequence),
        T(test_import_stops_at_bad_line),
        T(test_client_supplied_mrn),
        T(test_escaped_id_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
