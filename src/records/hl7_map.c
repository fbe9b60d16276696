/*
 * HL7 v2 to FHIR (docs/hl7.md has the table). One context per message;
 * every resource is read, changed and written back through the records
 * service as the sender, so each change is a new version with its audit
 * entry, and the sender's role limits what it may touch.
 *
 * Resources medrec derives from the feed get stable ids, hashed from the
 * v2 key that identifies them (visit number, order number, result code),
 * so a later message about the same visit, order or result finds and
 * versions the same resource: a corrected result is version 2 of the
 * Observation, never a second one. Patients are found by identifier.
 */
#include "records/hl7_map.h"

#include "core/alloc.h"
#include "core/time.h"
#include "records/patient.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define V_EMPTY 0
#define V_SET 1
#define V_NULL 2
#define V_BAD (-1)

/* Longest single value mapped (names, codes, identifiers). A longer one
 * is refused, never cut: a truncated order number files a result on the
 * wrong order. Text results (OBX-5 TX/FT) have their own limit. */
#define VAL_MAX 1024
#define TEXT_MAX (64u * 1024u)

struct mctx {
    struct mr_records *r;
    const struct mr_actor *a;
    const struct mr_hl7_msg *m;
    const char *ns;
    char reason[400]; /* kept with every version written */
    char tz[8];       /* "+01:00" from MSH-7, or "" */
    char event_time[40];
    struct mr_hl7_applied *out;
    struct mr_diag *d;
    struct mr_buf tmp;
    json_t *written;
};

void mr_hl7_applied_init(struct mr_hl7_applied *o)
{
    memset(o, 0, sizeof(*o));
    mr_buf_init(&o->resources, 1u << 20);
}

void mr_hl7_applied_release(struct mr_hl7_applied *o)
{
    mr_buf_release(&o->resources);
}

/* ---- errors ---------------------------------------------------------- */

static unsigned seg_seq(const struct mr_hl7_msg *m, const struct mr_hl7_seg *s)
{
    unsigned n = 0;
    size_t i;

    for (i = 0; i < m->nsegs; i++) {
        if (!strcmp(m->segs[i].id, s->id))
            n++;
        if (&m->segs[i] == s)
            return n;
    }
    return 1;
}

/* Fail with err at s-field (s may be NULL), HL7 code, and a reason. */
static enum mr_err fail(struct mctx *c, enum mr_err err,
                        const struct mr_hl7_seg *s, unsigned field,
                        enum mr_hl7_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum mr_err fail(struct mctx *c, enum mr_err err,
                        const struct mr_hl7_seg *s, unsigned field,
                        enum mr_hl7_errcode code, const char *fmt, ...)
{
    struct mr_hl7_loc *w = &c->out->where;
    va_list ap;

    memset(w, 0, sizeof(*w));
    if (s) {
        memcpy(w->seg, s->id, sizeof(w->seg));
        w->seq = seg_seq(c->m, s);
        w->field = field;
    }
    w->code = code;
    va_start(ap, fmt);
    vsnprintf(c->out->reason, sizeof(c->out->reason), fmt, ap);
    va_end(ap);
    return mr_diag_set(c->d, err, "%s", c->out->reason);
}

/* A records-service failure while writing what s-field carries. */
static enum mr_err fail_rec(struct mctx *c, enum mr_err err,
                            const struct mr_hl7_seg *s, unsigned field)
{
    char msg[sizeof(c->out->reason)];
    enum mr_hl7_errcode code = MR_HL7_ERR_INTERNAL;

    switch (err) {
    case MR_EIO:
    case MR_EBUSY:
    case MR_ENOMEM:
    case MR_EINTERNAL:
    case MR_ECORRUPT:
        return err; /* ours, not the message's */
    case MR_EINVALID:
    case MR_ETOOBIG:
        code = MR_HL7_ERR_DATA_TYPE;
        break;
    case MR_EDENIED:
        code = MR_HL7_ERR_INTERNAL;
        break;
    case MR_ECONFLICT:
        code = MR_HL7_ERR_RECORD_LOCKED;
        break;
    default:
        break;
    }
    snprintf(msg, sizeof(msg), "%s",
             c->d->msg[0] ? c->d->msg : mr_strerror(err));
    return fail(c, err, s, field, code, "%s", msg);
}

/* ---- values ---------------------------------------------------------- */

/* The text of s-f.rep.comp.sub into buf: V_EMPTY, V_SET, V_NULL ("") or
 * V_BAD (too long: the failure is set). */
static int val(struct mctx *c, const struct mr_hl7_seg *s, size_t f, size_t rep,
               size_t comp, size_t sub, char *buf, size_t cap)
{
    struct mr_hl7_slice v;

    buf[0] = '\0';
    if (!s || mr_hl7_seg_get(c->m, s, f, rep, comp, sub, &v) || !v.len)
        return V_EMPTY;
    if (mr_hl7_is_null(v))
        return V_NULL;
    mr_buf_reset(&c->tmp);
    if (mr_hl7_unescape(&c->m->delims, c->m->hdr.charset, v.ptr, v.len,
                        &c->tmp) ||
        c->tmp.len >= cap) {
        fail(c, MR_EINVALID, s, (unsigned)f, MR_HL7_ERR_VALUE_TOO_LONG,
             "%s-%zu: value longer than %zu bytes", s->id, f, cap - 1);
        return V_BAD;
    }
    {
        /* Text is text: \Xhh\ may spell a line break or a tab, never
         * another control character. */
        size_t i;
        for (i = 0; i < c->tmp.len; i++) {
            unsigned char ch = (unsigned char)c->tmp.ptr[i];
            if ((ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') ||
                ch == 0x7f) {
                fail(c, MR_EINVALID, s, (unsigned)f, MR_HL7_ERR_DATA_TYPE,
                     "%s-%zu: control character \\X%02X\\ is not text", s->id,
                     f, ch);
                return V_BAD;
            }
        }
    }
    memcpy(buf, c->tmp.ptr, c->tmp.len);
    buf[c->tmp.len] = '\0';
    /* Trailing spaces are padding in v2. */
    while (c->tmp.len && buf[c->tmp.len - 1] == ' ')
        buf[--c->tmp.len] = '\0';
    return buf[0] ? V_SET : V_EMPTY;
}

/* The state of a whole field (all repetitions). */
static int field_state(struct mctx *c, const struct mr_hl7_seg *s, size_t f)
{
    struct mr_hl7_slice v;

    if (!s || mr_hl7_seg_get(c->m, s, f, 0, 0, 0, &v) || !v.len)
        return V_EMPTY;
    return mr_hl7_is_null(v) ? V_NULL : V_SET;
}

static size_t reps(struct mctx *c, const struct mr_hl7_seg *s, size_t f)
{
    return s ? mr_hl7_count(c->m, s, f, 0, 0) : 0;
}

static int jset(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *jstr(const char *s)
{
    return json_string(s);
}

/* A decimal as the sender wrote it (normalised to JSON's grammar): kept
 * as text here and written as a number literal by dump(), so "1.50"
 * stays 1.50 (a double would not). NULL if v is not a decimal. */
#define NUM_MARK "\x01#"
static json_t *jnum(const char *v)
{
    char out[80];
    size_t n = 0, i = 0, digits = 0;

    if (v[i] == '+' || v[i] == '-') {
        if (v[i] == '-')
            out[n++] = '-';
        i++;
    }
    while (v[i] == '0' && isdigit((unsigned char)v[i + 1]))
        i++; /* leading zeros */
    if (v[i] == '.')
        out[n++] = '0';
    for (; v[i] && n < 60; i++) {
        if (isdigit((unsigned char)v[i])) {
            out[n++] = v[i];
            digits++;
        } else if (v[i] == '.' && !memchr(out, '.', n)) {
            if (isdigit((unsigned char)v[i + 1]))
                out[n++] = '.';
        } else {
            return NULL;
        }
    }
    if (!digits || v[i])
        return NULL;
    out[n] = '\0';
    {
        char mark[90];
        snprintf(mark, sizeof(mark), NUM_MARK "%s", out);
        return json_string(mark);
    }
}

/* The JSON text of o with decimals restored as literals. */
static enum mr_err dump(json_t *o, struct mr_buf *out)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *p, *q;
    enum mr_err err = MR_OK;

    if (!s)
        return MR_ENOMEM;
    mr_buf_reset(out);
    p = s;
    while (!err && (q = strstr(p, "\"\\u0001#")) != NULL) {
        const char *e = strchr(q + 8, '"');
        err = mr_buf_add(out, p, (size_t)(q - p));
        if (!err)
            err = mr_buf_add(out, q + 8, (size_t)(e - (q + 8)));
        p = e + 1;
    }
    if (!err)
        err = mr_buf_adds(out, p);
    free(s);
    return err;
}

/* ---- dates ----------------------------------------------------------- */

/* The offset of local time at this UTC-less wall time, "+hh:mm". */
static void local_offset(int y, int mo, int d, int h, int mi, int s,
                         char out[8])
{
    struct tm tm;
    time_t t;
    long off;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    if (t == (time_t)-1 || !localtime_r(&t, &tm)) {
        strcpy(out, "Z");
        return;
    }
    off = tm.tm_gmtoff / 60;
    if (!off) {
        strcpy(out, "Z");
        return;
    }
    snprintf(out, 8, "%c%02ld:%02ld", off < 0 ? '-' : '+',
             (off < 0 ? -off : off) / 60 % 100, (off < 0 ? -off : off) % 60);
}

/* An HL7 DTM/DT (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) as a FHIR
 * date (date_only) or dateTime. A time without an offset takes MSH-7's,
 * else the server's local offset. 0, or -1 if v is not one. */
static int dtm(struct mctx *c, const char *v, char *out, size_t cap,
               int date_only)
{
    int y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0;
    size_t n = 0, frac = 0;
    char fracs[8] = "", tz[8] = "";
    const char *p = v;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    while (isdigit((unsigned char)p[n]))
        n++;
    if (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14)
        return -1;
    y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 +
        (p[3] - '0');
#define TWO(i) ((p[i] - '0') * 10 + (p[(i) + 1] - '0'))
    if (n >= 6)
        mo = TWO(4);
    if (n >= 8)
        d = TWO(6);
    if (n >= 10)
        h = TWO(8);
    if (n >= 12)
        mi = TWO(10);
    if (n >= 14)
        s = TWO(12);
#undef TWO
    p += n;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)p[frac]) && frac < 4) {
            fracs[frac] = p[frac];
            frac++;
        }
        fracs[frac] = '\0';
        if (!frac || n != 14)
            return -1;
        p += frac;
    }
    if (*p == '+' || *p == '-') {
        int k;
        for (k = 1; k <= 4; k++)
            if (!isdigit((unsigned char)p[k]))
                return -1;
        if (p[5] || (p[1] - '0') * 10 + (p[2] - '0') > 14 ||
            (p[3] - '0') * 10 + (p[4] - '0') > 59)
            return -1;
        if (!strncmp(p + 1, "0000", 4))
            strcpy(tz, "Z");
        else
            snprintf(tz, sizeof(tz), "%c%c%c:%c%c", p[0], p[1], p[2], p[3],
                     p[4]);
        p += 5;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400))) ||
        h > 23 || mi > 59 || s > 59 || y < 1800)
        return -1;
    if (date_only || n <= 8) {
        if (n == 4)
            snprintf(out, cap, "%04d", y);
        else if (n == 6)
            snprintf(out, cap, "%04d-%02d", y, mo);
        else
            snprintf(out, cap, "%04d-%02d-%02d", y, mo, d);
        return 0;
    }
    if (!tz[0]) {
        if (c && c->tz[0])
            strcpy(tz, c->tz);
        else
            local_offset(y, mo, d, h, mi, s, tz);
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%s%s%s", y, mo, d, h, mi,
             s, frac ? "." : "", fracs, tz);
    return 0;
}

/* A date/time field into o[key] (date_only: a FHIR date). */
static enum mr_err set_dtm(struct mctx *c, json_t *o, const char *key,
                           const struct mr_hl7_seg *s, size_t f, int date_only,
                           int *state)
{
    char v[VAL_MAX], out[48];
    int st = val(c, s, f, 1, 1, 0, v, sizeof(v));

    if (state)
        *state = st;
    if (st == V_BAD)
        return c->d->code;
    if (st == V_NULL) {
        json_object_del(o, key);
        return MR_OK;
    }
    if (st == V_EMPTY)
        return MR_OK;
    if (dtm(c, v, out, sizeof(out), date_only))
        return fail(c, MR_EINVALID, s, (unsigned)f, MR_HL7_ERR_DATA_TYPE,
                    "%s-%zu: \"%s\" is not a valid HL7 date/time", s->id, f, v);
    return jset(o, key, jstr(out)) ? MR_ENOMEM : MR_OK;
}

/* ---- identifiers and codes ------------------------------------------ */

/* RFC 3986 unreserved: the bytes left as they are in URIs and queries. */
static int unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
           ch == '~';
}

/* prefix + name, the name percent-encoded outside the unreserved set so
 * a "GENERAL HOSP" makes a valid URI. */
