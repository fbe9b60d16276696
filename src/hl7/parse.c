/*
 * HL7 v2 ER7 parsing. Two passes over the bytes: the first checks the
 * syntax and the limits and counts segments and fields, the second fills
 * one exactly-sized allocation with the segment table and every field's
 * slice. Repetitions, components and subcomponents are found on demand by
 * the accessors (a memchr over one field), so nothing below field level is
 * stored.
 */
#include "hl7/parse.h"
#include "core/alloc.h"
#include "core/text.h"

#include <stdint.h>
#include <string.h>

const struct mr_hl7_delims mr_hl7_default_delims = {'|',  '^', '~',
                                                    '\\', '&', '\0'};

static const struct mr_hl7_limits default_limits = {
    MR_HL7_MAX_BYTES, MR_HL7_MAX_SEGMENTS, MR_HL7_MAX_FIELDS};

/* ---- small helpers ------------------------------------------------------ */

static struct mr_hl7_slice slice(const char *p, size_t n)
{
    struct mr_hl7_slice s = {p, n};
    return s;
}

int mr_hl7_is_null(struct mr_hl7_slice v)
{
    return v.len == 2 && v.ptr[0] == '"' && v.ptr[1] == '"';
}

int mr_hl7_eq(struct mr_hl7_slice v, const char *s)
{
    size_t n = strlen(s);
    return v.len == n && memcmp(v.ptr, s, n) == 0;
}

static int is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_upper(c) || is_digit(c) || (c >= 'a' && c <= 'z');
}

/* A delimiter must be printable ASCII, not alphanumeric, and not '"' (the
 * explicit null "" would become ambiguous). */
static int delim_ok(char c)
{
    return c > 0x20 && c < 0x7f && !is_alnum(c) && c != '"';
}

static int is_segment_id(const char *p, size_t n)
{
    return n >= 3 && is_upper(p[0]) && (is_upper(p[1]) || is_digit(p[1])) &&
           (is_upper(p[2]) || is_digit(p[2]));
}

/* Quote up to 32 bytes of s for a message: printable ASCII as is, anything
 * else as \xNN, so input never puts control bytes into a diagnostic. */
static const char *show(char out[160], const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;

    for (size_t i = 0; i < n && i < 32; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[j++] = (char)c;
        } else {
            out[j++] = '\\';
            out[j++] = 'x';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    if (n > 32) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
    return out;
}

/* Describe one delimiter byte: '^' or 0x0D. */
static const char *show_char(char out[8], char c)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char u = (unsigned char)c;

    if (u > 0x20 && u < 0x7f) {
        out[0] = '\'';
        out[1] = c;
        out[2] = '\'';
        out[3] = '\0';
    } else {
        out[0] = '0';
        out[1] = 'x';
        out[2] = hex[u >> 4];
        out[3] = hex[u & 15];
        out[4] = '\0';
    }
    return out;
}

static void set_loc(struct mr_hl7_loc *where, const char *seg, unsigned seq,
                    unsigned field, enum mr_hl7_errcode code)
{
    if (!where)
        return;
    memset(where, 0, sizeof(*where));
    if (seg) {
        memcpy(where->seg, seg, 3);
        where->seg[3] = '\0';
    }
    where->seq = seq;
    where->field = field;
    where->code = code;
}

/* ---- splitting --------------------------------------------------------- */

/* The k-th (1-based) piece of v split at sep; empty past the last. */
static struct mr_hl7_slice piece(struct mr_hl7_slice v, char sep, size_t k)
{
    const char *p = v.ptr, *end = v.ptr + v.len, *q;

    for (; k > 1; k--) {
        q = memchr(p, sep, (size_t)(end - p));
        if (!q)
            return slice(end, 0);
        p = q + 1;
    }
    q = memchr(p, sep, (size_t)(end - p));
    return slice(p, (size_t)((q ? q : end) - p));
}

static size_t pieces(struct mr_hl7_slice v, char sep)
{
    const char *p = v.ptr, *end = v.ptr + v.len, *q;
    size_t n = 1;

    if (v.len == 0)
        return 0;
    while ((q = memchr(p, sep, (size_t)(end - p))) != NULL) {
        n++;
        p = q + 1;
    }
    return n;
}

/* ---- segments ----------------------------------------------------------- */

