/*
 * FHIR search query parsing. The result carries parameter definitions,
 * prefixes and already-normalised values; the store binds them into
 * prepared statements and never sees the query text.
 */
#include "fhir/search.h"
#include "core/buf.h"
#include "core/text.h"
#include "core/time.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_MAX_LEN 16384
#define QUERY_MAX_CLAUSES 64
#define QUERY_MAX_VALUES 64
#define QUERY_MAX_UNKNOWN 64

void mr_query_init(struct mr_query *q, const char *type)
{
    memset(q, 0, sizeof(*q));
    q->type = type;
    q->count = MR_QUERY_DEFAULT_COUNT;
    q->arena = (struct mr_arena)MR_ARENA_INIT;
}

void mr_query_release(struct mr_query *q)
{
    mr_arena_release(&q->arena);
    q->clauses = NULL;
    q->unknown = NULL;
    q->n = q->nunknown = 0;
}

/* ---- helpers ------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) ('+' is a space) into a new arena string. */
static enum mr_err url_decode(struct mr_query *q, const char *s, size_t n,
                              char **out, struct mr_diag *d)
{
    char *p = mr_arena_alloc(&q->arena, n + 1);
    size_t j = 0;

    if (!p)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            p[j++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            /* %00 would cut the C string short: refuse it. */
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return mr_diag_set(d, MR_EINVALID,
                                   "invalid percent-encoding in query");
            p[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            p[j++] = s[i];
        }
    }
    p[j] = '\0';
    if (!mr_utf8_valid(p, j) || memchr(p, '\0', j))
        return mr_diag_set(d, MR_EINVALID, "query is not valid UTF-8 text");
    *out = p;
    return MR_OK;
}

static enum mr_err nomem(struct mr_diag *d)
{
    return mr_diag_set(d, MR_ENOMEM, "out of memory");
}

static enum mr_ix_kind kind_of(enum mr_sp_type t)
{
    switch (t) {
    case MR_SP_NUMBER:
        return MR_IX_NUMBER;
    case MR_SP_DATE:
        return MR_IX_DATE;
    case MR_SP_STRING:
        return MR_IX_STRING;
    case MR_SP_REFERENCE:
        return MR_IX_REFERENCE;
    case MR_SP_QUANTITY:
        return MR_IX_QUANTITY;
    case MR_SP_URI:
        return MR_IX_URI;
    default:
        return MR_IX_TOKEN;
    }
}

/* Remove the backslash of FHIR's value escapes (\, \| \$ \\). */
static char *unescape(struct mr_query *q, const char *s, size_t n)
{
    char *p = mr_arena_alloc(&q->arena, n + 1);
    size_t j = 0;

    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        p[j++] = s[i];
    }
    p[j] = '\0';
    return p;
}

/* Offset of the first unescaped c in s[0..n), or n. */
static size_t find_unescaped(const char *s, size_t n, char c)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == c)
            return i;
    }
    return n;
}

/* A non-negative decimal integer no larger than max, or -1. */
static long parse_uint(const char *s, long max)
{
    char *end;
    long v;

    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 10)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    return v;
}

/* A FHIR decimal (optionally signed, with an exponent): 1 and *out, or 0. */
static int parse_number(const char *s, double *out)
{
    const char *p = s;
    char *end;
    double v;

    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return 0;
    errno = 0;
    v = strtod(s, &end);
    if (*end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* Strip a comparison prefix ("ge1984" -> MR_PFX_GE, "1984"). */
static const char *take_prefix(const char *s, enum mr_prefix *pfx)
{
    static const char names[][3] = {"eq", "ne", "lt", "gt", "le",
                                    "ge", "sa", "eb", "ap"};

    *pfx = MR_PFX_EQ;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (s[0] == names[i][0] && s[0] && s[1] == names[i][1] && s[2]) {
            *pfx = (enum mr_prefix)i;
            return s + 2;
        }
    }
    return s;
}

/*
 * Digits of a value that looks like a phone number (only digits and
 * "+-(). /"), else NULL. The index stores the same digits-only form for
 * ContactPoint values (index.c), so "+1 (555) 010-0100" matches
 * "15550100100" both ways.
 */
static const char *phone_digits(struct mr_query *q, const char *s)
{
    size_t n = strlen(s), j = 0;
    char *p;

    if (strspn(s, "0123456789+-(). /") != n || strcspn(s, "0123456789") == n)
        return NULL;
    p = mr_arena_alloc(&q->arena, n + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] >= '0' && s[i] <= '9')
            p[j++] = s[i];
    p[j] = '\0';
    return p;
}