static void urn(const char *prefix, const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);

    for (; *name && n + 4 < cap; name++) {
        unsigned char ch = (unsigned char)*name;
        if (unreserved(ch)) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

void mr_hl7_id_system(const char *namespace_id, const char *universal_id,
                      const char *universal_type, const char *ns, char *out,
                      size_t cap)
{
    if (universal_id && universal_id[0] && universal_type &&
        !strcmp(universal_type, "ISO"))
        snprintf(out, cap, "urn:oid:%s", universal_id);
    else if (universal_id && universal_id[0] && universal_type &&
             (!strcmp(universal_type, "URI") || !strcmp(universal_type, "URL")))
        snprintf(out, cap, "%s", universal_id);
    else if (namespace_id && namespace_id[0])
        urn("urn:medrec:aa:", namespace_id, out, cap);
    else if (universal_id && universal_id[0])
        urn("urn:medrec:aa:", universal_id, out, cap);
    else
        urn("urn:medrec:aa:", ns, out, cap);
}

/* A CX (PID-3, PV1-19, MRG-1): value and system; 0 if no value. hd is
 * the component holding the assigning authority (CX.4; EI uses 2). */
static int cx(struct mctx *c, const struct mr_hl7_seg *s, size_t f, size_t rep,
              size_t hd, char *value, size_t vcap, char *sys, size_t scap)
{
    char a1[VAL_MAX], a2[VAL_MAX], a3[64];
    int st = val(c, s, f, rep, 1, 0, value, vcap);

    if (st == V_BAD)
        return -1;
    if (st != V_SET)
        return 0;
    if (hd == 2) { /* EI: id^namespace^universal id^type */
        if (val(c, s, f, rep, 2, 0, a1, sizeof(a1)) == V_BAD ||
            val(c, s, f, rep, 3, 0, a2, sizeof(a2)) == V_BAD ||
            val(c, s, f, rep, 4, 0, a3, sizeof(a3)) == V_BAD)
            return -1;
    } else if (val(c, s, f, rep, hd, 1, a1, sizeof(a1)) == V_BAD ||
               val(c, s, f, rep, hd, 2, a2, sizeof(a2)) == V_BAD ||
               val(c, s, f, rep, hd, 3, a3, sizeof(a3)) == V_BAD) {
        return -1;
    }
    mr_hl7_id_system(a1, a2, a3, c->ns, sys, scap);
    return 1;
}

static void stable_id(const char *type, const char *a, const char *b,
                      char out[33])
{
    crypto_generichash_state st;
    unsigned char h[16];
    static const char hex[] = "0123456789abcdef";
    int i;

    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)type,
                              strlen(type) + 1);
    crypto_generichash_update(&st, (const unsigned char *)a, strlen(a) + 1);
    crypto_generichash_update(&st, (const unsigned char *)b, strlen(b) + 1);
    crypto_generichash_final(&st, h, sizeof(h));
    for (i = 0; i < 16; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[32] = '\0';
}

/* The FHIR system of a v2 coding system name (CWE.3). */
static void code_system(struct mctx *c, const char *name, char *out, size_t cap)
{
    static const struct {
        const char *v2, *fhir;
    } t[] = {
        {"LN", "http://loinc.org"},
        {"LOINC", "http://loinc.org"},
        {"SCT", "http://snomed.info/sct"},
        {"SNM", "http://snomed.info/sct"},
        {"SNM3", "http://snomed.info/sct"},
        {"SNOMED", "http://snomed.info/sct"},
        {"I10", "http://hl7.org/fhir/sid/icd-10-cm"},
        {"I10C", "http://hl7.org/fhir/sid/icd-10-cm"},
        {"ICD10CM", "http://hl7.org/fhir/sid/icd-10-cm"},
        {"I9", "http://hl7.org/fhir/sid/icd-9-cm"},
        {"I9C", "http://hl7.org/fhir/sid/icd-9-cm"},
        {"UCUM", "http://unitsofmeasure.org"},
        {"ISO+", "http://unitsofmeasure.org"},
        {"RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"},
        {"RXN", "http://www.nlm.nih.gov/research/umls/rxnorm"},
        {"C4", "http://www.ama-assn.org/go/cpt"},
        {"CPT", "http://www.ama-assn.org/go/cpt"},
        {"NDC", "http://hl7.org/fhir/sid/ndc"},
        {"CVX", "http://hl7.org/fhir/sid/cvx"},
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(name, t[i].v2)) {
            snprintf(out, cap, "%s", t[i].fhir);
            return;
        }
    if (!strncmp(name, "HL7", 3) && strlen(name) == 7 &&
        strspn(name + 3, "0123456789") == 4) {
        snprintf(out, cap, "http://terminology.hl7.org/CodeSystem/v2-%s",
                 name + 3);
        return;
    }
    /* Local codes: the sender's own code system. */
    urn("urn:medrec:code:", c->ns, out, cap);
    if (name[0] && strlen(out) + 1 < cap) {
        size_t n = strlen(out);
        urn(":", name, out + n, cap - n);
    }
}

/* A CE/CWE/CNE at s-f rep as a CodeableConcept (both triplets), or NULL
 * when empty. *bad on a value too long. */
static json_t *cwe(struct mctx *c, const struct mr_hl7_seg *s, size_t f,
                   size_t rep, int *bad)
{
    char code[VAL_MAX], text[VAL_MAX], sysname[VAL_MAX], sys[VAL_MAX + 64];
    char orig[VAL_MAX];
    json_t *cc, *codings;
    size_t k;

    *bad = 0;
    cc = json_object();
    codings = json_array();
    if (!cc || !codings) {
        json_decref(cc);
        json_decref(codings);
        *bad = 1;
        return NULL;
    }
    for (k = 0; k < 2; k++) {
        int a = val(c, s, f, rep, 1 + 3 * k, 0, code, sizeof(code));
        int b = val(c, s, f, rep, 2 + 3 * k, 0, text, sizeof(text));
        int e = val(c, s, f, rep, 3 + 3 * k, 0, sysname, sizeof(sysname));
        json_t *cd;
        if (a == V_BAD || b == V_BAD || e == V_BAD) {
            *bad = 1;
            break;
        }
        if (a != V_SET) {
            if (k == 0 && b == V_SET)
                json_object_set_new(cc, "text", jstr(text));
            continue;
        }
        code_system(c, sysname, sys, sizeof(sys));
        cd = json_object();
        jset(cd, "system", jstr(sys));
        jset(cd, "code", jstr(code));
        if (b == V_SET)
            jset(cd, "display", jstr(text));
        json_array_append_new(codings, cd);
    }
    /* CWE-9: the original text */
    if (!*bad && val(c, s, f, rep, 9, 0, orig, sizeof(orig)) == V_SET)
        json_object_set_new(cc, "text", jstr(orig));
    if (*bad || (!json_array_size(codings) && !json_object_size(cc))) {
        json_decref(codings);
        json_decref(cc);
        return NULL;
    }
    if (json_array_size(codings))
        json_object_set_new(cc, "coding", codings);
    else
        json_decref(codings);
    return cc;
}

static json_t *coding(const char *system, const char *code, const char *display)
{
    json_t *o = json_object();

    jset(o, "system", jstr(system));
    jset(o, "code", jstr(code));
    if (display)
        jset(o, "display", jstr(display));
    return o;
}

static json_t *concept(const char *system, const char *code,
                       const char *display)
{
    json_t *o = json_object(), *a = json_array();

    json_array_append_new(a, coding(system, code, display));
    jset(o, "coding", a);
    return o;
}

static json_t *ref(const char *type, const char *id)
{
    char buf[160];
    json_t *o = json_object();

    snprintf(buf, sizeof(buf), "%s/%s", type, id);
    jset(o, "reference", jstr(buf));
    return o;
}

/* ---- the records service -------------------------------------------- */

/* type/id as stored (NULL if there is none, or it was deleted). */
static enum mr_err load(struct mctx *c, const char *type, const char *id,
                        json_t **out, int64_t *version)
{
    struct mr_result res;
    enum mr_err err;
    json_error_t je;

    *out = NULL;
    *version = 0;
    mr_result_init(&res);
    err = mr_records_read(c->r, c->a, type, id, 0, &res, c->d);
    if (err == MR_ENOTFOUND || err == MR_EGONE) {
        mr_diag_clear(c->d);
        mr_result_release(&res);
        return MR_OK;
    }
    if (!err) {
        *out = json_loadb(res.json.ptr, res.json.len, 0, &je);
        *version = res.meta.version;
        if (!*out)
            err = mr_diag_set(c->d, MR_EINTERNAL, "%s/%s: stored JSON: %s",
                              type, id, je.text);
    }
    mr_result_release(&res);
    return err;
}

static enum mr_err note_written(struct mctx *c, const struct mr_version *v)
{
    char buf[200];

    snprintf(buf, sizeof(buf), "%s/%s/_history/%lld", v->type, v->id,
             (long long)v->version);
    return json_array_append_new(c->written, jstr(buf)) ? MR_ENOMEM : MR_OK;
}

/* Write o as type/id (a new version, or the first). Errors are the
 * message's, located at s-field. */
static enum mr_err save(struct mctx *c, const char *type, const char *id,
                        json_t *o, int64_t expect, const struct mr_hl7_seg *s,
                        unsigned field)
{
    struct mr_buf text = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES);
    struct mr_result res;
    enum mr_err err;

    json_object_del(o, "meta");
    if (jset(o, "id", jstr(id)) || dump(o, &text)) {
        mr_buf_release(&text);
        return mr_diag_set(c->d, MR_ENOMEM, "out of memory");
    }
    mr_result_init(&res);
    err = mr_records_put(c->r, c->a, type, id, text.ptr, text.len, expect,
                         c->reason, MR_WRITE_UPSERT, &res, NULL, c->d);
    if (!err)
        err = note_written(c, &res.meta);
    else
        err = fail_rec(c, err, s, field);
    mr_result_release(&res);
    mr_buf_release(&text);
    return err;
}

/* FHIR search escaping (\ , | $) then percent-encoding, of one token. */
static enum mr_err qtoken(struct mr_buf *q, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    enum mr_err err = MR_OK;

    for (; *s && !err; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\\' || ch == ',' || ch == '|' || ch == '$')
            err = mr_buf_adds(q, "%5C");
        if (err)
            break;
        if (unreserved(ch))
            err = mr_buf_addc(q, (char)ch);
        else
            err = mr_buf_addf(q, "%%%c%c", hex[ch >> 4], hex[ch & 15]);
    }
    return err;
}

/* What a search found: up to three distinct resources, with their
 * versions, and their JSON when want_json was set. */
struct found {
    int want_json;
    int n;
    char id[3][65];
    int64_t version[3];
    json_t *json[3];
};

static void found_release(struct found *f)
{
    int i;

    for (i = 0; i < f->n; i++)
        json_decref(f->json[i]);
    f->n = 0;
}

static int found_cb(void *ctx, const struct mr_version *m, const char *json,
                    size_t len)
{
    struct found *f = ctx;
    int i;

    for (i = 0; i < f->n; i++)
        if (!strcmp(f->id[i], m->id))
            return 0;
    if (f->n == 3)
        return 0;
    snprintf(f->id[f->n], sizeof(f->id[0]), "%s", m->id);
    f->version[f->n] = m->version;
    f->json[f->n] = f->want_json ? json_loadb(json, len, 0, NULL) : NULL;
    if (f->want_json && !f->json[f->n])
        return MR_ENOMEM;
    f->n++;
    return 0;
}

/* Search type with "param=system|value" (system may be NULL: any). */
static enum mr_err find_by(struct mctx *c, const char *type, const char *param,
                           const char *system, const char *value,
                           const char *extra, int want_json, struct found *f)
{
    struct mr_buf q = MR_BUF_INIT(8192);
    enum mr_err err;
    int64_t total = 0;

    memset(f, 0, sizeof(*f));
    f->want_json = want_json;
    err = mr_buf_addf(&q, "%s=", param);
    if (!err && system) {
        err = qtoken(&q, system);
        if (!err)
            err = mr_buf_adds(&q, "%7C");
    }
    if (!err)
        err = qtoken(&q, value);
    if (!err && extra)
        err = mr_buf_addf(&q, "&%s", extra);
    if (err) {
        mr_buf_release(&q);
        return mr_diag_set(c->d, MR_ENOMEM, "out of memory");
    }
    err = mr_records_search(c->r, c->a, type, q.ptr, found_cb, f, &total, c->d);
    mr_buf_release(&q);
    return err;
}

/* ---- patients -------------------------------------------------------- */

/* The chart that stands for Patient/id (its JSON in *pat, its version in
 * *ver, as found): itself, or, after merges, the one its replaced-by
 * links lead to (read here). *pat is NULL if that one is gone. */
