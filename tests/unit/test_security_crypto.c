/* Unit tests for the sign-in crypto in src/security: the password policy
 * and Argon2id hashing, TOTP (RFC 6238) with base32 (RFC 4648), and
 * session/API tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/buf.h"
#include "medrec/medrec.h"
#include "security/password.h"
#include "security/token.h"
#include "security/totp.h"

/* The generated list itself, to check its order and the lookup over all
 * of it. */
#include "security/gen/common_passwords.c"

/* ---- password policy -------------------------------------------------- */

/* Check pw (NUL-terminated) and return the code; on refusal the message
 * must name the field and must not echo the password. */
static enum mr_err check_pw(const char *pw, const char *user)
{
    struct mr_diag d;
    enum mr_err err;

    mr_diag_clear(&d);
    err = mr_password_check(pw, strlen(pw), user, &d);
    if (err == MR_OK) {
        assert_int_equal(d.code, MR_OK);
        return err;
    }
    assert_int_equal(d.code, err);
    assert_int_equal(strncmp(d.msg, "password: ", 10), 0);
    if (pw[0] && strstr(d.msg, pw))
        fail_msg("message echoes the password: %s", d.msg);
    return err;
}

/* The refusal message for pw, into msg. */
static void refusal(const char *pw, size_t len, const char *user, char msg[512])
{
    struct mr_diag d;

    mr_diag_clear(&d);
    assert_int_equal(mr_password_check(pw, len, user, &d), MR_EINVALID);
    memcpy(msg, d.msg, sizeof(d.msg));
}

static void test_password_length_in_code_points(void **state)
{
    char buf[1024], msg[512];
    size_t i, n;
    (void)state;

    assert_int_equal(check_pw("kz8Rw-vP2qx", NULL), MR_EINVALID); /* 11 */
    refusal("kz8Rw-vP2qx", 11, NULL, msg);
    assert_string_equal(msg, "password: must be at least 12 characters");
    assert_int_equal(check_pw("kz8Rw-vP2qxT", NULL), MR_OK); /* 12 */

    /* 11 two-byte characters are 22 bytes but still too short. */
    for (n = 0, i = 0; i < 11; i++, n += 2)
        memcpy(buf + n, "\xc3\xa9", 2); /* é */
    buf[n] = '\0';
    assert_int_equal(check_pw(buf, NULL), MR_EINVALID);
    memcpy(buf + n, "\xc3\xa9", 3); /* 12th, with the NUL */
    assert_int_equal(check_pw(buf, NULL), MR_OK);

    /* 12 four-byte characters (48 bytes) pass. */
    for (n = 0, i = 0; i < 12; i++, n += 4)
        memcpy(buf + n, "\xf0\x9f\x94\x91", 4); /* U+1F511 key */
    buf[n] = '\0';
    assert_int_equal(check_pw(buf, NULL), MR_OK);

    /* 64 and 128 ASCII characters pass, 129 do not. */
    for (i = 0; i < 129; i++)
        buf[i] = (char)('a' + (i * 7) % 26);
    buf[64] = '\0';
    assert_int_equal(check_pw(buf, NULL), MR_OK);
    buf[64] = (char)('a' + (64 * 7) % 26);
    buf[128] = '\0';
    assert_int_equal(check_pw(buf, NULL), MR_OK);
    buf[128] = 'q';
    buf[129] = '\0';
    assert_int_equal(check_pw(buf, NULL), MR_EINVALID);
    refusal(buf, 129, NULL, msg);
    assert_string_equal(msg, "password: must be at most 128 characters");

    /* 128 four-byte characters (512 bytes) pass; one more does not, nor
     * does any input over 512 bytes. */
    for (n = 0, i = 0; i < 128; i++, n += 4)
        memcpy(buf + n, "\xf0\x9f\x94\x91", 4);
    buf[n] = '\0';
    assert_int_equal(n, MR_PASSWORD_MAX_BYTES);
    assert_int_equal(check_pw(buf, NULL), MR_OK);
    memcpy(buf + n, "\xf0\x9f\x94\x91", 5);
    assert_int_equal(check_pw(buf, NULL), MR_EINVALID);
}