static int has_contactpoint_path(const struct mr_search_param *sp)
{
    for (size_t i = 0; i < sp->npaths; i++)
        if (strcmp(sp->paths[i].type, "ContactPoint") == 0)
            return 1;
    return 0;
}

/* "Patient/1/_history/2" -> "Patient/1" (in place). */
static void strip_history(char *ref)
{
    char *h = strstr(ref, "/_history/");
    if (h && !strchr(h + strlen("/_history/"), '/'))
        *h = '\0';
}

static enum mr_err add_unknown(struct mr_query *q, const char *name,
                               struct mr_diag *d)
{
    if (!q->unknown) {
        q->unknown =
            mr_arena_alloc(&q->arena, QUERY_MAX_UNKNOWN * sizeof(*q->unknown));
        if (!q->unknown)
            return nomem(d);
    }
    for (size_t i = 0; i < q->nunknown; i++)
        if (strcmp(q->unknown[i], name) == 0)
            return MR_OK;
    if (q->nunknown >= QUERY_MAX_UNKNOWN)
        return mr_diag_set(d, MR_ETOOBIG, "more than %d unknown parameters",
                           QUERY_MAX_UNKNOWN);
    const char *copy = mr_arena_strdup(&q->arena, name);
    if (!copy)
        return nomem(d);
    q->unknown[q->nunknown++] = copy;
    return MR_OK;
}

static enum mr_err new_clause(struct mr_query *q, const char *name,
                              struct mr_q_clause **out, struct mr_diag *d)
{
    if (!q->clauses) {
        q->clauses =
            mr_arena_alloc(&q->arena, QUERY_MAX_CLAUSES * sizeof(*q->clauses));
        if (!q->clauses)
            return nomem(d);
    }
    if (q->n >= QUERY_MAX_CLAUSES)
        return mr_diag_set(d, MR_ETOOBIG, "%s: more than %d search parameters",
                           name, QUERY_MAX_CLAUSES);
    *out = &q->clauses[q->n];
    memset(*out, 0, sizeof(**out));
    return MR_OK;
}

/* Split value on unescaped commas into raw (still escaped) pieces. */
static enum mr_err split_values(struct mr_query *q, const char *name,
                                const char *value, const char **raw,
                                size_t *nraw, struct mr_diag *d)
{
    size_t n = strlen(value), pos = 0, k = 0;

    for (;;) {
        size_t len = find_unescaped(value + pos, n - pos, ',');
        if (len == 0)
            return mr_diag_set(d, MR_EINVALID, "%s: empty value", name);
        if (k >= QUERY_MAX_VALUES)
            return mr_diag_set(d, MR_ETOOBIG, "%s: more than %d values", name,
                               QUERY_MAX_VALUES);
        if (!(raw[k++] = mr_arena_strndup(&q->arena, value + pos, len)))
            return nomem(d);
        pos += len;
        if (pos >= n)
            break;
        pos++; /* the comma */
        if (pos == n)
            return mr_diag_set(d, MR_EINVALID, "%s: empty value", name);
    }
    *nraw = k;
    return MR_OK;
}

static enum mr_err value_date(struct mr_query *q, const char *name,
                              const char *raw, struct mr_q_value *v,
                              struct mr_diag *d)
{
    struct mr_daterange r;
    char *s = unescape(q, raw, strlen(raw));
    const char *rest;

    if (!s)
        return nomem(d);
    rest = take_prefix(s, &v->prefix);
    if (mr_date_parse_search(rest, strlen(rest), &r) != MR_OK)
        return mr_diag_set(d, MR_EINVALID, "%s: \"%s\" is not a valid date",
                           name, s);
    v->lo = r.lo;
    v->hi = r.hi;
    return MR_OK;
}

static enum mr_err value_number(struct mr_query *q, const char *name,
                                const char *raw, struct mr_q_value *v,
                                struct mr_diag *d)
{
    char *s = unescape(q, raw, strlen(raw));

    if (!s)
        return nomem(d);
    if (!parse_number(take_prefix(s, &v->prefix), &v->n))
        return mr_diag_set(d, MR_EINVALID, "%s: \"%s\" is not a valid number",
                           name, s);
    return MR_OK;
}

/* [prefix]number|system|code; system and code may be empty. */
static enum mr_err value_quantity(struct mr_query *q, const char *name,
                                  const char *raw, struct mr_q_value *v,
                                  struct mr_diag *d)
{
    size_t n = strlen(raw);
    size_t a = find_unescaped(raw, n, '|');
    char *num = unescape(q, raw, a);