/* Iterate over non-blank lines: *p is the cursor, returns 0 at the end. A
 * line of only spaces and tabs counts as blank. */
static int next_line(const char **p, const char *end, const char **ls,
                     size_t *ln)
{
    const char *s = *p;

    for (;;) {
        const char *e;
        int blank = 1;

        while (s < end && (*s == '\r' || *s == '\n'))
            s++;
        if (s >= end) {
            *p = s;
            return 0;
        }
        for (e = s; e < end && *e != '\r' && *e != '\n'; e++)
            if (*e != ' ' && *e != '\t')
                blank = 0;
        if (!blank) {
            *ls = s;
            *ln = (size_t)(e - s);
            *p = e;
            return 1;
        }
        s = e;
    }
}

/* 1-based occurrence of the segment starting at target among segments with
 * its id (only on error paths, so a rescan is fine). */
static unsigned occurrence_of(const char *data, size_t len, const char *target)
{
    const char *p = data, *end = data + len, *ls;
    size_t ln;
    unsigned n = 0;

    while (next_line(&p, end, &ls, &ln) && ls <= target)
        if (ln >= 3 && memcmp(ls, target, 3) == 0)
            n++;
    return n;
}

/* Field position (as HL7 counts) of byte off in a segment. */
static size_t field_at(const char *seg, size_t off, char fs, int is_msh)
{
    size_t f = 0;

    if (off < 3)
        return 0;
    for (size_t i = 3; i <= off; i++)
        if (seg[i] == fs)
            f++;
    return is_msh ? f + 1 : f;
}

/* First pass over one segment: syntax, control bytes, field count. */
static enum mr_err check_segment(const char *data, size_t len, const char *s,
                                 size_t n, size_t pos, char fs,
                                 const struct mr_hl7_limits *lim,
                                 size_t *nfields, struct mr_hl7_loc *where,
                                 struct mr_diag *d)
{
    size_t fields;
    char id[4], buf[160];
    int is_msh;

    if (!is_segment_id(s, n) || (n > 3 && s[3] != fs)) {
        set_loc(where, NULL, 0, 0, MR_HL7_ERR_SEGMENT_SEQUENCE);
        return mr_diag_set(d, MR_EINVALID,
                           "segment %zu: does not start with a 3-character "
                           "segment id",
                           pos);
    }
    memcpy(id, s, 3);
    id[3] = '\0';
    is_msh = pos == 1;
    if (pos > 1 &&
        (!strcmp(id, "MSH") || !strcmp(id, "FHS") || !strcmp(id, "BHS") ||
         !strcmp(id, "BTS") || !strcmp(id, "FTS"))) {
        set_loc(where, id, occurrence_of(data, len, s), 0,
                MR_HL7_ERR_SEGMENT_SEQUENCE);
        if (!strcmp(id, "MSH"))
            return mr_diag_set(d, MR_EINVALID,
                               "segment %zu: a second MSH starts another "
                               "message; one message is parsed at a time",
                               pos);
        return mr_diag_set(d, MR_EINVALID,
                           "segment %zu: %s belongs to a batch envelope; "
                           "split the batch into messages first",
                           pos, id);
    }
    fields = n > 3 ? 1 : 0;
    for (size_t i = 3; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (s[i] == fs && i > 3) {
            fields++;
        } else if (c < 0x20 && c != '\t') {
            size_t f = field_at(s, i, fs, is_msh);
            set_loc(where, id, occurrence_of(data, len, s), (unsigned)f,
                    MR_HL7_ERR_DATA_TYPE);
            return mr_diag_set(d, MR_EINVALID,
                               "segment %zu (%s), field %zu: control "
                               "character %s is not allowed (escape it as "
                               "\\X%02X\\)",
                               pos, id, f, show(buf, s + i, 1), c);
        }
    }
    if (is_msh)
        fields++;
    if (fields > lim->max_fields) {
        set_loc(where, id, occurrence_of(data, len, s), 0, MR_HL7_ERR_INTERNAL);
        return mr_diag_set(d, MR_ETOOBIG,
                           "segment %zu (%s): more than %zu fields (limit)",
                           pos, id, lim->max_fields);
    }
    *nfields = fields;
    return MR_OK;
}

/* ---- MSH-1 and MSH-2 ---------------------------------------------------- */