static void test_password_shape(void **state)
{
    static const char *const bad_utf8[] = {
        "abcdefghijkl\xff",             /* never valid */
        "abcdefghijkl\x80",             /* lone continuation */
        "abcdefghijkl\xc3",             /* truncated */
        "abcdefghijkl\xc0\xaf",         /* overlong '/' */
        "abcdefghijkl\xed\xa0\x80",     /* surrogate U+D800 */
        "abcdefghijkl\xf4\x90\x80\x80", /* past U+10FFFF */
    };
    char msg[512];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        refusal(bad_utf8[i], strlen(bad_utf8[i]), NULL, msg);
        assert_string_equal(msg, "password: is not valid UTF-8");
    }
    refusal("", 0, NULL, msg);
    assert_string_equal(msg, "password: is required");
    refusal(NULL, 0, NULL, msg);
    assert_string_equal(msg, "password: is required");
    /* An embedded NUL is refused, not truncated at. */
    refusal("kz8Rw-vP2qxT\0more", 17, NULL, msg);
    assert_string_equal(msg, "password: must not contain NUL characters");
    /* A NULL diag is allowed. */
    assert_int_equal(mr_password_check("short", 5, NULL, NULL), MR_EINVALID);
    assert_int_equal(mr_password_check("kz8Rw-vP2qxT", 12, NULL, NULL), MR_OK);
}

static void test_password_username(void **state)
{
    char msg[512];
    (void)state;

    assert_int_equal(check_pw("Margaret.Hamilton", "margaret.hamilton"),
                     MR_EINVALID);
    refusal("MARGARET.HAMILTON", 17, "margaret.hamilton", msg);
    assert_string_equal(msg, "password: must not be the same as the username");
    assert_int_equal(check_pw("margaret.hamilton", "Margaret.Hamilton"),
                     MR_EINVALID);
    /* The username with a suffix of digits and symbols. */
    refusal("margaret.hamilton1969!", 22, "margaret.hamilton", msg);
    assert_string_equal(msg, "password: must not be the username with "
                             "digits or symbols added");
    /* Containing the username is allowed, and so is another username. */
    assert_int_equal(
        check_pw("margaret.hamilton apollo guidance", "margaret.hamilton"),
        MR_OK);
    assert_int_equal(check_pw("margaret.hamilton", "grace.hopper"), MR_OK);
    assert_int_equal(check_pw("margaret.hamilton", NULL), MR_OK);
    assert_int_equal(check_pw("margaret.hamilton", ""), MR_OK);
    /* A prefix of the username is not the username. */
    assert_int_equal(check_pw("margaret.hamilto", "margaret.hamilton"), MR_OK);
    assert_int_equal(check_pw("margaret.hamiltonx", "margaret.hamilton"),
                     MR_OK);
}

static void test_password_common(void **state)
{
    char msg[512];
    (void)state;

    /* Entries of 12+ characters, in any case. */
    assert_int_equal(check_pw("qwerty123456", NULL), MR_EINVALID);
    assert_int_equal(check_pw("QWERTY123456", NULL), MR_EINVALID);
    assert_int_equal(check_pw("1qaz2wsx3edc", NULL), MR_EINVALID);
    assert_int_equal(check_pw("password1234", NULL), MR_EINVALID);
    refusal("1QAZ2WSX3EDC", 12, NULL, msg);
    assert_string_equal(msg, "password: is on a list of commonly used and "
                             "breached passwords");

    /* An 8+ character entry with digits, spaces or symbols appended. */
    refusal("Password2024!", 13, NULL, msg);
    assert_string_equal(msg, "password: is a commonly used password with "
                             "digits or symbols added");
    assert_int_equal(check_pw("sunshine!!!!", NULL), MR_EINVALID);
    assert_int_equal(check_pw("iloveyou 123", NULL), MR_EINVALID);
    assert_int_equal(check_pw("TANGERINE-2000", NULL), MR_EINVALID);

    /* Only a trailing suffix is stripped, and only down to 8 characters:
     * these pass. */
    assert_int_equal(check_pw("2024!Password", NULL), MR_OK);
    assert_int_equal(check_pw("sunshine over the bay", NULL), MR_OK);
    assert_int_equal(check_pw("monkey123456", NULL), MR_OK); /* stem 6 */
    assert_int_equal(check_pw("velvet tangerine orbit", NULL), MR_OK);
}

/* The generated list: lower-case printable ASCII, strictly increasing in
 * strcmp order (so bsearch works and there are no duplicates), only
 * entries the policy can see, and every one found by the lookup. */
