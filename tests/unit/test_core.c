/* Unit tests for src/core: error codes and diagnostics, struct mr_buf,
 * the allocation hook, arenas, resource ids and medical record numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/id.h"
#include "medrec/medrec.h"

/* ---- errors ----------------------------------------------------------- */

static void test_strerror_every_code(void **state)
{
    static const struct {
        enum mr_err e;
        const char *name;
    } want[] = {
        {MR_OK, "OK"},
        {MR_ENOMEM, "NOMEM"},
        {MR_EINVALID, "INVALID"},
        {MR_EJSON, "JSON"},
        {MR_ETOOBIG, "TOOBIG"},
        {MR_ENOTFOUND, "NOTFOUND"},
        {MR_EGONE, "GONE"},
        {MR_ECONFLICT, "CONFLICT"},
        {MR_EDUPLICATE, "DUPLICATE"},
        {MR_EEXISTS, "EXISTS"},
        {MR_EIO, "IO"},
        {MR_EBUSY, "BUSY"},
        {MR_ECORRUPT, "CORRUPT"},
        {MR_ENEWER, "NEWER"},
        {MR_ENOTDB, "NOTDB"},
        {MR_EDENIED, "DENIED"},
        {MR_EUNAUTH, "UNAUTH"},
        {MR_ETHROTTLED, "THROTTLED"},
        {MR_EUNSUPPORTED, "UNSUPPORTED"},
        {MR_EUSAGE, "USAGE"},
        {MR_EINTERNAL, "INTERNAL"},
    };
    size_t i, j;
    (void)state;

    assert_int_equal(MR_OK, 0);
    assert_int_equal(sizeof(want) / sizeof(want[0]), MR__ERR_COUNT);
    assert_string_equal(mr_strerror(MR_OK), "success");
    assert_string_equal(mr_strerror(MR_ENOTFOUND), "not found");
    assert_string_equal(mr_strerror(MR_EINTERNAL), "internal error");
    for (i = 0; i < MR__ERR_COUNT; i++) {
        const char *m = mr_strerror(want[i].e);
        assert_non_null(m);
        assert_true(strlen(m) > 0);
        assert_string_equal(mr_errname(want[i].e), want[i].name);
        assert_string_not_equal(m, "unknown error");
        /* Messages are distinct, so a message identifies its code. */
        for (j = 0; j < i; j++)
            assert_string_not_equal(m, mr_strerror(want[j].e));
    }
}

static void test_strerror_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(mr_strerror(MR__ERR_COUNT), "unknown error");
    assert_string_equal(mr_strerror((enum mr_err)1000), "unknown error");
    assert_string_equal(mr_strerror((enum mr_err) - 1), "unknown error");
    assert_string_equal(mr_errname(MR__ERR_COUNT), "UNKNOWN");
    assert_string_equal(mr_errname((enum mr_err) - 1), "UNKNOWN");
    assert_string_equal(mr_errname((enum mr_err)123456), "UNKNOWN");
}

static void test_diag(void **state)
{
    struct mr_diag d;
    char longarg[2000];
    (void)state;

    mr_diag_clear(&d);
    assert_int_equal(d.code, MR_OK);
    assert_string_equal(d.msg, "");
    assert_string_equal(mr_diag_msg(&d), "success");

    assert_int_equal(
        mr_diag_set(&d, MR_EINVALID, "Patient.%s: \"%d\"", "birthDate", 42),
        MR_EINVALID);
    assert_int_equal(d.code, MR_EINVALID);
    assert_string_equal(mr_diag_msg(&d), "Patient.birthDate: \"42\"");

    /* Empty detail: the code's message. */
    assert_int_equal(mr_diag_set(&d, MR_ENOTFOUND, "%s", ""), MR_ENOTFOUND);
    assert_string_equal(mr_diag_msg(&d), "not found");

    /* Truncated, still terminated. */
    memset(longarg, 'x', sizeof(longarg) - 1);
    longarg[sizeof(longarg) - 1] = '\0';
    assert_int_equal(mr_diag_set(&d, MR_ETOOBIG, "%s", longarg), MR_ETOOBIG);
    assert_int_equal(strlen(d.msg), sizeof(d.msg) - 1);

    /* NULL diag: skipped, code still returned. */
    assert_int_equal(mr_diag_set(NULL, MR_EBUSY, "x"), MR_EBUSY);
    mr_diag_clear(NULL);
    assert_string_equal(mr_diag_msg(NULL), "");

    mr_diag_clear(&d);
    assert_int_equal(d.code, MR_OK);
    assert_string_equal(d.msg, "");
}

