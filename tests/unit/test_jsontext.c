/* Unit tests for fhir/jsontext: minify and splice keep the client's bytes
 * (strings and number lexemes) while replacing the members medrec sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "fhir/jsontext.h"

static void minify_is(const char *in, const char *want)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    enum mr_err err = mr_json_minify(in, strlen(in), &b);
    if (err)
        fail_msg("minify(%s): %s", in, mr_errname(err));
    if (strcmp(b.ptr, want))
        fail_msg("minify(%s)\n got  %s\n want %s", in, b.ptr, want);
    mr_buf_release(&b);
}

/* Splice in (text) with over (JSON text or NULL); compare with want. */
static void splice_is(const char *in, const char *over, const char *want)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    json_t *o = NULL;
    enum mr_err err;

    if (over) {
        o = json_loads(over, JSON_DECODE_ANY, NULL);
        assert_non_null(o);
    }
    err = mr_json_splice(in, strlen(in), o, &b);
    if (err)
        fail_msg("splice(%s): %s", in, mr_errname(err));
    if (strcmp(b.ptr, want))
        fail_msg("splice(%s, %s)\n got  %s\n want %s", in, over ? over : "NULL",
                 b.ptr, want);
    /* Always valid JSON. */
    json_t *j = json_loads(b.ptr, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        fail_msg("splice output is not valid JSON: %s", b.ptr);
    json_decref(j);
    json_decref(o);
    mr_buf_release(&b);
}

static void test_minify_whitespace(void **state)
{
    (void)state;
    minify_is("", "");
    minify_is("  \n\t\r ", "");
    minify_is("{ }", "{}");
    minify_is(" { \"a\" : 1 ,\n \"b\" :\t[ 1 , 2 ,\r\n 3 ] } ",
              "{\"a\":1,\"b\":[1,2,3]}");
    minify_is("[ true , false , null ]", "[true,false,null]");
    minify_is("{\n  \"a\": {\n    \"b\": [ {\"c\" : [ ] } ]\n  }\n}\n",
              "{\"a\":{\"b\":[{\"c\":[]}]}}");
}

static void test_minify_strings_exact(void **state)
{
    (void)state;
    minify_is("{ \"k\" : \"a  b\\tc\" }", "{\"k\":\"a  b\\tc\"}");
    minify_is("[ \"say \\\"hi\\\" \" , \"x\" ]", "[\"say \\\"hi\\\" \",\"x\"]");
    minify_is("[\"back\\\\\" , \"slash\\\\\\\"q\"]",
              "[\"back\\\\\",\"slash\\\\\\\"q\"]");
    minify_is("[ \"\\u00e9\\u0020\\uD83D\\uDE00\" ]",
              "[\"\\u00e9\\u0020\\uD83D\\uDE00\"]");
    minify_is("[ \"Mu\xc3\xb1oz  Garc\xc3\xad"
              "a\" ]",
              "[\"Mu\xc3\xb1oz  Garc\xc3\xad"
              "a\"]");
    minify_is("{ \"a b\" : \" { [ , ] } \" }", "{\"a b\":\" { [ , ] } \"}");
    minify_is("[\"\\/\", \"\\n\\r\\b\\f\"]", "[\"\\/\",\"\\n\\r\\b\\f\"]");
}

static void test_minify_numbers_exact(void **state)
{
    (void)state;
    minify_is("[ 1.50 , 1e5 , -0.0 , 0.1 , 1E+05 , 178.88023499217553 ]",
              "[1.50,1e5,-0.0,0.1,1E+05,178.88023499217553]");
    minify_is("{\"v\" : 100.000 }", "{\"v\":100.000}");
    minify_is("[-1.0e-10,12345678901234567890]",
              "[-1.0e-10,12345678901234567890]");
}

static void test_splice_order(void **state)
{
    (void)state;
    /* No over: leading members first, others in their order. */
    splice_is("{\"b\":1,\"meta\":{\"x\":1},\"id\":\"p\",\"a\":2,"
              "\"resourceType\":\"Patient\"}",
              NULL,
              "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"x\":1},"
              "\"b\":1,\"a\":2}");
    /* id and meta from over, placed after resourceType. */
    splice_is("{\"gender\":\"female\",\"resourceType\":\"Patient\"}",
              "{\"meta\":{\"versionId\":\"1\"},\"id\":\"abc\"}",
              "{\"resourceType\":\"Patient\",\"id\":\"abc\","
              "\"meta\":{\"versionId\":\"1\"},\"gender\":\"female\"}");
    splice_is("{}", NULL, "{}");
    splice_is("  { }  ", "{\"id\":\"x\"}", "{\"id\":\"x\"}");
}