static void test_password_list(void **state)
{
    size_t n = sizeof(common_passwords) / sizeof(common_passwords[0]);
    size_t i, j;
    (void)state;

    assert_true(n > 5000);
    assert_string_equal(MR__COMMON_PASSWORDS_SOURCE, "zxcvbn 4.4.2");
    for (i = 0; i < n; i++) {
        const char *s = common_passwords[i];
        size_t len = strlen(s);
        assert_true(len >= 8);
        for (j = 0; j < len; j++) {
            assert_true(s[j] >= 0x20 && s[j] < 0x7f);
            assert_false(s[j] >= 'A' && s[j] <= 'Z');
        }
        if (len < 12)
            assert_null(strchr("0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
                               s[len - 1]));
        if (i > 0 && strcmp(common_passwords[i - 1], s) >= 0)
            fail_msg("not sorted: \"%s\" before \"%s\"",
                     common_passwords[i - 1], s);
        assert_true(mr__password_is_common(s, len));
    }
    assert_false(mr__password_is_common("velvet tangerine orbit", 22));
    assert_false(mr__password_is_common("", 0));
    assert_false(mr__password_is_common("password\0", 9));
    assert_true(mr__password_is_common("PassWord", 8));
}

/* ---- password hashing ------------------------------------------------- */

static void test_password_hash_verify(void **state)
{
    static const char pw[] = "velvet tangerine orbit";
    char h1[MR_PASSWORD_HASH_LEN], h2[MR_PASSWORD_HASH_LEN];
    char edited[MR_PASSWORD_HASH_LEN];
    struct mr_diag d;
    (void)state;

    mr_diag_clear(&d);
    assert_int_equal(mr_password_hash(pw, strlen(pw), h1, &d), MR_OK);
    assert_int_equal(strncmp(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31), 0);
    assert_null(strstr(h1, pw));
    assert_int_equal(mr_password_verify(h1, pw, strlen(pw)), 1);
    assert_int_equal(
        mr_password_verify(h1, "Velvet tangerine orbit", strlen(pw)), 0);
    assert_int_equal(mr_password_verify(h1, pw, strlen(pw) - 1), 0);
    assert_int_equal(mr_password_needs_rehash(h1), 0);

    /* A fresh salt each time. */
    assert_int_equal(mr_password_hash(pw, strlen(pw), h2, &d), MR_OK);
    assert_string_not_equal(h1, h2);
    assert_int_equal(mr_password_verify(h2, pw, strlen(pw)), 1);

    /* Other parameters or algorithm: rehash. */
    memcpy(edited, h1, sizeof(edited));
    memcpy(strstr(edited, "m=19456"), "m=65536", 7);
    assert_int_equal(mr_password_needs_rehash(edited), 1);
    memcpy(edited, h1, sizeof(edited));
    memcpy(strstr(edited, "t=2"), "t=1", 3);
    assert_int_equal(mr_password_needs_rehash(edited), 1);
    assert_int_equal(mr_password_verify(edited, pw, strlen(pw)), 0);
    assert_int_equal(mr_password_needs_rehash("$argon2i$v=19$m=19456,t=2,p="
                                              "1$c2FsdHNhbHQ$aGFzaGhhc2g"),
                     1);
    assert_int_equal(mr_password_needs_rehash("plain"), 1);
    assert_int_equal(mr_password_needs_rehash(""), 1);
    assert_int_equal(mr_password_needs_rehash(NULL), 1);
}

/* A hash made by an older, cheaper setting still verifies and asks to be
 * replaced. */
static void test_password_old_hash(void **state)
{
    static const char pw[] = "velvet tangerine orbit";
    char old[crypto_pwhash_STRBYTES];
    (void)state;

    assert_int_equal(crypto_pwhash_str_alg(old, pw, strlen(pw), 1,
                                           8 * 1024 * 1024,
                                           crypto_pwhash_ALG_ARGON2ID13),
                     0);
    assert_int_equal(mr_password_verify(old, pw, strlen(pw)), 1);
    assert_int_equal(mr_password_needs_rehash(old), 1);
}