enum mr_err mr__hl7_parse_delims(const char *s, size_t n,
                                 struct mr_hl7_delims *dl,
                                 struct mr_hl7_loc *where, struct mr_diag *d)
{
    static const char *const names[] = {"component", "repetition", "escape",
                                        "subcomponent", "truncation"};
    char enc[5], cb[8];
    size_t k = 0;

    if (n < 4) {
        set_loc(where, "MSH", 1, 1, MR_HL7_ERR_REQUIRED_MISSING);
        return mr_diag_set(d, MR_EINVALID, "MSH-1: field separator is missing");
    }
    if (!delim_ok(s[3])) {
        set_loc(where, "MSH", 1, 1, MR_HL7_ERR_DATA_TYPE);
        return mr_diag_set(d, MR_EINVALID,
                           "MSH-1: field separator %s is not a printable, "
                           "non-alphanumeric character",
                           show_char(cb, s[3]));
    }
    while (4 + k < n && s[4 + k] != s[3]) {
        if (k == 5)
            break;
        enc[k] = s[4 + k];
        k++;
    }
    if (k < 4 || (k == 5 && 9 < n && s[9] != s[3])) {
        size_t total = 0;
        while (4 + total < n && s[4 + total] != s[3])
            total++;
        set_loc(where, "MSH", 1, 2, MR_HL7_ERR_DATA_TYPE);
        return mr_diag_set(d, MR_EINVALID,
                           "MSH-2: encoding characters must be 4 characters "
                           "(5 with the truncation character), found %zu",
                           total);
    }
    for (size_t i = 0; i < k; i++) {
        if (!delim_ok(enc[i])) {
            set_loc(where, "MSH", 1, 2, MR_HL7_ERR_DATA_TYPE);
            return mr_diag_set(d, MR_EINVALID,
                               "MSH-2: %s character %s must be a printable, "
                               "non-alphanumeric character other than '\"'",
                               names[i], show_char(cb, enc[i]));
        }
        if (enc[i] == s[3]) {
            set_loc(where, "MSH", 1, 2, MR_HL7_ERR_DATA_TYPE);
            return mr_diag_set(d, MR_EINVALID,
                               "MSH-2: %s character %s is also the field "
                               "separator",
                               names[i], show_char(cb, enc[i]));
        }
        for (size_t j = 0; j < i; j++)
            if (enc[j] == enc[i]) {
                set_loc(where, "MSH", 1, 2, MR_HL7_ERR_DATA_TYPE);
                return mr_diag_set(d, MR_EINVALID,
                                   "MSH-2: %s character %s is also the %s "
                                   "character",
                                   names[i], show_char(cb, enc[i]), names[j]);
            }
    }
    dl->field = s[3];
    dl->component = enc[0];
    dl->repetition = enc[1];
    dl->escape = enc[2];
    dl->subcomponent = enc[3];
    dl->truncation = k == 5 ? enc[4] : '\0';
    return MR_OK;
}

/* ---- the header --------------------------------------------------------- */

static int blank_value(struct mr_hl7_slice v)
{
    return v.len == 0 || mr_hl7_is_null(v);
}

/* "2.N" or "2.N.M" (M one or two digits); the minor N, or -1. */
int mr__hl7_version_minor(struct mr_hl7_slice v)
{
    const char *p = v.ptr;

    if (v.len < 3 || p[0] != '2' || p[1] != '.' || !is_digit(p[2]))
        return -1;
    if (v.len == 3)
        return p[2] - '0';
    if (p[3] != '.' || v.len < 5 || v.len > 6 || !is_digit(p[4]) ||
        (v.len == 6 && !is_digit(p[5])))
        return -1;
    return p[2] - '0';
}

static enum mr_err parse_header(struct mr_hl7_msg *m, struct mr_hl7_loc *where,
                                struct mr_diag *d)
{
    const struct mr_hl7_seg *msh = &m->segs[0];
    struct mr_hl7_header *h = &m->hdr;
    struct mr_hl7_slice v;
    char buf[160];
    int minor;

