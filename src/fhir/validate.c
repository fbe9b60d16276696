/*
 * Structural FHIR R4 validation driven by the generated tables: walk the
 * JSON object by object, look every property up in the element table of
 * the current type, and check the JSON shape, cardinality, primitive
 * format and required bindings. Stops at the first error, whose message
 * carries the FHIR path ("Patient.name[0].given[1]").
 */
#include "fhir/validate.h"

#include "core/time.h"
#include "fhir/defs.h"
#include "fhir/gen/vs.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PATH_CAP 256
#define QUOTE_MAX 64   /* bytes of a rejected value echoed in a message */
#define CODES_MAX 200  /* bytes of the allowed-code list in a message */
#define MAX_CHOICES 32 /* choice groups tracked per object */

struct vctx {
    struct mr_diag *d;
    char path[PATH_CAP];
    size_t len;
    unsigned depth;
};

/* ---- path and messages ------------------------------------------------ */

static size_t path_push(struct vctx *c, const char *fmt, ...) MR_PRINTF(2, 3);

/* Append to the path; returns the previous length for path_pop. A path
 * too long for the buffer is truncated, never overflowed. */
static size_t path_push(struct vctx *c, const char *fmt, ...)
{
    size_t old = c->len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + c->len, PATH_CAP - c->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        c->path[old] = '\0';
    else if ((size_t)n >= PATH_CAP - c->len)
        c->len = PATH_CAP - 1;
    else
        c->len += (size_t)n;
    return old;
}

/* Append ".name". The name may be any key of the input: it is cut at
 * QUOTE_MAX bytes and control characters are replaced, so a message can
 * never carry a forged line. */