static void test_password_hash_refuses(void **state)
{
    char out[MR_PASSWORD_HASH_LEN], unterminated[MR_PASSWORD_HASH_LEN];
    char big[MR_PASSWORD_MAX_BYTES + 1];
    struct mr_diag d;
    (void)state;

    memset(out, 'x', sizeof(out));
    assert_int_equal(mr_password_hash("", 0, out, &d), MR_EINVALID);
    assert_string_equal(d.msg, "password: is required");
    assert_int_equal(mr_password_hash(NULL, 0, out, &d), MR_EINVALID);
    assert_int_equal(mr_password_hash("abc\0def", 7, out, &d), MR_EINVALID);
    assert_string_equal(d.msg, "password: must not contain NUL characters");
    memset(big, 'a', sizeof(big));
    assert_int_equal(mr_password_hash(big, sizeof(big), out, &d), MR_ETOOBIG);
    /* out untouched on every failure. */
    assert_int_equal(out[0], 'x');
    assert_int_equal(out[MR_PASSWORD_HASH_LEN - 1], 'x');

    /* verify turns away what hash would, without running Argon2. */
    memset(unterminated, 'a', sizeof(unterminated));
    memcpy(unterminated, "$argon2id$", 10);
    assert_int_equal(mr_password_verify(unterminated, "abc", 3), 0);
    assert_int_equal(mr_password_needs_rehash(unterminated), 1);
    assert_int_equal(mr_password_verify(NULL, "abc", 3), 0);
    assert_int_equal(mr_password_verify("$argon2id$x", "", 0), 0);
    assert_int_equal(mr_password_verify("$argon2id$x", NULL, 0), 0);
    assert_int_equal(mr_password_verify("$argon2id$x", big, sizeof(big)), 0);
}

/* ---- base32 ----------------------------------------------------------- */

static const struct {
    const char *raw, *b32;
} rfc4648[] = {
    {"", ""},
    {"f", "MY"},
    {"fo", "MZXQ"},
    {"foo", "MZXW6"},
    {"foob", "MZXW6YQ"},
    {"fooba", "MZXW6YTB"},
    {"foobar", "MZXW6YTBOI"},
};

static void test_base32_rfc4648(void **state)
{
    char enc[32];
    uint8_t dec[16];
    size_t i, n;
    (void)state;

    for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const char *raw = rfc4648[i].raw, *b32 = rfc4648[i].b32;
        char padded[32], lower[32];
        size_t k;

        assert_int_equal(MR_BASE32_LEN(strlen(raw)), strlen(b32));
        assert_int_equal(mr_totp_base32_encode((const uint8_t *)raw,
                                               strlen(raw), enc, sizeof(enc)),
                         MR_OK);
        assert_string_equal(enc, b32);

        assert_int_equal(
            mr_totp_base32_decode(b32, strlen(b32), dec, sizeof(dec), &n, NULL),
            MR_OK);
        assert_int_equal(n, strlen(raw));
        assert_memory_equal(dec, raw, n);

        /* With RFC padding and in lower case too. */
        k = strlen(b32);
        memcpy(padded, b32, k);
        while (k % 8)
            padded[k++] = '=';
        padded[k] = '\0';
        assert_int_equal(mr_totp_base32_decode(padded, strlen(padded), dec,
                                               sizeof(dec), &n, NULL),
                         MR_OK);
        assert_int_equal(n, strlen(raw));
        assert_memory_equal(dec, raw, n);
        for (k = 0; b32[k]; k++)
            lower[k] =
                (char)(b32[k] >= 'A' && b32[k] <= 'Z' ? b32[k] + 32 : b32[k]);
        lower[k] = '\0';
        assert_int_equal(
            mr_totp_base32_decode(lower, k, dec, sizeof(dec), &n, NULL), MR_OK);
        assert_memory_equal(dec, raw, n);
    }
}

static void test_base32_round_trip(void **state)
{
    uint8_t in[64], out[64];
    char enc[MR_BASE32_LEN(64) + 1];
    size_t len, n;
    int round;
    (void)state;

    for (round = 0; round < 200; round++) {
        len = (size_t)round % 65;
        randombytes_buf(in, sizeof(in));
        assert_int_equal(mr_totp_base32_encode(in, len, enc, sizeof(enc)),
                         MR_OK);
        assert_int_equal(strlen(enc), MR_BASE32_LEN(len));
        assert_int_equal(strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
                         strlen(enc));
        memset(out, 0, sizeof(out));
        assert_int_equal(
            mr_totp_base32_decode(enc, strlen(enc), out, sizeof(out), &n, NULL),
            MR_OK);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
    }
}