    memset(h, 0, sizeof(*h));
#define GET(f, r, c, out)                                                      \
    do {                                                                       \
        if (mr_hl7_seg_get(m, msh, (f), (r), (c), 0, (out)) != MR_OK)          \
            return mr_diag_set(d, MR_EINTERNAL, "MSH-%d: lookup failed", (f)); \
    } while (0)
    GET(3, 0, 0, &h->sending_app);
    GET(4, 0, 0, &h->sending_facility);
    GET(5, 0, 0, &h->receiving_app);
    GET(6, 0, 0, &h->receiving_facility);
    GET(7, 1, 1, &h->datetime);
    GET(9, 1, 1, &h->msg_type);
    GET(9, 1, 2, &h->trigger);
    GET(9, 1, 3, &h->structure);
    GET(10, 0, 0, &h->control_id);
    GET(11, 1, 1, &h->processing_id);
    GET(12, 1, 1, &h->version);
    GET(15, 0, 0, &h->accept_ack);
    GET(16, 0, 0, &h->app_ack);
    GET(18, 1, 0, &h->charset_name);
#undef GET

    if (blank_value(h->msg_type)) {
        set_loc(where, "MSH", 1, 9, MR_HL7_ERR_REQUIRED_MISSING);
        return mr_diag_set(d, MR_EINVALID, "MSH-9: message type is required");
    }
    if (blank_value(h->control_id)) {
        set_loc(where, "MSH", 1, 10, MR_HL7_ERR_REQUIRED_MISSING);
        return mr_diag_set(d, MR_EINVALID, "MSH-10: control id is required");
    }
    if (h->control_id.len > MR_HL7_MAX_CONTROL_ID) {
        set_loc(where, "MSH", 1, 10, MR_HL7_ERR_VALUE_TOO_LONG);
        return mr_diag_set(d, MR_EINVALID,
                           "MSH-10: control id is %zu characters; the limit "
                           "is %u",
                           h->control_id.len, MR_HL7_MAX_CONTROL_ID);
    }
    if (blank_value(h->version)) {
        set_loc(where, "MSH", 1, 12, MR_HL7_ERR_REQUIRED_MISSING);
        return mr_diag_set(d, MR_EINVALID, "MSH-12: version is required");
    }
    minor = mr__hl7_version_minor(h->version);
    if (minor < 3 || minor > 8) {
        set_loc(where, "MSH", 1, 12, MR_HL7_ERR_UNSUPPORTED_VERSION);
        return mr_diag_set(d, MR_EUNSUPPORTED,
                           "MSH-12: version \"%s\" is not supported (2.3 to "
                           "2.8)",
                           show(buf, h->version.ptr, h->version.len));
    }
    h->version_minor = minor;

    if (mr_hl7_count(m, msh, 18, 0, 0) > 1) {
        for (size_t r = 2; r <= mr_hl7_count(m, msh, 18, 0, 0); r++) {
            if (mr_hl7_seg_get(m, msh, 18, r, 0, 0, &v) == MR_OK && v.len) {
                set_loc(where, "MSH", 1, 18, MR_HL7_ERR_TABLE_VALUE);
                return mr_diag_set(d, MR_EUNSUPPORTED,
                                   "MSH-18: more than one character set "
                                   "(code extensions) is not supported");
            }
        }
    }
    v = h->charset_name;
    if (blank_value(v))
        h->charset = MR_HL7_CS_DEFAULT;
    else if (mr_hl7_eq(v, "ASCII"))
        h->charset = MR_HL7_CS_ASCII;
    else if (mr_hl7_eq(v, "8859/1"))
        h->charset = MR_HL7_CS_LATIN1;
    else if (mr_hl7_eq(v, "UNICODE UTF-8"))
        h->charset = MR_HL7_CS_UTF8;
    else {
        set_loc(where, "MSH", 1, 18, MR_HL7_ERR_TABLE_VALUE);
        return mr_diag_set(d, MR_EUNSUPPORTED,
                           "MSH-18: character set \"%s\" is not supported "
                           "(ASCII, 8859/1 or UNICODE UTF-8)",
                           show(buf, v.ptr, v.len));
    }
    return MR_OK;
}

/* Under every character set but Latin-1 the bytes must be UTF-8 (ASCII is
 * a subset; a sender declaring ASCII that sends UTF-8 is taken at its
 * bytes). Refused rather than guessed: a Latin-1 "é" read as UTF-8 would
 * be mangled into a wrong name. */