    if (!num)
        return nomem(d);
    if (!parse_number(take_prefix(num, &v->prefix), &v->n))
        return mr_diag_set(d, MR_EINVALID, "%s: \"%s\" is not a valid quantity",
                           name, raw);
    if (a == n)
        return MR_OK;
    const char *rest = raw + a + 1;
    size_t rn = n - a - 1;
    size_t b = find_unescaped(rest, rn, '|');
    if (b == rn || find_unescaped(rest + b + 1, rn - b - 1, '|') != rn - b - 1)
        return mr_diag_set(d, MR_EINVALID,
                           "%s: \"%s\" is not number|system|code", name, raw);
    if (b > 0 && !(v->s1 = unescape(q, rest, b)))
        return nomem(d);
    if (rn - b - 1 > 0 && !(v->s2 = unescape(q, rest + b + 1, rn - b - 1)))
        return nomem(d);
    return MR_OK;
}

static enum mr_err fold_value(struct mr_query *q, const char *name,
                              const char *s, const char **out,
                              struct mr_diag *d)
{
    struct mr_buf b = MR_BUF_INIT(QUERY_MAX_LEN);
    enum mr_err err = mr_text_fold(s, strlen(s), &b);

    if (err) {
        mr_buf_release(&b);
        return err == MR_ENOMEM
                   ? nomem(d)
                   : mr_diag_set(d, err, "%s: value too long", name);
    }
    *out = mr_arena_strndup(&q->arena, b.ptr, b.len);
    mr_buf_release(&b);
    return *out ? MR_OK : nomem(d);
}

static enum mr_err value_string(struct mr_query *q, const char *name,
                                const char *raw, enum mr_modifier mod,
                                struct mr_q_value *v, struct mr_diag *d)
{
    char *s = unescape(q, raw, strlen(raw));
    enum mr_err err;

    if (!s)
        return nomem(d);
    if ((err = fold_value(q, name, s, &v->s1, d)))
        return err;
    if (mod == MR_MOD_EXACT)
        v->s2 = s;
    else if (!*v->s1)
        return mr_diag_set(d, MR_EINVALID, "%s: empty value", name);
    return MR_OK;
}

static enum mr_err value_token(struct mr_query *q, const char *name,
                               const struct mr_search_param *sp,
                               const char *raw, struct mr_q_value *v,
                               struct mr_diag *d)
{
    size_t n = strlen(raw);
    size_t bar = find_unescaped(raw, n, '|');

    if (bar < n) {
        /* "system|code", "|code" (no system), "system|" (any code). */
        if (bar == 0 && bar + 1 == n)
            return mr_diag_set(d, MR_EINVALID, "%s: empty value", name);
        if (!(v->s1 = unescape(q, raw, bar)))
            return nomem(d);
        if (bar + 1 < n && !(v->s2 = unescape(q, raw + bar + 1, n - bar - 1)))
            return nomem(d);
    } else if (!(v->s2 = unescape(q, raw, n))) {
        return nomem(d);
    }
    if (v->s2 && has_contactpoint_path(sp)) {
        const char *digits = phone_digits(q, v->s2);
        if (digits)
            v->s2 = digits;
    }
    return MR_OK;
}

/*
 * Reference values: "Type/id", an absolute URL, or a bare id. A bare id
 * is qualified with the :Type modifier or the parameter's only target;
 * with several targets it becomes one ORed value per target type, so the
 * store only ever compares whole "Type/id" strings. Fills v[0..*nv).
 */
static enum mr_err value_reference(struct mr_query *q, const char *name,
                                   const struct mr_search_param *sp,
                                   const char *type_mod, const char *raw,
                                   struct mr_q_value *v, size_t *nv,
                                   struct mr_diag *d)
{
    char *s = unescape(q, raw, strlen(raw));

    if (!s)
        return nomem(d);
    strip_history(s);
    if (!*s)
        return mr_diag_set(d, MR_EINVALID, "%s: empty value", name);
    *nv = 1;
    if (strchr(s, '/')) {
        v[0].s1 = s;
        return MR_OK;
    }
    if (type_mod || sp->ntargets == 1) {
        struct mr_buf b = MR_BUF_INIT(QUERY_MAX_LEN);
        enum mr_err err =
            mr_buf_addf(&b, "%s/%s", type_mod ? type_mod : sp->targets[0], s);
        if (!err && !(v[0].s1 = mr_arena_strndup(&q->arena, b.ptr, b.len)))
            err = MR_ENOMEM;
        mr_buf_release(&b);
        return err ? nomem(d) : MR_OK;
    }
    if (sp->ntargets == 0) {
        /* No declared targets: match the id under any type. */
        v[0].s1 = NULL;
        v[0].s2 = s;
        return MR_OK;
    }
    for (size_t i = 0; i < sp->ntargets; i++) {
        size_t tl = strlen(sp->targets[i]), il = strlen(s);
        char *p = mr_arena_alloc(&q->arena, tl + 1 + il + 1);
        if (!p)
            return nomem(d);
        memcpy(p, sp->targets[i], tl);
        p[tl] = '/';
        memcpy(p + tl + 1, s, il + 1);
        v[i] = v[0];
        v[i].s1 = p;
    }
    *nv = sp->ntargets;
    return MR_OK;
}