static void test_base32_refuses(void **state)
{
    uint8_t out[8];
    char enc[8];
    size_t n = 99;
    struct mr_diag d;
    (void)state;

    memset(out, 0xAA, sizeof(out));
    /* Lengths no encoder produces. */
    assert_int_equal(mr_totp_base32_decode("M", 1, out, sizeof(out), &n, &d),
                     MR_EINVALID);
    assert_string_equal(d.msg, "base32: a length of 1 is not valid");
    assert_int_equal(
        mr_totp_base32_decode("MZX", 3, out, sizeof(out), &n, NULL),
        MR_EINVALID);
    assert_int_equal(
        mr_totp_base32_decode("MZXW6Y", 6, out, sizeof(out), &n, NULL),
        MR_EINVALID);
    /* Characters outside the alphabet (0, 1, 8, 9, space, '=' inside). */
    assert_int_equal(mr_totp_base32_decode("MZ0Q", 4, out, sizeof(out), &n, &d),
                     MR_EINVALID);
    assert_string_equal(d.msg, "base32: invalid character at offset 2");
    assert_int_equal(
        mr_totp_base32_decode("MZ1Q", 4, out, sizeof(out), &n, NULL),
        MR_EINVALID);
    assert_int_equal(
        mr_totp_base32_decode("MZ8Q", 4, out, sizeof(out), &n, NULL),
        MR_EINVALID);
    assert_int_equal(
        mr_totp_base32_decode("MZ Q", 4, out, sizeof(out), &n, NULL),
        MR_EINVALID);
    assert_int_equal(
        mr_totp_base32_decode("M=XQ", 4, out, sizeof(out), &n, NULL),
        MR_EINVALID);
    /* "MZ" would be 'f' with two stray 1 bits: not canonical. */
    assert_int_equal(mr_totp_base32_decode("MZ", 2, out, sizeof(out), &n, &d),
                     MR_EINVALID);
    assert_string_equal(d.msg, "base32: non-zero bits after the last byte");
    /* Too small an output. */
    assert_int_equal(mr_totp_base32_decode("MZXW6YTBOI", 10, out, 5, &n, NULL),
                     MR_ETOOBIG);
    /* Nothing written on any failure. */
    assert_int_equal(n, 99);
    assert_int_equal(out[0], 0xAA);

    memset(enc, 'x', sizeof(enc));
    /* "fooba" needs 8 characters and a NUL. */
    assert_int_equal(mr_totp_base32_encode((const uint8_t *)"fooba", 5, enc, 8),
                     MR_ETOOBIG);
    assert_int_equal(enc[0], 'x');
    assert_int_equal(mr_totp_base32_encode((const uint8_t *)"foob", 4, enc, 8),
                     MR_OK);
    assert_string_equal(enc, "MZXW6YQ");
}

/* ---- TOTP ------------------------------------------------------------- */

static const uint8_t rfc_key[] = "12345678901234567890"; /* 20 bytes */
#define RFC_KEYLEN 20

static void test_totp_rfc6238(void **state)
{
    /* RFC 6238 Appendix B, SHA1 column: the 8-digit TOTP values; a 6-digit
     * code is the same truncation mod 10^6, i.e. the last 6 digits. */
    static const struct {
        int64_t t;
        const char *totp8;
    } v[] = {
        {59, "94287082"},         {1111111109, "07081804"},
        {1111111111, "14050471"}, {1234567890, "89005924"},
        {2000000000, "69279037"}, {20000000000, "65353130"},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const char *want = v[i].totp8 + 2;
        char got[16];
        int c = mr_totp_code(rfc_key, RFC_KEYLEN, v[i].t / 30);

        assert_in_range(c, 0, 999999);
        snprintf(got, sizeof(got), "%06d", c);
        assert_string_equal(got, want);
        assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, want, v[i].t, -1),
                         v[i].t / 30);
    }
}

static void test_totp_rfc4226(void **state)
{
    /* RFC 4226 Appendix D: HOTP for counters 0..9, the same key. */
    static const int want[] = {755224, 287082, 359152, 969429, 338314,
                               254676, 287922, 162583, 399871, 520489};
    int64_t i;
    (void)state;

    for (i = 0; i < 10; i++)
        assert_int_equal(mr_totp_code(rfc_key, RFC_KEYLEN, i), want[i]);
}

static void code_at(int64_t step, char out[7])
{
    char tmp[16];
    int c = mr_totp_code(rfc_key, RFC_KEYLEN, step);

    assert_in_range(c, 0, 999999);
    snprintf(tmp, sizeof(tmp), "%06d", c);
    memcpy(out, tmp, 7);
}

