#include "core/id.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

void mr_id_new(char out[MR_ID_LEN + 1])
{
    unsigned char r[10]; /* 80 bits -> 16 base32 characters */
    uint64_t hi;
    uint64_t lo;
    int i;

    if (sodium_init() < 0) {
        /* libsodium cannot fail to initialise on Linux with getrandom;
         * randombytes_buf would abort rather than return weak bytes. */
    }
    randombytes_buf(r, sizeof(r));
    hi = ((uint64_t)r[0] << 32) | ((uint64_t)r[1] << 24) |
         ((uint64_t)r[2] << 16) | ((uint64_t)r[3] << 8) | r[4];
    lo = ((uint64_t)r[5] << 32) | ((uint64_t)r[6] << 24) |
         ((uint64_t)r[7] << 16) | ((uint64_t)r[8] << 8) | r[9];
    for (i = 7; i >= 0; i--) {
        out[i] = b32[hi & 31];
        hi >>= 5;
    }
    for (i = 15; i >= 8; i--) {
        out[i] = b32[lo & 31];
        lo >>= 5;
    }
    out[MR_ID_LEN] = '\0';
}

int mr_id_valid(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
        if (n >= 64)
            return 0;
    }
    return n > 0;
}

/* Damm's quasigroup of order 10 (weakly totally anti-symmetric). */
static const unsigned char damm[10][10] = {
    {0, 3, 1, 7, 5, 9, 8, 6, 4, 2}, {7, 0, 9, 2, 1, 5, 4, 8, 6, 3},
    {4, 2, 0, 6, 8, 7, 1, 3, 5, 9}, {1, 7, 5, 0, 9, 8, 3, 4, 2, 6},
    {6, 1, 2, 3, 0, 4, 5, 9, 7, 8}, {3, 6, 7, 4, 2, 0, 9, 5, 8, 1},
    {5, 8, 6, 9, 7, 2, 0, 1, 3, 4}, {8, 9, 4, 5, 3, 6, 2, 0, 1, 7},
    {9, 4, 3, 8, 6, 1, 7, 2, 0, 5}, {2, 5, 8, 1, 4, 3, 6, 7, 9, 0},
};

static unsigned damm_digit(const char *s, size_t n)
{
    unsigned interim = 0;
    size_t i;

    for (i = 0; i < n; i++)
        interim = damm[interim][(unsigned)(s[i] - '0')];
    return interim;
}

void mr_mrn_format(uint64_t seq, char out[24])
{
    int n = snprintf(out, 24, "%07llu", (unsigned long long)seq);

    out[n] = (char)('0' + damm_digit(out, (size_t)n));
    out[n + 1] = '\0';
}

int mr_mrn_valid(const char *s)
{
    size_t n = strlen(s), i;

    if (n < 8 || n > 21)
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    /* A correct number including its check digit reduces to 0. */
    return damm_digit(s, n) == 0;
}