static enum mr_err resolve(struct mctx *c, const struct mr_hl7_seg *s,
                           unsigned field, char id[65], json_t **pat,
                           int64_t *ver)
{
    enum mr_err err = MR_OK;
    int hops;

    for (hops = 0; !err && *pat && hops < 8; hops++) {
        json_t *l;
        const char *to = NULL;
        size_t k;
        json_array_foreach(json_object_get(*pat, "link"), k, l)
        {
            const char *t = json_string_value(json_object_get(l, "type"));
            const char *o = json_string_value(
                json_object_get(json_object_get(l, "other"), "reference"));
            if (t && o && !strcmp(t, "replaced-by") &&
                !strncmp(o, "Patient/", 8) && strlen(o + 8) < 65)
                to = o + 8;
        }
        if (!to)
            break;
        snprintf(id, 65, "%s", to);
        json_decref(*pat);
        *pat = NULL;
        err = load(c, "Patient", id, pat, ver);
    }
    return err ? fail_rec(c, err, s, field) : MR_OK;
}

/* The patient PID-3 names: its id in id (empty if none), its stored JSON
 * in *pat and version in *ver. Identifiers that lead, through merges, to
 * one chart name that chart; two charts are a conflict. first_id gets
 * the first identifier as system|value (for messages). */
static enum mr_err find_patient(struct mctx *c, const struct mr_hl7_seg *pid,
                                char id[65], json_t **pat, int64_t *ver,
                                char *first_id, size_t first_cap)
{
    char value[VAL_MAX], sys[VAL_MAX + 64], cand[65];
    size_t i, n = reps(c, pid, 3);
    struct found f;
    enum mr_err err;
    int k, j;

    id[0] = '\0';
    *pat = NULL;
    *ver = 0;
    memset(&f, 0, sizeof(f));
    if (first_id)
        first_id[0] = '\0';
    for (i = 1; i <= n; i++) {
        k = cx(c, pid, 3, i, 4, value, sizeof(value), sys, sizeof(sys));
        if (k < 0)
            goto bad;
        if (!k)
            continue;
        if (first_id && !first_id[0] &&
            snprintf(first_id, first_cap, "%s|%s", sys, value) < 0)
            first_id[0] = '\0';
        err = find_by(c, "Patient", "identifier", sys, value, NULL, 1, &f);
        if (err) {
            fail_rec(c, err, pid, 3);
            goto bad;
        }
        for (j = 0; j < f.n; j++) {
            json_t *p = f.json[j];
            int64_t v = f.version[j];
            f.json[j] = NULL;
            snprintf(cand, sizeof(cand), "%s", f.id[j]);
            if (resolve(c, pid, 3, cand, &p, &v)) {
                json_decref(p);
                goto bad;
            }
            if (!p) /* gone */
                continue;
            if (id[0] && strcmp(id, cand)) {
                json_decref(p);
                fail(c, MR_ECONFLICT, pid, 3, MR_HL7_ERR_UNKNOWN_KEY,
                     "PID-3: identifier %s|%s leads to more than one patient "
                     "(Patient/%s, Patient/%s); a records technician must "
                     "resolve the duplicate",
                     sys, value, id, cand);
                goto bad;
            }
            if (!id[0]) {
                snprintf(id, 65, "%s", cand);
                *pat = p;
                *ver = v;
            } else {
                json_decref(p);
            }
        }
        found_release(&f);
    }
    return MR_OK;
bad:
    found_release(&f);
    json_decref(*pat);
    *pat = NULL;
    id[0] = '\0';
    return c->d->code ? c->d->code : MR_EINTERNAL;
}

static const char *name_use(const char *code)
{
    static const char *const t[][2] = {
        {"L", "official"}, {"D", "usual"},     {"M", "maiden"},
        {"N", "nickname"}, {"A", "anonymous"}, {"S", "anonymous"},
        {"C", "old"},      {"B", "old"},       {"TEMP", "temp"},
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(code, t[i][0]))
            return t[i][1];
    return NULL;
}

/* XPN repetitions of s-f as HumanNames. */
static json_t *names(struct mctx *c, const struct mr_hl7_seg *s, size_t f,
                     int *bad)
{
    json_t *a = json_array();
    char v[VAL_MAX];
    size_t i, n = reps(c, s, f);

    *bad = 0;
    for (i = 1; i <= n; i++) {
        json_t *hn = json_object(), *given = json_array();
        int st;
        st = val(c, s, f, i, 1, 1, v, sizeof(v));
        if (st == V_BAD)
            goto bad;
        if (st == V_SET)
            jset(hn, "family", jstr(v));
        if ((st = val(c, s, f, i, 2, 0, v, sizeof(v))) == V_BAD)
            goto bad;
        if (st == V_SET)
            json_array_append_new(given, jstr(v));
        if ((st = val(c, s, f, i, 3, 0, v, sizeof(v))) == V_BAD)
            goto bad;
        if (st == V_SET)
            json_array_append_new(given, jstr(v));
        if (json_array_size(given))
            jset(hn, "given", given);
        else
            json_decref(given);
        given = NULL;
        if ((st = val(c, s, f, i, 4, 0, v, sizeof(v))) == V_BAD)
            goto bad;
        if (st == V_SET)
            jset(hn, "suffix", json_pack("[s]", v));
        if ((st = val(c, s, f, i, 5, 0, v, sizeof(v))) == V_BAD)
            goto bad;
        if (st == V_SET)
            jset(hn, "prefix", json_pack("[s]", v));
        if ((st = val(c, s, f, i, 7, 0, v, sizeof(v))) == V_BAD)
            goto bad;
        if (st == V_SET && name_use(v))
            jset(hn, "use", jstr(name_use(v)));
        if (json_object_size(hn))
            json_array_append_new(a, hn);
        else
            json_decref(hn);
        continue;
    bad:
        json_decref(given);
        json_decref(hn);
        json_decref(a);
        *bad = 1;
        return NULL;
    }
    return a;
}

static json_t *addresses(struct mctx *c, const struct mr_hl7_seg *s, size_t f,
                         int *bad)
{
    static const char *const keys[] = {NULL,    "line",       "line",   "city",
                                       "state", "postalCode", "country"};
    json_t *a = json_array();
    char v[VAL_MAX];
    size_t i, k, n = reps(c, s, f);

    *bad = 0;
    for (i = 1; i <= n; i++) {
        json_t *ad = json_object(), *lines = json_array();
        for (k = 1; k <= 6; k++) {
            int st = val(c, s, f, i, k, k == 1 ? 1 : 0, v, sizeof(v));
            if (st == V_BAD) {
                json_decref(ad);
                json_decref(lines);
                json_decref(a);
                *bad = 1;
                return NULL;
            }
            if (st != V_SET)
                continue;
            if (k <= 2)
                json_array_append_new(lines, jstr(v));
            else
                jset(ad, keys[k], jstr(v));
        }
        if (json_array_size(lines))
            jset(ad, "line", lines);
        else
            json_decref(lines);
        if (val(c, s, f, i, 7, 0, v, sizeof(v)) == V_SET) {
            if (!strcmp(v, "H"))
                jset(ad, "use", jstr("home"));
            else if (!strcmp(v, "B") || !strcmp(v, "O"))
                jset(ad, "use", jstr("work"));
            else if (!strcmp(v, "C"))
                jset(ad, "use", jstr("temp"));
            else if (!strcmp(v, "BA") || !strcmp(v, "OLD"))
                jset(ad, "use", jstr("old"));
            else if (!strcmp(v, "M"))
                jset(ad, "type", jstr("postal"));
        }
        if (json_object_size(ad))
            json_array_append_new(a, ad);
        else
            json_decref(ad);
    }
    return a;
}

/* A contact detail that is not one is left out, not the whole message:
 * the ACK says so (AA with a warning) and the log keeps it. */
static void warn(struct mctx *c, const struct mr_hl7_seg *s, size_t f,
                 const char *what, const char *v)
{
    size_t n = strlen(c->out->warning);

    /* A long list of warnings is cut: the ACK has room for the gist. */
    if (n + 2 < sizeof(c->out->warning) &&
        snprintf(c->out->warning + n, sizeof(c->out->warning) - n,
                 "%s%s-%zu: \"%s\" is not a valid %s; not stored",
                 n ? "; " : "", s->id, f, v, what) < 0)
        c->out->warning[n] = '\0';
}

/* XTN repetitions of s-f appended to a as ContactPoints (invalid ones
 * left out with a warning). */
static int telecoms(struct mctx *c, const struct mr_hl7_seg *s, size_t f,
                    const char *use, json_t *a)
{
    char v1[VAL_MAX], use2[32], eq[32], mail[VAL_MAX], area[32], num[64],
        ext[32], val_[VAL_MAX + 160];
    size_t i, n = reps(c, s, f);

    for (i = 1; i <= n; i++) {
        const char *system, *value;
        int email;
        if (val(c, s, f, i, 1, 0, v1, sizeof(v1)) == V_BAD ||
            val(c, s, f, i, 2, 0, use2, sizeof(use2)) == V_BAD ||
            val(c, s, f, i, 3, 0, eq, sizeof(eq)) == V_BAD ||
            val(c, s, f, i, 4, 0, mail, sizeof(mail)) == V_BAD ||
            val(c, s, f, i, 6, 0, area, sizeof(area)) == V_BAD ||
            val(c, s, f, i, 7, 0, num, sizeof(num)) == V_BAD ||
            val(c, s, f, i, 8, 0, ext, sizeof(ext)) == V_BAD)
            return -1;
        email = !strcmp(eq, "Internet") || !strcmp(eq, "X.400") ||
                !strcmp(use2, "NET");
        if (email) {
            system = "email";
            value = mail[0] ? mail : v1;
        } else {
            system = !strcmp(eq, "FX")   ? "fax"
                     : !strcmp(eq, "BP") ? "pager"
                                         : "phone";
            if (num[0])
                snprintf(val_, sizeof(val_), "%s%s%s%s%s%s", area[0] ? "(" : "",
                         area, area[0] ? ") " : "", num, ext[0] ? " x" : "",
                         ext);
            else
                snprintf(val_, sizeof(val_), "%s", v1);
            value = val_;
        }
        if (!value[0])
            continue;
        if (email ? !mr_email_valid(value) : !mr_phone_valid(value)) {
            warn(c, s, f, email ? "e-mail address" : "phone number", value);
            continue;
        }
        json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "system", system,
                                           "value", value, "use",
                                           !strcmp(eq, "CP") ? "mobile" : use));
    }
    return 0;
}

/* Keep (empty), remove (null) or replace (set) o[key] with v. */
static void put_field(json_t *o, const char *key, int state, json_t *v)
{
    if (state == V_NULL)
        json_object_del(o, key);
    else if (state == V_SET && v && (!json_is_array(v) || json_array_size(v)))
        json_object_set(o, key, v);
    json_decref(v);
}

/* PID onto the Patient p (new or as stored): identifiers are added, other
 * elements replaced when sent, removed when sent as "", kept when empty. */