static void test_totp_window(void **state)
{
    const int64_t s = 1234567890 / 30; /* step 41152263 */
    const int64_t t0 = s * 30;         /* its first second */
    char code[7];
    (void)state;

    code_at(s, code);
    /* Accepted anywhere in steps s-1 .. s+1 of the verifier's clock. */
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0, -1), s);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0 + 29, -1), s);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0 - 30, -1), s);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0 + 59, -1), s);
    /* Not two steps away. */
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0 - 31, -1),
                     -1);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0 + 60, -1),
                     -1);
    /* A wrong code (one digit off) is refused. */
    code[5] = (char)(code[5] == '9' ? '0' : code[5] + 1);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, code, t0, -1), -1);
    /* Another key's code is refused. */
    {
        uint8_t other[RFC_KEYLEN];
        memcpy(other, rfc_key, RFC_KEYLEN);
        other[0] ^= 1;
        code_at(s, code);
        assert_int_equal(mr_totp_verify(other, RFC_KEYLEN, code, t0, -1), -1);
    }
}

static void test_totp_replay(void **state)
{
    const int64_t s = 2000000000 / 30;
    const int64_t t0 = s * 30;
    char now[7], prev[7], next[7];
    int64_t used;
    (void)state;

    code_at(s, now);
    code_at(s - 1, prev);
    code_at(s + 1, next);
    used = mr_totp_verify(rfc_key, RFC_KEYLEN, now, t0, -1);
    assert_int_equal(used, s);
    /* The same code again, even within its window, is refused. */
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, now, t0, used), -1);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, now, t0 + 20, used),
                     -1);
    /* So is an older code still in the window. */
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, prev, t0, used), -1);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, prev, t0, s - 2),
                     s - 1);
    /* The next step's code is fresh. */
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, next, t0 + 30, used),
                     s + 1);
}

static void test_totp_refuses(void **state)
{
    static const char *const bad[] = {
        "",       "28708",  "2870820", " 287082", "287082 ",
        "28708a", "+87082", "-87082",  "28 082",  "２87082",
    };
    const int64_t s = 1; /* RFC 4226 counter 1 is 287082 */
    size_t i;
    (void)state;

    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, "287082", s * 30, -1),
                     s);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            mr_totp_verify(rfc_key, RFC_KEYLEN, bad[i], s * 30, -1), -1);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, NULL, s * 30, -1), -1);
    assert_int_equal(mr_totp_verify(rfc_key, RFC_KEYLEN, "287082", -30, -1),
                     -1);
    /* Keys shorter than 128 bits or absurdly long are refused. */
    assert_int_equal(mr_totp_code(rfc_key, 15, 1), -1);
    assert_int_equal(mr_totp_code(rfc_key, MR_TOTP_KEY_MAX + 1, 1), -1);
    assert_int_equal(mr_totp_code(NULL, RFC_KEYLEN, 1), -1);
    assert_int_equal(mr_totp_code(rfc_key, RFC_KEYLEN, -1), -1);
    assert_int_equal(mr_totp_verify(rfc_key, 15, "287082", s * 30, -1), -1);
    assert_true(mr_totp_code(rfc_key, 16, 1) >= 0);
}

