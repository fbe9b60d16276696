/*
 * Search index extraction: walk each compiled search-parameter path through
 * the resource's JSON and turn the values found into index entries, by
 * parameter type and the FHIR type of the value.
 */
#include "fhir/index.h"
#include "core/buf.h"
#include "core/text.h"
#include "core/time.h"

#include <math.h>
#include <string.h>

/* Longest string value indexed; longer text is cut (at a UTF-8 boundary)
 * so one huge narrative cannot bloat the index. */
#define IX_MAX_STRING 2048

void mr_ix_init(struct mr_ix *ix)
{
    ix->v = NULL;
    ix->n = ix->cap = 0;
    ix->arena = (struct mr_arena)MR_ARENA_INIT;
}

void mr_ix_reset(struct mr_ix *ix)
{
    ix->n = 0;
    mr_arena_release(&ix->arena);
}

void mr_ix_release(struct mr_ix *ix)
{
    mr_free(ix->v);
    ix->v = NULL;
    ix->n = ix->cap = 0;
    mr_arena_release(&ix->arena);
}

enum mr_err mr_ix_add(struct mr_ix *ix, const struct mr_ix_entry *e)
{
    struct mr_ix_entry c = *e;

    if (ix->n == ix->cap) {
        size_t ncap = ix->cap ? ix->cap * 2 : 32;
        struct mr_ix_entry *v = mr_realloc(ix->v, ncap * sizeof(*v));
        if (!v)
            return MR_ENOMEM;
        ix->v = v;
        ix->cap = ncap;
    }
    if (e->s1 && !(c.s1 = mr_arena_strdup(&ix->arena, e->s1)))
        return MR_ENOMEM;
    if (e->s2 && !(c.s2 = mr_arena_strdup(&ix->arena, e->s2)))
        return MR_ENOMEM;
    ix->v[ix->n++] = c;
    return MR_OK;
}

/* ---- extraction --------------------------------------------------------- */

struct ex {
    struct mr_ix *ix;
    const struct mr_search_param *sp;
    const struct mr_sp_path *path;
    size_t first; /* entries of this parameter start here (for dedup) */
    struct mr_buf tmp;
};

static int streq_opt(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int same_entry(const struct mr_ix_entry *a, const struct mr_ix_entry *b)
{
    if (a->kind != b->kind || a->key != b->key)
        return 0;
    switch (a->kind) {
    case MR_IX_DATE:
        return a->lo == b->lo && a->hi == b->hi;
    case MR_IX_NUMBER:
        return a->n == b->n;
    case MR_IX_QUANTITY:
        return a->n == b->n && streq_opt(a->s1, b->s1) &&
               streq_opt(a->s2, b->s2);
    default:
        return streq_opt(a->s1, b->s1) && streq_opt(a->s2, b->s2);
    }
}

static enum mr_err emit(struct ex *x, struct mr_ix_entry *e)
{
    e->key = x->sp->key;
    for (size_t i = x->first; i < x->ix->n; i++) {
        if (same_entry(&x->ix->v[i], e))
            return MR_OK;
    }
    return mr_ix_add(x->ix, e);
}

static const char *jstr(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Cut n to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* A STRING entry: s1 folded, s2 as written. Empty text is skipped. */
static enum mr_err emit_string_n(struct ex *x, const char *s, size_t n)
{
    struct mr_ix_entry e = {0};
    char *exact;
    enum mr_err err;

    n = utf8_cut(s, n, IX_MAX_STRING);
    mr_buf_reset(&x->tmp);
    err = mr_text_fold(s, n, &x->tmp);
    if (err)
        return err;
    if (x->tmp.len == 0)
        return MR_OK;
    exact = mr_arena_strndup(&x->ix->arena, s, n);
    if (!exact)
        return MR_ENOMEM;
    e.kind = MR_IX_STRING;
    e.s1 = x->tmp.ptr;
    e.s2 = exact;
    return emit(x, &e);
}

static enum mr_err emit_string(struct ex *x, const char *s)
{
    if (!s)
        return MR_OK;
    return emit_string_n(x, s, strlen(s));
}

/* Every string in a string or an array of strings. */
static enum mr_err emit_strings(struct ex *x, const json_t *v)
{
    size_t i;
    const json_t *it;
    enum mr_err err;

    if (json_is_string(v))
        return emit_string(x, json_string_value(v));
    json_array_foreach(v, i, it)
    {
        if (json_is_string(it) && (err = emit_string(x, json_string_value(it))))
            return err;
    }
    return MR_OK;
}

static enum mr_err emit_token(struct ex *x, const char *sys, const char *code)
{
    struct mr_ix_entry e = {0};

    if (!code || !*code)
        return MR_OK;
    e.kind = MR_IX_TOKEN;
    e.s1 = sys && *sys ? sys : NULL;
    e.s2 = code;
    return emit(x, &e);
}

/*
 * Digits of a value that looks like a telephone number (digits and the
 * usual punctuation only). Phone searches compare these, so
 * "+1 (555) 010-0100" and "15550100100" find each other; the query side
 * (search.c) normalises in the same way.
 */
static int phone_digits(const char *s, struct mr_buf *out)
{
    int ndig = 0;

    mr_buf_reset(out);
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            if (mr_buf_addc(out, *s))
                return -1;
            ndig++;
        } else if (!strchr("+-(). /", *s)) {
            return 0;
        }
    }
    return ndig;
}