static enum mr_err pid_apply(struct mctx *c, const struct mr_hl7_seg *pid,
                             json_t *p)
{
    char value[VAL_MAX], sys[VAL_MAX + 64], type[64], v[VAL_MAX];
    json_t *ids = json_object_get(p, "identifier"), *tel;
    size_t i, n = reps(c, pid, 3), k;
    int bad = 0, st, st2;

    if (!ids) {
        ids = json_array();
        json_object_set_new(p, "identifier", ids);
    }
    for (i = 1; i <= n; i++) {
        json_t *e, *id;
        int dup = 0;
        int got = cx(c, pid, 3, i, 4, value, sizeof(value), sys, sizeof(sys));
        if (got < 0)
            return c->d->code;
        if (!got)
            continue;
        json_array_foreach(ids, k, e)
        {
            const char *s1 = json_string_value(json_object_get(e, "system"));
            const char *v1 = json_string_value(json_object_get(e, "value"));
            if (s1 && v1 && !strcmp(s1, sys) && !strcmp(v1, value))
                dup = 1;
        }
        if (dup)
            continue;
        id = json_object();
        if (val(c, pid, 3, i, 5, 0, type, sizeof(type)) == V_SET)
            jset(id, "type",
                 concept("http://terminology.hl7.org/CodeSystem/v2-0203", type,
                         NULL));
        jset(id, "system", jstr(sys));
        jset(id, "value", jstr(value));
        json_array_append_new(ids, id);
    }
    if (!json_array_size(ids))
        json_object_del(p, "identifier");

    st = field_state(c, pid, 5);
    put_field(p, "name", st, st == V_SET ? names(c, pid, 5, &bad) : NULL);
    if (bad)
        return c->d->code;
    if (set_dtm(c, p, "birthDate", pid, 7, 1, NULL))
        return c->d->code;
    st = val(c, pid, 8, 1, 1, 0, v, sizeof(v));
    if (st == V_BAD)
        return c->d->code;
    if (st == V_SET) {
        const char *g = !strcmp(v, "M")                      ? "male"
                        : !strcmp(v, "F")                    ? "female"
                        : !strcmp(v, "O") || !strcmp(v, "A") ? "other"
                        : !strcmp(v, "U") || !strcmp(v, "N") ? "unknown"
                                                             : NULL;
        if (!g)
            return fail(c, MR_EINVALID, pid, 8, MR_HL7_ERR_TABLE_VALUE,
                        "PID-8: \"%s\" is not an administrative sex of table "
                        "0001 (M, F, O, U, A, N)",
                        v);
        jset(p, "gender", jstr(g));
    } else if (st == V_NULL) {
        json_object_del(p, "gender");
    }
    st = field_state(c, pid, 11);
    put_field(p, "address", st,
              st == V_SET ? addresses(c, pid, 11, &bad) : NULL);
    if (bad)
        return c->d->code;
    st = field_state(c, pid, 13);
    st2 = field_state(c, pid, 14);
    if (st == V_SET || st2 == V_SET || st == V_NULL || st2 == V_NULL) {
        tel = json_array();
        if (telecoms(c, pid, 13, "home", tel) ||
            telecoms(c, pid, 14, "work", tel)) {
            json_decref(tel);
            return c->d->code;
        }
        put_field(p, "telecom", json_array_size(tel) ? V_SET : V_NULL, tel);
    }
    st = field_state(c, pid, 16);
    if (st == V_SET) {
        json_t *ms = cwe(c, pid, 16, 1, &bad);
        if (bad)
            return c->d->code;
        if (ms && val(c, pid, 16, 1, 1, 0, v, sizeof(v)) == V_SET &&
            strlen(v) == 1 && strchr("ADILMPSTUW", v[0])) {
            json_decref(ms);
            ms = concept(
                "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", v,
                NULL);
        }
        put_field(p, "maritalStatus", V_SET, ms);
    } else if (st == V_NULL) {
        json_object_del(p, "maritalStatus");
    }
    /* PID-29 death date/time, PID-30 death indicator */
    st = val(c, pid, 30, 1, 0, 0, v, sizeof(v));
    if (st == V_BAD)
        return c->d->code;
    {
        json_t *tmp = json_object();
        int st29;
        if (set_dtm(c, tmp, "d", pid, 29, 0, &st29)) {
            json_decref(tmp);
            return c->d->code;
        }
        if (json_object_get(tmp, "d")) {
            json_object_del(p, "deceasedBoolean");
            json_object_set(p, "deceasedDateTime", json_object_get(tmp, "d"));
        } else if (st == V_SET && (v[0] == 'Y' || v[0] == 'N')) {
            json_object_del(p, "deceasedDateTime");
            jset(p, "deceasedBoolean", json_boolean(v[0] == 'Y'));
        } else if (st29 == V_NULL || st == V_NULL) {
            json_object_del(p, "deceasedDateTime");
            json_object_del(p, "deceasedBoolean");
        }
        json_decref(tmp);
    }
    return MR_OK;
}

/* The patient of the message: found by PID-3, else (create) registered.
 * unmatched_ok=0 for events about an existing chart. */
static enum mr_err patient(struct mctx *c, int create, int update, char id[65])
{
    const struct mr_hl7_seg *pid = mr_hl7_find(c->m, "PID", 1);
    char first[VAL_MAX * 2 + 80];
    json_t *p = NULL;
    enum mr_err err;
    int64_t ver = 0;

    if (!pid)
        return fail(c, MR_EINVALID, NULL, 0, MR_HL7_ERR_SEGMENT_SEQUENCE,
                    "PID: the patient identification segment is required");
    err = find_patient(c, pid, id, &p, &ver, first, sizeof(first));
    if (err)
        return err;
    if (!first[0]) {
        json_decref(p);
        return fail(c, MR_EINVALID, pid, 3, MR_HL7_ERR_REQUIRED_MISSING,
                    "PID-3: a patient identifier is required");
    }
    if (!id[0] && !create)
        return fail(c, MR_ENOTFOUND, pid, 3, MR_HL7_ERR_UNKNOWN_KEY,
                    "PID-3: no patient has identifier %s", first);
    if (id[0] && !update) {
        json_decref(p);
        snprintf(c->out->patient, sizeof(c->out->patient), "Patient/%s", id);
        return MR_OK;
    }
    if (!p)
        p = json_pack("{s:s}", "resourceType", "Patient");
    err = pid_apply(c, pid, p);
    if (!err && !id[0]) {
        struct mr_buf text = MR_BUF_INIT(MR_MAX_RESOURCE_BYTES);
        struct mr_result res;
        mr_result_init(&res);
        err = dump(p, &text);
        if (!err)
            err = mr_records_create(c->r, c->a, "Patient", text.ptr, text.len,
                                    c->reason, MR_WRITE_FORCE, &res, c->d);
        if (!err) {
            snprintf(id, 65, "%s", res.meta.id);
            err = note_written(c, &res.meta);
        } else {
            err = fail_rec(c, err, pid, 0);
        }
        mr_result_release(&res);
        mr_buf_release(&text);
    } else if (!err) {
        err = save(c, "Patient", id, p, ver, pid, 0);
    }
    json_decref(p);
    if (!err)
        snprintf(c->out->patient, sizeof(c->out->patient), "Patient/%s", id);
    return err;
}

/* ---- visits ---------------------------------------------------------- */

static json_t *enc_class(const char *v)
{
    static const char *const t[][3] = {
        {"I", "IMP", "inpatient encounter"},
        {"B", "IMP", "inpatient encounter"},
        {"O", "AMB", "ambulatory"},
        {"R", "AMB", "ambulatory"},
        {"E", "EMER", "emergency"},
        {"P", "PRENC", "pre-admission"},
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(v, t[i][0]))
            return coding("http://terminology.hl7.org/CodeSystem/v3-ActCode",
                          t[i][1], t[i][2]);
    if (v[0])
        return coding("http://terminology.hl7.org/CodeSystem/v2-0004", v, NULL);
    return coding("http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK",
                  "unknown");
}

/* PL (PV1-3): "4W room 401 bed 1 (facility)"; 0 if empty. */
static int location_text(struct mctx *c, const struct mr_hl7_seg *s, size_t f,
                         char *out, size_t cap)
{
    char poc[VAL_MAX], room[VAL_MAX], bed[VAL_MAX], fac[VAL_MAX];
    size_t n = 0;

    if (val(c, s, f, 1, 1, 1, poc, sizeof(poc)) == V_BAD ||
        val(c, s, f, 1, 2, 1, room, sizeof(room)) == V_BAD ||
        val(c, s, f, 1, 3, 1, bed, sizeof(bed)) == V_BAD ||
        val(c, s, f, 1, 4, 1, fac, sizeof(fac)) == V_BAD)
        return -1;
    out[0] = '\0';
    if (poc[0])
        n += (size_t)snprintf(out + n, cap - n, "%s", poc);
    if (room[0] && n < cap)
        n +=
            (size_t)snprintf(out + n, cap - n, "%sroom %s", n ? " " : "", room);
    if (bed[0] && n < cap)
        n += (size_t)snprintf(out + n, cap - n, "%sbed %s", n ? " " : "", bed);
    if (fac[0] && n < cap)
        n += (size_t)snprintf(out + n, cap - n, "%s(%s)", n ? " " : "", fac);
    return out[0] ? 1 : 0;
}

/* The encounter's locations: close the active one and add loc. */
static void move_to(json_t *e, const char *loc, const char *when)
{
    json_t *locs = json_object_get(e, "location"), *l, *nl;
    size_t i;

    if (!locs) {
        locs = json_array();
        json_object_set_new(e, "location", locs);
    }
    json_array_foreach(locs, i, l)
    {
        const char *st = json_string_value(json_object_get(l, "status"));
        const char *d = json_string_value(
            json_object_get(json_object_get(l, "location"), "display"));
        if (st && !strcmp(st, "active")) {
            if (d && !strcmp(d, loc))
                return; /* already there */
            json_object_set_new(l, "status", jstr("completed"));
            if (when[0]) {
                json_t *per = json_object_get(l, "period");
                if (!per) {
                    per = json_object();
                    json_object_set_new(l, "period", per);
                }
                json_object_set_new(per, "end", jstr(when));
            }
        }
    }
    nl = json_pack("{s:{s:s},s:s}", "location", "display", loc, "status",
                   "active");
    if (when[0])
        json_object_set_new(nl, "period", json_pack("{s:s}", "start", when));
    json_array_append_new(locs, nl);
}

/* A12: the transfer did not happen: drop the last location, the one
 * before is active again. */
static void undo_move(json_t *e)
{
    json_t *locs = json_object_get(e, "location"), *prev;
    size_t n = json_array_size(locs);

    if (n < 2)
        return;
    json_array_remove(locs, n - 1);
    prev = json_array_get(locs, n - 2);
    json_object_set_new(prev, "status", jstr("active"));
    json_object_del(json_object_get(prev, "period"), "end");
}

/* No visit: no PV1, or one with neither location nor visit number and a
 * class of none or "N" (not applicable), as A28/A31 send it. */
static int pv1_empty(struct mctx *c, const struct mr_hl7_seg *pv1)
{
    char cls[16];

    if (!pv1 || field_state(c, pv1, 3) == V_SET ||
        field_state(c, pv1, 19) == V_SET)
        return !pv1;
    if (val(c, pv1, 2, 1, 1, 0, cls, sizeof(cls)) != V_SET ||
        !strcmp(cls, "N")) {
        mr_diag_clear(c->d);
        return 1;
    }
    return 0;
}

struct latest {
    char id[65];
    int64_t ts;
};

static int latest_cb(void *ctx, const struct mr_version *m, const char *json,
                     size_t len)
{
    struct latest *l = ctx;

    (void)json;
    (void)len;
    if (!l->id[0] || m->ts >= l->ts) {
        snprintf(l->id, sizeof(l->id), "%s", m->id);
        l->ts = m->ts;
    }
    return 0;
}

/* The visit's Encounter id: from PV1-19, else (no visit number) the
 * patient's latest open one when open_ok, else a new one. *known is set
 * when the visit number was given. */
static enum mr_err visit_id(struct mctx *c, const struct mr_hl7_seg *pv1,
                            const char *pat, int open_ok, char id[65],
                            char *vsys, char *vnum, size_t cap)
{
    char q[200];
    struct latest l;
    enum mr_err err;
    int k;

    id[0] = '\0';
    k = cx(c, pv1, 19, 1, 4, vnum, cap, vsys, cap);
    if (k < 0)
        return c->d->code;
    if (k) {
        stable_id("Encounter", vsys, vnum, id);
        return MR_OK;
    }
    if (open_ok) {
        memset(&l, 0, sizeof(l));
        snprintf(q, sizeof(q),
                 "subject=Patient/%s&status=planned,arrived,in-progress,"
                 "onleave",
                 pat);
        err = mr_records_search(c->r, c->a, "Encounter", q, latest_cb, &l, NULL,
                                c->d);
        if (err)
            return fail_rec(c, err, pv1, 19);
        if (l.id[0]) {
            snprintf(id, 65, "%s", l.id);
            return MR_OK;
        }
    }
    return MR_OK;
}

static void event_time(struct mctx *c)
{
    const struct mr_hl7_seg *evn = mr_hl7_find(c->m, "EVN", 1);
    char v[VAL_MAX];

    c->event_time[0] = '\0';
    if ((val(c, evn, 6, 1, 1, 0, v, sizeof(v)) == V_SET ||
         val(c, evn, 2, 1, 1, 0, v, sizeof(v)) == V_SET) &&
        !dtm(c, v, c->event_time, sizeof(c->event_time), 0))
        return;
    c->event_time[0] = '\0';
    if (c->m->hdr.datetime.len < sizeof(v)) {
        memcpy(v, c->m->hdr.datetime.ptr, c->m->hdr.datetime.len);
        v[c->m->hdr.datetime.len] = '\0';
        if (dtm(c, v, c->event_time, sizeof(c->event_time), 0))
            c->event_time[0] = '\0';
    }
    mr_diag_clear(c->d);
}

static json_t *xcn_participant(struct mctx *c, const struct mr_hl7_seg *s,
                               size_t f, const char *type)
{
    char idv[VAL_MAX], fam[VAL_MAX], giv[VAL_MAX], pre[VAL_MAX],
        disp[4 * VAL_MAX];
    json_t *p, *ind;

    if (val(c, s, f, 1, 1, 0, idv, sizeof(idv)) == V_BAD ||
        val(c, s, f, 1, 2, 1, fam, sizeof(fam)) == V_BAD ||
        val(c, s, f, 1, 3, 0, giv, sizeof(giv)) == V_BAD ||
        val(c, s, f, 1, 6, 0, pre, sizeof(pre)) == V_BAD)
        return NULL;
    if (!fam[0] && !idv[0])
        return NULL;
    snprintf(disp, sizeof(disp), "%s%s%s%s%s", pre, pre[0] ? " " : "", giv,
             giv[0] ? " " : "", fam[0] ? fam : idv);
    ind = json_pack("{s:s}", "display", disp);
    if (idv[0]) {
        char sys[VAL_MAX + 64];
        char a1[VAL_MAX];
        if (val(c, s, f, 1, 9, 1, a1, sizeof(a1)) == V_BAD) {
            json_decref(ind);
            return NULL;
        }
        mr_hl7_id_system(a1, NULL, NULL, c->ns, sys, sizeof(sys));
        json_object_set_new(
            ind, "identifier",
            json_pack("{s:s,s:s}", "system", sys, "value", idv));
    }
    p = json_object();
    if (type)
        jset(p, "type",
             json_pack("[o]", concept("http://terminology.hl7.org/CodeSystem/"
                                      "v3-ParticipationType",
                                      type, NULL)));
    jset(p, "individual", ind);
    return p;
}