static enum mr_err check_charset(struct mr_hl7_msg *m, struct mr_hl7_loc *where,
                                 struct mr_diag *d)
{
    if (m->hdr.charset == MR_HL7_CS_LATIN1)
        return MR_OK;
    for (size_t i = 0; i < m->nsegs; i++) {
        const struct mr_hl7_seg *s = &m->segs[i];
        if (mr_utf8_valid(s->text.ptr, s->text.len))
            continue;
        set_loc(where, "MSH", 1, 18, MR_HL7_ERR_DATA_TYPE);
        switch (m->hdr.charset) {
        case MR_HL7_CS_ASCII:
            return mr_diag_set(d, MR_EINVALID,
                               "MSH-18: ASCII is declared but segment %zu "
                               "(%s) is neither ASCII nor UTF-8",
                               i + 1, s->id);
        case MR_HL7_CS_UTF8:
            return mr_diag_set(d, MR_EINVALID,
                               "MSH-18: UNICODE UTF-8 is declared but "
                               "segment %zu (%s) is not valid UTF-8",
                               i + 1, s->id);
        default:
            return mr_diag_set(d, MR_EINVALID,
                               "MSH-18: no character set is declared and "
                               "segment %zu (%s) is neither ASCII nor UTF-8 "
                               "(declare 8859/1 for Latin-1)",
                               i + 1, s->id);
        }
    }
    return MR_OK;
}

/* ---- parse -------------------------------------------------------------- */

enum mr_err mr_hl7_parse(struct mr_hl7_msg *m, const char *data, size_t len,
                         const struct mr_hl7_limits *lim,
                         struct mr_hl7_loc *where, struct mr_diag *d)
{
    struct mr_hl7_msg tmp;
    struct mr_hl7_delims dl;
    const char *p, *end, *ls;
    size_t ln, nsegs = 0, nfields = 0, si, fi;
    char buf[160];
    enum mr_err err;

    if (!lim)
        lim = &default_limits;
    if (len > lim->max_bytes) {
        set_loc(where, NULL, 0, 0, MR_HL7_ERR_INTERNAL);
        return mr_diag_set(d, MR_ETOOBIG,
                           "message is %zu bytes; the limit is %zu bytes", len,
                           lim->max_bytes);
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        len -= 3;
    }
    p = data;
    end = data + len;
    if (!next_line(&p, end, &ls, &ln)) {
        set_loc(where, NULL, 0, 0, MR_HL7_ERR_SEGMENT_SEQUENCE);
        return mr_diag_set(d, MR_EINVALID, "message is empty");
    }
    if (ln < 3 || memcmp(ls, "MSH", 3) != 0) {
        set_loc(where, NULL, 0, 0, MR_HL7_ERR_SEGMENT_SEQUENCE);
        if (is_segment_id(ls, ln) && (ln == 3 || !is_alnum(ls[3])))
            return mr_diag_set(d, MR_EINVALID,
                               "segment 1: message must start with MSH, not "
                               "%.3s%s",
                               ls,
                               (!memcmp(ls, "FHS", 3) || !memcmp(ls, "BHS", 3))
                                   ? " (split the batch into messages first)"
                                   : "");
        return mr_diag_set(d, MR_EINVALID,
                           "segment 1: message must start with MSH, found "
                           "\"%s\"",
                           show(buf, ls, ln < 8 ? ln : 8));
    }
    err = mr__hl7_parse_delims(ls, ln, &dl, where, d);
    if (err)
        return err;

    /* First pass: syntax and limits, and the sizes for one allocation. */
    p = data;
    while (next_line(&p, end, &ls, &ln)) {
        size_t nf = 0;
        if (nsegs == lim->max_segments) {
            set_loc(where, NULL, 0, 0, MR_HL7_ERR_INTERNAL);
            return mr_diag_set(d, MR_ETOOBIG,
                               "segment %zu: more than %zu segments (limit)",
                               nsegs + 1, lim->max_segments);
        }
        nsegs++;
        err = check_segment(data, len, ls, ln, nsegs, dl.field, lim, &nf, where,
                            d);
        if (err)
            return err;
        nfields += nf;
    }