static size_t path_elem(struct vctx *c, const char *name)
{
    size_t old = c->len, i;

    if (c->len && c->len < PATH_CAP - 1)
        c->path[c->len++] = '.';
    for (i = 0; name[i] != '\0' && c->len < PATH_CAP - 1; i++) {
        unsigned char ch = (unsigned char)name[i];

        if (i == QUOTE_MAX) {
            /* do not cut a UTF-8 sequence in half */
            while (c->len > old + 1 &&
                   ((unsigned char)c->path[c->len - 1] & 0xC0) == 0x80)
                c->len--;
            if (c->len > old + 1 &&
                ((unsigned char)c->path[c->len - 1] & 0xC0) == 0xC0)
                c->len--;
            path_push(c, "...");
            return old;
        }
        c->path[c->len++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    c->path[c->len] = '\0';
    return old;
}

static void path_pop(struct vctx *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

static enum mr_err fail(struct vctx *c, const char *fmt, ...) MR_PRINTF(2, 3);

/* Report "path: reason" (or just the reason at the root). */
static enum mr_err fail(struct vctx *c, const char *fmt, ...)
{
    char reason[sizeof(c->d->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (c->len == 0)
        return mr_diag_set(c->d, MR_EINVALID, "%s", reason);
    return mr_diag_set(c->d, MR_EINVALID, "%s: %s", c->path, reason);
}

/* Quote s[0..n) for a message: bounded, control characters and quotes
 * escaped so a hostile value cannot forge log lines. */
static void quote(const char *s, size_t n, char out[QUOTE_MAX + 16])
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; i < n && o < QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)ch;
        }
    }
    if (i < n) {
        /* do not cut a UTF-8 sequence in half */
        while (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
            o--;
        if (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0)
            o--;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ---- primitives ------------------------------------------------------- */

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_hex_lower(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f');
}

/* code: [^\s]+(\s[^\s]+)* */
static int valid_code(const char *s, size_t n)
{
    size_t i;

    if (is_ws(s[0]) || is_ws(s[n - 1]))
        return 0;
    for (i = 1; i < n; i++)
        if (is_ws(s[i]) && is_ws(s[i - 1]))
            return 0;
    return 1;
}

/* id: [A-Za-z0-9\-\.]{1,64} */
static int valid_id(const char *s, size_t n)
{
    size_t i;

    if (n > 64)
        return 0;
    for (i = 0; i < n; i++) {
        char ch = s[i];

        if (!(is_digit(ch) || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

/* uri, url, canonical: \S* */
static int valid_uri(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (is_ws(s[i]))
            return 0;
    return 1;
}

/* oid: urn:oid:[0-2](\.(0|[1-9][0-9]*))+ */
static int valid_oid(const char *s, size_t n)
{
    size_t i = 8, arcs = 0;

    if (n < 10 || memcmp(s, "urn:oid:", 8) != 0)
        return 0;
    if (s[i] < '0' || s[i] > '2')
        return 0;
    i++;
    while (i < n) {
        size_t start;

        if (s[i] != '.')
            return 0;
        start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start || (s[start] == '0' && i - start > 1))
            return 0;
        arcs++;
    }
    return arcs > 0;
}

/* uuid: urn:uuid:8-4-4-4-12 lower-case hex */
static int valid_uuid(const char *s, size_t n)
{
    size_t i;

    if (n != 45 || memcmp(s, "urn:uuid:", 9) != 0)
        return 0;
    for (i = 9; i < n; i++) {
        size_t k = i - 9;

        if (k == 8 || k == 13 || k == 18 || k == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_hex_lower(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* base64Binary: base64 alphabet (with '/', which the R4 regex forgets),
 * whitespace allowed, padding only at the end, length a multiple of 4. */
static int valid_base64(const char *s, size_t n)
{
    size_t i, count = 0, pad = 0;

    for (i = 0; i < n; i++) {
        char ch = s[i];

        if (is_ws(ch))
            continue;
        if (ch == '=') {
            pad++;
        } else if (pad ||
                   !(is_digit(ch) || (ch >= 'a' && ch <= 'z') ||
                     (ch >= 'A' && ch <= 'Z') || ch == '+' || ch == '/')) {
            return 0;
        }
        count++;
    }
    return count % 4 == 0 && pad <= 2;
}

static int is_type(const char *type, const char *name)
{
    return strcmp(type, name) == 0;
}

/* Check a JSON value against a primitive type. */
static enum mr_err check_primitive(struct vctx *c, const json_t *v,
                                   const char *type)
{
    char q[QUOTE_MAX + 16];
    const char *s;
    size_t n;
    int ok = 1;

    if (is_type(type, "boolean")) {
        if (!json_is_boolean(v))
            return fail(c, "must be a boolean (true or false)");
        return MR_OK;
    }
    if (is_type(type, "integer") || is_type(type, "unsignedInt") ||
        is_type(type, "positiveInt")) {
        json_int_t i;

        if (!json_is_integer(v))
            return fail(c, "must be an integer");
        i = json_integer_value(v);
        if (i < INT32_MIN || i > INT32_MAX)
            return fail(c, "%lld is out of range for %s", (long long)i, type);
        if (is_type(type, "unsignedInt") && i < 0)
            return fail(c, "%lld is not a valid unsignedInt", (long long)i);
        if (is_type(type, "positiveInt") && i < 1)
            return fail(c, "%lld is not a valid positiveInt", (long long)i);
        return MR_OK;
    }
    if (is_type(type, "decimal")) {
        if (!json_is_number(v))
            return fail(c, "must be a number");
        return MR_OK;
    }

    /* Everything else is a JSON string. */
    if (!json_is_string(v))
        return fail(c, "must be a string");
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0)
        return fail(c, "must not be an empty string");
    if (memchr(s, '\0', n) != NULL)
        return fail(c, "must not contain NUL characters");

    if (is_type(type, "code"))
        ok = valid_code(s, n);
    else if (is_type(type, "id"))
        ok = valid_id(s, n);
    else if (is_type(type, "uri") || is_type(type, "url") ||
             is_type(type, "canonical"))
        ok = valid_uri(s, n);
    else if (is_type(type, "oid"))
        ok = valid_oid(s, n);
    else if (is_type(type, "uuid"))
        ok = valid_uuid(s, n);
    else if (is_type(type, "base64Binary"))
        ok = valid_base64(s, n);
    else if (is_type(type, "date"))
        ok = mr_date_parse(s, n, MR_DATE_DATE, NULL) == MR_OK;
    else if (is_type(type, "dateTime"))
        ok = mr_date_parse(s, n, MR_DATE_DATETIME, NULL) == MR_OK;
    else if (is_type(type, "instant"))
        ok = mr_date_parse(s, n, MR_DATE_INSTANT, NULL) == MR_OK;
    else if (is_type(type, "time"))
        ok = mr_date_parse(s, n, MR_DATE_TIME, NULL) == MR_OK;
    /* string, markdown, xhtml: any non-empty UTF-8 (jansson checked) */

    if (!ok) {
        quote(s, n, q);
        return fail(c, "%s is not a valid %s", q, type);
    }
    return MR_OK;
}

/* ---- required bindings ------------------------------------------------ */

static int in_list(const char *const *list, const char *s)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static const char *const *codes_systems(const char *const *codes)
{
    size_t i;

    for (i = 0; i < mr__fhir_value_sets_count; i++)
        if (mr__fhir_value_sets[i].codes == codes)
            return mr__fhir_value_sets[i].systems;
    return NULL;
}

static enum mr_err fail_code(struct vctx *c, const char *s, size_t n,
                             const char *const *codes)
{
    char q[QUOTE_MAX + 16];
    char list[CODES_MAX + 8];
    size_t o = 0;

    list[0] = '\0';
    for (; *codes != NULL; codes++) {
        size_t len = strlen(*codes);

        if (o + len + 3 > CODES_MAX) {
            memcpy(list + o, " | ...", 7);
            break;
        }
        if (o) {
            memcpy(list + o, " | ", 3);
            o += 3;
        }
        memcpy(list + o, *codes, len + 1);
        o += len;
    }
    quote(s, n, q);
    return fail(c, "%s is not in the required value set (%s)", q, list);
}

/* A Coding under a required binding: its code is checked when its system
 * is one the value set draws on; other systems and codings without a
 * system are left alone (we cannot know what they mean). */
static enum mr_err check_coding(struct vctx *c, const json_t *coding,
                                const char *const *codes)
{
    const json_t *sys = json_object_get(coding, "system");
    const json_t *code = json_object_get(coding, "code");
    const char *const *systems = codes_systems(codes);
    enum mr_err rc = MR_OK;
    size_t old;

    if (!json_is_string(sys) || !json_is_string(code) || systems == NULL)
        return MR_OK;
    if (!in_list(systems, json_string_value(sys)))
        return MR_OK;
    if (in_list(codes, json_string_value(code)))
        return MR_OK;
    old = path_elem(c, "code");
    rc = fail_code(c, json_string_value(code), json_string_length(code), codes);
    path_pop(c, old);
    return rc;
}

static enum mr_err check_binding(struct vctx *c, const json_t *v,
                                 const struct mr_elem *e)
{
    if (is_type(e->type, "code")) {
        if (!in_list(e->codes, json_string_value(v)))
            return fail_code(c, json_string_value(v), json_string_length(v),
                             e->codes);
        return MR_OK;
    }
    if (is_type(e->type, "Coding"))
        return check_coding(c, v, e->codes);
    if (is_type(e->type, "CodeableConcept")) {
        const json_t *codings = json_object_get(v, "coding");
        size_t i;

        for (i = 0; i < json_array_size(codings); i++) {
            size_t old = path_push(c, ".coding[%zu]", i);
            enum mr_err rc =
                check_coding(c, json_array_get(codings, i), e->codes);

            path_pop(c, old);
            if (rc != MR_OK)
                return rc;
        }
    }
    return MR_OK;
}

/* ---- objects and resources -------------------------------------------- */

/* what check_object is looking at */
enum obj_kind {
    OBJ_ELEMENT,  /* a complex or backbone value */
    OBJ_RESOURCE, /* a resource (resourceType is allowed) */
    OBJ_CONTAINED /* a contained resource (no nested contained: dom-2) */
};

static enum mr_err check_resource(struct vctx *c, const json_t *v,
                                  const char *expected, enum obj_kind kind);
static enum mr_err check_object(struct vctx *c, const json_t *obj,
                                const struct mr_type *t, enum obj_kind kind);

/* One value of element e (an array item or a single value). */
static enum mr_err check_value(struct vctx *c, const json_t *v,
                               const struct mr_elem *e)
{
    const struct mr_type *t;
    enum mr_err rc;

    if (is_type(e->type, "Resource"))
        return check_resource(c, v, NULL,
                              strcmp(e->name, "contained") == 0 ? OBJ_CONTAINED
                                                                : OBJ_RESOURCE);
    if (is_type(e->type, "xhtml"))
        return check_primitive(c, v, "string");
    t = mr_fhir_type_find(e->type);
    if (t == NULL)
        return fail(c, "element of unknown type %s", e->type);
    if (t->kind == MR_KIND_RESOURCE) {
        /* an inline resource of a fixed type (Bundle.entry.response.outcome
         * is an OperationOutcome) */
        return check_resource(c, v, t->name, OBJ_RESOURCE);
    } else if (t->kind == MR_KIND_PRIMITIVE) {
        rc = check_primitive(c, v, t->name);
    } else {
        if (!json_is_object(v))
            return fail(c, "must be an object");
        rc = check_object(c, v, t, OBJ_ELEMENT);
    }
    if (rc == MR_OK && e->codes != NULL)
        rc = check_binding(c, v, e);
    return rc;
}

static int is_primitive_elem(const struct mr_elem *e)
{
    const struct mr_type *t = mr_fhir_type_find(e->type);

    return t != NULL && t->kind == MR_KIND_PRIMITIVE;
}

/* The value of property e->name; companion is the "_name" value or NULL. */
static enum mr_err check_property(struct vctx *c, const json_t *v,
                                  const struct mr_elem *e,
                                  const json_t *companion)
{
    size_t i;

    if (json_is_null(v))
        return fail(c, "must not be null");
    if (!e->many) {
        if (json_is_array(v))
            return fail(c, "must not be an array");
        return check_value(c, v, e);
    }
    if (!json_is_array(v))
        return fail(c, "must be an array");
    if (json_array_size(v) == 0)
        return fail(c, "must not be an empty array");
    for (i = 0; i < json_array_size(v); i++) {
        const json_t *item = json_array_get(v, i);
        size_t old = path_push(c, "[%zu]", i);
        enum mr_err rc;

        if (json_is_null(item)) {
            /* a null keeps the place of an item that only has an id or
             * extensions in the "_name" array */
            if (json_is_object(json_array_get(companion, i)))
                rc = MR_OK;
            else
                rc = fail(c, "must not be null");
        } else {
            rc = check_value(c, item, e);
        }
        path_pop(c, old);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* The "_name" companion of primitive element e; main is the "name" value
 * or NULL. */
static enum mr_err check_companion(struct vctx *c, const json_t *v,
                                   const struct mr_elem *e, const json_t *main)
{
    const struct mr_type *t = mr_fhir_type_find(e->type);
    size_t i;

    if (!e->many) {
        if (!json_is_object(v))
            return fail(c, "must be an object");
        return check_object(c, v, t, OBJ_ELEMENT);
    }
    if (!json_is_array(v))
        return fail(c, "must be an array");
    if (json_array_size(v) == 0)
        return fail(c, "must not be an empty array");
    if (json_is_array(main) && json_array_size(main) != json_array_size(v))
        return fail(c, "must have as many items as %s", e->name);
    for (i = 0; i < json_array_size(v); i++) {
        const json_t *item = json_array_get(v, i);
        size_t old = path_push(c, "[%zu]", i);
        enum mr_err rc = MR_OK;

        if (json_is_null(item)) {
            const json_t *m = json_array_get(main, i);

            if (m == NULL || json_is_null(m))
                rc = fail(c, "must not be null");
        } else if (!json_is_object(item)) {
            rc = fail(c, "must be an object");
        } else {
            rc = check_object(c, item, t, OBJ_ELEMENT);
        }
        path_pop(c, old);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* "name" or "_name" present in obj */
static int present(const json_t *obj, const char *name)
{
    char key[128];
    int n;

    if (json_object_get(obj, name) != NULL)
        return 1;
    n = snprintf(key, sizeof(key), "_%s", name);
    return n > 0 && (size_t)n < sizeof(key) &&
           json_object_get(obj, key) != NULL;
}

static enum mr_err check_required(struct vctx *c, const json_t *obj,
                                  const struct mr_type *t)
{
    size_t i, j;

    for (i = 0; i < t->nelems; i++) {
        const struct mr_elem *e = &t->elems[i];
        int found = 0;
        size_t old;
        enum mr_err rc;

        if (e->min == 0)
            continue;
        if (e->choice == NULL) {
            found = present(obj, e->name);
        } else {
            /* the whole choice group once, at its first variant */
            for (j = 0; j < i; j++)
                if (t->elems[j].choice != NULL &&
                    strcmp(t->elems[j].choice, e->choice) == 0)
                    break;
            if (j < i)
                continue;
            for (j = i; j < t->nelems && !found; j++)
                if (t->elems[j].choice != NULL &&
                    strcmp(t->elems[j].choice, e->choice) == 0)
                    found = present(obj, t->elems[j].name);
        }
        if (found)
            continue;
        old = e->choice ? path_push(c, ".%s[x]", e->choice)
                        : path_elem(c, e->name);
        rc = fail(c, "required element is missing");
        path_pop(c, old);
        return rc;
    }
    return MR_OK;
}

static enum mr_err check_object(struct vctx *c, const json_t *obj,
                                const struct mr_type *t, enum obj_kind kind)
{
    const struct mr_elem *choices[MAX_CHOICES];
    size_t nchoices = 0, i;
    const char *key;
    json_t *val;
    enum mr_err rc = MR_OK;

    if (++c->depth > MR_FHIR_MAX_DEPTH) {
        rc = fail(c, "too deeply nested");
        goto done;
    }
    if (json_object_size(obj) == 0) {
        rc = fail(c, "must not be an empty object");
        goto done;
    }
    json_object_foreach((json_t *)obj, key, val)
    {
        const char *name = key[0] == '_' ? key + 1 : key;
        const struct mr_elem *e;
        size_t old;

        if (kind != OBJ_ELEMENT && strcmp(key, "resourceType") == 0)
            continue;
        e = mr_fhir_elem_find(t, name);
        old = path_elem(c, key);
        if (e == NULL || (key[0] == '_' && !is_primitive_elem(e))) {
            rc = fail(c, "unknown element");
        } else if (kind == OBJ_CONTAINED && strcmp(key, "contained") == 0) {
            rc = fail(c, "a contained resource must not contain resources");
        } else if (key[0] == '_') {
            rc = check_companion(c, val, e, json_object_get(obj, name));
        } else {
            char ckey[128];
            int n = snprintf(ckey, sizeof(ckey), "_%s", name);
            const json_t *comp = n > 0 && (size_t)n < sizeof(ckey)
                                     ? json_object_get(obj, ckey)
                                     : NULL;

            rc = check_property(c, val, e, comp);
        }
        if (rc == MR_OK && e->choice != NULL) {
            for (i = 0; i < nchoices; i++) {
                if (strcmp(choices[i]->choice, e->choice) != 0)
                    continue;
                if (choices[i] != e)
                    rc = fail(c,
                              "only one of %s[x] may be present "
                              "(also %s)",
                              e->choice, choices[i]->name);
                break;
            }
            if (i == nchoices && nchoices < MAX_CHOICES)
                choices[nchoices++] = e;
        }
        path_pop(c, old);
        if (rc != MR_OK)
            goto done;
    }
    rc = check_required(c, obj, t);
done:
    c->depth--;
    return rc;
}

static enum mr_err check_resource(struct vctx *c, const json_t *v,
                                  const char *expected, enum obj_kind kind)
{
    const json_t *rt;
    const char *name;
    char q[QUOTE_MAX + 16];
    size_t old, root;
    enum mr_err rc;

    if (!json_is_object(v))
        return fail(c, c->len ? "must be a resource (a JSON object)"
                              : "a resource must be a JSON object");
    rt = json_object_get(v, "resourceType");
    old = path_elem(c, "resourceType");
    if (rt == NULL)
        rc = fail(c, "required element is missing");
    else if (!json_is_string(rt))
        rc = fail(c, "must be a string");
    else if (!mr_fhir_is_resource_type(json_string_value(rt))) {
        quote(json_string_value(rt), json_string_length(rt), q);
        rc = fail(c, "%s is not a FHIR R4 resource type", q);
    } else if (expected != NULL &&
               strcmp(expected, json_string_value(rt)) != 0) {
        quote(json_string_value(rt), json_string_length(rt), q);
        rc = fail(c, "expected \"%s\", got %s", expected, q);
    } else
        rc = MR_OK;
    path_pop(c, old);
    if (rc != MR_OK)
        return rc;

    name = json_string_value(rt);
    /* a top-level resource names the root of every path */
    root = c->len == 0 ? path_push(c, "%s", name) : c->len;
    rc = check_object(c, v, mr_fhir_type_find(name), kind);
    path_pop(c, root);
    return rc;
}

enum mr_err mr_fhir_validate(const json_t *res, const char *expected_type,
                             struct mr_diag *d)
{
    struct vctx c;

    c.d = d;
    c.len = 0;
    c.path[0] = '\0';
    c.depth = 0;
    if (res == NULL)
        return fail(&c, "no resource");
    return check_resource(&c, res, expected_type, OBJ_RESOURCE);
}