static void test_totp_secret_and_uri(void **state)
{
    uint8_t a[MR_TOTP_KEY_LEN], b[MR_TOTP_KEY_LEN], zero[MR_TOTP_KEY_LEN];
    struct mr_buf u = MR_BUF_INIT(4096);
    struct mr_buf small = MR_BUF_INIT(40);
    char secret[MR_BASE32_LEN(MR_TOTP_KEY_LEN) + 1];
    (void)state;

    memset(zero, 0, sizeof(zero));
    mr_totp_secret_new(a);
    mr_totp_secret_new(b);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));

    assert_int_equal(mr_totp_uri("alice", rfc_key, RFC_KEYLEN, &u), MR_OK);
    assert_string_equal(u.ptr, "otpauth://totp/medrec:alice"
                               "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                               "&issuer=medrec&algorithm=SHA1&digits=6"
                               "&period=30");
    assert_int_equal(u.len, strlen(u.ptr));

    /* The label is percent-encoded byte by byte; the URI is appended. */
    mr_buf_reset(&u);
    assert_int_equal(mr_buf_adds(&u, "[uri] "), MR_OK);
    assert_int_equal(
        mr_totp_uri("Dr. José O'Brien:x@y/z?&=#", a, sizeof(a), &u), MR_OK);
    assert_int_equal(
        mr_totp_base32_encode(a, sizeof(a), secret, sizeof(secret)), MR_OK);
    {
        char want[512];
        snprintf(
            want, sizeof(want),
            "[uri] otpauth://totp/medrec:"
            "Dr.%%20Jos%%C3%%A9%%20O%%27Brien%%3Ax%%40y%%2Fz%%3F%%26%%3D%%23"
            "?secret=%s&issuer=medrec&algorithm=SHA1&digits=6&period=30",
            secret);
        assert_string_equal(u.ptr, want);
        assert_int_equal(u.len, strlen(want));
    }

    /* Refusals leave the buffer as it was. */
    assert_int_equal(mr_buf_adds(&small, "keep"), MR_OK);
    assert_int_equal(mr_totp_uri("alice", rfc_key, RFC_KEYLEN, &small),
                     MR_ETOOBIG);
    assert_int_equal(mr_totp_uri("", rfc_key, RFC_KEYLEN, &small), MR_EINVALID);
    assert_int_equal(mr_totp_uri(NULL, rfc_key, RFC_KEYLEN, &small),
                     MR_EINVALID);
    assert_int_equal(mr_totp_uri("alice", rfc_key, 10, &small), MR_EINVALID);
    assert_string_equal(small.ptr, "keep");
    assert_int_equal(small.len, 4);

    mr_buf_release(&u);
    mr_buf_release(&small);
}

/* ---- tokens ----------------------------------------------------------- */

static void test_token_new(void **state)
{
    char t1[MR_TOKEN_MAX], t2[MR_TOKEN_MAX];
    unsigned char raw[64];
    size_t rawlen = 0;
    (void)state;

    assert_int_equal(mr_token_new(MR_TOKEN_PREFIX_SESSION, t1), MR_OK);
    assert_int_equal(mr_token_new(MR_TOKEN_PREFIX_SESSION, t2), MR_OK);
    assert_int_equal(strlen(t1), 4 + MR_TOKEN_B64_LEN);
    assert_int_equal(strncmp(t1, "mrs_", 4), 0);
    assert_int_equal(strspn(t1 + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                    "nopqrstuvwxyz0123456789-_"),
                     MR_TOKEN_B64_LEN);
    assert_string_not_equal(t1, t2);
    /* 32 bytes behind the prefix. */
    assert_int_equal(
        sodium_base642bin(raw, sizeof(raw), t1 + 4, MR_TOKEN_B64_LEN, NULL,
                          &rawlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING),
        0);
    assert_int_equal(rawlen, 32);
    assert_true(mr_token_wellformed(t1, MR_TOKEN_PREFIX_SESSION));
    assert_false(mr_token_wellformed(t1, MR_TOKEN_PREFIX_API));

    assert_int_equal(mr_token_new(MR_TOKEN_PREFIX_API, t1), MR_OK);
    assert_int_equal(strncmp(t1, "mrt_", 4), 0);
    assert_true(mr_token_wellformed(t1, MR_TOKEN_PREFIX_API));

    /* The longest prefix fills the buffer exactly. */
    assert_int_equal(mr_token_new("abcdefg_", t1), MR_OK);
    assert_int_equal(strlen(t1), MR_TOKEN_MAX - 1);
    assert_true(mr_token_wellformed(t1, "abcdefg_"));
}