/* ADT visit events on the Encounter of PV1. */
static enum mr_err visit(struct mctx *c, const char *ev, const char *pat)
{
    const struct mr_hl7_seg *pv1 = mr_hl7_find(c->m, "PV1", 1);
    char id[65], vsys[VAL_MAX + 64], vnum[VAL_MAX], v[VAL_MAX],
        loc[4 * VAL_MAX];
    int creating =
        !strcmp(ev, "A01") || !strcmp(ev, "A04") || !strcmp(ev, "A05");
    int needs = !strcmp(ev, "A02") || !strcmp(ev, "A03") ||
                !strcmp(ev, "A11") || !strcmp(ev, "A12") || !strcmp(ev, "A13");
    json_t *e = NULL, *per;
    const char *status;
    enum mr_err err;
    int64_t ver = 0;
    int k;

    if (pv1_empty(c, pv1)) {
        if (needs)
            return fail(c, MR_EINVALID, pv1, 19, MR_HL7_ERR_REQUIRED_MISSING,
                        "PV1: %s needs the patient visit (PV1-19 visit "
                        "number, or PV1-2 and PV1-3)",
                        ev);
        return MR_OK;
    }
    err = visit_id(c, pv1, pat, !creating, id, vsys, vnum, sizeof(vnum));
    if (err)
        return err;
    if (!id[0]) {
        if (needs)
            return fail(c, MR_ENOTFOUND, pv1, 19, MR_HL7_ERR_UNKNOWN_KEY,
                        "PV1-19: no visit number and the patient has no "
                        "open visit");
        if (!creating && strcmp(ev, "A08"))
            return MR_OK;
        /* A visit without a number: this message's own. */
        stable_id("Encounter", c->ns, c->reason, id);
    }
    err = load(c, "Encounter", id, &e, &ver);
    if (err)
        return fail_rec(c, err, pv1, 19);
    if (!e) {
        if (needs)
            return fail(c, MR_ENOTFOUND, pv1, 19, MR_HL7_ERR_UNKNOWN_KEY,
                        "PV1-19: no visit %s%s%s is known", vsys,
                        vnum[0] ? "|" : "", vnum);
        e = json_pack("{s:s}", "resourceType", "Encounter");
        if (vnum[0])
            json_object_set_new(
                e, "identifier",
                json_pack("[{s:s,s:s}]", "system", vsys, "value", vnum));
    } else {
        /* The visit must be this patient's. */
        const char *subj = json_string_value(
            json_object_get(json_object_get(e, "subject"), "reference"));
        if (subj && (strncmp(subj, "Patient/", 8) || strcmp(subj + 8, pat))) {
            err = fail(c, MR_ECONFLICT, pv1, 19, MR_HL7_ERR_UNKNOWN_KEY,
                       "PV1-19: visit %s belongs to another patient (%s)", vnum,
                       subj);
            json_decref(e);
            return err;
        }
    }
    json_object_set_new(e, "subject", ref("Patient", pat));
    status = json_string_value(json_object_get(e, "status"));

    k = val(c, pv1, 2, 1, 1, 0, v, sizeof(v));
    if (k == V_BAD)
        goto bad;
    if (k == V_SET || !json_object_get(e, "class"))
        json_object_set_new(e, "class", enc_class(k == V_SET ? v : ""));
    per = json_object_get(e, "period");
    if (!per) {
        per = json_object();
        json_object_set_new(e, "period", per);
    }
    if (set_dtm(c, per, "start", pv1, 44, 0, NULL) ||
        set_dtm(c, per, "end", pv1, 45, 0, NULL))
        goto bad;

    if (!strcmp(ev, "A12")) {
        undo_move(e);
    }
    k = location_text(c, pv1, 3, loc, sizeof(loc));
    if (k < 0)
        goto bad;
    if (k > 0)
        move_to(e, loc, c->event_time);
    {
        json_t *att = xcn_participant(c, pv1, 7, "ATND");
        if (c->d->code && !att)
            goto bad;
        if (att)
            json_object_set_new(e, "participant", json_pack("[o]", att));
    }
    {
        json_t *h = json_object_get(e, "hospitalization");
        char ds[VAL_MAX];
        if (!h) {
            h = json_object();
            json_object_set_new(e, "hospitalization", h);
        }
        if (val(c, pv1, 14, 1, 1, 0, v, sizeof(v)) == V_SET)
            json_object_set_new(
                h, "admitSource",
                concept("http://terminology.hl7.org/CodeSystem/v2-0023", v,
                        NULL));
        if (val(c, pv1, 36, 1, 1, 0, ds, sizeof(ds)) == V_SET)
            json_object_set_new(
                h, "dischargeDisposition",
                concept("http://terminology.hl7.org/CodeSystem/v2-0112", ds,
                        NULL));
        if (c->d->code)
            goto bad;
    }

    /* The event. */
    if (!strcmp(ev, "A01")) {
        status = "in-progress";
        if (!json_object_get(per, "start") && c->event_time[0])
            json_object_set_new(per, "start", jstr(c->event_time));
    } else if (!strcmp(ev, "A04")) {
        if (!status || !strcmp(status, "planned"))
            status = "arrived";
        if (!json_object_get(per, "start") && c->event_time[0])
            json_object_set_new(per, "start", jstr(c->event_time));
    } else if (!strcmp(ev, "A05")) {
        if (!status)
            status = "planned";
    } else if (!strcmp(ev, "A02")) {
        if (!status || !strcmp(status, "planned") || !strcmp(status, "arrived"))
            status = "in-progress";
    } else if (!strcmp(ev, "A03")) {
        status = "finished";
        if (!json_object_get(per, "end") && c->event_time[0])
            json_object_set_new(per, "end", jstr(c->event_time));
    } else if (!strcmp(ev, "A11")) {
        status = "cancelled";
    } else if (!strcmp(ev, "A13")) {
        status = "in-progress";
        json_object_del(per, "end");
        json_object_del(json_object_get(e, "hospitalization"),
                        "dischargeDisposition");
    } else if (!status) { /* A08 on a visit not seen before, A12 */
        status = json_object_get(per, "end") ? "finished" : "in-progress";
    }
    /* A08 after A03 keeps the visit finished: an update is not a
     * readmission. */
    json_object_set_new(e, "status", jstr(status));
    if (!json_object_size(per))
        json_object_del(e, "period");
    if (!json_object_size(json_object_get(e, "hospitalization")))
        json_object_del(e, "hospitalization");
    err = save(c, "Encounter", id, e, ver, pv1, 0);
    json_decref(e);
    return err;
bad:
    json_decref(e);
    return c->d->code ? c->d->code : MR_EINVALID;
}

/* ---- allergies ------------------------------------------------------- */

static enum mr_err allergy(struct mctx *c, const char *pat,
                           const struct mr_hl7_seg *s, int iam)
{
    char key[VAL_MAX], type[64], sev[64], action[16], id[33], v[VAL_MAX];
    json_t *al = NULL, *code;
    enum mr_err err;
    int64_t ver = 0;
    int bad = 0;
    size_t i, n;

    code = cwe(c, s, 3, 1, &bad);
    if (bad)
        return c->d->code;
    if (!code)
        return fail(c, MR_EINVALID, s, 3, MR_HL7_ERR_REQUIRED_MISSING,
                    "%s-3: the allergen code is required", s->id);
    if (val(c, s, 2, 1, 1, 0, type, sizeof(type)) == V_BAD ||
        val(c, s, 4, 1, 1, 0, sev, sizeof(sev)) == V_BAD ||
        (iam && val(c, s, 6, 1, 1, 0, action, sizeof(action)) == V_BAD))
        goto bad;
    if (!iam)
        action[0] = '\0';
    key[0] = '\0';
    if (iam && val(c, s, 7, 1, 1, 0, key, sizeof(key)) == V_BAD)
        goto bad;
    if (!key[0] && val(c, s, 3, 1, 1, 0, key, sizeof(key)) != V_SET &&
        val(c, s, 3, 1, 2, 0, key, sizeof(key)) == V_BAD)
        goto bad;
    stable_id("AllergyIntolerance", pat, key, id);
    al = json_pack("{s:s}", "resourceType", "AllergyIntolerance");
    json_object_set_new(al, "patient", ref("Patient", pat));
    json_object_set_new(al, "code", code);
    code = NULL;
    if (!strcmp(action, "D")) {
        json_object_set_new(al, "verificationStatus",
                            concept("http://terminology.hl7.org/CodeSystem/"
                                    "allergyintolerance-verification",
                                    "entered-in-error", NULL));
    } else {
        json_object_set_new(al, "clinicalStatus",
                            concept("http://terminology.hl7.org/CodeSystem/"
                                    "allergyintolerance-clinical",
                                    "active", NULL));
        json_object_set_new(al, "verificationStatus",
                            concept("http://terminology.hl7.org/CodeSystem/"
                                    "allergyintolerance-verification",
                                    "confirmed", NULL));
    }
    if (type[0]) {
        const char *cat =
            (!strcmp(type, "DA") || !strcmp(type, "MA") || !strcmp(type, "MC"))
                ? "medication"
            : !strcmp(type, "FA") ? "food"
            : (!strcmp(type, "EA") || !strcmp(type, "AA") ||
               !strcmp(type, "PA") || !strcmp(type, "LA"))
                ? "environment"
                : NULL;
        if (cat)
            json_object_set_new(al, "category", json_pack("[s]", cat));
        if (!strcmp(type, "MC") || !strcmp(type, "FI"))
            json_object_set_new(al, "type", jstr("intolerance"));
        else
            json_object_set_new(al, "type", jstr("allergy"));
    }
    if (!strcmp(sev, "SV"))
        json_object_set_new(al, "criticality", jstr("high"));
    else if (!strcmp(sev, "MO") || !strcmp(sev, "MI"))
        json_object_set_new(al, "criticality", jstr("low"));
    n = reps(c, s, 5);
    {
        json_t *man = json_array();
        for (i = 1; i <= n; i++) {
            int st = val(c, s, 5, i, 0, 0, v, sizeof(v));
            if (st == V_BAD) {
                json_decref(man);
                goto bad;
            }
            if (st == V_SET)
                json_array_append_new(man, json_pack("{s:s}", "text", v));
        }
        if (json_array_size(man)) {
            json_t *re = json_pack("{s:o}", "manifestation", man);
            if (!strcmp(sev, "SV") || !strcmp(sev, "MO") || !strcmp(sev, "MI"))
                json_object_set_new(re, "severity",
                                    jstr(!strcmp(sev, "SV")   ? "severe"
                                         : !strcmp(sev, "MO") ? "moderate"
                                                              : "mild"));
            json_object_set_new(al, "reaction", json_pack("[o]", re));
        } else {
            json_decref(man);
        }
    }
    if (set_dtm(c, al, "onsetDateTime", s, iam ? 11 : 6, 0, NULL))
        goto bad;
    err = save(c, "AllergyIntolerance", id, al, ver, s, 0);
    json_decref(al);
    return err;
bad:
    json_decref(code);
    json_decref(al);
    return c->d->code ? c->d->code : MR_EINVALID;
}

/* ---- ADT ------------------------------------------------------------- */

static enum mr_err merge(struct mctx *c, const char *survivor)
{
    const struct mr_hl7_seg *mrg = mr_hl7_find(c->m, "MRG", 1);
    char value[VAL_MAX], sys[VAL_MAX + 64], old[65];
    json_t *p = NULL, *q = NULL, *links;
    struct found f;
    enum mr_err err;
    int64_t v1, v2;
    size_t i, n = reps(c, mrg, 1);

