/*
 * HL7 v2 ACK building. Values taken from the original message are copied
 * as received (they are already in its delimiters and character set);
 * text medrec adds is converted and escaped here.
 */
#include "hl7/ack.h"

#include "core/text.h"
#include "core/time.h"

#include <stdio.h>
#include <string.h>

const char *mr_hl7_ack_code_name(enum mr_hl7_ack_code c)
{
    switch (c) {
    case MR_HL7_AA:
        return "AA";
    case MR_HL7_AE:
        return "AE";
    default:
        return "AR";
    }
}

const char *mr_hl7_errcode_text(enum mr_hl7_errcode c)
{
    switch (c) {
    case MR_HL7_ERR_ACCEPTED:
        return "Message accepted";
    case MR_HL7_ERR_SEGMENT_SEQUENCE:
        return "Segment sequence error";
    case MR_HL7_ERR_REQUIRED_MISSING:
        return "Required field missing";
    case MR_HL7_ERR_DATA_TYPE:
        return "Data type error";
    case MR_HL7_ERR_TABLE_VALUE:
        return "Table value not found";
    case MR_HL7_ERR_VALUE_TOO_LONG:
        return "Value too long";
    case MR_HL7_ERR_UNSUPPORTED_TYPE:
        return "Unsupported message type";
    case MR_HL7_ERR_UNSUPPORTED_EVENT:
        return "Unsupported event code";
    case MR_HL7_ERR_UNSUPPORTED_PROCESSING_ID:
        return "Unsupported processing id";
    case MR_HL7_ERR_UNSUPPORTED_VERSION:
        return "Unsupported version id";
    case MR_HL7_ERR_UNKNOWN_KEY:
        return "Unknown key identifier";
    case MR_HL7_ERR_DUPLICATE_KEY:
        return "Duplicate key identifier";
    case MR_HL7_ERR_RECORD_LOCKED:
        return "Application record locked";
    default:
        return "Application internal error";
    }
}

/* ---- checks on what the caller passes ------------------------------------ */

static int is_delim(const struct mr_hl7_delims *dl, char c)
{
    return c == dl->field || c == dl->component || c == dl->repetition ||
           c == dl->escape || c == dl->subcomponent ||
           (dl->truncation && c == dl->truncation);
}

static enum mr_err check_params(const struct mr_hl7_delims *dl,
                                const struct mr_hl7_ack *a, struct mr_diag *d)
{
    size_t n;

    if (a->code != MR_HL7_AA && a->code != MR_HL7_AE && a->code != MR_HL7_AR)
        return mr_diag_set(d, MR_EINVALID, "ACK: unknown acknowledgement code");
    n = a->control_id ? strlen(a->control_id) : 0;
    if (n == 0 || n > MR_HL7_MAX_CONTROL_ID)
        return mr_diag_set(d, MR_EINVALID,
                           "ACK MSH-10: control id must be 1 to %u characters",
                           MR_HL7_MAX_CONTROL_ID);
    for (size_t i = 0; i < n; i++) {
        char c = a->control_id[i];
        if (c < 0x20 || c > 0x7e || is_delim(dl, c))
            return mr_diag_set(d, MR_EINVALID,
                               "ACK MSH-10: control id must be printable "
                               "ASCII without delimiters");
    }
    n = a->timestamp ? strlen(a->timestamp) : 0;
    if (n == 0 || n > 24 || strspn(a->timestamp, "0123456789.+-") != n)
        goto bad_time;
    for (size_t i = 0; i < n; i++)
        if (is_delim(dl, a->timestamp[i]))
            goto bad_time;
    return MR_OK;
bad_time:
    return mr_diag_set(d, MR_EINVALID,
                       "ACK MSH-7: timestamp must be an HL7 date/time such "
                       "as 20260301120000+0100");
}

/* ---- text -----------------------------------------------------------------
 */

/* Length of the valid UTF-8 sequence at s (n bytes left) and its code
 * point, or 0 if it is not valid. */
static size_t utf8_char(const char *s, size_t n, unsigned long *cp)
{
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

    if (len > n || !mr_utf8_valid(s, len))
        return 0;
    if (len == 1)
        *cp = c;
    else if (len == 2)
        *cp = ((c & 0x1Ful) << 6) | (s[1] & 0x3F);
    else if (len == 3)
        *cp = ((c & 0x0Ful) << 12) | ((s[1] & 0x3Ful) << 6) | (s[2] & 0x3F);
    else
        *cp = ((c & 0x07ul) << 18) | ((s[1] & 0x3Ful) << 12) |
              ((s[2] & 0x3Ful) << 6) | (s[3] & 0x3F);
    return len;
}