/* Clause for _id or _lastUpdated, which are columns, not index tables. */
static enum mr_err add_special(struct mr_query *q, const char *name,
                               enum mr_q_special special, const char *value,
                               struct mr_diag *d)
{
    const char *raw[QUERY_MAX_VALUES];
    size_t nraw;
    struct mr_q_clause *c;
    enum mr_err err;

    if ((err = split_values(q, name, value, raw, &nraw, d)) ||
        (err = new_clause(q, name, &c, d)))
        return err;
    c->vals = mr_arena_alloc(&q->arena, nraw * sizeof(*c->vals));
    if (!c->vals)
        return nomem(d);
    memset(c->vals, 0, nraw * sizeof(*c->vals));
    c->special = special;
    c->kind = special == MR_Q_ID ? MR_IX_TOKEN : MR_IX_DATE;
    for (size_t i = 0; i < nraw; i++) {
        struct mr_q_value *v = &c->vals[i];
        if (special == MR_Q_ID) {
            if (!(v->s2 = unescape(q, raw[i], strlen(raw[i]))))
                return nomem(d);
        } else if ((err = value_date(q, name, raw[i], v, d))) {
            return err;
        }
    }
    c->nvals = nraw;
    q->n++;
    return MR_OK;
}

/*
 * A clause for parameter sp with modifier text modstr
 * (may be NULL) and value; *out receives it (already counted in q->n).
 */
static enum mr_err add_param(struct mr_query *q, const char *base,
                             const struct mr_search_param *sp,
                             const char *modstr, const char *value,
                             struct mr_q_clause **out, struct mr_diag *d)
{
    const char *type_mod = NULL;
    enum mr_modifier mod = MR_MOD_NONE;
    struct mr_q_clause *c;
    const char *raw[QUERY_MAX_VALUES];
    size_t nraw, maxvals;
    enum mr_err err;

    if (modstr) {
        if (strcmp(modstr, "missing") == 0)
            mod = MR_MOD_MISSING;
        else if (sp->type == MR_SP_STRING && strcmp(modstr, "exact") == 0)
            mod = MR_MOD_EXACT;
        else if (sp->type == MR_SP_STRING && strcmp(modstr, "contains") == 0)
            mod = MR_MOD_CONTAINS;
        else if (sp->type == MR_SP_TOKEN && strcmp(modstr, "not") == 0)
            mod = MR_MOD_NOT;
        else if (sp->type == MR_SP_TOKEN && strcmp(modstr, "text") == 0)
            mod = MR_MOD_TEXT;
        else if (sp->type == MR_SP_REFERENCE &&
                 mr_fhir_is_resource_type(modstr))
            type_mod = modstr;
        else
            return mr_diag_set(d, MR_EINVALID,
                               "%s: unsupported modifier \":%s\"", base,
                               modstr);
    }
    if (!*value)
        return mr_diag_set(d, MR_EINVALID, "%s: empty value", base);

    if (mod == MR_MOD_MISSING) {
        int missing;
        if (strcmp(value, "true") == 0)
            missing = 1;
        else if (strcmp(value, "false") == 0)
            missing = 0;
        else
            return mr_diag_set(d, MR_EINVALID,
                               "%s: :missing must be true or false", base);
        if ((err = new_clause(q, base, &c, d)))
            return err;
        if (!(c->vals = mr_arena_alloc(&q->arena, sizeof(*c->vals))))
            return nomem(d);
        memset(c->vals, 0, sizeof(*c->vals));
        c->vals[0].missing = missing;
        c->nvals = 1;
        c->param = sp;
        c->kind = kind_of(sp->type);
        c->modifier = mod;
        q->n++;
        *out = c;
        return MR_OK;
    }