static enum mr_err emit_contactpoint_value(struct ex *x, const char *value)
{
    enum mr_err err;
    int nd;

    if (!value)
        return MR_OK;
    if ((err = emit_token(x, NULL, value)))
        return err;
    nd = phone_digits(value, &x->tmp);
    if (nd < 0)
        return MR_ENOMEM;
    if (nd > 0 && strcmp(x->tmp.ptr, value) != 0) {
        char *digits = mr_arena_strdup(&x->ix->arena, x->tmp.ptr);
        if (!digits)
            return MR_ENOMEM;
        return emit_token(x, NULL, digits);
    }
    return MR_OK;
}

static enum mr_err emit_coding(struct ex *x, const json_t *coding)
{
    enum mr_err err =
        emit_token(x, jstr(coding, "system"), jstr(coding, "code"));
    if (err)
        return err;
    /* :text on a Coding searches its display. */
    return emit_string(x, jstr(coding, "display"));
}

static enum mr_err emit_date_text(struct ex *x, const char *s)
{
    struct mr_daterange r;
    struct mr_ix_entry e = {0};

    /* Invalid dates are the validator's business: nothing to index. */
    if (!s || mr_date_parse(s, strlen(s), MR_DATE_DATETIME, &r) != MR_OK)
        return MR_OK;
    e.kind = MR_IX_DATE;
    e.lo = r.lo;
    e.hi = r.hi;
    return emit(x, &e);
}

static enum mr_err emit_period(struct ex *x, const json_t *v)
{
    const char *start = jstr(v, "start"), *end = jstr(v, "end");
    struct mr_daterange r;
    struct mr_ix_entry e = {0};

    if (!start && !end)
        return MR_OK;
    e.kind = MR_IX_DATE;
    e.lo = INT64_MIN;
    e.hi = INT64_MAX;
    if (start) {
        if (mr_date_parse(start, strlen(start), MR_DATE_DATETIME, &r))
            return MR_OK;
        e.lo = r.lo;
    }
    if (end) {
        if (mr_date_parse(end, strlen(end), MR_DATE_DATETIME, &r))
            return MR_OK;
        e.hi = r.hi;
    }
    if (e.lo >= e.hi)
        return MR_OK;
    return emit(x, &e);
}

/* "Patient/123/_history/2" -> "Patient/123" (length of the kept part). */
static size_t strip_history(const char *ref)
{
    size_t n = strlen(ref);
    const char *h;

    for (h = ref; (h = strstr(h, "/_history/")) != NULL; h++) {
        const char *p = h + strlen("/_history/");
        if (*p && strspn(p, "0123456789abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ-.") == strlen(p))
            return (size_t)(h - ref);
    }
    return n;
}