static void test_splice_replace_add_remove(void **state)
{
    (void)state;
    /* Replace in place, add at the end in over's order. */
    splice_is("{\"resourceType\":\"Patient\",\"id\":\"old\",\"a\":1,"
              "\"b\":[1,2],\"c\":\"x\"}",
              "{\"id\":\"new\",\"b\":{\"k\":true},\"z\":1,\"y\":\"s\"}",
              "{\"resourceType\":\"Patient\",\"id\":\"new\",\"a\":1,"
              "\"b\":{\"k\":true},\"c\":\"x\",\"z\":1,\"y\":\"s\"}");
    /* null removes, including leading members and the first member. */
    splice_is("{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":null,\"c\":null}",
              "{\"b\":2}");
    splice_is("{\"resourceType\":\"Patient\",\"id\":\"x\",\"meta\":{},"
              "\"b\":2}",
              "{\"meta\":null,\"id\":null}",
              "{\"resourceType\":\"Patient\",\"b\":2}");
    splice_is("{\"a\":1}", "{\"a\":null,\"q\":null}", "{}");
    /* null for a member not present: nothing. */
    splice_is("{\"a\":1}", "{\"zz\":null}", "{\"a\":1}");
}

static const char pretty[] =
    "{\n"
    "  \"resourceType\" : \"Observation\",\n"
    "  \"status\" : \"final\",\n"
    "  \"component\" : [\n"
    "    {\n"
    "      \"valueQuantity\" : { \"value\" : 178.88023499217553 ,"
    " \"unit\" : \"cm\" },\n"
    "      \"note\" : [ [ 1.50 , 0.1 ], { \"t\" : \"a \\\"q\\\" b\" } ]\n"
    "    },\n"
    "    { \"x\" : -0.0 , \"y\" : 1e5 }\n"
    "  ],\n"
    "  \"id\" : \"old\"\n"
    "}\n";

static void test_splice_pretty_nested(void **state)
{
    (void)state;
    splice_is(pretty, "{\"id\":\"n1\",\"meta\":{\"versionId\":\"2\"}}",
              "{\"resourceType\":\"Observation\",\"id\":\"n1\","
              "\"meta\":{\"versionId\":\"2\"},\"status\":\"final\","
              "\"component\":[{\"valueQuantity\":{\"value\":"
              "178.88023499217553,\"unit\":\"cm\"},\"note\":[[1.50,0.1],"
              "{\"t\":\"a \\\"q\\\" b\"}]},{\"x\":-0.0,\"y\":1e5}]}");
}

static void test_splice_decimals_byte_for_byte(void **state)
{
    (void)state;
    splice_is("{\"resourceType\":\"Observation\",\"valueQuantity\":"
              "{\"value\":178.88023499217553},\"a\":0.1,\"b\":1.50,"
              "\"c\":-0.0,\"d\":1e5,\"e\":100}",
              "{\"id\":\"o\"}",
              "{\"resourceType\":\"Observation\",\"id\":\"o\","
              "\"valueQuantity\":{\"value\":178.88023499217553},\"a\":0.1,"
              "\"b\":1.50,\"c\":-0.0,\"d\":1e5,\"e\":100}");
    /* Scalars last in the object, with whitespace before '}'. */
    splice_is("{ \"a\" : 1.50 }", NULL, "{\"a\":1.50}");
    splice_is("{\"a\":1.50\n}", NULL, "{\"a\":1.50}");
}

static void test_splice_keys_with_escapes(void **state)
{
    (void)state;
    /* Escaped quotes and backslashes in keys are copied as they are. */
    splice_is("{ \"a\\\"b\" : 1 , \"c\\\\\" : \"}\" , \"d\" : 2 }", "{\"d\":3}",
              "{\"a\\\"b\":1,\"c\\\\\":\"}\",\"d\":3}");
    splice_is("{\"k\\u00e9y\":\"v\"}", NULL, "{\"k\\u00e9y\":\"v\"}");
}