    if ((err = split_values(q, base, value, raw, &nraw, d)) ||
        (err = new_clause(q, base, &c, d)))
        return err;
    maxvals = nraw;
    if (sp->type == MR_SP_REFERENCE && sp->ntargets > 1)
        maxvals = nraw * sp->ntargets;
    c->vals = mr_arena_alloc(&q->arena, maxvals * sizeof(*c->vals));
    if (!c->vals)
        return nomem(d);
    memset(c->vals, 0, maxvals * sizeof(*c->vals));
    c->param = sp;
    c->modifier = mod;
    c->kind = mod == MR_MOD_TEXT ? MR_IX_STRING : kind_of(sp->type);

    size_t nv = 0;
    for (size_t i = 0; i < nraw; i++) {
        struct mr_q_value *v = &c->vals[nv];
        size_t used = 1;

        switch (sp->type) {
        case MR_SP_DATE:
            err = value_date(q, base, raw[i], v, d);
            break;
        case MR_SP_NUMBER:
            err = value_number(q, base, raw[i], v, d);
            break;
        case MR_SP_QUANTITY:
            err = value_quantity(q, base, raw[i], v, d);
            break;
        case MR_SP_STRING:
            err = value_string(q, base, raw[i], mod, v, d);
            break;
        case MR_SP_TOKEN:
            if (mod == MR_MOD_TEXT)
                err = value_string(q, base, raw[i], mod, v, d);
            else
                err = value_token(q, base, sp, raw[i], v, d);
            break;
        case MR_SP_REFERENCE:
            err = value_reference(q, base, sp, type_mod, raw[i], v, &used, d);
            break;
        default: /* MR_SP_URI */
            v->s1 = unescape(q, raw[i], strlen(raw[i]));
            err = v->s1 ? MR_OK : nomem(d);
            break;
        }
        if (err)
            return err;
        nv += used;
    }
    c->nvals = nv;
    q->n++;
    *out = c;
    return MR_OK;
}

/* ---- result parameters: _sort, _include, _revinclude, _elements ------- */

static int sortable(const struct mr_search_param *sp)
{
    switch (sp->type) {
    case MR_SP_STRING:
    case MR_SP_DATE:
    case MR_SP_TOKEN:
    case MR_SP_NUMBER:
    case MR_SP_QUANTITY:
        return sp->npaths > 0;
    default:
        return 0;
    }
}

/* "-birthdate,name,_id": unknown and unsortable names are refused. */
static enum mr_err add_sort(struct mr_query *q, const char *value,
                            struct mr_diag *d)
{
    const char *raw[QUERY_MAX_VALUES];
    size_t nraw;
    enum mr_err err;

    if ((err = split_values(q, "_sort", value, raw, &nraw, d)))
        return err;
    if (!q->sort) {
        q->sort =
            mr_arena_alloc(&q->arena, MR_QUERY_MAX_SORT * sizeof(*q->sort));
        if (!q->sort)
            return nomem(d);
    }
    for (size_t i = 0; i < nraw; i++) {
        const char *name = raw[i];
        struct mr_q_sort k = {MR_Q_PARAM, NULL, 0};

        if (*name == '-') {
            k.desc = 1;
            name++;
        }
        if (!*name)
            return mr_diag_set(d, MR_EINVALID, "_sort: empty parameter name");
        if (strcmp(name, "_id") == 0) {
            k.special = MR_Q_ID;
        } else if (strcmp(name, "_lastUpdated") == 0) {
            k.special = MR_Q_LASTUPDATED;
        } else {
            k.param = mr_search_param_find(q->type, name);
            /* Refused even when unknown parameters are ignored: a sort
             * cannot be silently left out. */
            if (!k.param || !strcmp(name, "phonetic"))
                return mr_diag_set(d, MR_EINVALID,
                                   "_sort: \"%.64s\" is not a search "
                                   "parameter of %s",
                                   name, q->type);
            if (!sortable(k.param))
                return mr_diag_set(d, MR_EINVALID,
                                   "_sort: cannot sort on \"%s\" (only "
                                   "string, date, token, number and "
                                   "quantity parameters, _id and "
                                   "_lastUpdated)",
                                   name);
        }
        if (q->nsort >= MR_QUERY_MAX_SORT)
            return mr_diag_set(d, MR_ETOOBIG, "_sort: more than %d keys",
                               MR_QUERY_MAX_SORT);
        q->sort[q->nsort++] = k;
    }
    return MR_OK;
}

/* _include "Type:param[:target]", "Type:*" or "*"; _revinclude
 * "Type:param[:target]" where target, if given, is the searched type. */
static enum mr_err add_include(struct mr_query *q, int rev, const char *value,
                               struct mr_diag *d)
{
    const char *what = rev ? "_revinclude" : "_include";
    struct mr_q_include inc = {rev, NULL, NULL, NULL};
    const char *c1, *c2;
    char *source, *code, *target = NULL;

