#include "security/password.h"

#include "core/text.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The breached list: common_passwords[], sorted in strcmp order. The file
 * is generated (tools/gen-passwords) and compiled as part of this one. */
#include "security/gen/common_passwords.c"

_Static_assert(MR_PASSWORD_HASH_LEN == crypto_pwhash_STRBYTES,
               "MR_PASSWORD_HASH_LEN must match libsodium");

#define COMMON_COUNT (sizeof(common_passwords) / sizeof(common_passwords[0]))

/* Shortest list entry matched after stripping; see generate.mjs. */
#define STEM_MIN 8

static int lower_ascii(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* Trailing characters people append to a word to pass a rule. */
static int strippable(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == ' ' || (c >= '!' && c <= '/') ||
           (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

static int cmp_entry(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

int mr__password_is_common(const char *s, size_t n)
{
    char low[MR_PASSWORD_MAX_BYTES + 1];
    size_t i;
    int found;

    if (n == 0 || n > MR_PASSWORD_MAX_BYTES || memchr(s, '\0', n))
        return 0;
    for (i = 0; i < n; i++)
        low[i] = (char)lower_ascii((unsigned char)s[i]);
    low[n] = '\0';
    found = bsearch(low, common_passwords, COMMON_COUNT,
                    sizeof(common_passwords[0]), cmp_entry) != NULL;
    sodium_memzero(low, sizeof(low));
    return found;
}

/* s[0..n) equals the NUL-terminated name, ignoring ASCII case. */
static int same_ascii_nocase(const char *s, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (name[i] == '\0' || lower_ascii((unsigned char)s[i]) !=
                                   lower_ascii((unsigned char)name[i]))
            return 0;
    }
    return name[n] == '\0';
}

/* Code points in valid UTF-8: every byte that is not a continuation. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t i, count = 0;

    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

enum mr_err mr_password_check(const char *pw, size_t len, const char *username,
                              struct mr_diag *d)
{
    size_t chars, stem;
    int named = username && username[0];

    if (!pw || len == 0)
        return mr_diag_set(d, MR_EINVALID, "password: is required");
    if (memchr(pw, '\0', len))
        return mr_diag_set(d, MR_EINVALID,
                           "password: must not contain NUL characters");
    /* Past this many bytes it cannot be 128 code points: stop before
     * scanning an arbitrarily long input. */
    if (len > MR_PASSWORD_MAX_BYTES)
        return mr_diag_set(d, MR_EINVALID,
                           "password: must be at most %d characters",
                           MR_PASSWORD_MAX_CHARS);
    if (!mr_utf8_valid(pw, len))
        return mr_diag_set(d, MR_EINVALID, "password: is not valid UTF-8");
    chars = utf8_chars(pw, len);
    if (chars < MR_PASSWORD_MIN_CHARS)
        return mr_diag_set(d, MR_EINVALID,
                           "password: must be at least %d characters",
                           MR_PASSWORD_MIN_CHARS);
    if (chars > MR_PASSWORD_MAX_CHARS)
        return mr_diag_set(d, MR_EINVALID,
                           "password: must be at most %d characters",
                           MR_PASSWORD_MAX_CHARS);
    if (named && same_ascii_nocase(pw, len, username))
        return mr_diag_set(d, MR_EINVALID,
                           "password: must not be the same as the username");
    if (mr__password_is_common(pw, len))
        return mr_diag_set(d, MR_EINVALID,
                           "password: is on a list of commonly used and "
                           "breached passwords");

    /* "Password2024!" passes the length rule on its suffix alone: strip
     * trailing digits, spaces and punctuation and check what is left. Only
     * trailing ones, and only a stem of 8+ characters, to stay predictable
     * for users; the list itself covers the rest. */
    stem = len;
    while (stem > 0 && strippable((unsigned char)pw[stem - 1]))
        stem--;
    if (stem < len && stem > 0) {
        if (named && same_ascii_nocase(pw, stem, username))
            return mr_diag_set(d, MR_EINVALID,
                               "password: must not be the username with "
                               "digits or symbols added");
        if (stem >= STEM_MIN && mr__password_is_common(pw, stem))
            return mr_diag_set(d, MR_EINVALID,
                               "password: is a commonly used password with "
                               "digits or symbols added");
    }
    return MR_OK;
}

/* The shape mr_password_hash accepts; verify refuses the same inputs so
 * that an over-long password costs nothing. */
static int hashable(const char *pw, size_t len)
{
    return pw && len > 0 && len <= MR_PASSWORD_MAX_BYTES &&
           !memchr(pw, '\0', len);
}

enum mr_err mr_password_hash(const char *pw, size_t len,
                             char out[MR_PASSWORD_HASH_LEN], struct mr_diag *d)
{
    char tmp[MR_PASSWORD_HASH_LEN];

    if (!pw || len == 0)
        return mr_diag_set(d, MR_EINVALID, "password: is required");
    if (memchr(pw, '\0', len))
        return mr_diag_set(d, MR_EINVALID,
                           "password: must not contain NUL characters");
    if (len > MR_PASSWORD_MAX_BYTES)
        return mr_diag_set(d, MR_ETOOBIG, "password: longer than %d bytes",
                           MR_PASSWORD_MAX_BYTES);
    if (sodium_init() < 0)
        return mr_diag_set(d, MR_EINTERNAL,
                           "password: libsodium failed to initialise");
    /* Fails only when Argon2 cannot allocate its memory. */
    if (crypto_pwhash_str_alg(tmp, pw, (unsigned long long)len,
                              MR_PASSWORD_OPSLIMIT, MR_PASSWORD_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return mr_diag_set(d, MR_ENOMEM,
                           "password: out of memory computing the hash");
    memcpy(out, tmp, sizeof(tmp));
    return MR_OK;
}

/* A NUL-terminated Argon2id string no longer than libsodium's buffer. */
static int hash_wellformed(const char *hash)
{
    return hash && strnlen(hash, MR_PASSWORD_HASH_LEN) < MR_PASSWORD_HASH_LEN &&
           strncmp(hash, crypto_pwhash_argon2id_STRPREFIX,
                   strlen(crypto_pwhash_argon2id_STRPREFIX)) == 0;
}

int mr_password_verify(const char *hash, const char *pw, size_t len)
{
    if (!hash_wellformed(hash) || !hashable(pw, len))
        return 0;
    if (sodium_init() < 0)
        return 0;
    return crypto_pwhash_str_verify(hash, pw, (unsigned long long)len) == 0;
}

int mr_password_needs_rehash(const char *hash)
{
    if (!hash_wellformed(hash))
        return 1;
    if (sodium_init() < 0)
        return 1;
    /* 0: current; 1: other parameters; -1: malformed. */
    return crypto_pwhash_argon2id_str_needs_rehash(hash, MR_PASSWORD_OPSLIMIT,
                                                   MR_PASSWORD_MEMLIMIT) != 0;
}