static void test_token_refuses(void **state)
{
    static const char *const bad_prefix[] = {"",    "MRS_", "abcdefghi",
                                             "a-b", "mr s", "é_"};
    char t[MR_TOKEN_MAX], bad[MR_TOKEN_MAX + 8];
    size_t i;
    (void)state;

    memset(t, 'x', sizeof(t));
    for (i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++)
        assert_int_equal(mr_token_new(bad_prefix[i], t), MR_EINVALID);
    assert_int_equal(mr_token_new(NULL, t), MR_EINVALID);
    assert_int_equal(t[0], 'x');

    assert_int_equal(mr_token_new("mrs_", t), MR_OK);
    assert_false(mr_token_wellformed(NULL, "mrs_"));
    assert_false(mr_token_wellformed(t, ""));
    assert_false(mr_token_wellformed(t, NULL));
    assert_false(mr_token_wellformed(t + 4, "mrs_"));
    assert_false(mr_token_wellformed("mrs_", "mrs_"));
    /* One character short or long. */
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(t) - 1, t);
    assert_false(mr_token_wellformed(bad, "mrs_"));
    snprintf(bad, sizeof(bad), "%sA", t);
    assert_false(mr_token_wellformed(bad, "mrs_"));
    /* Standard base64 and padding characters. */
    snprintf(bad, sizeof(bad), "%s", t);
    bad[10] = '+';
    assert_false(mr_token_wellformed(bad, "mrs_"));
    bad[10] = '/';
    assert_false(mr_token_wellformed(bad, "mrs_"));
    snprintf(bad, sizeof(bad), "%.*s=", (int)strlen(t) - 1, t);
    assert_false(mr_token_wellformed(bad, "mrs_"));
    /* The last character carries 4 bits and 2 zero bits: 'B' (000001)
     * is not canonical, 'A' and 'E' are. */
    snprintf(bad, sizeof(bad), "%s", t);
    bad[strlen(bad) - 1] = 'A';
    assert_true(mr_token_wellformed(bad, "mrs_"));
    bad[strlen(bad) - 1] = 'E';
    assert_true(mr_token_wellformed(bad, "mrs_"));
    bad[strlen(bad) - 1] = 'B';
    assert_false(mr_token_wellformed(bad, "mrs_"));
}

static void test_token_hash(void **state)
{
    char h1[MR_TOKEN_HASH_HEX], h2[MR_TOKEN_HASH_HEX], t[MR_TOKEN_MAX];
    char longer[MR_TOKEN_HASH_HEX + 1];
    (void)state;

    /* BLAKE2b-256 reference values. */
    mr_token_hash("abc", h1);
    assert_string_equal(h1, "bddd813c634239723171ef3fee98579b"
                            "94964e3bb1cb3e427262c8c068d52319");
    mr_token_hash("", h1);
    assert_string_equal(h1, "0e5751c026e543b2e8ab2eb06099daa1"
                            "d1e5df47778f7787faab45cdf12fe3a8");

    assert_int_equal(mr_token_new("mrs_", t), MR_OK);
    mr_token_hash(t, h1);
    mr_token_hash(t, h2);
    assert_int_equal(strlen(h1), 64);
    assert_string_equal(h1, h2);
    assert_null(strstr(h1, t + 4));
    assert_true(mr_token_hash_equal(h1, h2));
    /* The prefix is part of what is hashed. */
    t[2] = 't';
    mr_token_hash(t, h2);
    assert_string_not_equal(h1, h2);
    assert_false(mr_token_hash_equal(h1, h2));

    memcpy(h2, h1, sizeof(h2));
    h2[63] = (char)(h2[63] == '0' ? '1' : '0');
    assert_false(mr_token_hash_equal(h1, h2));
    h2[63] = h1[63];
    h2[0] = (char)(h2[0] == '0' ? '1' : '0');
    assert_false(mr_token_hash_equal(h1, h2));
    h2[0] = h1[0];
    h2[40] = '\0';
    assert_false(mr_token_hash_equal(h1, h2));
    assert_false(mr_token_hash_equal(h2, h1));
    snprintf(longer, sizeof(longer), "%s0", h1);
    assert_false(mr_token_hash_equal(h1, longer));
    assert_false(mr_token_hash_equal(NULL, h1));
    assert_false(mr_token_hash_equal(h1, NULL));
    assert_false(mr_token_hash_equal("", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_length_in_code_points),
        cmocka_unit_test(test_password_shape),
        cmocka_unit_test(test_password_username),
        cmocka_unit_test(test_password_common),
        cmocka_unit_test(test_password_list),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_password_old_hash),
        cmocka_unit_test(test_password_hash_refuses),
        cmocka_unit_test(test_base32_rfc4648),
        cmocka_unit_test(test_base32_round_trip),
        cmocka_unit_test(test_base32_refuses),
        cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_totp_rfc4226),
        cmocka_unit_test(test_totp_window),
        cmocka_unit_test(test_totp_replay),
        cmocka_unit_test(test_totp_refuses),
        cmocka_unit_test(test_totp_secret_and_uri),
        cmocka_unit_test(test_token_new),
        cmocka_unit_test(test_token_refuses),
        cmocka_unit_test(test_token_hash),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