    if (!q->include) {
        q->include = mr_arena_alloc(&q->arena,
                                    MR_QUERY_MAX_INCLUDE * sizeof(*q->include));
        if (!q->include)
            return nomem(d);
    }
    if (q->ninclude >= MR_QUERY_MAX_INCLUDE)
        return mr_diag_set(d, MR_ETOOBIG, "more than %d _include/_revinclude",
                           MR_QUERY_MAX_INCLUDE);
    if (!rev && strcmp(value, "*") == 0) {
        inc.source = q->type;
        q->include[q->ninclude++] = inc;
        return MR_OK;
    }
    c1 = strchr(value, ':');
    c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || (c2 && strchr(c2 + 1, ':')))
        return mr_diag_set(d, MR_EINVALID,
                           "%s: \"%s\" is not Type:parameter[:targetType]",
                           what, value);
    source = mr_arena_strndup(&q->arena, value, (size_t)(c1 - value));
    code = c2 ? mr_arena_strndup(&q->arena, c1 + 1, (size_t)(c2 - c1 - 1))
              : mr_arena_strdup(&q->arena, c1 + 1);
    if (c2 && !(target = mr_arena_strdup(&q->arena, c2 + 1)))
        return nomem(d);
    if (!source || !code)
        return nomem(d);
    if (!mr_fhir_is_resource_type(source))
        return mr_diag_set(d, MR_EINVALID, "%s: unknown resource type \"%s\"",
                           what, source);
    if (!rev && strcmp(source, q->type) != 0)
        return mr_diag_set(d, MR_EINVALID,
                           "_include: \"%s\" is not the searched type %s",
                           source, q->type);
    inc.source = source;
    if (strcmp(code, "*") != 0) {
        inc.param = mr_search_param_find(source, code);
        if (!inc.param || inc.param->type != MR_SP_REFERENCE ||
            !inc.param->npaths)
            return mr_diag_set(d, MR_EINVALID,
                               "%s: \"%s\" is not a reference parameter of %s",
                               what, code, source);
    }
    if (target) {
        int ok = mr_fhir_is_resource_type(target);
        if (ok && inc.param && inc.param->ntargets) {
            ok = 0;
            for (size_t i = 0; i < inc.param->ntargets; i++)
                ok |= !strcmp(inc.param->targets[i], target);
        }
        if (!ok || (rev && strcmp(target, q->type) != 0))
            return mr_diag_set(d, MR_EINVALID,
                               "%s: \"%s\" is not a possible target type of "
                               "%s:%s",
                               what, target, source, code);
        inc.target = rev ? NULL : target;
    }
    q->include[q->ninclude++] = inc;
    return MR_OK;
}

static enum mr_err add_elements(struct mr_query *q, const char *value,
                                struct mr_diag *d)
{
    const char *raw[QUERY_MAX_VALUES];
    size_t nraw;
    enum mr_err err;