/* The resource type a reference points to: the segment before the id. */
static int ref_type_is(const char *ref, size_t n, const char *type)
{
    size_t tl = strlen(type);
    size_t slash, start;

    /* find last '/' within [0, n) */
    for (slash = n; slash > 0 && ref[slash - 1] != '/'; slash--)
        ;
    if (slash == 0)
        return 0;
    slash--; /* index of the last '/' */
    for (start = slash; start > 0 && ref[start - 1] != '/'; start--)
        ;
    return slash - start == tl && memcmp(ref + start, type, tl) == 0;
}

static enum mr_err emit_reference(struct ex *x, const json_t *v)
{
    const char *ref = jstr(v, "reference");
    const char *type = jstr(v, "type");
    struct mr_ix_entry e = {0};
    size_t n;
    char *s;

    /* Local ("#contained") and identifier-only references are not
     * searchable as Type/id. */
    if (!ref || !*ref || ref[0] == '#')
        return MR_OK;
    n = strip_history(ref);
    if (x->path->ref_type) {
        int ok = type ? strcmp(type, x->path->ref_type) == 0
                      : ref_type_is(ref, n, x->path->ref_type);
        if (!ok)
            return MR_OK;
    }
    s = mr_arena_strndup(&x->ix->arena, ref, n);
    if (!s)
        return MR_ENOMEM;
    e.kind = MR_IX_REFERENCE;
    e.s1 = s;
    return emit(x, &e);
}

static enum mr_err emit_quantity(struct ex *x, const json_t *v, int money)
{
    const json_t *val = json_object_get(v, "value");
    struct mr_ix_entry e = {0};
    const char *code, *unit;
    enum mr_err err;

    if (!json_is_number(val))
        return MR_OK;
    e.kind = MR_IX_QUANTITY;
    e.n = json_number_value(val);
    if (!isfinite(e.n))
        return MR_OK;
    if (money) {
        code = jstr(v, "currency");
        e.s1 = code ? "urn:iso:std:iso:4217" : NULL;
        e.s2 = code;
        return emit(x, &e);
    }
    code = jstr(v, "code");
    unit = jstr(v, "unit");
    e.s1 = jstr(v, "system");
    e.s2 = code ? code : unit;
    if ((err = emit(x, &e)))
        return err;
    /* "5.4||mg" matches the code or the unit: index the unit too. */
    if (code && unit && strcmp(code, unit) != 0) {
        e.s1 = NULL;
        e.s2 = unit;
        return emit(x, &e);
    }
    return MR_OK;
}

static int is_string_type(const char *t)
{
    static const char *const names[] = {
        "string", "markdown",  "code", "id",   "uri",
        "url",    "canonical", "oid",  "uuid", NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcmp(t, names[i]) == 0)
            return 1;
    return 0;
}

static enum mr_err emit_value_string(struct ex *x, const json_t *v,
                                     const char *t)
{
    enum mr_err err;

    if (is_string_type(t))
        return json_is_string(v) ? emit_string(x, json_string_value(v)) : MR_OK;
    if (!json_is_object(v))
        return MR_OK;
    if (strcmp(t, "HumanName") == 0) {
        const json_t *given = json_object_get(v, "given");
        const char *family = jstr(v, "family");
        size_t i;
        const json_t *it;

        if ((err = emit_string(x, family)) || (err = emit_strings(x, given)) ||
            (err = emit_strings(x, json_object_get(v, "prefix"))) ||
            (err = emit_strings(x, json_object_get(v, "suffix"))) ||
            (err = emit_string(x, jstr(v, "text"))))
            return err;
        /* The full name "given... family", so "name=john smith" finds
         * John Smith by prefix as well. */
        struct mr_buf full = MR_BUF_INIT(IX_MAX_STRING);
        size_t parts = 0;
        json_array_foreach(given, i, it)
        {
            if (!json_is_string(it))
                continue;
            if ((parts && (err = mr_buf_addc(&full, ' '))) ||
                (err = mr_buf_adds(&full, json_string_value(it)))) {
                mr_buf_release(&full);
                return err == MR_ETOOBIG ? MR_OK : err;
            }
            parts++;
        }
        if (parts && family) {
            err = mr_buf_addc(&full, ' ');
            if (!err)
                err = mr_buf_adds(&full, family);
            if (!err)
                err = emit_string_n(x, full.ptr, full.len);
            if (err == MR_ETOOBIG)
                err = MR_OK;
        }
        mr_buf_release(&full);
        return err;
    }
    if (strcmp(t, "Address") == 0) {
        static const char *const parts[] = {
            "city", "district", "state", "postalCode", "country", "text", NULL};
        if ((err = emit_strings(x, json_object_get(v, "line"))))
            return err;
        for (size_t i = 0; parts[i]; i++)
            if ((err = emit_string(x, jstr(v, parts[i]))))
                return err;
        return MR_OK;
    }
    return MR_OK;
}