static void test_splice_escaped_lead_key(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    json_t *o =
        json_pack("{s:s,s:{s:s}}", "id", "good", "meta", "versionId", "1");
    /* "\u0069d" is the key "id" once decoded, "\u006deta" is "meta". */
    const char *in = "{\"resourceType\":\"Patient\",\"\\u0069d\":\"evil\","
                     "\"\\u006deta\":{\"versionId\":\"999\"}}";
    json_error_t je;
    json_t *j;
    (void)state;

    assert_int_equal(mr_json_splice(in, strlen(in), o, &b), MR_OK);
    /* Regression test (bug found by this test, now fixed): key_is() compares
     * raw key bytes, so a member whose key is spelled with \u escapes is not
     * recognised as id/meta: it is neither replaced nor dropped, and the output
     * carries two "id" (and two "meta") members. jansson keeps the last one
     * when reading, so the stored resource says id "evil" and versionId "999"
     * while the store row says otherwise, and re-import
     * (JSON_REJECT_DUPLICATES) fails. Repro: mr_json_splice(
     *   {"resourceType":"Patient","\u0069d":"evil"}, over {"id":"good"})
     *   -> {"resourceType":"Patient","id":"good","\u0069d":"evil"} */
    char got[512];
    snprintf(got, sizeof(got), "%s", b.ptr);
    j = json_loads(b.ptr, JSON_REJECT_DUPLICATES, &je);
    json_decref(o);
    mr_buf_release(&b);
    if (!j)
        fail_msg("duplicate members in splice output: %s (%s)", got, je.text);
    int good = !strcmp(json_string_value(json_object_get(j, "id")), "good");
    json_decref(j);
    assert_true(good);
}

static void test_splice_errors(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    struct mr_buf small = MR_BUF_INIT(10);
    struct mr_buf big = MR_BUF_INIT(1 << 20);
    size_t i;
    (void)state;

    assert_int_equal(mr_json_splice("[1]", 3, NULL, &b), MR_EJSON);
    assert_int_equal(mr_json_splice("", 0, NULL, &b), MR_EJSON);
    assert_int_equal(mr_json_splice("  ", 2, NULL, &b), MR_EJSON);
    assert_int_equal(mr_json_splice("{\"a\":1,\"b\":2}", 13, NULL, &small),
                     MR_ETOOBIG);
    mr_buf_release(&small);

    /* More members than the splice handles: a clear error. */
    assert_int_equal(mr_buf_addc(&big, '{'), MR_OK);
    for (i = 0; i < 600; i++)
        assert_int_equal(
            mr_buf_addf(&big, "%s\"k%zu\":%zu", i ? "," : "", i, i), MR_OK);
    assert_int_equal(mr_buf_addc(&big, '}'), MR_OK);
    mr_buf_reset(&b);
    assert_int_equal(mr_json_splice(big.ptr, big.len, NULL, &b), MR_ETOOBIG);
    mr_buf_release(&big);

    /* Allocation failure: ENOMEM, no leak. */
    mr_alloc_fail_after(0);
    mr_buf_release(&b);
    assert_int_equal(mr_json_splice("{\"a\":1}", 7, NULL, &b), MR_ENOMEM);
    mr_alloc_fail_after(-1);
    mr_buf_release(&b);
}

static void test_splice_alloc_failures(void **state)
{
    const char *in = pretty;
    json_t *o = json_pack("{s:s,s:{s:s},s:[i]}", "id", "x", "meta", "versionId",
                          "1", "extra", 1);
    long n;
    int ok = 0;
    (void)state;

    for (n = 0; n < 100 && !ok; n++) {
        struct mr_buf b = MR_BUF_INIT(1 << 20);
        enum mr_err err;
        mr_alloc_fail_after(n);
        err = mr_json_splice(in, strlen(in), o, &b);
        mr_alloc_fail_after(-1);
        if (err == MR_OK)
            ok = 1;
        else
            assert_int_equal(err, MR_ENOMEM);
        assert_non_null(b.ptr);
        assert_int_equal(b.ptr[b.len], '\0');
        mr_buf_release(&b);
    }
    assert_true(ok);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minify_whitespace),
        cmocka_unit_test(test_minify_strings_exact),
        cmocka_unit_test(test_minify_numbers_exact),
        cmocka_unit_test(test_splice_order),
        cmocka_unit_test(test_splice_replace_add_remove),
        cmocka_unit_test(test_splice_pretty_nested),
        cmocka_unit_test(test_splice_decimals_byte_for_byte),
        cmocka_unit_test(test_splice_keys_with_escapes),
        cmocka_unit_test(test_splice_escaped_lead_key),
        cmocka_unit_test(test_splice_errors),
        cmocka_unit_test(test_splice_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