/* UTF-8 text -> the message's character set, then escaped into out. */
static enum mr_err add_text(struct mr_buf *out, const struct mr_hl7_delims *dl,
                            enum mr_hl7_charset cs, const char *s)
{
    struct mr_buf t = MR_BUF_INIT(out->max);
    size_t n = strlen(s);
    enum mr_err err = MR_OK;

    for (size_t i = 0; i < n && !err;) {
        unsigned long cp = 0;
        size_t len = utf8_char(s + i, n - i, &cp);

        if (len == 0) {
            err = mr_buf_addc(&t, '?');
            i++;
        } else if (len == 1) {
            err = mr_buf_addc(&t, s[i]);
            i++;
        } else {
            if (cs == MR_HL7_CS_LATIN1)
                err = mr_buf_addc(&t, cp <= 0xFF ? (char)cp : '?');
            else if (cs == MR_HL7_CS_ASCII)
                err = mr_buf_addc(&t, '?');
            else
                err = mr_buf_add(&t, s + i, len);
            i += len;
        }
    }
    if (!err)
        err = mr_hl7_escape(dl, t.ptr, t.len, out);
    mr_buf_release(&t);
    return err;
}

static enum mr_err add_slice(struct mr_buf *out, struct mr_hl7_slice v)
{
    return mr_buf_add(out, v.ptr, v.len);
}

/* An ERR segment: an error for AE/AR, a warning for an AA with a reason,
 * nothing for a plain AA. */
static enum mr_err add_err(struct mr_buf *out, const struct mr_hl7_delims *dl,
                           enum mr_hl7_charset cs, int minor,
                           const struct mr_hl7_ack *a)
{
    const struct mr_hl7_loc *w = a->where;
    enum mr_hl7_errcode code = w ? w->code : MR_HL7_ERR_INTERNAL;
    const char *reason =
        a->reason && a->reason[0] ? a->reason : mr_hl7_errcode_text(code);
    char fs = dl->field, cs_ = dl->component;
    int have_seg = w && w->seg[0];
    enum mr_err err;

    if (a->code == MR_HL7_AA && !(a->reason && a->reason[0]))
        return MR_OK;
    err = mr_buf_adds(out, "ERR");
    if (!err)
        err = mr_buf_addc(out, fs);
    if (err)
        return err;
    if (minor >= 5) {
        /* ERR-1 empty, ERR-2 location (ERL) */
        err = mr_buf_addc(out, fs);
        if (!err && have_seg) {
            err = mr_buf_addf(out, "%s%c%u", w->seg, cs_, w->seq ? w->seq : 1);
            if (!err && (w->field || w->rep || w->comp || w->sub))
                err = mr_buf_addf(out, "%c%u", cs_, w->field);
            if (!err && (w->rep || w->comp || w->sub))
                err = mr_buf_addf(out, "%c%u", cs_, w->rep ? w->rep : 1);
            if (!err && (w->comp || w->sub))
                err = mr_buf_addf(out, "%c%u", cs_, w->comp ? w->comp : 1);
            if (!err && w->sub)
                err = mr_buf_addf(out, "%c%u", cs_, w->sub);
        }
        /* ERR-3 code^text^HL70357, ERR-4 severity, ERR-8 user message */
        if (!err)
            err = mr_buf_addf(out, "%c%d%c", fs, (int)code, cs_);
        if (!err)
            err = add_text(out, dl, cs, mr_hl7_errcode_text(code));
        if (!err)
            err = mr_buf_addf(out, "%cHL70357%c%c%c%c%c%c", cs_, fs,
                              a->code == MR_HL7_AA ? 'W' : 'E', fs, fs, fs, fs);
        if (!err)
            err = add_text(out, dl, cs, reason);
    } else {
        /* ERR-1 (ELD): seg^seq^field^code&reason&HL70357 */
        if (have_seg)
            err = mr_buf_addf(out, "%s%c%u%c", w->seg, cs_, w->seq ? w->seq : 1,
                              cs_);
        else
            err = mr_buf_addf(out, "%c%c", cs_, cs_);
        if (!err && have_seg && w->field)
            err = mr_buf_addf(out, "%u", w->field);
        if (!err)
            err = mr_buf_addf(out, "%c%d%c", cs_, (int)code, dl->subcomponent);
        if (!err)
            err = add_text(out, dl, cs, reason);
        if (!err)
            err = mr_buf_addf(out, "%cHL70357", dl->subcomponent);
    }
    if (!err)
        err = mr_buf_addc(out, '\r');
    return err;
}