/* ---- buffers ---------------------------------------------------------- */

static void test_buf_never_null(void **state)
{
    struct mr_buf b = MR_BUF_INIT(100);
    struct mr_buf c;
    (void)state;

    assert_non_null(b.ptr);
    assert_string_equal(b.ptr, "");
    assert_int_equal(b.len, 0);
    mr_buf_init(&c, 10);
    assert_non_null(c.ptr);
    assert_string_equal(c.ptr, "");
    assert_int_equal(c.max, 10);
    mr_buf_reset(&c); /* on the shared empty buffer */
    assert_string_equal(c.ptr, "");
    mr_buf_release(&c);
    assert_non_null(c.ptr);
    mr_buf_release(&b);
    assert_non_null(b.ptr);
    assert_string_equal(b.ptr, "");
    /* The shared empty string stays empty. */
    assert_int_equal(mr_buf_empty[0], '\0');
}

static void test_buf_growth(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    size_t i;
    (void)state;

    for (i = 0; i < 10000; i++) {
        assert_int_equal(mr_buf_addc(&b, (char)('a' + i % 26)), MR_OK);
        assert_int_equal(b.len, i + 1);
        assert_int_equal(b.ptr[b.len], '\0');
        assert_true(b.cap > b.len);
    }
    for (i = 0; i < 10000; i++)
        assert_int_equal(b.ptr[i], 'a' + i % 26);
    assert_int_equal(mr_buf_adds(&b, "tail"), MR_OK);
    assert_int_equal(b.len, 10004);
    assert_string_equal(b.ptr + 10000, "tail");
    assert_int_equal(mr_buf_add(&b, "zz", 0), MR_OK);
    assert_int_equal(b.len, 10004);
    /* Binary data with a NUL inside. */
    assert_int_equal(mr_buf_add(&b, "a\0b", 3), MR_OK);
    assert_int_equal(b.len, 10007);
    assert_memory_equal(b.ptr + 10004, "a\0b", 3);
    assert_int_equal(b.ptr[b.len], '\0');
    mr_buf_release(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_buf_max(void **state)
{
    struct mr_buf b = MR_BUF_INIT(10);
    (void)state;

    assert_int_equal(mr_buf_adds(&b, "0123456"), MR_OK);
    assert_int_equal(mr_buf_adds(&b, "7890"), MR_ETOOBIG);
    assert_string_equal(b.ptr, "0123456");
    assert_int_equal(b.len, 7);
    assert_int_equal(mr_buf_addf(&b, "%d", 1234), MR_ETOOBIG);
    assert_string_equal(b.ptr, "0123456");
    assert_int_equal(mr_buf_adds(&b, "789"), MR_OK); /* exactly max */
    assert_string_equal(b.ptr, "0123456789");
    assert_true(b.cap <= 11);
    assert_int_equal(mr_buf_addc(&b, 'x'), MR_ETOOBIG);
    assert_string_equal(b.ptr, "0123456789");
    assert_int_equal(mr_buf_add(&b, "", 0), MR_OK);
    /* Huge requests do not overflow the size computation. */
    assert_int_equal(mr_buf_grow(&b, SIZE_MAX), MR_ETOOBIG);
    assert_int_equal(mr_buf_grow(&b, SIZE_MAX - 5), MR_ETOOBIG);
    assert_string_equal(b.ptr, "0123456789");
    mr_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.ptr, "");
    assert_int_equal(mr_buf_adds(&b, "abcdefghij"), MR_OK);
    mr_buf_release(&b);

    /* max 0: only the empty string. */
    mr_buf_init(&b, 0);
    assert_int_equal(mr_buf_addc(&b, 'x'), MR_ETOOBIG);
    assert_int_equal(mr_buf_add(&b, "", 0), MR_OK);
    assert_string_equal(b.ptr, "");
    mr_buf_release(&b);
}

static void test_buf_detach_release_reset(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1000);
    size_t len = 99;
    char *p;
    (void)state;

    /* Detach of an empty buffer: a heap "" the caller frees. */
    p = mr_buf_detach(&b, &len);
    assert_non_null(p);
    assert_string_equal(p, "");
    assert_int_equal(len, 0);
    assert_ptr_not_equal(p, mr_buf_empty);
    mr_free(p);

    assert_int_equal(mr_buf_adds(&b, "hello"), MR_OK);
    p = mr_buf_detach(&b, &len);
    assert_string_equal(p, "hello");
    assert_int_equal(len, 5);
    assert_ptr_equal(b.ptr, mr_buf_empty);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    mr_free(p);
    /* Reusable after detach. */
    assert_int_equal(mr_buf_adds(&b, "again"), MR_OK);
    p = mr_buf_detach(&b, NULL);
    assert_string_equal(p, "again");
    mr_free(p);

    assert_int_equal(mr_buf_adds(&b, "abc"), MR_OK);
    mr_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.ptr, "");
    assert_true(b.cap > 0); /* storage kept */
    assert_int_equal(mr_buf_adds(&b, "xyz"), MR_OK);
    assert_string_equal(b.ptr, "xyz");
    mr_buf_release(&b);
    assert_string_equal(b.ptr, "");
    mr_buf_release(&b); /* twice is fine */
}

