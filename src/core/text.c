#include "core/text.h"

#include <stdint.h>

/*
 * Decode one UTF-8 sequence at s[0..n). Returns its length (1..4) and sets
 * *cp, or 0 for an invalid sequence (overlong, surrogate, > U+10FFFF,
 * truncated, stray continuation byte).
 */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c = s[0], min;
    size_t len;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        c &= 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        c &= 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

int mr_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;

    while (i < n) {
        size_t len = utf8_decode(p + i, n - i, &cp);
        if (!len)
            return 0;
        i += len;
    }
    return 1;
}

static size_t utf8_encode(uint32_t c, char out[4])
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    } else if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    } else if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/*
 * Base letters of U+00C0..U+00FF: '.' is a separator (multiplication and
 * division signs), '*' a letter folding to two letters (see fold_special).
 */
static const char latin1[64 + 1] = "aaaaaa*ceeeeiiiidnooooo.ouuuuy**"
                                   "aaaaaa*ceeeeiiiidnooooo.ouuuuy*y";

/* Base letters of Latin Extended-A, U+0100..U+017F. */
static const char latin_ext_a[128 + 1] =
    "aaaaaa"       /* 0100 A macron, breve, ogonek */
    "cccccccc"     /* 0106 C acute, circumflex, dot, caron */
    "dddd"         /* 010E D caron, stroke */
    "eeeeeeeeee"   /* 0112 */
    "gggggggg"     /* 011C */
    "hhhh"         /* 0124 */
    "iiiiiiiiii"   /* 0128 .. 0131 dotless i */
    "**"           /* 0132 IJ ligature */
    "jj"           /* 0134 */
    "kkk"          /* 0136 .. 0138 kra */
    "llllllllll"   /* 0139 .. 0142 l stroke */
    "nnnnnnnnn"    /* 0143 .. 014B eng */
    "oooooo"       /* 014C */
    "**"           /* 0152 OE ligature */
    "rrrrrr"       /* 0154 */
    "ssssssss"     /* 015A */
    "tttttt"       /* 0162 */
    "uuuuuuuuuuuu" /* 0168 */
    "ww"           /* 0174 */
    "yyy"          /* 0176 .. 0178 Y diaeresis */
    "zzzzzz"       /* 0179 */
    "s";           /* 017F long s */

static const char *fold_special(uint32_t c)
{
    switch (c) {
    case 0xC6:
    case 0xE6:
        return "ae";
    case 0xDE:
    case 0xFE:
        return "th";
    case 0xDF:
        return "ss";
    case 0x132:
    case 0x133:
        return "ij";
    case 0x152:
    case 0x153:
        return "oe";
    default:
        return "";
    }
}

enum fold_class { FOLD_SEP, FOLD_DROP, FOLD_ASCII, FOLD_CP };

/*
 * Classify code point c: a separator (whitespace, punctuation, symbols,
 * controls), dropped (combining marks, so a decomposed "e\u0301" folds
 * like a precomposed one), ASCII letters in *ascii, or a code point to
 * keep (lower-cased where the mapping is a simple offset).
 */
static enum fold_class fold_cp(uint32_t c, const char **ascii, uint32_t *out)
{
    if (c < 0x80) {
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            *out = c;
            return FOLD_CP;
        }
        return FOLD_SEP;
    }
    if (c < 0xC0) {
        /* Latin-1 punctuation and symbols; ordinals and micro are
         * letters. */
        if (c == 0xAA) {
            *ascii = "a";
            return FOLD_ASCII;
        }
        if (c == 0xBA) {
            *ascii = "o";
            return FOLD_ASCII;
        }
        if (c == 0xB5) {
            *out = 0x3BC; /* micro sign -> Greek small mu */
            return FOLD_CP;
        }
        return FOLD_SEP;
    }
    if (c < 0x180) {
        char b = c < 0x100 ? latin1[c - 0xC0] : latin_ext_a[c - 0x100];
        if (b == '.')
            return FOLD_SEP;
        if (b == '*') {
            *ascii = fold_special(c);
            return FOLD_ASCII;
        }
        *out = (uint32_t)(unsigned char)b;
        return FOLD_CP;
    }
    if (c >= 0x300 && c <= 0x36F)
        return FOLD_DROP;
    /* Greek and Cyrillic capitals: a fixed offset to the small letter. */
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
        c += 0x20;
    else if (c >= 0x410 && c <= 0x42F)
        c += 0x20;
    else if (c >= 0x400 && c <= 0x40F)
        c += 0x50;
    /* General punctuation, supplemental punctuation, CJK symbols and
     * punctuation, and the remaining Unicode spaces are separators. */
    if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x2E00 && c <= 0x2E7F) ||
        (c >= 0x3000 && c <= 0x303F) || c == 0x1680 || c == 0xFEFF ||
        (c >= 0xFE10 && c <= 0xFE1F) || (c >= 0xFF01 && c <= 0xFF0F))
        return FOLD_SEP;
    *out = c;
    return FOLD_CP;
}

enum mr_err mr_text_fold(const char *s, size_t n, struct mr_buf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, start = out->len;
    int pending_space = 0;
    enum mr_err err = MR_OK;

    while (i < n) {
        uint32_t c, folded = 0;
        const char *ascii = NULL;
        size_t len = utf8_decode(p + i, n - i, &c);
        enum fold_class k;
        char enc[4];
        size_t elen = 0;

        if (!len) {
            i++; /* invalid byte: dropped */
            continue;
        }
        i += len;
        k = fold_cp(c, &ascii, &folded);
        if (k == FOLD_SEP) {
            pending_space = 1;
            continue;
        }
        if (k == FOLD_DROP)
            continue;
        if (k == FOLD_CP) {
            elen = utf8_encode(folded, enc);
        } else {
            for (elen = 0; elen < sizeof(enc) && ascii[elen]; elen++)
                enc[elen] = ascii[elen];
        }
        if (pending_space && out->len > start) {
            err = mr_buf_addc(out, ' ');
            if (err)
                return err;
        }
        pending_space = 0;
        err = mr_buf_add(out, enc, elen);
        if (err)
            return err;
    }
    return MR_OK;
}