/* MSA, with MSA-3 (the reason) for errors before v2.5. */
static enum mr_err add_msa(struct mr_buf *out, const struct mr_hl7_delims *dl,
                           enum mr_hl7_charset cs, int minor,
                           struct mr_hl7_slice ctrl, const char *ctrl_text,
                           const struct mr_hl7_ack *a)
{
    enum mr_err err;

    err = mr_buf_addf(out, "MSA%c%s%c", dl->field,
                      mr_hl7_ack_code_name(a->code), dl->field);
    if (!err)
        err = ctrl_text ? mr_buf_adds(out, ctrl_text) : add_slice(out, ctrl);
    if (!err && (a->code != MR_HL7_AA || (a->reason && a->reason[0])) &&
        minor < 5) {
        const char *reason =
            a->reason && a->reason[0]
                ? a->reason
                : mr_hl7_errcode_text(a->where ? a->where->code
                                               : MR_HL7_ERR_INTERNAL);
        err = mr_buf_addc(out, dl->field);
        if (!err)
            err = add_text(out, dl, cs, reason);
    }
    if (!err)
        err = mr_buf_addc(out, '\r');
    return err;
}

enum mr_err mr_hl7_ack_build(const struct mr_hl7_msg *m,
                             const struct mr_hl7_ack *a, struct mr_buf *out,
                             struct mr_diag *d)
{
    const struct mr_hl7_delims *dl = &m->delims;
    const struct mr_hl7_header *h = &m->hdr;
    const struct mr_hl7_seg *msh = &m->segs[0];
    struct mr_hl7_slice enc, f3, f4, f5, f6, f11, f12, f18;
    size_t start = out->len;
    char fs = dl->field;
    enum mr_err err;

    err = check_params(dl, a, d);
    if (err)
        return err;
    if (mr_hl7_seg_get(m, msh, 2, 0, 0, 0, &enc) ||
        mr_hl7_seg_get(m, msh, 3, 0, 0, 0, &f3) ||
        mr_hl7_seg_get(m, msh, 4, 0, 0, 0, &f4) ||
        mr_hl7_seg_get(m, msh, 5, 0, 0, 0, &f5) ||
        mr_hl7_seg_get(m, msh, 6, 0, 0, 0, &f6) ||
        mr_hl7_seg_get(m, msh, 11, 0, 0, 0, &f11) ||
        mr_hl7_seg_get(m, msh, 12, 0, 0, 0, &f12) ||
        mr_hl7_seg_get(m, msh, 18, 0, 0, 0, &f18))
        return mr_diag_set(d, MR_EINTERNAL, "ACK: MSH lookup failed");

    err = mr_buf_addf(out, "MSH%c", fs);
    if (!err)
        err = add_slice(out, enc);
    if (!err)
        err = mr_buf_addc(out, fs);
    if (!err)
        err = add_slice(out, f5);
    if (!err)
        err = mr_buf_addc(out, fs);
    if (!err)
        err = add_slice(out, f6);
    if (!err)
        err = mr_buf_addc(out, fs);
    if (!err)
        err = add_slice(out, f3);
    if (!err)
        err = mr_buf_addc(out, fs);
    if (!err)
        err = add_slice(out, f4);
    if (!err)
        err = mr_buf_addf(out, "%c%s%c%cACK%c", fs, a->timestamp, fs, fs,
                          dl->component);
    if (!err)
        err = add_slice(out, h->trigger);
    if (!err && !mr_hl7_eq(h->version, "2.3"))
        err = mr_buf_addf(out, "%cACK", dl->component);
    if (!err)
        err = mr_buf_addf(out, "%c%s%c", fs, a->control_id, fs);
    if (!err)
        err = f11.len ? add_slice(out, f11) : mr_buf_addc(out, 'P');
    if (!err)
        err = mr_buf_addc(out, fs);
    if (!err)
        err = add_slice(out, f12);
    if (!err && f18.len) {
        err = mr_buf_addf(out, "%c%c%c%c%c%c", fs, fs, fs, fs, fs, fs);
        if (!err)
            err = add_slice(out, f18);
    }
    if (!err)
        err = mr_buf_addc(out, '\r');
    if (!err)
        err = add_msa(out, dl, h->charset, h->version_minor, h->control_id,
                      NULL, a);
    if (!err)
        err = add_err(out, dl, h->charset, h->version_minor, a);
    if (err) {
        out->len = start;
        out->ptr[start] = '\0';
        return mr_diag_set(d, err, "ACK: %s", mr_strerror(err));
    }
    return MR_OK;
}

/* ---- ACK for bytes that did not parse ------------------------------------ */

/* The raw pieces of the first line we may echo, found leniently. */
struct unparsed {
    struct mr_buf ctrl; /* MSH-10 re-escaped for the default delimiters */
    char proc;          /* 'P', 'D' or 'T' */
    char version[8];    /* "2.x" or "2.x.y" */
};