static void test_buf_addf(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1 << 16);
    char big[3000];
    (void)state;

    assert_int_equal(mr_buf_addf(&b, "%s-%d-%05.2f", "a", -7, 3.14159), MR_OK);
    assert_string_equal(b.ptr, "a--7-03.14");
    assert_int_equal(b.len, strlen("a--7-03.14"));
    assert_int_equal(mr_buf_addf(&b, "%s", ""), MR_OK);
    assert_int_equal(b.len, strlen("a--7-03.14"));
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(mr_buf_addf(&b, "[%s]", big), MR_OK);
    assert_int_equal(b.len, 10 + 2 + sizeof(big) - 1);
    assert_int_equal(b.ptr[b.len - 1], ']');
    assert_int_equal(b.ptr[b.len], '\0');
    mr_buf_release(&b);
}

static void test_buf_alloc_failure(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    char *p;
    (void)state;

    /* First growth fails: still empty and valid. */
    mr_alloc_fail_after(0);
    assert_int_equal(mr_buf_adds(&b, "abc"), MR_ENOMEM);
    mr_alloc_fail_after(-1);
    assert_non_null(b.ptr);
    assert_string_equal(b.ptr, "");
    assert_int_equal(b.len, 0);

    /* Later growth fails: content intact. */
    assert_int_equal(mr_buf_adds(&b, "abc"), MR_OK);
    mr_alloc_fail_after(0);
    char big[200];
    memset(big, 'z', sizeof(big));
    assert_int_equal(mr_buf_add(&b, big, sizeof(big)), MR_ENOMEM);
    assert_int_equal(mr_buf_addf(&b, "%200s", "x"), MR_ENOMEM);
    mr_alloc_fail_after(-1);
    assert_string_equal(b.ptr, "abc");
    assert_int_equal(b.len, 3);
    /* No growth needed: no allocation, so no failure. */
    mr_alloc_fail_after(0);
    assert_int_equal(mr_buf_addc(&b, 'd'), MR_OK);
    mr_alloc_fail_after(-1);
    assert_string_equal(b.ptr, "abcd");
    mr_buf_release(&b);

    /* Fail after one success. */
    mr_alloc_fail_after(1);
    p = mr_malloc(8);
    assert_non_null(p);
    assert_null(mr_malloc(8));
    assert_null(mr_strdup("x"));
    mr_alloc_fail_after(-1);
    mr_free(p);
    p = mr_strdup("ok");
    assert_string_equal(p, "ok");
    mr_free(p);
    mr_free(NULL);

    /* Detach of an empty buffer allocates: NULL on failure. */
    mr_alloc_fail_after(0);
    assert_null(mr_buf_detach(&b, NULL));
    mr_alloc_fail_after(-1);
}