static enum mr_err emit_value_token(struct ex *x, const json_t *v,
                                    const char *t)
{
    enum mr_err err;
    size_t i;
    const json_t *it;

    if (json_is_boolean(v))
        return emit_token(x, NULL, json_is_true(v) ? "true" : "false");
    if (json_is_string(v))
        return is_string_type(t) ? emit_token(x, NULL, json_string_value(v))
                                 : MR_OK;
    if (!json_is_object(v))
        return MR_OK;
    if (strcmp(t, "Coding") == 0)
        return emit_coding(x, v);
    if (strcmp(t, "CodeableConcept") == 0) {
        json_array_foreach(json_object_get(v, "coding"), i, it)
        {
            if (json_is_object(it) && (err = emit_coding(x, it)))
                return err;
        }
        /* :text searches the concept's text (as a STRING entry). */
        return emit_string(x, jstr(v, "text"));
    }
    if (strcmp(t, "Identifier") == 0)
        return emit_token(x, jstr(v, "system"), jstr(v, "value"));
    if (strcmp(t, "ContactPoint") == 0)
        return emit_contactpoint_value(x, jstr(v, "value"));
    return MR_OK;
}

static enum mr_err emit_value_date(struct ex *x, const json_t *v, const char *t)
{
    size_t i;
    const json_t *it;
    enum mr_err err;

    if (strcmp(t, "date") == 0 || strcmp(t, "dateTime") == 0 ||
        strcmp(t, "instant") == 0)
        return json_is_string(v) ? emit_date_text(x, json_string_value(v))
                                 : MR_OK;
    if (!json_is_object(v))
        return MR_OK;
    if (strcmp(t, "Period") == 0)
        return emit_period(x, v);
    if (strcmp(t, "Timing") == 0) {
        json_array_foreach(json_object_get(v, "event"), i, it)
        {
            if (json_is_string(it) &&
                (err = emit_date_text(x, json_string_value(it))))
                return err;
        }
    }
    return MR_OK;
}

/* Emit the entries of one value found at the end of a path. */
static enum mr_err emit_value(struct ex *x, const json_t *v)
{
    const char *t = x->path->type;
    struct mr_ix_entry e = {0};