    if (!mrg)
        return fail(c, MR_EINVALID, NULL, 0, MR_HL7_ERR_SEGMENT_SEQUENCE,
                    "MRG: A40 needs the merge segment");
    old[0] = '\0';
    for (i = 1; i <= n && !old[0]; i++) {
        int k = cx(c, mrg, 1, i, 4, value, sizeof(value), sys, sizeof(sys));
        if (k < 0)
            return c->d->code;
        if (!k)
            continue;
        err = find_by(c, "Patient", "identifier", sys, value, NULL, 0, &f);
        if (err)
            return fail_rec(c, err, mrg, 1);
        {
            /* The survivor may hold the old identifier too (an update
             * after the merge): the prior chart is the other one. */
            int j, others = 0;
            for (j = 0; j < f.n; j++)
                if (strcmp(f.id[j], survivor)) {
                    snprintf(old, sizeof(old), "%s", f.id[j]);
                    others++;
                }
            if (!others && f.n)
                snprintf(old, sizeof(old), "%s", survivor);
            if (others > 1)
                return fail(c, MR_ECONFLICT, mrg, 1, MR_HL7_ERR_UNKNOWN_KEY,
                            "MRG-1: identifier %s|%s is held by more than "
                            "one patient",
                            sys, value);
        }
    }
    if (!old[0])
        return fail(c, MR_ENOTFOUND, mrg, 1, MR_HL7_ERR_UNKNOWN_KEY,
                    "MRG-1: no patient has the prior identifier");
    if (!strcmp(old, survivor))
        return MR_OK; /* merged already: a repeat */
    err = load(c, "Patient", old, &p, &v1);
    if (!err)
        err = load(c, "Patient", survivor, &q, &v2);
    if (err || !p || !q) {
        json_decref(p);
        json_decref(q);
        return err ? fail_rec(c, err, mrg, 1)
                   : fail(c, MR_ENOTFOUND, mrg, 1, MR_HL7_ERR_UNKNOWN_KEY,
                          "MRG-1: the patient is gone");
    }
    /* Nothing is moved or deleted: the old chart says who replaced it
     * and is inactive; the survivor says what it replaces. A records
     * technician reviews the merge (medrec hl7 messages --type ADT^A40)
     * and moves what should move. */
    links = json_object_get(p, "link");
    if (!links) {
        links = json_array();
        json_object_set_new(p, "link", links);
    }
    json_array_append_new(links, json_pack("{s:o,s:s}", "other",
                                           ref("Patient", survivor), "type",
                                           "replaced-by"));
    json_object_set_new(p, "active", json_false());
    links = json_object_get(q, "link");
    if (!links) {
        links = json_array();
        json_object_set_new(q, "link", links);
    }
    json_array_append_new(links,
                          json_pack("{s:o,s:s}", "other", ref("Patient", old),
                                    "type", "replaces"));
    err = save(c, "Patient", old, p, v1, mrg, 1);
    if (!err)
        err = save(c, "Patient", survivor, q, v2, mrg, 1);
    json_decref(p);
    json_decref(q);
    return err;
}

static enum mr_err adt(struct mctx *c, const char *ev)
{
    static const char *const known[] = {"A01", "A02", "A03", "A04", "A05",
                                        "A08", "A11", "A12", "A13", "A28",
                                        "A31", "A40", "A60"};
    int registers = !strcmp(ev, "A01") || !strcmp(ev, "A04") ||
                    !strcmp(ev, "A05") || !strcmp(ev, "A08") ||
                    !strcmp(ev, "A28") || !strcmp(ev, "A31");
    char pat[65];
    enum mr_err err;
    size_t i, n;
    int ok = 0;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        ok |= !strcmp(ev, known[i]);
    if (!ok)
        return fail(c, MR_EUNSUPPORTED, NULL, 0, MR_HL7_ERR_UNSUPPORTED_EVENT,
                    "MSH-9: ADT^%s is not applied by medrec (see docs/hl7.md)",
                    ev);
    event_time(c);
    /* A40: PID is the surviving patient; it must exist or be registered
     * (the registration system's merge target). */
    err = patient(c, registers || !strcmp(ev, "A40"),
                  registers || !strcmp(ev, "A40"), pat);
    if (err)
        return err;
    if (!strcmp(ev, "A40"))
        return merge(c, pat);
    if (strcmp(ev, "A28") && strcmp(ev, "A31") && strcmp(ev, "A60")) {
        err = visit(c, ev, pat);
        if (err)
            return err;
    }
    n = mr_hl7_occurrences(c->m, "AL1");
    for (i = 1; i <= n && !err; i++)
        err = allergy(c, pat, mr_hl7_find(c->m, "AL1", i), 0);
    n = mr_hl7_occurrences(c->m, "IAM");
    for (i = 1; i <= n && !err; i++)
        err = allergy(c, pat, mr_hl7_find(c->m, "IAM", i), 1);
    if (!err && !strcmp(ev, "A60") && !mr_hl7_occurrences(c->m, "IAM") &&
        !mr_hl7_occurrences(c->m, "AL1"))
        return fail(c, MR_EINVALID, NULL, 0, MR_HL7_ERR_SEGMENT_SEQUENCE,
                    "IAM: A60 carries no allergy (IAM) segment");
    return err;
}

/* ---- orders ---------------------------------------------------------- */

/* The ServiceRequest a placer order number names, for this patient.
 * sr receives its id, or "" (then the result is unmatched). */
static enum mr_err find_order(struct mctx *c, const struct mr_hl7_seg *s,
                              size_t f, const char *pat, char sr[65], char *num,
                              size_t cap)
{
    char ns[VAL_MAX], sys[VAL_MAX + 64], extra[120];
    struct found fd;
    enum mr_err err;

    sr[0] = '\0';
    if (val(c, s, f, 1, 1, 0, num, cap) == V_BAD ||
        val(c, s, f, 1, 2, 0, ns, sizeof(ns)) == V_BAD)
        return c->d->code;
    if (!num[0])
        return MR_OK;
    if (ns[0])
        mr_hl7_id_system(ns, NULL, NULL, c->ns, sys, sizeof(sys));
    snprintf(extra, sizeof(extra), "subject=Patient/%s", pat);
    err = find_by(c, "ServiceRequest", "identifier", ns[0] ? sys : NULL, num,
                  extra, 0, &fd);
    if (err)
        return fail_rec(c, err, s, (unsigned)f);
    if (fd.n > 1)
        return fail(c, MR_ECONFLICT, s, (unsigned)f, MR_HL7_ERR_UNKNOWN_KEY,
                    "%s-%zu: order number %s names more than one order of "
                    "the patient",
                    s->id, f, num);
    if (fd.n)
        snprintf(sr, 65, "%s", fd.id[0]);
    return MR_OK;
}

static const char *order_status(const char *ctl, const char *st)
{
    if (!strcmp(ctl, "CA") || !strcmp(ctl, "OC") || !strcmp(ctl, "DC") ||
        !strcmp(ctl, "OD") || !strcmp(ctl, "CR") || !strcmp(ctl, "DR"))
        return "revoked";
    if (!strcmp(ctl, "HD") || !strcmp(ctl, "OH"))
        return "on-hold";
    if (!strcmp(ctl, "SC") || !strcmp(ctl, "SN") || !strcmp(ctl, "")) {
        if (!strcmp(st, "CM"))
            return "completed";
        if (!strcmp(st, "CA") || !strcmp(st, "DC"))
            return "revoked";
        if (!strcmp(st, "HD"))
            return "on-hold";
    }
    return "active";
}

static enum mr_err orders(struct mctx *c)
{
    char pat[65], num[VAL_MAX], ns[VAL_MAX], sys[VAL_MAX + 64], id[33], ctl[16],
        ost[16], v[VAL_MAX], encid[65], vsys[VAL_MAX + 64], vnum[VAL_MAX];
    const struct mr_hl7_seg *pv1 = mr_hl7_find(c->m, "PV1", 1), *orc, *obr;
    size_t i, k, n = mr_hl7_occurrences(c->m, "ORC");
    enum mr_err err;
    json_t *enc = NULL;
    int bad = 0;

    err = patient(c, 0, 0, pat);
    if (err)
        return err;
    if (!n)
        return fail(c, MR_EINVALID, NULL, 0, MR_HL7_ERR_SEGMENT_SEQUENCE,
                    "ORC: the message carries no order (ORC segment)");
    encid[0] = '\0';
    if (!pv1_empty(c, pv1)) {
        int64_t ev;
        err = visit_id(c, pv1, pat, 0, encid, vsys, vnum, sizeof(vnum));
        if (!err && encid[0])
            err = load(c, "Encounter", encid, &enc, &ev);
        if (err)
            return fail_rec(c, err, pv1, 19);
        if (!enc)
            encid[0] = '\0';
        json_decref(enc);
    }
    for (i = 1; i <= n; i++) {
        json_t *sr = NULL, *old = NULL, *ids;
        int64_t ver = 0;
        orc = mr_hl7_find(c->m, "ORC", i);
        /* The OBR (or OBR-like) segment after this ORC, before the next. */
        obr = NULL;
        for (k = (size_t)(orc - c->m->segs) + 1; k < c->m->nsegs; k++) {
            if (!strcmp(c->m->segs[k].id, "ORC"))
                break;
            if (!strcmp(c->m->segs[k].id, "OBR")) {
                obr = &c->m->segs[k];
                break;
            }
        }
        if (val(c, orc, 1, 1, 1, 0, ctl, sizeof(ctl)) == V_BAD ||
            val(c, orc, 5, 1, 1, 0, ost, sizeof(ost)) == V_BAD ||
            val(c, orc, 2, 1, 1, 0, num, sizeof(num)) == V_BAD ||
            val(c, orc, 2, 1, 2, 0, ns, sizeof(ns)) == V_BAD)
            return c->d->code;
        if (!num[0] && obr &&
            (val(c, obr, 2, 1, 1, 0, num, sizeof(num)) == V_BAD ||
             val(c, obr, 2, 1, 2, 0, ns, sizeof(ns)) == V_BAD))
            return c->d->code;
        if (!num[0])
            return fail(c, MR_EINVALID, orc, 2, MR_HL7_ERR_REQUIRED_MISSING,
                        "ORC-2: the placer order number is required (or "
                        "OBR-2)");
        mr_hl7_id_system(ns, NULL, NULL, c->ns, sys, sizeof(sys));
        stable_id("ServiceRequest", sys, num, id);
        err = load(c, "ServiceRequest", id, &old, &ver);
        if (err)
            return fail_rec(c, err, orc, 2);
        if (old) {
            const char *subj = json_string_value(
                json_object_get(json_object_get(old, "subject"), "reference"));
            if (subj &&
                (strncmp(subj, "Patient/", 8) || strcmp(subj + 8, pat))) {
                json_decref(old);
                return fail(c, MR_ECONFLICT, orc, 2, MR_HL7_ERR_UNKNOWN_KEY,
                            "ORC-2: order %s belongs to another patient", num);
            }
        }
        sr = old ? old : json_pack("{s:s}", "resourceType", "ServiceRequest");
        ids = json_array();
        json_array_append_new(
            ids, json_pack("{s:o,s:s,s:s}", "type",
                           concept("http://terminology.hl7.org/CodeSystem/"
                                   "v2-0203",
                                   "PLAC", "Placer Identifier"),
                           "system", sys, "value", num));
        {
            char fnum[VAL_MAX], fns[VAL_MAX], fsys[VAL_MAX + 64];
            const struct mr_hl7_seg *fs = orc;
            if (val(c, orc, 3, 1, 1, 0, fnum, sizeof(fnum)) == V_BAD)
                goto bad;
            if (!fnum[0] && obr) {
                fs = obr;
                if (val(c, obr, 3, 1, 1, 0, fnum, sizeof(fnum)) == V_BAD)
                    goto bad;
            }
            if (fnum[0]) {
                if (val(c, fs, 3, 1, 2, 0, fns, sizeof(fns)) == V_BAD)
                    goto bad;
                mr_hl7_id_system(fns, NULL, NULL, c->ns, fsys, sizeof(fsys));
                json_array_append_new(
                    ids,
                    json_pack("{s:o,s:s,s:s}", "type",
                              concept("http://terminology.hl7.org/CodeSystem/"
                                      "v2-0203",
                                      "FILL", "Filler Identifier"),
                              "system", fsys, "value", fnum));
            }
        }
        json_object_set_new(sr, "identifier", ids);
        json_object_set_new(sr, "status", jstr(order_status(ctl, ost)));
        json_object_set_new(sr, "intent", jstr("order"));
        json_object_set_new(sr, "subject", ref("Patient", pat));
        if (encid[0])
            json_object_set_new(sr, "encounter", ref("Encounter", encid));
        if (obr) {
            json_t *code = cwe(c, obr, 4, 1, &bad);
            if (bad)
                goto bad;
            if (code)
                json_object_set_new(sr, "code", code);
        }
        if (set_dtm(c, sr, "authoredOn", orc, 9, 0, NULL))
            goto bad;
        {
            json_t *req = xcn_participant(c, orc, 12, NULL);
            if (!req && obr)
                req = xcn_participant(c, obr, 16, NULL);
            if (c->d->code && !req)
                goto bad;
            if (req) {
                json_object_set(sr, "requester",
                                json_object_get(req, "individual"));
                json_decref(req);
            }
        }
        /* Priority: ORC-7.6 / OBR-27.6 (S stat, A asap, R routine) */
        if (val(c, orc, 7, 1, 6, 0, v, sizeof(v)) == V_BAD ||
            (!v[0] && obr && val(c, obr, 27, 1, 6, 0, v, sizeof(v)) == V_BAD))
            goto bad;
        if (v[0] == 'S' || v[0] == 'A' || v[0] == 'R')
            json_object_set_new(sr, "priority",
                                jstr(v[0] == 'S'   ? "stat"
                                     : v[0] == 'A' ? "asap"
                                                   : "routine"));
        err = save(c, "ServiceRequest", id, sr, ver, orc, 0);
        json_decref(sr);
        if (err)
            return err;
        continue;
    bad:
        json_decref(sr);
        return c->d->code ? c->d->code : MR_EINVALID;
    }
    return MR_OK;
}