/* ---- arena ------------------------------------------------------------ */

static void test_arena(void **state)
{
    struct mr_arena a = MR_ARENA_INIT;
    char *ptrs[2000];
    size_t i;
    (void)state;

    for (i = 0; i < 2000; i++) {
        size_t n = 1 + (i * 37) % 300;
        ptrs[i] = mr_arena_alloc(&a, n);
        assert_non_null(ptrs[i]);
        assert_int_equal((uintptr_t)ptrs[i] % 16, 0);
        memset(ptrs[i], (int)(i & 0x7f), n);
    }
    /* Nothing overlapped. */
    for (i = 0; i < 2000; i++) {
        size_t n = 1 + (i * 37) % 300, k;
        for (k = 0; k < n; k++)
            assert_int_equal(ptrs[i][k], (char)(i & 0x7f));
    }
    assert_true(a.used > 0);
    assert_true(a.total >= a.used);

    /* Large allocation beyond a chunk. */
    char *big = mr_arena_alloc(&a, 100000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 1, 100000);

    char *s = mr_arena_strdup(&a, "Muñoz");
    assert_string_equal(s, "Muñoz");
    char *t = mr_arena_strndup(&a, "abcdef", 3);
    assert_string_equal(t, "abc");
    char *z = mr_arena_alloc(&a, 0);
    assert_non_null(z);

    mr_arena_release(&a);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.total, 0);
    /* Reusable. */
    s = mr_arena_strdup(&a, "again");
    assert_string_equal(s, "again");
    mr_arena_release(&a);
    mr_arena_release(&a);
}

static void test_arena_alloc_failure(void **state)
{
    struct mr_arena a = MR_ARENA_INIT;
    (void)state;

    mr_alloc_fail_after(0);
    assert_null(mr_arena_alloc(&a, 10));
    assert_null(mr_arena_strdup(&a, "x"));
    mr_alloc_fail_after(-1);
    assert_null(a.head);
    assert_non_null(mr_arena_alloc(&a, 10));
    /* Fits in the current chunk: no allocation. */
    mr_alloc_fail_after(0);
    assert_non_null(mr_arena_alloc(&a, 10));
    assert_null(mr_arena_alloc(&a, 1 << 20)); /* needs a new chunk */
    mr_alloc_fail_after(-1);
    mr_arena_release(&a);
}

static void test_arena_huge(void **state)
{
    struct mr_arena a = MR_ARENA_INIT;
    (void)state;

    /* Regression test (bug found by this test, now fixed): mr_arena_alloc
     * rounds n up with (n + 15) & ~15, which wraps to 0 for n > SIZE_MAX - 15,
     * so a request for (almost) the whole address space returns a valid pointer
     * to a zero-byte block instead of NULL; likewise sizeof(chunk) + size can
     * wrap. Repro: struct mr_arena a = MR_ARENA_INIT; mr_arena_alloc(&a,
     * SIZE_MAX - 8) != NULL   */
    void *p1 = mr_arena_alloc(&a, SIZE_MAX - 8);
    void *p2 = mr_arena_alloc(&a, SIZE_MAX);
    mr_arena_release(&a);
    assert_null(p1);
    assert_null(p2);
}

/* ---- ids -------------------------------------------------------------- */

static int cmp_id(const void *x, const void *y)
{
    return memcmp(x, y, MR_ID_LEN + 1);
}