    memset(&tmp, 0, sizeof(tmp));
    tmp.data = data;
    tmp.len = len;
    tmp.delims = dl;
    tmp.nsegs = nsegs;
    /* nsegs <= max_segments and nfields <= len + nsegs, so no overflow for
     * any sane limit; checked anyway. */
    if (nsegs > SIZE_MAX / 2 / sizeof(struct mr_hl7_seg) ||
        nfields > SIZE_MAX / 2 / sizeof(struct mr_hl7_slice))
        return mr_diag_set(d, MR_ETOOBIG, "message is too large");
    tmp.mem = mr_malloc(nsegs * sizeof(struct mr_hl7_seg) +
                        nfields * sizeof(struct mr_hl7_slice));
    if (!tmp.mem) {
        set_loc(where, NULL, 0, 0, MR_HL7_ERR_INTERNAL);
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    }
    tmp.segs = tmp.mem;

    /* Second pass: fill the segment table and the field slices. */
    {
        struct mr_hl7_slice *fields = (struct mr_hl7_slice *)(tmp.segs + nsegs);
        p = data;
        si = fi = 0;
        while (next_line(&p, end, &ls, &ln)) {
            struct mr_hl7_seg *s = &tmp.segs[si];
            const char *fp, *fe = ls + ln;

            memcpy(s->id, ls, 3);
            s->id[3] = '\0';
            s->text = slice(ls, ln);
            s->fields = fields + fi;
            s->nfields = 0;
            if (ln > 3) {
                fp = ls + 4;
                if (si == 0) {
                    fields[fi++] = slice(ls + 3, 1); /* MSH-1 */
                    s->nfields++;
                }
                for (;;) {
                    const char *q = memchr(fp, dl.field, (size_t)(fe - fp));
                    const char *qe = q ? q : fe;
                    fields[fi++] = slice(fp, (size_t)(qe - fp));
                    s->nfields++;
                    if (!q)
                        break;
                    fp = q + 1;
                }
            }
            si++;
        }
    }

    err = parse_header(&tmp, where, d);
    if (!err)
        err = check_charset(&tmp, where, d);
    if (err) {
        mr_free(tmp.mem);
        return err;
    }
    *m = tmp;
    return MR_OK;
}

static int is_envelope(const char *ls, size_t ln)
{
    return ln >= 3 && (ln == 3 || !is_alnum(ls[3])) &&
           (!memcmp(ls, "FHS", 3) || !memcmp(ls, "BHS", 3) ||
            !memcmp(ls, "BTS", 3) || !memcmp(ls, "FTS", 3));
}

int mr_hl7_next_message(const char *data, size_t len, size_t *off,
                        struct mr_hl7_slice *msg)
{
    const char *end = data + len, *p, *ls, *first = NULL, *last = NULL;
    size_t ln;