static void scan_unparsed(const char *data, size_t len, struct unparsed *u)
{
    struct mr_hl7_delims odl;
    struct mr_hl7_slice f[13];
    const char *p = data, *end, *q;
    size_t nf = 0;
    int have_delims;
    char fs;

    u->proc = 'P';
    memcpy(u->version, "2.5", 4);
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
        len -= 3;
    }
    end = p + len;
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    for (q = p; q < end && *q != '\r' && *q != '\n'; q++)
        ;
    end = q;
    if (end - p < 4 || memcmp(p, "MSH", 3) != 0)
        return;
    fs = p[3];
    if (fs <= 0x20 || fs >= 0x7f || (fs >= '0' && fs <= '9') ||
        (fs >= 'A' && fs <= 'Z') || (fs >= 'a' && fs <= 'z'))
        return;
    have_delims =
        mr__hl7_parse_delims(p, (size_t)(end - p), &odl, NULL, NULL) == MR_OK;
    /* f[k] is MSH-(k+2) */
    for (q = p + 4; nf < 13;) {
        const char *e = memchr(q, fs, (size_t)(end - q));
        f[nf].ptr = q;
        f[nf].len = (size_t)((e ? e : end) - q);
        nf++;
        if (!e)
            break;
        q = e + 1;
    }
    if (nf > 9 && f[9].len == 1 && strchr("PDT", f[9].ptr[0]))
        u->proc = f[9].ptr[0];
    if (nf > 10) {
        struct mr_hl7_slice v = f[10];
        if (have_delims) {
            const char *c = memchr(v.ptr, odl.component, v.len);
            if (c)
                v.len = (size_t)(c - v.ptr);
        }
        int minor = mr__hl7_version_minor(v);
        if (minor >= 3 && minor <= 8) {
            memcpy(u->version, v.ptr, v.len);
            u->version[v.len] = '\0';
        }
    }
    if (nf > 8 && f[8].len >= 1 && f[8].len <= MR_HL7_MAX_CONTROL_ID) {
        struct mr_buf t = MR_BUF_INIT(4 * MR_HL7_MAX_CONTROL_ID);
        enum mr_err err = MR_OK;

        for (size_t i = 0; i < f[8].len; i++)
            if (f[8].ptr[i] < 0x20 || f[8].ptr[i] > 0x7e)
                return;
        /* Decode with the sender's escapes when its delimiters are sound,
         * then escape for ours: "\F\" under '#' as field separator must
         * come back as the same text under '|'. */
        if (have_delims)
            err =
                mr_hl7_unescape(&odl, MR_HL7_CS_ASCII, f[8].ptr, f[8].len, &t);
        else
            err = mr_buf_add(&t, f[8].ptr, f[8].len);
        if (!err)
            err = mr_hl7_escape(&mr_hl7_default_delims, t.ptr, t.len, &u->ctrl);
        if (err)
            mr_buf_reset(&u->ctrl);
        mr_buf_release(&t);
    }
}

enum mr_err mr_hl7_ack_unparsed(const char *data, size_t len,
                                const struct mr_hl7_ack *a, struct mr_buf *out,
                                struct mr_diag *d)
{
    const struct mr_hl7_delims *dl = &mr_hl7_default_delims;
    struct unparsed u;
    size_t start = out->len;
    enum mr_err err;
    int minor;

    err = check_params(dl, a, d);
    if (err)
        return err;
    if (a->code == MR_HL7_AA)
        return mr_diag_set(d, MR_EINVALID,
                           "ACK: a message that did not parse cannot be "
                           "accepted");
    memset(&u, 0, sizeof(u));
    mr_buf_init(&u.ctrl, 8 * MR_HL7_MAX_CONTROL_ID);
    scan_unparsed(data, len, &u);
    {
        struct mr_hl7_slice v = {u.version, strlen(u.version)};
        minor = mr__hl7_version_minor(v);
    }
    err = mr_buf_addf(out, "MSH|^~\\&|||||%s||ACK|%s|%c|%s\r", a->timestamp,
                      a->control_id, u.proc, u.version);
    if (!err) {
        struct mr_hl7_slice none = {"", 0};
        err = add_msa(out, dl, MR_HL7_CS_DEFAULT, minor, none, u.ctrl.ptr, a);
    }
    if (!err)
        err = add_err(out, dl, MR_HL7_CS_DEFAULT, minor, a);
    mr_buf_release(&u.ctrl);
    if (err) {
        out->len = start;
        out->ptr[start] = '\0';
        return mr_diag_set(d, err, "ACK: %s", mr_strerror(err));
    }
    return MR_OK;
}

void mr_hl7_timestamp(int64_t ms, char out[32])
{
    int64_t t = ms % 86400000;
    unsigned mo, dd;
    int y;

    mr_civil_from_days(ms / 86400000, &y, &mo, &dd);
    snprintf(out, 32, "%04d%02u%02u%02d%02d%02d.%03d+0000", y, mo, dd,
             (int)(t / 3600000), (int)(t / 60000 % 60), (int)(t / 1000 % 60),
             (int)(t % 1000));
}
