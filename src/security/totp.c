#include "security/totp.h"

#include <gnutls/crypto.h>
#include <sodium.h>
#include <string.h>

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

void mr_totp_secret_new(uint8_t key[MR_TOTP_KEY_LEN])
{
    if (sodium_init() < 0) {
        /* Cannot fail on Linux with getrandom; randombytes_buf would abort
         * rather than return weak bytes. */
    }
    randombytes_buf(key, MR_TOTP_KEY_LEN);
}

/* Write the base32 of in[0..n) (MR_BASE32_LEN(n) characters, no NUL). */
static void b32_put(const uint8_t *in, size_t n, char *out)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = b32_alphabet[(acc >> bits) & 31];
        }
        acc &= (1u << bits) - 1; /* keep only the unread bits */
    }
    if (bits > 0)
        out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
}

enum mr_err mr_totp_base32_encode(const uint8_t *in, size_t n, char *out,
                                  size_t outsize)
{
    size_t need;

    if (n > (SIZE_MAX - 5) / 8)
        return MR_ETOOBIG;
    need = MR_BASE32_LEN(n);
    if (outsize <= need)
        return MR_ETOOBIG;
    b32_put(in, n, out);
    out[need] = '\0';
    return MR_OK;
}

static int b32_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

enum mr_err mr_totp_base32_decode(const char *s, size_t len, uint8_t *out,
                                  size_t outsize, size_t *outlen,
                                  struct mr_diag *d)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, n, o = 0;

    while (len > 0 && s[len - 1] == '=')
        len--;
    /* 1, 3 or 6 characters after the last full group of 8 carry fewer
     * bits than a whole byte: no encoder produces them. */
    switch (len % 8) {
    case 1:
    case 3:
    case 6:
        return mr_diag_set(d, MR_EINVALID,
                           "base32: a length of %zu is not valid", len);
    }
    n = len / 8 * 5 + (len % 8) * 5 / 8;
    for (i = 0; i < len; i++)
        if (b32_value((unsigned char)s[i]) < 0)
            return mr_diag_set(d, MR_EINVALID,
                               "base32: invalid character at offset %zu", i);
    if (n > outsize)
        return mr_diag_set(d, MR_ETOOBIG, "base32: %zu bytes do not fit in %zu",
                           n, outsize);
    /* Trailing bits past the last byte must be zero (RFC 4648 3.5), so
     * each value has one encoding. Checked before writing to out. */
    if (len % 8) {
        unsigned extra = (unsigned)((len * 5) % 8);
        if (b32_value((unsigned char)s[len - 1]) & ((1u << extra) - 1))
            return mr_diag_set(d, MR_EINVALID,
                               "base32: non-zero bits after the last byte");
    }
    for (i = 0; i < len; i++) {
        acc = (acc << 5) | (uint32_t)b32_value((unsigned char)s[i]);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *outlen = o;
    return MR_OK;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

enum mr_err mr_totp_uri(const char *username, const uint8_t *key, size_t keylen,
                        struct mr_buf *out)
{
    static const char head[] = "otpauth://totp/medrec:";
    static const char mid[] = "?secret=";
    static const char tail[] =
        "&issuer=medrec&algorithm=SHA1&digits=6&period=30";
    static const char hex[] = "0123456789ABCDEF";
    size_t ulen, need, i;
    char *p;
    enum mr_err err;

    if (!username || !username[0] || keylen < MR_TOTP_KEY_MIN ||
        keylen > MR_TOTP_KEY_MAX)
        return MR_EINVALID;
    ulen = strlen(username);
    if (ulen > SIZE_MAX / 4)
        return MR_ETOOBIG;
    need = sizeof(head) - 1 + sizeof(mid) - 1 + MR_BASE32_LEN(keylen) +
           sizeof(tail) - 1;
    for (i = 0; i < ulen; i++)
        need += unreserved((unsigned char)username[i]) ? 1 : 3;
    /* Grow once and write in place: out is untouched on failure, and the
     * secret is not left behind in a reallocated block. */
    err = mr_buf_grow(out, need);
    if (err)
        return err;
    p = out->ptr + out->len;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    for (i = 0; i < ulen; i++) {
        unsigned char c = (unsigned char)username[i];
        if (unreserved(c)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    memcpy(p, mid, sizeof(mid) - 1);
    p += sizeof(mid) - 1;
    b32_put(key, keylen, p);
    p += MR_BASE32_LEN(keylen);
    memcpy(p, tail, sizeof(tail) - 1);
    p += sizeof(tail) - 1;
    *p = '\0';
    out->len += need;
    return MR_OK;
}

int mr_totp_code(const uint8_t *key, size_t keylen, int64_t step)
{
    uint8_t msg[8], mac[20];
    uint64_t counter;
    uint32_t bin;
    unsigned off;
    int i;

    if (!key || keylen < MR_TOTP_KEY_MIN || keylen > MR_TOTP_KEY_MAX ||
        step < 0)
        return -1;
    counter = (uint64_t)step;
    for (i = 7; i >= 0; i--) {
        msg[i] = (uint8_t)(counter & 0xFF);
        counter >>= 8;
    }
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA1, key, keylen, msg, sizeof(msg), mac) <
        0)
        return -1;
    /* RFC 4226 5.3 dynamic truncation. */
    off = mac[19] & 0x0F;
    bin = ((uint32_t)(mac[off] & 0x7F) << 24) | ((uint32_t)mac[off + 1] << 16) |
          ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    sodium_memzero(mac, sizeof(mac));
    return (int)(bin % 1000000u);
}

/* c (0..999999) as exactly 6 ASCII digits, zero-padded, and a NUL. */
static void digits(int c, char out[MR_TOTP_DIGITS + 1])
{
    int i;

    for (i = MR_TOTP_DIGITS - 1; i >= 0; i--) {
        out[i] = (char)('0' + c % 10);
        c /= 10;
    }
    out[MR_TOTP_DIGITS] = '\0';
}

int64_t mr_totp_verify(const uint8_t *key, size_t keylen, const char *code,
                       int64_t now_unix, int64_t last_used_step)
{
    char want[MR_TOTP_DIGITS + 1];
    int64_t now_step, step, matched = -1;
    int i;

    if (!code || now_unix < 0)
        return -1;
    for (i = 0; i < MR_TOTP_DIGITS; i++)
        if (code[i] < '0' || code[i] > '9')
            return -1;
    if (code[MR_TOTP_DIGITS] != '\0')
        return -1;
    now_step = now_unix / MR_TOTP_PERIOD;
    /* Every candidate is computed and compared, so the time taken does not
     * say which step (if any) matched. The highest usable match wins. */
    for (step = now_step - 1; step <= now_step + 1; step++) {
        int c = mr_totp_code(key, keylen, step);
        int same;
        if (c < 0)
            continue;
        digits(c, want);
        same = sodium_memcmp(want, code, MR_TOTP_DIGITS) == 0;
        if (same && step > last_used_step)
            matched = step;
    }
    sodium_memzero(want, sizeof(want));
    return matched;
}
