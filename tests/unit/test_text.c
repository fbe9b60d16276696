/* Unit tests for core/text: folding for string search, UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/text.h"

static void check_fold(const char *in, const char *want)
{
    struct mr_buf b = MR_BUF_INIT(1024);
    assert_int_equal(mr_text_fold(in, strlen(in), &b), MR_OK);
    if (strcmp(b.ptr, want) != 0)
        fail_msg("fold(\"%s\") = \"%s\", want \"%s\"", in, b.ptr, want);
    assert_int_equal(b.len, strlen(want));
    mr_buf_release(&b);
}

static void test_fold_ascii(void **state)
{
    (void)state;
    check_fold("Smith", "smith");
    check_fold("  van der  BERG ", "van der berg");
    check_fold("O'Brien-Jones", "o brien jones");
    check_fold("a\t\n\rb", "a b");
    check_fold("...", "");
    check_fold("", "");
    check_fold("ABC123xyz", "abc123xyz");
    check_fold("+1 (555) 010-0100", "1 555 010 0100");
}

static void test_fold_latin(void **state)
{
    (void)state;
    check_fold("Muñoz", "munoz");
    check_fold("ÅSE  Ødegård", "ase odegard");
    check_fold("Straße", "strasse");
    check_fold("Ærøskøbing", "aeroskobing");
    check_fold("Łódź", "lodz");
    check_fold("Đorđević", "dordevic");
    check_fold("Þórunn", "thorunn");
    check_fold("ÀÁÂÃÄÅàáâãäå", "aaaaaaaaaaaa");
    check_fold("ÇçÈÉÊËèéêë", "cceeeeeeee");
    check_fold("ÌÍÎÏìíîïÐðÑñ", "iiiiiiiiddnn");
    check_fold("ÒÓÔÕÖØòóôõöø", "oooooooooooo");
    check_fold("ÙÚÛÜùúûüÝýÿ", "uuuuuuuuyyy");
    check_fold("Œuvre œil", "oeuvre oeil");
    check_fold("Ĳssel", "ijssel");
    check_fold("ŠŽČĆšžčć", "szccszcc");
    check_fold("Ğİış", "giis");
    check_fold("Řehoř Ůžasný", "rehor uzasny");
    check_fold("Ÿves ſ", "yves s");
    check_fold("Ŵŷ", "wy");
    /* Punctuation and symbols in Latin-1 are separators. */
    check_fold("a×b÷c¡d¿e«f»g", "a b c d e f g");
    check_fold("a\xc2\xa0"
               "b",
               "a b"); /* no-break space */
    /* Decomposed accents fold like precomposed ones. */
    check_fold("Mun\xcc\x83oz", "munoz");
    check_fold("Jose\xcc\x81", "jose");
}

static void test_fold_other_scripts(void **state)
{
    (void)state;
    check_fold("ΑΘΗΝΑ", "αθηνα");
    check_fold("Иван Петров", "иван петров");
    check_fold("ЁЖ", "ёж");
    check_fold("山田 太郎", "山田 太郎");
    check_fold("a\xe2\x80\x94"
               "b",
               "a b"); /* em dash */
    check_fold("a\xe3\x80\x80"
               "b",
               "a b"); /* ideographic space */
}

static void test_fold_invalid_utf8(void **state)
{
    (void)state;
    check_fold("ab\xff"
               "cd",
               "abcd");
    check_fold("\xc3", "");
    check_fold("x\xc0\xaf"
               "y",
               "xy"); /* overlong '/' */
    check_fold("x\xed\xa0\x80"
               "y",
               "xy"); /* surrogate */
    /* Embedded NUL is a separator, not an end. */
    struct mr_buf b = MR_BUF_INIT(64);
    assert_int_equal(mr_text_fold("a\0b", 3, &b), MR_OK);
    assert_string_equal(b.ptr, "a b");
    mr_buf_release(&b);
}

static void test_fold_appends_and_limits(void **state)
{
    (void)state;
    struct mr_buf b = MR_BUF_INIT(8);
    assert_int_equal(mr_buf_adds(&b, "x|"), MR_OK);
    /* Leading separators are trimmed even when out is not empty. */
    assert_int_equal(mr_text_fold("  Ab", 4, &b), MR_OK);
    assert_string_equal(b.ptr, "x|ab");
    assert_int_equal(mr_text_fold("cdefgh", 6, &b), MR_ETOOBIG);
    mr_buf_release(&b);

    struct mr_buf c = MR_BUF_INIT(1024);
    mr_alloc_fail_after(0);
    assert_int_equal(mr_text_fold("abc", 3, &c), MR_ENOMEM);
    mr_alloc_fail_after(-1);
    mr_buf_release(&c);
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(mr_utf8_valid("", 0));
    assert_true(mr_utf8_valid("plain", 5));
    assert_true(mr_utf8_valid("Muñoz", strlen("Muñoz")));
    assert_true(mr_utf8_valid("\xf0\x9f\x98\x80", 4));  /* emoji */
    assert_true(mr_utf8_valid("\xef\xbf\xbf", 3));      /* U+FFFF */
    assert_true(mr_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_false(mr_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(mr_utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    assert_false(mr_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(mr_utf8_valid("\xf0\x80\x80\xaf", 4)); /* overlong */
    assert_false(mr_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(mr_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(mr_utf8_valid("\x80", 1));
    assert_false(mr_utf8_valid("\xff", 1));
    assert_false(mr_utf8_valid("a\xe2\x82", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_ascii),
        cmocka_unit_test(test_fold_latin),
        cmocka_unit_test(test_fold_other_scripts),
        cmocka_unit_test(test_fold_invalid_utf8),
        cmocka_unit_test(test_fold_appends_and_limits),
        cmocka_unit_test(test_utf8_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