static void test_id_new(void **state)
{
    enum { N = 10000 };
    char(*ids)[MR_ID_LEN + 1] = malloc(N * sizeof(*ids));
    size_t i, k;
    (void)state;

    assert_non_null(ids);
    for (i = 0; i < N; i++) {
        mr_id_new(ids[i]);
        assert_int_equal(strlen(ids[i]), MR_ID_LEN);
        for (k = 0; k < MR_ID_LEN; k++) {
            char c = ids[i][k];
            assert_true((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'));
        }
        assert_true(mr_id_valid(ids[i]));
    }
    qsort(ids, N, sizeof(*ids), cmp_id);
    for (i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_id_valid(void **state)
{
    char s[80];
    (void)state;

    memset(s, 'a', 64);
    s[64] = '\0';
    assert_true(mr_id_valid(s));
    s[64] = 'b';
    s[65] = '\0';
    assert_false(mr_id_valid(s));
    assert_false(mr_id_valid(""));
    assert_true(mr_id_valid("a"));
    assert_true(mr_id_valid("A-b.9"));
    assert_true(mr_id_valid("-"));
    assert_false(mr_id_valid("a_b"));
    assert_false(mr_id_valid("a b"));
    assert_false(mr_id_valid("a/b"));
    assert_false(mr_id_valid("é"));
    assert_false(mr_id_valid("abc\n"));
    assert_false(mr_id_valid("../x"));
}

/* ---- MRNs ------------------------------------------------------------- */

static void test_mrn_format(void **state)
{
    char m[24];
    (void)state;

    mr_mrn_format(0, m);
    assert_int_equal(strlen(m), 8);
    assert_memory_equal(m, "0000000", 7);
    assert_true(mr_mrn_valid(m));
    mr_mrn_format(1000000, m);
    assert_int_equal(strlen(m), 8);
    assert_memory_equal(m, "1000000", 7);
    assert_true(mr_mrn_valid(m));
    /* Known Damm value: 572 -> check digit 4. */
    mr_mrn_format(572, m);
    assert_string_equal(m, "00005724");
    mr_mrn_format(12345678, m);
    assert_int_equal(strlen(m), 9);
    assert_true(mr_mrn_valid(m));
    mr_mrn_format(UINT64_MAX, m);
    assert_int_equal(strlen(m), 21);
    assert_true(mr_mrn_valid(m));

    assert_false(mr_mrn_valid(""));
    assert_false(mr_mrn_valid("0000000")); /* 7 digits: too short */
    assert_false(mr_mrn_valid("1000000a"));
    assert_false(mr_mrn_valid(" 10000000"));
    assert_false(mr_mrn_valid("0000000000000000000000")); /* 22 */
}

static void test_mrn_damm_detects_typos(void **state)
{
    uint64_t seq;
    char m[24], t[24];
    size_t n, i;
    long checked = 0;
    (void)state;

    for (seq = 1000000; seq < 1001000; seq++) {
        /* Spread the digits a little too. */
        uint64_t s = seq * 7919 % 100000000;
        mr_mrn_format(s, m);
        n = strlen(m);
        assert_true(mr_mrn_valid(m));
        for (i = 0; i < n; i++) {
            char c;
            for (c = '0'; c <= '9'; c++) {
                if (c == m[i])
                    continue;
                memcpy(t, m, n + 1);
                t[i] = c;
                if (mr_mrn_valid(t))
                    fail_msg("substitution %s -> %s not detected", m, t);
                checked++;
            }
        }
        for (i = 0; i + 1 < n; i++) {
            if (m[i] == m[i + 1])
                continue;
            memcpy(t, m, n + 1);
            t[i] = m[i + 1];
            t[i + 1] = m[i];
            if (mr_mrn_valid(t))
                fail_msg("transposition %s -> %s not detected", m, t);
            checked++;
        }
    }
    assert_true(checked > 70000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_every_code),
        cmocka_unit_test(test_strerror_out_of_range),
        cmocka_unit_test(test_diag),
        cmocka_unit_test(test_buf_never_null),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_max),
        cmocka_unit_test(test_buf_detach_release_reset),
        cmocka_unit_test(test_buf_addf),
        cmocka_unit_test(test_buf_alloc_failure),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_arena_alloc_failure),
        cmocka_unit_test(test_arena_huge),
        cmocka_unit_test(test_id_new),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_mrn_format),
        cmocka_unit_test(test_mrn_damm_detects_typos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
