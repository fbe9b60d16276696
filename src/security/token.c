#include "security/token.h"

#include <sodium.h>
#include <string.h>

#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(sodium_base64_ENCODED_LEN(MR_TOKEN_BYTES, VARIANT) ==
                   MR_TOKEN_B64_LEN + 1,
               "MR_TOKEN_B64_LEN must match libsodium");
_Static_assert(MR_TOKEN_HASH_HEX == 2 * crypto_generichash_BYTES + 1,
               "MR_TOKEN_HASH_HEX must match crypto_generichash_BYTES");

/* Length of a valid prefix, or 0. */
static size_t prefix_len(const char *prefix)
{
    size_t n;

    if (!prefix)
        return 0;
    for (n = 0; prefix[n]; n++) {
        char c = prefix[n];
        if (n >= MR_TOKEN_PREFIX_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n;
}

enum mr_err mr_token_new(const char *prefix, char out[MR_TOKEN_MAX])
{
    unsigned char raw[MR_TOKEN_BYTES];
    size_t plen = prefix_len(prefix);

    if (plen == 0)
        return MR_EINVALID;
    if (sodium_init() < 0) {
        /* Cannot fail on Linux with getrandom; randombytes_buf would abort
         * rather than return weak bytes. */
    }
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, prefix, plen);
    sodium_bin2base64(out + plen, MR_TOKEN_B64_LEN + 1, raw, sizeof(raw),
                      VARIANT);
    sodium_memzero(raw, sizeof(raw));
    return MR_OK;
}

int mr_token_wellformed(const char *token, const char *prefix)
{
    unsigned char raw[MR_TOKEN_BYTES];
    size_t plen = prefix_len(prefix), blen = 0;
    const char *end = NULL;
    int ok;

    if (!token || plen == 0 || strncmp(token, prefix, plen) != 0)
        return 0;
    token += plen;
    if (strnlen(token, MR_TOKEN_B64_LEN + 1) != MR_TOKEN_B64_LEN)
        return 0;
    /* libsodium refuses non-zero unused bits, so only canonical text (the
     * one mr_token_new produces) passes. */
    ok = sodium_base642bin(raw, sizeof(raw), token, MR_TOKEN_B64_LEN, NULL,
                           &blen, &end, VARIANT) == 0 &&
         blen == MR_TOKEN_BYTES && end == token + MR_TOKEN_B64_LEN;
    sodium_memzero(raw, sizeof(raw));
    return ok;
}

void mr_token_hash(const char *token, char hex[MR_TOKEN_HASH_HEX])
{
    unsigned char h[crypto_generichash_BYTES];

    if (sodium_init() < 0) {
        /* See mr_token_new; hashing needs no initialisation anyway. */
    }
    crypto_generichash(h, sizeof(h), (const unsigned char *)token,
                       strlen(token), NULL, 0);
    sodium_bin2hex(hex, MR_TOKEN_HASH_HEX, h, sizeof(h));
}

int mr_token_hash_equal(const char *a, const char *b)
{
    const size_t n = MR_TOKEN_HASH_HEX - 1;

    if (!a || !b || strnlen(a, n + 1) != n || strnlen(b, n + 1) != n)
        return 0;
    return sodium_memcmp(a, b, n) == 0;
}