    switch (x->sp->type) {
    case MR_SP_STRING:
        return emit_value_string(x, v, t);
    case MR_SP_TOKEN:
        return emit_value_token(x, v, t);
    case MR_SP_DATE:
        return emit_value_date(x, v, t);
    case MR_SP_REFERENCE:
        if (strcmp(t, "Reference") == 0)
            return json_is_object(v) ? emit_reference(x, v) : MR_OK;
        if (json_is_string(v) && is_string_type(t)) {
            e.kind = MR_IX_REFERENCE;
            e.s1 = json_string_value(v);
            return emit(x, &e);
        }
        return MR_OK;
    case MR_SP_NUMBER:
        if (!json_is_number(v))
            return MR_OK;
        e.kind = MR_IX_NUMBER;
        e.n = json_number_value(v);
        return isfinite(e.n) ? emit(x, &e) : MR_OK;
    case MR_SP_QUANTITY:
        if (!json_is_object(v))
            return MR_OK;
        if (strcmp(t, "Money") == 0)
            return emit_quantity(x, v, 1);
        if (strcmp(t, "Quantity") == 0 || strcmp(t, "Age") == 0 ||
            strcmp(t, "Duration") == 0 || strcmp(t, "Distance") == 0 ||
            strcmp(t, "Count") == 0 || strcmp(t, "SimpleQuantity") == 0 ||
            strcmp(t, "MoneyQuantity") == 0)
            return emit_quantity(x, v, 0);
        return MR_OK;
    case MR_SP_URI:
        if (!json_is_string(v) || !is_string_type(t))
            return MR_OK;
        e.kind = MR_IX_URI;
        e.s1 = json_string_value(v);
        return *e.s1 ? emit(x, &e) : MR_OK;
    default:
        return MR_OK;
    }
}

static int where_ok(const struct mr_sp_path *p, const json_t *v)
{
    const json_t *w;

    if (!p->where_key)
        return 1;
    w = json_object_get(v, p->where_key);
    if (json_is_string(w))
        return strcmp(json_string_value(w), p->where_value) == 0;
    if (json_is_boolean(w))
        return strcmp(json_is_true(w) ? "true" : "false", p->where_value) == 0;
    return 0;
}

/* Follow path (the rest of it, '.'-separated) from v, flattening arrays at
 * every step. Recursion is bounded by the number of path segments. */
static enum mr_err walk(struct ex *x, const json_t *v, const char *path)
{
    size_t i;
    const json_t *it;
    enum mr_err err;

    if (json_is_array(v)) {
        json_array_foreach(v, i, it)
        {
            /* Arrays directly in arrays do not occur in FHIR JSON; do not
             * descend into them. */
            if (json_is_array(it))
                continue;
            if ((err = walk(x, it, path)))
                return err;
        }
        return MR_OK;
    }
    if (!*path)
        return where_ok(x->path, v) ? emit_value(x, v) : MR_OK;
    if (!json_is_object(v))
        return MR_OK;

    const char *dot = strchr(path, '.');
    size_t seg = dot ? (size_t)(dot - path) : strlen(path);
    char name[128];
    if (seg == 0 || seg >= sizeof(name))
        return MR_OK;
    memcpy(name, path, seg);
    name[seg] = '\0';
    const json_t *child = json_object_get(v, name);
    if (!child)
        return MR_OK;
    return walk(x, child, dot ? dot + 1 : "");
}

enum mr_err mr_fhir_extract(const json_t *res, const char *type,
                            struct mr_ix *ix)
{
    const struct mr_search_param *first;
    size_t count;
    struct ex x;
    enum mr_err err = MR_OK;

    if (!json_is_object(res) || !type)
        return MR_EINVALID;
    mr_search_params_of(type, &first, &count);
    x.ix = ix;
    mr_buf_init(&x.tmp, IX_MAX_STRING * 4);
    for (size_t i = 0; i < count && !err; i++) {
        const struct mr_search_param *sp = &first[i];
        /* "phonetic" is defined over the same paths as "name"; without a
         * phonetic algorithm its entries would only duplicate name's, so
         * it is not indexed (and the query parser reports it unknown). */
        if (!strcmp(sp->code, "phonetic"))
            continue;
        x.sp = sp;
        x.first = ix->n;
        for (size_t k = 0; k < sp->npaths && !err; k++) {
            x.path = &sp->paths[k];
            err = walk(&x, res, x.path->path);
        }
    }
    for (size_t i = 0; i < mr_common_params_count && !err; i++) {
        x.sp = &mr_common_params[i];
        x.first = ix->n;
        x.path = &mr_common_params[i].paths[0];
        err = walk(&x, res, x.path->path);
    }
    mr_buf_release(&x.tmp);
    return err;
}