    if (*off == 0 && len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        *off = 3;
    if (*off >= len)
        return 0;
    p = data + *off;
    for (;;) {
        const char *before = p;
        if (!next_line(&p, end, &ls, &ln))
            break;
        if (is_envelope(ls, ln) ||
            (first && ln >= 3 && !memcmp(ls, "MSH", 3))) {
            if (first) {
                p = before;
                break;
            }
            continue;
        }
        if (!first)
            first = ls;
        last = ls + ln;
    }
    *off = (size_t)(p - data);
    if (!first)
        return 0;
    /* keep the terminator of the last segment, as it was sent */
    if (last < end && *last == '\r')
        last++;
    if (last < end && *last == '\n')
        last++;
    *msg = slice(first, (size_t)(last - first));
    return 1;
}

void mr_hl7_release(struct mr_hl7_msg *m)
{
    mr_free(m->mem);
    memset(m, 0, sizeof(*m));
}

/* ---- accessors ---------------------------------------------------------- */

const struct mr_hl7_seg *mr_hl7_find(const struct mr_hl7_msg *m, const char *id,
                                     size_t occurrence)
{
    if (!id || strlen(id) != 3 || occurrence == 0)
        return NULL;
    for (size_t i = 0; i < m->nsegs; i++)
        if (memcmp(m->segs[i].id, id, 3) == 0 && --occurrence == 0)
            return &m->segs[i];
    return NULL;
}

size_t mr_hl7_occurrences(const struct mr_hl7_msg *m, const char *id)
{
    size_t n = 0;

    if (!id || strlen(id) != 3)
        return 0;
    for (size_t i = 0; i < m->nsegs; i++)
        if (memcmp(m->segs[i].id, id, 3) == 0)
            n++;
    return n;
}

/* Field `field` of s, and whether it must stay whole (MSH-1, MSH-2). */
static struct mr_hl7_slice field_of(const struct mr_hl7_msg *m,
                                    const struct mr_hl7_seg *s, size_t field,
                                    int *atomic)
{
    *atomic = 0;
    if (field == 0) {
        *atomic = 1;
        return slice(s->text.ptr, 3);
    }
    if (field > s->nfields)
        return slice(s->text.ptr + s->text.len, 0);
    if (s == &m->segs[0] && field <= 2)
        *atomic = 1;
    return s->fields[field - 1];
}

enum mr_err mr_hl7_seg_get(const struct mr_hl7_msg *m,
                           const struct mr_hl7_seg *s, size_t field, size_t rep,
                           size_t comp, size_t sub, struct mr_hl7_slice *out)
{
    struct mr_hl7_slice v;
    int atomic;

    if (!s || (rep == 0 && (comp || sub)) || (comp == 0 && sub))
        return MR_EINVALID;
    v = field_of(m, s, field, &atomic);
    if (atomic) {
        if (rep > 1 || comp > 1 || sub > 1)
            v = slice(v.ptr + v.len, 0);
        *out = v;
        return MR_OK;
    }
    if (rep)
        v = piece(v, m->delims.repetition, rep);
    if (comp)
        v = piece(v, m->delims.component, comp);
    if (sub)
        v = piece(v, m->delims.subcomponent, sub);
    *out = v;
    return MR_OK;
}

enum mr_err mr_hl7_get(const struct mr_hl7_msg *m, const char *seg,
                       size_t occurrence, size_t field, size_t rep, size_t comp,
                       size_t sub, struct mr_hl7_slice *out)
{
    const struct mr_hl7_seg *s = mr_hl7_find(m, seg, occurrence);

    if (!s)
        return MR_ENOTFOUND;
    return mr_hl7_seg_get(m, s, field, rep, comp, sub, out);
}

size_t mr_hl7_count(const struct mr_hl7_msg *m, const struct mr_hl7_seg *s,
                    size_t field, size_t rep, size_t comp)
{
    struct mr_hl7_slice v;
    int atomic;

    if (!s)
        return 0;
    v = field_of(m, s, field, &atomic);
    if (atomic)
        return (rep <= 1 && comp <= 1 && v.len) ? 1 : 0;
    if (rep == 0)
        return pieces(v, m->delims.repetition);
    v = piece(v, m->delims.repetition, rep);
    if (comp == 0)
        return pieces(v, m->delims.component);
    v = piece(v, m->delims.component, comp);
    return pieces(v, m->delims.subcomponent);
}

/* ---- escapes ------------------------------------------------------------ */

static void buf_truncate(struct mr_buf *b, size_t len)
{
    b->len = len;
    b->ptr[len] = '\0';
}

/* Append bytes in the message's character set as UTF-8. */
static enum mr_err emit(struct mr_buf *out, enum mr_hl7_charset cs,
                        const char *s, size_t n)
{
    enum mr_err err;

    if (cs != MR_HL7_CS_LATIN1)
        return mr_buf_add(out, s, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            err = mr_buf_addc(out, (char)c);
        } else {
            char two[2] = {(char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F))};
            err = mr_buf_add(out, two, 2);
        }
        if (err)
            return err;
    }
    return MR_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* \Xhh..\ with content q[0..n) (after the X): decode into out, or return
 * 0 (out unchanged) when it is not even hex, spells a NUL, or (except
 * under Latin-1) is not valid UTF-8. */
static enum mr_err emit_hex(struct mr_buf *out, enum mr_hl7_charset cs,
                            const char *q, size_t n, int *done)
{
    size_t start = out->len;
    enum mr_err err;

    *done = 0;
    if (n == 0 || n % 2)
        return MR_OK;
    for (size_t i = 0; i < n; i++)
        if (hexval(q[i]) < 0)
            return MR_OK;
    for (size_t i = 0; i < n; i += 2) {
        char c = (char)(hexval(q[i]) * 16 + hexval(q[i + 1]));
        if (c == '\0') {
            buf_truncate(out, start);
            return MR_OK;
        }
        err = emit(out, cs, &c, 1);
        if (err)
            return err;
    }
    if (cs != MR_HL7_CS_LATIN1 &&
        !mr_utf8_valid(out->ptr + start, out->len - start)) {
        buf_truncate(out, start);
        return MR_OK;
    }
    *done = 1;
    return MR_OK;
}