    if ((err = split_values(q, "_elements", value, raw, &nraw, d)))
        return err;
    if (!q->elements) {
        q->elements = mr_arena_alloc(&q->arena, MR_QUERY_MAX_ELEMENTS *
                                                    sizeof(*q->elements));
        if (!q->elements)
            return nomem(d);
    }
    for (size_t i = 0; i < nraw; i++) {
        const char *e = raw[i];
        size_t n = strlen(e);
        if (!((e[0] >= 'a' && e[0] <= 'z') || (e[0] >= 'A' && e[0] <= 'Z')) ||
            strspn(e, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
            return mr_diag_set(d, MR_EINVALID,
                               "_elements: \"%s\" is not an element name", e);
        if (q->nelements >= MR_QUERY_MAX_ELEMENTS)
            return mr_diag_set(d, MR_ETOOBIG, "_elements: more than %d names",
                               MR_QUERY_MAX_ELEMENTS);
        q->elements[q->nelements++] = e;
    }
    return MR_OK;
}

/* ---- chained parameters ------------------------------------------------ */

static int usable(const struct mr_search_param *sp, const char *code)
{
    return sp && sp->npaths && sp->type != MR_SP_COMPOSITE &&
           sp->type != MR_SP_SPECIAL && strcmp(code, "phonetic") != 0;
}

/*
 * "subject:Patient.name:exact=x": one level. The target type comes from
 * the :Type modifier, else the reference's only target, else the only
 * target type that has the chained parameter; otherwise it is ambiguous.
 */
static enum mr_err add_chain(struct mr_query *q, const char *name,
                             const char *value, struct mr_diag *d)
{
    const char *dot = strchr(name, '.');
    const char *ttype = NULL, *tmod = NULL;
    const struct mr_search_param *ref, *tsp = NULL;
    struct mr_q_clause *c;
    char *left, *right, *colon, *refmod = NULL;
    enum mr_err err;

    left = mr_arena_strndup(&q->arena, name, (size_t)(dot - name));
    right = mr_arena_strdup(&q->arena, dot + 1);
    if (!left || !right)
        return nomem(d);
    if (strchr(right, '.'))
        return mr_diag_set(d, MR_EINVALID,
                           "%s: only one level of chaining is supported", name);
    if ((colon = strchr(left, ':'))) {
        *colon = '\0';
        refmod = colon + 1;
    }
    if ((colon = strchr(right, ':'))) {
        *colon = '\0';
        tmod = colon + 1;
    }
    if (!*left || !*right)
        return mr_diag_set(d, MR_EINVALID, "%s: empty parameter name", name);
    ref = mr_search_param_find(q->type, left);
    if (!usable(ref, left))
        return add_unknown(q, name, d);
    if (ref->type != MR_SP_REFERENCE)
        return mr_diag_set(d, MR_EINVALID,
                           "%s: %s is not a reference parameter and cannot be "
                           "chained",
                           name, left);
    if (tmod && strcmp(tmod, "missing") == 0)
        return mr_diag_set(d, MR_EINVALID,
                           "%s: :missing is not supported on chained "
                           "parameters",
                           name);
    if (refmod) {
        int ok = mr_fhir_is_resource_type(refmod);
        if (ok && ref->ntargets) {
            ok = 0;
            for (size_t i = 0; i < ref->ntargets; i++)
                ok |= !strcmp(ref->targets[i], refmod);
        }
        if (!ok)
            return mr_diag_set(d, MR_EINVALID,
                               "%s: %s is not a target type of %s", name,
                               refmod, left);
        ttype = refmod;
        tsp = mr_search_param_find(ttype, right);
    } else if (ref->ntargets == 1) {
        ttype = ref->targets[0];
        tsp = mr_search_param_find(ttype, right);
    } else {
        size_t found = 0;
        for (size_t i = 0; i < ref->ntargets; i++) {
            const struct mr_search_param *p =
                mr_search_param_find(ref->targets[i], right);
            if (usable(p, right)) {
                found++;
                ttype = ref->targets[i];
                tsp = p;
            }
        }
        if (found > 1 || (found == 0 && ref->ntargets == 0))
            return mr_diag_set(d, MR_EINVALID,
                               "%s: ambiguous chain (%s can refer to several "
                               "types with a \"%s\" parameter): name one, as "
                               "in %s:Type.%s",
                               name, left, right, left, right);
    }
    if (!ttype || !usable(tsp, right))
        return add_unknown(q, name, d);
    if ((err = add_param(q, name, tsp, tmod, value, &c, d)))
        return err;
    c->param = ref;
    c->chain = tsp;
    c->chain_type = ttype;
    return MR_OK;
}

enum mr_err mr_query_add(struct mr_query *q, const char *name,
                         const char *value, struct mr_diag *d)
{
    const char *colon, *modstr = NULL;
    const struct mr_search_param *sp;
    struct mr_q_clause *c;
    char *base;
    long num;

    if (!name || !value)
        return mr_diag_set(d, MR_EINVALID, "missing parameter name or value");
    if (strchr(name, '.') && name[0] != '_')
        return add_chain(q, name, value, d);
    colon = strchr(name, ':');
    base = mr_arena_strndup(&q->arena, name,
                            colon ? (size_t)(colon - name) : strlen(name));
    if (!base)
        return nomem(d);
    if (colon)
        modstr = colon + 1;
    if (!*base)
        return mr_diag_set(d, MR_EINVALID, "empty parameter name");

    /* Result-shaping parameters. */
    if (strcmp(base, "_format") == 0 || strcmp(base, "_pretty") == 0)
        return MR_OK;
    if (strcmp(base, "_count") == 0) {
        num = modstr ? -1 : parse_uint(value, MR_QUERY_MAX_COUNT);
        if (num < 1)
            return mr_diag_set(d, MR_EINVALID,
                               "_count: must be an integer 1..%d",
                               MR_QUERY_MAX_COUNT);
        q->count = (uint32_t)num;
        return MR_OK;
    }
    if (strcmp(base, "_offset") == 0) {
        num = modstr ? -1 : parse_uint(value, INT32_MAX);
        if (num < 0)
            return mr_diag_set(d, MR_EINVALID,
                               "_offset: must be a non-negative integer");
        q->offset = (uint32_t)num;
        return MR_OK;
    }
    if (strcmp(base, "_page_after") == 0 || strcmp(base, "_page_before") == 0) {
        /* Cursors from our own next/previous links. */
        long cur = modstr ? -1 : parse_uint(value, LONG_MAX);
        if (cur < 1)
            return mr_diag_set(d, MR_EINVALID,
                               "%s: must be a cursor from a paging link", base);
        if (base[6] == 'a')
            q->page_after = cur;
        else
            q->page_before = cur;
        return MR_OK;
    }
    if (strcmp(base, "_total") == 0 && !modstr) {
        if (!strcmp(value, "none"))
            q->total_mode = MR_TOTAL_NONE;
        else if (!strcmp(value, "accurate"))
            q->total_mode = MR_TOTAL_ACCURATE;
        else if (!strcmp(value, "estimate"))
            q->total_mode = MR_TOTAL_BOUNDED;
        else
            return mr_diag_set(d, MR_EINVALID,
                               "_total: none, estimate or accurate");
        return MR_OK;
    }
    if (strcmp(base, "_summary") == 0 && !modstr) {
        if (strcmp(value, "count") == 0) {
            q->summary_count = 1;
            return MR_OK;
        }
        if (strcmp(value, "false") == 0)
            return MR_OK;
        return mr_diag_set(d, MR_EINVALID,
                           "_summary=%s is not supported (only count and "
                           "false)",
                           value);
    }
    if (strcmp(base, "_sort") == 0)
        return modstr ? mr_diag_set(d, MR_EINVALID,
                                    "_sort: modifiers are not supported")
                      : add_sort(q, value, d);
    if (strcmp(base, "_include") == 0 || strcmp(base, "_revinclude") == 0) {
        if (modstr)
            return mr_diag_set(d, MR_EINVALID,
                               "%s:%s is not supported: only one level of "
                               "includes",
                               base, modstr);
        return add_include(q, base[1] == 'r', value, d);
    }
    if (strcmp(base, "_elements") == 0 && !modstr)
        return add_elements(q, value, d);
    if (strcmp(base, "_id") == 0 && !modstr)
        return add_special(q, name, MR_Q_ID, value, d);
    if (strcmp(base, "_lastUpdated") == 0 && !modstr)
        return add_special(q, name, MR_Q_LASTUPDATED, value, d);
    /* _has, _text, _content, _list ... are not supported: reported.
     * _tag and _security are (mr_common_params). */
    if (base[0] == '_' && strcmp(base, "_tag") && strcmp(base, "_security"))
        return add_unknown(q, name, d);

    sp = mr_search_param_find(q->type, base);
    if (!sp || sp->npaths == 0 || sp->type == MR_SP_COMPOSITE ||
        sp->type == MR_SP_SPECIAL || !strcmp(base, "phonetic"))
        return add_unknown(q, name, d);
    return add_param(q, base, sp, modstr, value, &c, d);
}

enum mr_err mr_query_parse(struct mr_query *q, const char *type, const char *qs,
                           size_t len, struct mr_diag *d)
{
    size_t pos = 0;
    enum mr_err err;

    mr_query_init(q, type);
    if (len > QUERY_MAX_LEN)
        return mr_diag_set(d, MR_ETOOBIG, "query string longer than %d bytes",
                           QUERY_MAX_LEN);
    if (!qs || !type)
        return len || !type ? mr_diag_set(d, MR_EINVALID, "no query") : MR_OK;
    if (len && qs[0] == '?')
        pos = 1;
    while (pos < len) {
        const char *piece = qs + pos;
        const char *amp = memchr(piece, '&', len - pos);
        size_t plen = amp ? (size_t)(amp - piece) : len - pos;
        const char *eq = memchr(piece, '=', plen);
        size_t nlen = eq ? (size_t)(eq - piece) : plen;
        char *name, *value = NULL;

        pos += plen + 1;
        if (plen == 0)
            continue;
        if ((err = url_decode(q, piece, nlen, &name, d)))
            return err;
        if (eq && (err = url_decode(q, eq + 1, plen - nlen - 1, &value, d)))
            return err;
        if ((err = mr_query_add(q, name, value ? value : "", d)))
            return err;
    }
    if ((q->page_after || q->page_before) &&
        (q->nsort || q->offset || (q->page_after && q->page_before)))
        return mr_diag_set(d, MR_EINVALID,
                           "_page_after/_page_before: a cursor pages in "
                           "creation order; it cannot be combined with "
                           "_sort, _offset or the other cursor");
    return MR_OK;
}