/* ---- results --------------------------------------------------------- */

static const char *obx_status(const char *v)
{
    switch (v[0]) {
    case 'C':
        return "corrected";
    case 'F':
    case 'U':
        return "final";
    case 'P':
    case 'R':
    case 'S':
        return "preliminary";
    case 'I':
    case 'O':
        return "registered";
    case 'D':
    case 'W':
        return "entered-in-error";
    case 'X':
        return "cancelled";
    case 'A':
        return "amended";
    default:
        return "unknown";
    }
}

static const char *obr_status(const char *v)
{
    switch (v[0]) {
    case 'F':
        return "final";
    case 'C':
        return "corrected";
    case 'P':
        return "preliminary";
    case 'A':
        return "partial";
    case 'X':
        return "cancelled";
    case 'I':
    case 'O':
    case 'S':
        return "registered";
    default:
        return "unknown";
    }
}

/* A Quantity for value text v with OBX-6 units. */
static json_t *quantity(struct mctx *c, const struct mr_hl7_seg *obx,
                        const char *v)
{
    char code[VAL_MAX], text[VAL_MAX], sys[VAL_MAX];
    json_t *n = jnum(v), *q;

    if (!n)
        return NULL;
    q = json_object();
    json_object_set_new(q, "value", n);
    if (val(c, obx, 6, 1, 1, 0, code, sizeof(code)) == V_BAD ||
        val(c, obx, 6, 1, 2, 0, text, sizeof(text)) == V_BAD ||
        val(c, obx, 6, 1, 3, 0, sys, sizeof(sys)) == V_BAD) {
        json_decref(q);
        return NULL;
    }
    if (code[0] || text[0])
        json_object_set_new(q, "unit", jstr(text[0] ? text : code));
    if (code[0] && (!strcmp(sys, "UCUM") || !strcmp(sys, "ISO+") ||
                    !strcmp(sys, "ANSI+"))) {
        json_object_set_new(q, "system", jstr("http://unitsofmeasure.org"));
        json_object_set_new(q, "code", jstr(code));
    }
    return q;
}

/* OBX-5 by OBX-2 into the Observation o. */
static enum mr_err obx_value(struct mctx *c, const struct mr_hl7_seg *obx,
                             json_t *o)
{
    char vt[16], v[VAL_MAX], a[VAL_MAX], b[VAL_MAX], sep[16], comp[16];
    size_t i, n = reps(c, obx, 5);
    int bad = 0;

    if (val(c, obx, 2, 1, 1, 0, vt, sizeof(vt)) == V_BAD)
        return c->d->code;
    if (!n || field_state(c, obx, 5) != V_SET)
        return MR_OK; /* no value: e.g. cancelled, or a header line */
    if (!strcmp(vt, "NM")) {
        json_t *q;
        if (val(c, obx, 5, 1, 0, 0, v, sizeof(v)) == V_BAD)
            return c->d->code;
        q = quantity(c, obx, v);
        if (!q)
            return c->d->code
                       ? c->d->code
                       : fail(c, MR_EINVALID, obx, 5, MR_HL7_ERR_DATA_TYPE,
                              "OBX-5: \"%s\" is not a number (OBX-2 NM)", v);
        json_object_set_new(o, "valueQuantity", q);
    } else if (!strcmp(vt, "SN")) {
        /* comparator ^ num1 ^ separator/suffix ^ num2 */
        if (val(c, obx, 5, 1, 1, 0, comp, sizeof(comp)) == V_BAD ||
            val(c, obx, 5, 1, 2, 0, a, sizeof(a)) == V_BAD ||
            val(c, obx, 5, 1, 3, 0, sep, sizeof(sep)) == V_BAD ||
            val(c, obx, 5, 1, 4, 0, b, sizeof(b)) == V_BAD)
            return c->d->code;
        if (!sep[0] && !b[0]) {
            json_t *q = quantity(c, obx, a);
            if (!q)
                goto sn_bad;
            if (comp[0] && strcmp(comp, "=")) {
                if (strcmp(comp, "<") && strcmp(comp, ">") &&
                    strcmp(comp, "<=") && strcmp(comp, ">=")) {
                    json_decref(q);
                    goto sn_bad;
                }
                json_object_set_new(q, "comparator", jstr(comp));
            }
            json_object_set_new(o, "valueQuantity", q);
        } else if (!strcmp(sep, "-") && b[0] && !comp[0]) {
            json_t *lo = quantity(c, obx, a), *hi = quantity(c, obx, b);
            if (!lo || !hi) {
                json_decref(lo);
                json_decref(hi);
                goto sn_bad;
            }
            json_object_set_new(o, "valueRange",
                                json_pack("{s:o,s:o}", "low", lo, "high", hi));
        } else if ((!strcmp(sep, ":") || !strcmp(sep, "/")) && b[0] &&
                   !comp[0]) {
            json_t *na = jnum(a), *nb = jnum(b);
            if (!na || !nb) {
                json_decref(na);
                json_decref(nb);
                goto sn_bad;
            }
            json_object_set_new(o, "valueRatio",
                                json_pack("{s:{s:o},s:{s:o}}", "numerator",
                                          "value", na, "denominator", "value",
                                          nb));
        } else {
            goto sn_bad;
        }
    } else if (!strcmp(vt, "CE") || !strcmp(vt, "CWE") || !strcmp(vt, "CNE") ||
               !strcmp(vt, "CF")) {
        json_t *cc = cwe(c, obx, 5, 1, &bad);
        if (bad)
            return c->d->code;
        if (cc)
            json_object_set_new(o, "valueCodeableConcept", cc);
    } else if (!strcmp(vt, "DT") || !strcmp(vt, "TS") || !strcmp(vt, "DTM")) {
        if (set_dtm(c, o, "valueDateTime", obx, 5, 0, NULL))
            return c->d->code;
    } else if (!strcmp(vt, "ST") || !strcmp(vt, "TX") || !strcmp(vt, "FT") ||
               !strcmp(vt, "TM") || !strcmp(vt, "ID") || !strcmp(vt, "IS") ||
               !strcmp(vt, "")) {
        /* Text: repetitions are lines. */
        struct mr_buf t = MR_BUF_INIT(TEXT_MAX);
        char *line = mr_malloc(TEXT_MAX);
        enum mr_err err = line ? MR_OK : MR_ENOMEM;
        for (i = 1; i <= n && !err; i++) {
            int st = val(c, obx, 5, i, 0, 0, line, TEXT_MAX);
            if (st == V_BAD)
                err = c->d->code;
            else if (st == V_SET && ((t.len && mr_buf_addc(&t, '\n')) ||
                                     mr_buf_adds(&t, line)))
                err = fail(c, MR_ETOOBIG, obx, 5, MR_HL7_ERR_VALUE_TOO_LONG,
                           "OBX-5: text longer than %u bytes", TEXT_MAX);
        }
        if (!err && t.len)
            err = jset(o, "valueString", json_stringn(t.ptr, t.len)) ? MR_ENOMEM
                                                                     : MR_OK;
        mr_free(line);
        mr_buf_release(&t);
        return err;
    } else {
        return fail(c, MR_EINVALID, obx, 2, MR_HL7_ERR_TABLE_VALUE,
                    "OBX-2: value type \"%s\" is not mapped (NM, SN, ST, TX, "
                    "FT, CE, CWE, CNE, DT, TS)",
                    vt);
    }
    return MR_OK;
sn_bad:
    return c->d->code ? c->d->code
                      : fail(c, MR_EINVALID, obx, 5, MR_HL7_ERR_DATA_TYPE,
                             "OBX-5: not a structured numeric (SN) value");
}

/* OBX-7 reference range ("3.5-5.0", "<10", ">60", text). */
static void ref_range(struct mctx *c, const struct mr_hl7_seg *obx, json_t *o)
{
    char v[VAL_MAX], lo[VAL_MAX], *dash;
    json_t *rr = json_object(), *ql, *qh;

    if (val(c, obx, 7, 1, 0, 0, v, sizeof(v)) != V_SET) {
        json_decref(rr);
        return;
    }
    dash = strchr(v + 1, '-');
    if ((v[0] == '<' || v[0] == '>') &&
        (qh = quantity(c, obx, v + (v[1] == '=' ? 2 : 1))) != NULL) {
        json_object_set_new(rr, v[0] == '<' ? "high" : "low", qh);
    } else if (dash) {
        snprintf(lo, sizeof(lo), "%.*s", (int)(dash - v), v);
        ql = quantity(c, obx, lo);
        qh = quantity(c, obx, dash + 1);
        if (ql && qh) {
            json_object_set_new(rr, "low", ql);
            json_object_set_new(rr, "high", qh);
        } else {
            json_decref(ql);
            json_decref(qh);
            json_object_set_new(rr, "text", jstr(v));
        }
    } else {
        json_object_set_new(rr, "text", jstr(v));
    }
    mr_diag_clear(c->d);
    json_object_set_new(o, "referenceRange", json_pack("[o]", rr));
}

static void add_note(json_t *o, const char *key, const char *text)
{
    json_t *notes = json_object_get(o, key);

    if (!notes) {
        notes = json_array();
        json_object_set_new(o, key, notes);
    }
    json_array_append_new(notes, json_pack("{s:s}", "text", text));
}

/* NTE-3 (comment) repetitions as one text, into buf. */
static int nte_text(struct mctx *c, const struct mr_hl7_seg *nte, char *buf,
                    size_t cap)
{
    size_t i, n = reps(c, nte, 3), len = 0;
    char *line = mr_malloc(TEXT_MAX);

    buf[0] = '\0';
    if (!line)
        return -1;
    for (i = 1; i <= n; i++) {
        int st = val(c, nte, 3, i, 0, 0, line, TEXT_MAX);
        if (st == V_BAD) {
            mr_free(line);
            return -1;
        }
        if (st == V_SET && len + strlen(line) + 2 < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s",
                                    len ? "\n" : "", line);
    }
    mr_free(line);
    return buf[0] ? 1 : 0;
}

/* Write the Observation being built (if any) as oid and list it in
 * results; errors are located at its OBX. */
static enum mr_err flush_obs(struct mctx *c, json_t **obs, const char *oid,
                             const struct mr_hl7_seg *obx, json_t *results)
{
    enum mr_err err;

    if (!*obs)
        return MR_OK;
    err = save(c, "Observation", oid, *obs, 0, obx, 0);
    json_decref(*obs);
    *obs = NULL;
    if (!err)
        json_array_append_new(results, ref("Observation", oid));
    return err;
}