enum mr_err mr_hl7_unescape(const struct mr_hl7_delims *dl,
                            enum mr_hl7_charset cs, const char *s, size_t n,
                            struct mr_buf *out)
{
    size_t start = out->len, i = 0;
    enum mr_err err = MR_OK;

    while (i < n) {
        const char *e = memchr(s + i, dl->escape, n - i);
        const char *q, *close;
        size_t qn;
        char c = 0;
        int done = 0;

        if (!e) {
            err = emit(out, cs, s + i, n - i);
            break;
        }
        err = emit(out, cs, s + i, (size_t)(e - (s + i)));
        if (err)
            break;
        i = (size_t)(e - s);
        q = e + 1;
        close = memchr(q, dl->escape, (size_t)(s + n - q));
        if (!close) { /* unterminated: the rest as it stands */
            err = emit(out, cs, s + i, n - i);
            break;
        }
        qn = (size_t)(close - q);
        if (qn == 1) {
            switch (q[0]) {
            case 'F':
                c = dl->field;
                break;
            case 'S':
                c = dl->component;
                break;
            case 'T':
                c = dl->subcomponent;
                break;
            case 'R':
                c = dl->repetition;
                break;
            case 'E':
                c = dl->escape;
                break;
            case 'P':
                c = dl->truncation;
                break;
            default:
                break;
            }
            if (c) {
                err = mr_buf_addc(out, c);
                done = 1;
            }
        } else if (qn == 3 && memcmp(q, ".br", 3) == 0) {
            err = mr_buf_addc(out, '\n');
            done = 1;
        } else if (qn >= 1 && q[0] == 'X') {
            err = emit_hex(out, cs, q + 1, qn - 1, &done);
        }
        if (err)
            break;
        if (!done) /* unknown: keep it visible, delimiters included */
            err = emit(out, cs, s + i, qn + 2);
        if (err)
            break;
        i += qn + 2;
    }
    if (err)
        buf_truncate(out, start);
    return err;
}

enum mr_err mr_hl7_escape(const struct mr_hl7_delims *dl, const char *s,
                          size_t n, struct mr_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = out->len, run = 0;
    enum mr_err err = MR_OK;

    for (size_t i = 0; i < n && !err; i++) {
        char c = s[i], code = 0;
        unsigned char u = (unsigned char)c;
        char seq[8];
        size_t sn = 0, back = 0; /* back: 1 when a CRLF was taken */

        if (c == dl->field)
            code = 'F';
        else if (c == dl->component)
            code = 'S';
        else if (c == dl->subcomponent)
            code = 'T';
        else if (c == dl->repetition)
            code = 'R';
        else if (c == dl->escape)
            code = 'E';
        else if (dl->truncation && c == dl->truncation)
            code = 'P';
        if (code) {
            seq[sn++] = dl->escape;
            seq[sn++] = code;
            seq[sn++] = dl->escape;
        } else if (c == '\n' || (c == '\r' && i + 1 < n && s[i + 1] == '\n')) {
            if (c == '\r') {
                i++;
                back = 1;
            }
            seq[sn++] = dl->escape;
            memcpy(seq + sn, ".br", 3);
            sn += 3;
            seq[sn++] = dl->escape;
        } else if ((u < 0x20 && c != '\t') || u == 0x7f) {
            seq[sn++] = dl->escape;
            seq[sn++] = 'X';
            seq[sn++] = hex[u >> 4];
            seq[sn++] = hex[u & 15];
            seq[sn++] = dl->escape;
        } else {
            run++;
            continue;
        }
        /* flush the plain run before this byte (or the CR of a CRLF) */
        err = mr_buf_add(out, s + i - back - run, run);
        run = 0;
        if (!err)
            err = mr_buf_add(out, seq, sn);
    }
    if (!err && run)
        err = mr_buf_add(out, s + n - run, run);
    if (err)
        buf_truncate(out, start);
    return err;
}