/* One OBR and its OBX/NTE segments [from, to). */
static enum mr_err report(struct mctx *c, const char *pat, const char *encid,
                          size_t from, size_t to)
{
    const struct mr_hl7_seg *obr = &c->m->segs[from], *orc = NULL;
    char key[VAL_MAX * 2 + 80], num[VAL_MAX], ns[VAL_MAX], sys[VAL_MAX + 64];
    char v[VAL_MAX], st[16], drid[33], srid[65], placer[VAL_MAX], oid[33];
    char *text = NULL;
    json_t *dr = NULL, *results = json_array(), *obs = NULL, *old;
    json_t *seen = json_object(); /* OBX code and sub-id: occurrences */
    const struct mr_hl7_seg *obs_seg = NULL;
    enum mr_err err = MR_OK;
    int64_t ver;
    size_t i, k;
    int bad = 0;

    /* The ORC just before this OBR, if any (it may carry the numbers). */
    for (k = from; k-- > 0;) {
        if (!strcmp(c->m->segs[k].id, "ORC")) {
            orc = &c->m->segs[k];
            break;
        }
        if (strcmp(c->m->segs[k].id, "NTE") && strcmp(c->m->segs[k].id, "TQ1"))
            break;
    }
    /* The order this reports on: the placer number must be known. */
    err = find_order(c, obr, 2, pat, srid, placer, sizeof(placer));
    if (!err && !placer[0] && orc)
        err = find_order(c, orc, 2, pat, srid, placer, sizeof(placer));
    if (err)
        goto out;
    if (placer[0] && !srid[0]) {
        err = fail(c, MR_ENOTFOUND, obr, 2, MR_HL7_ERR_UNKNOWN_KEY,
                   "OBR-2: no order %s is known for Patient/%s", placer, pat);
        goto out;
    }
    /* The report's key: filler order number, else placer, else this
     * message's own. */
    if (val(c, obr, 3, 1, 1, 0, num, sizeof(num)) == V_BAD ||
        val(c, obr, 3, 1, 2, 0, ns, sizeof(ns)) == V_BAD) {
        err = c->d->code;
        goto out;
    }
    if (!num[0] && orc &&
        (val(c, orc, 3, 1, 1, 0, num, sizeof(num)) == V_BAD ||
         val(c, orc, 3, 1, 2, 0, ns, sizeof(ns)) == V_BAD)) {
        err = c->d->code;
        goto out;
    }
    mr_hl7_id_system(ns, NULL, NULL, c->ns, sys, sizeof(sys));
    if (num[0])
        snprintf(key, sizeof(key), "%s|%s", sys, num);
    else if (placer[0])
        snprintf(key, sizeof(key), "placer|%s", placer);
    else
        snprintf(key, sizeof(key), "%s|%u", c->reason, seg_seq(c->m, obr));
    stable_id("DiagnosticReport", pat, key, drid);
    dr = json_pack("{s:s}", "resourceType", "DiagnosticReport");
    if (num[0])
        json_object_set_new(
            dr, "identifier",
            json_pack("[{s:o,s:s,s:s}]", "type",
                      concept("http://terminology.hl7.org/CodeSystem/v2-0203",
                              "FILL", "Filler Identifier"),
                      "system", sys, "value", num));
    if (srid[0])
        json_object_set_new(dr, "basedOn",
                            json_pack("[o]", ref("ServiceRequest", srid)));
    if (val(c, obr, 25, 1, 1, 0, st, sizeof(st)) == V_BAD) {
        err = c->d->code;
        goto out;
    }
    json_object_set_new(dr, "status", jstr(st[0] ? obr_status(st) : "final"));
    json_object_set_new(
        dr, "category",
        json_pack("[o]",
                  concept("http://terminology.hl7.org/CodeSystem/v2-0074",
                          "LAB", "Laboratory")));
    {
        json_t *code = cwe(c, obr, 4, 1, &bad);
        if (bad) {
            err = c->d->code;
            goto out;
        }
        if (!code) {
            err = fail(c, MR_EINVALID, obr, 4, MR_HL7_ERR_REQUIRED_MISSING,
                       "OBR-4: the universal service identifier is required");
            goto out;
        }
        json_object_set_new(dr, "code", code);
    }
    json_object_set_new(dr, "subject", ref("Patient", pat));
    if (encid[0])
        json_object_set_new(dr, "encounter", ref("Encounter", encid));
    if (set_dtm(c, dr, "effectiveDateTime", obr, 7, 0, NULL) ||
        set_dtm(c, dr, "issued", obr, 22, 0, NULL)) {
        err = c->d->code;
        goto out;
    }
    {
        /* issued is an instant: a date alone will not do. */
        const char *is = json_string_value(json_object_get(dr, "issued"));
        if (is && strlen(is) <= 10)
            json_object_del(dr, "issued");
    }
    text = mr_malloc(TEXT_MAX);
    if (!text) {
        err = mr_diag_set(c->d, MR_ENOMEM, "out of memory");
        goto out;
    }
    for (i = from + 1; i < to && !err; i++) {
        const struct mr_hl7_seg *s = &c->m->segs[i];
        if (!strcmp(s->id, "NTE")) {
            int t = nte_text(c, s, text, TEXT_MAX);
            if (t < 0)
                err = c->d->code ? c->d->code : MR_ENOMEM;
            else if (t && obs)
                add_note(obs, "note", text);
            else if (t) {
                const char *prev =
                    json_string_value(json_object_get(dr, "conclusion"));
                char *both = mr_malloc(2 * TEXT_MAX + 2);
                if (!both) {
                    err = MR_ENOMEM;
                    break;
                }
                snprintf(both, 2 * TEXT_MAX + 2, "%s%s%s", prev ? prev : "",
                         prev ? "\n" : "", text);
                json_object_set_new(dr, "conclusion", jstr(both));
                mr_free(both);
            }
            continue;
        }
        if (strcmp(s->id, "OBX"))
            continue;
        /* The previous Observation is complete (its NTEs are in). */
        err = flush_obs(c, &obs, oid, obs_seg, results);
        if (err)
            break;
        {
            char code[VAL_MAX], sub[VAL_MAX], okey[3 * VAL_MAX + 32];
            json_int_t dup;
            json_t *cc;
            if (val(c, s, 3, 1, 1, 0, code, sizeof(code)) == V_BAD ||
                val(c, s, 4, 1, 0, 0, sub, sizeof(sub)) == V_BAD) {
                err = c->d->code;
                break;
            }
            if (!code[0] &&
                val(c, s, 3, 1, 2, 0, code, sizeof(code)) == V_BAD) {
                err = c->d->code;
                break;
            }
            cc = cwe(c, s, 3, 1, &bad);
            if (bad) {
                err = c->d->code;
                break;
            }
            if (!cc) {
                err = fail(c, MR_EINVALID, s, 3, MR_HL7_ERR_REQUIRED_MISSING,
                           "OBX-3: the observation identifier is required");
                break;
            }
            /* The same code and sub-id again in this report: its own
             * Observation (counted by occurrence). */
            snprintf(okey, sizeof(okey), "%s\x1f%s", code, sub);
            dup = json_integer_value(json_object_get(seen, okey));
            json_object_set_new(seen, okey, json_integer(dup + 1));
            snprintf(okey, sizeof(okey), "%s|%s|%s|%u", drid, code, sub,
                     (unsigned)dup);
            stable_id("Observation", pat, okey, oid);
            /* Rebuilt from the message whole and written as the next
             * version (no read: nothing else writes inside this
             * transaction). */
            obs = json_pack("{s:s}", "resourceType", "Observation");
            obs_seg = s;
            if (val(c, s, 11, 1, 1, 0, v, sizeof(v)) == V_BAD) {
                json_decref(cc);
                err = c->d->code;
                break;
            }
            json_object_set_new(obs, "status",
                                jstr(v[0] ? obx_status(v) : "final"));
            json_object_set_new(
                obs, "category",
                json_pack("[o]",
                          concept("http://terminology.hl7.org/CodeSystem/"
                                  "observation-category",
                                  "laboratory", "Laboratory")));
            json_object_set_new(obs, "code", cc);
            json_object_set_new(obs, "subject", ref("Patient", pat));
            if (encid[0])
                json_object_set_new(obs, "encounter", ref("Encounter", encid));
            if (srid[0])
                json_object_set_new(
                    obs, "basedOn",
                    json_pack("[o]", ref("ServiceRequest", srid)));
            if (set_dtm(c, obs, "effectiveDateTime", s, 14, 0, NULL)) {
                err = c->d->code;
                break;
            }
            if (!json_object_get(obs, "effectiveDateTime") &&
                json_object_get(dr, "effectiveDateTime"))
                json_object_set(obs, "effectiveDateTime",
                                json_object_get(dr, "effectiveDateTime"));
            err = obx_value(c, s, obs);
            if (err)
                break;
            ref_range(c, s, obs);
            {
                size_t r, nr = reps(c, s, 8);
                json_t *interp = json_array();
                for (r = 1; r <= nr; r++)
                    if (val(c, s, 8, r, 1, 0, v, sizeof(v)) == V_SET)
                        json_array_append_new(
                            interp,
                            concept("http://terminology.hl7.org/CodeSystem/"
                                    "v3-ObservationInterpretation",
                                    v, NULL));
                if (json_array_size(interp))
                    json_object_set_new(obs, "interpretation", interp);
                else
                    json_decref(interp);
            }
            mr_diag_clear(c->d);
        }
    }
    if (!err)
        err = flush_obs(c, &obs, oid, obs_seg, results);
    if (err)
        goto out;
    /* A report sent again (corrected, or completed) may carry only some
     * of its results: those it had stay listed. */
    err = load(c, "DiagnosticReport", drid, &old, &ver);
    if (!err && old) {
        json_t *e, *f;
        size_t x, y;
        json_array_foreach(json_object_get(old, "result"), x, e)
        {
            const char *re = json_string_value(json_object_get(e, "reference"));
            int have = 0;
            json_array_foreach(results, y, f)
            {
                const char *rf =
                    json_string_value(json_object_get(f, "reference"));
                if (re && rf && !strcmp(re, rf))
                    have = 1;
            }
            if (re && !have)
                json_array_insert(results, x, e);
        }
    }
    json_decref(old);
    if (json_array_size(results))
        json_object_set(dr, "result", results);
    if (!err)
        err = save(c, "DiagnosticReport", drid, dr, ver, obr, 0);
out:
    mr_free(text);
    json_decref(seen);
    json_decref(obs);
    json_decref(dr);
    json_decref(results);
    return err;
}

static enum mr_err results(struct mctx *c)
{
    const struct mr_hl7_seg *pv1 = mr_hl7_find(c->m, "PV1", 1);
    char pat[65], encid[65], vsys[VAL_MAX + 64], vnum[VAL_MAX];
    enum mr_err err;
    size_t i, start = 0;
    int any = 0;

    if (mr_hl7_occurrences(c->m, "PID") > 1)
        return fail(c, MR_EUNSUPPORTED, mr_hl7_find(c->m, "PID", 2), 0,
                    MR_HL7_ERR_SEGMENT_SEQUENCE,
                    "PID: one patient per ORU message");
    err = patient(c, 0, 0, pat);
    if (err)
        return err;
    encid[0] = '\0';
    if (!pv1_empty(c, pv1)) {
        json_t *enc = NULL;
        int64_t ev;
        err = visit_id(c, pv1, pat, 0, encid, vsys, vnum, sizeof(vnum));
        if (!err && encid[0])
            err = load(c, "Encounter", encid, &enc, &ev);
        if (err)
            return fail_rec(c, err, pv1, 19);
        if (!enc && vnum[0])
            return fail(c, MR_ENOTFOUND, pv1, 19, MR_HL7_ERR_UNKNOWN_KEY,
                        "PV1-19: no visit %s is known", vnum);
        if (!enc)
            encid[0] = '\0';
        json_decref(enc);
    }
    for (i = 0; i <= c->m->nsegs; i++) {
        int boundary = i == c->m->nsegs || !strcmp(c->m->segs[i].id, "OBR") ||
                       !strcmp(c->m->segs[i].id, "ORC") ||
                       !strcmp(c->m->segs[i].id, "PID");
        if (!boundary)
            continue;
        if (start) {
            err = report(c, pat, encid, start, i);
            if (err)
                return err;
            start = 0;
        }
        if (i < c->m->nsegs && !strcmp(c->m->segs[i].id, "OBR")) {
            start = i;
            any = 1;
        }
    }
    if (!any)
        return fail(c, MR_EINVALID, NULL, 0, MR_HL7_ERR_SEGMENT_SEQUENCE,
                    "OBR: the message carries no result (OBR segment)");
    return MR_OK;
}

/* ---- the message ---------------------------------------------------- */

enum mr_err mr_hl7_apply(struct mr_records *r, const struct mr_actor *a,
                         const struct mr_hl7_msg *m, const char *ns,
                         struct mr_hl7_applied *out, struct mr_diag *d)
{
    struct mctx c;
    char type[16], ev[16], ctrl[MR_HL7_MAX_CONTROL_ID + 1];
    enum mr_err err;
    const char *dt;
    size_t n;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.a = a;
    c.m = m;
    c.ns = ns;
    c.out = out;
    c.d = d;
    mr_buf_init(&c.tmp, TEXT_MAX);
    c.written = json_array();
    if (!c.written)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    snprintf(type, sizeof(type), "%.*s", (int)m->hdr.msg_type.len,
             m->hdr.msg_type.ptr);
    snprintf(ev, sizeof(ev), "%.*s", (int)m->hdr.trigger.len,
             m->hdr.trigger.ptr);
    snprintf(ctrl, sizeof(ctrl), "%.*s", (int)m->hdr.control_id.len,
             m->hdr.control_id.ptr);
    snprintf(c.reason, sizeof(c.reason), "HL7 %s^%s %s from %s", type, ev, ctrl,
             a->user && !strncmp(a->user, "hl7:", 4) ? a->user + 4 : ns);
    /* MSH-7's offset is the sender's: times without one take it. */
    dt = m->hdr.datetime.ptr;
    n = m->hdr.datetime.len;
    if (n > 5 && (dt[n - 5] == '+' || dt[n - 5] == '-')) {
        if (!memcmp(dt + n - 4, "0000", 4))
            strcpy(c.tz, "Z");
        else
            snprintf(c.tz, sizeof(c.tz), "%c%c%c:%c%c", dt[n - 5], dt[n - 4],
                     dt[n - 3], dt[n - 2], dt[n - 1]);
    }
    if (!strcmp(type, "ADT"))
        err = adt(&c, ev);
    else if (!strcmp(type, "ORU") && !strcmp(ev, "R01"))
        err = results(&c);
    else if ((!strcmp(type, "ORM") && !strcmp(ev, "O01")) ||
             (!strcmp(type, "OML") && !strcmp(ev, "O21")))
        err = orders(&c);
    else
        err = fail(&c, MR_EUNSUPPORTED, NULL, 0, MR_HL7_ERR_UNSUPPORTED_TYPE,
                   "MSH-9: %s^%s is not a message medrec applies (ADT, "
                   "ORU^R01, ORM^O01, OML^O21)",
                   type, ev);
    if (!err) {
        char *s = json_dumps(c.written, JSON_COMPACT);
        if (!s || mr_buf_adds(&out->resources, s))
            err = mr_diag_set(d, MR_ENOMEM, "out of memory");
        free(s);
    }
    json_decref(c.written);
    mr_buf_release(&c.tmp);
    return err;
}
