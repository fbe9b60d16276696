#include "fhir/jsontext.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Index just past the string starting at s[i] == '"', or len. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

/* Index just past the value starting at s[i] (no leading whitespace). */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    int depth = 0;

    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
               !is_ws(s[i]))
            i++;
        return i;
    }
    for (; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, len, i) - 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return len;
}

enum mr_err mr_json_minify(const char *src, size_t len, struct mr_buf *out)
{
    size_t i = 0, start;
    enum mr_err err;

    while (i < len) {
        if (is_ws(src[i])) {
            i++;
            continue;
        }
        start = i;
        if (src[i] == '"') {
            i = skip_string(src, len, i);
        } else {
            while (i < len && !is_ws(src[i]) && src[i] != '"')
                i++;
        }
        err = mr_buf_add(out, src + start, i - start);
        if (err)
            return err;
    }
    return MR_OK;
}

struct member {
    const char *key; /* raw key text including quotes */
    size_t keylen;
    const char *val;
    size_t vallen;
};

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

/* Compare a raw quoted key with a plain name, decoding escapes: "\u0069d"
 * is the key "id" and must be treated as such. Names are ASCII, so an
 * escape of anything above U+007F never matches. */
static int key_is(const struct member *m, const char *name)
{
    const char *k = m->key + 1, *end = m->key + m->keylen - 1;
    int c, h, i;

    while (k < end) {
        if (*k != '\\') {
            c = (unsigned char)*k++;
        } else if (k + 1 < end && k[1] == 'u') {
            if (end - k < 6)
                return 0;
            c = 0;
            for (i = 2; i < 6; i++) {
                h = hexval(k[i]);
                if (h < 0)
                    return 0;
                c = c * 16 + h;
            }
            k += 6;
        } else if (k + 1 < end) {
            switch (k[1]) {
            case '"':
                c = '"';
                break;
            case '\\':
                c = '\\';
                break;
            case '/':
                c = '/';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            default:
                return 0;
            }
            k += 2;
        } else {
            return 0;
        }
        if (c == 0 || (unsigned char)*name != c)
            return 0;
        name++;
    }
    return *name == '\0';
}

static enum mr_err add_over(struct mr_buf *out, int *first, const char *name,
                            const json_t *v)
{
    enum mr_err err;
    char *text;

    if (json_is_null(v))
        return MR_OK;
    text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                             JSON_REAL_PRECISION(17));
    if (!text)
        return MR_ENOMEM;
    err = mr_buf_adds(out, *first ? "\"" : ",\"");
    if (!err)
        err = mr_buf_adds(out, name);
    if (!err)
        err = mr_buf_adds(out, "\":");
    if (!err)
        err = mr_buf_adds(out, text);
    free(text);
    *first = 0;
    return err;
}

static enum mr_err add_member(struct mr_buf *out, int *first,
                              const struct member *m)
{
    enum mr_err err;

    if (!*first) {
        err = mr_buf_addc(out, ',');
        if (err)
            return err;
    }
    *first = 0;
    err = mr_buf_add(out, m->key, m->keylen);
    if (!err)
        err = mr_buf_addc(out, ':');
    if (!err)
        err = mr_json_minify(m->val, m->vallen, out);
    return err;
}

#define MAX_MEMBERS 512

enum mr_err mr_json_splice(const char *src, size_t len, const json_t *over,
                           struct mr_buf *out)
{
    static const char *const lead[] = {"resourceType", "id", "meta"};
    struct member *mem;
    size_t n = 0, i, j, k;
    int first = 1;
    enum mr_err err = MR_OK;
    const char *name;
    json_t *v;

    i = skip_ws(src, len, 0);
    if (i >= len || src[i] != '{')
        return MR_EJSON;
    mem = mr_malloc(sizeof(*mem) * MAX_MEMBERS);
    if (!mem)
        return MR_ENOMEM;
    i = skip_ws(src, len, i + 1);
    while (i < len && src[i] != '}') {
        if (src[i] != '"' || n >= MAX_MEMBERS) {
            err = n >= MAX_MEMBERS ? MR_ETOOBIG : MR_EJSON;
            goto done;
        }
        mem[n].key = src + i;
        j = skip_string(src, len, i);
        mem[n].keylen = j - i;
        i = skip_ws(src, len, j);
        if (i >= len || src[i] != ':') {
            err = MR_EJSON;
            goto done;
        }
        i = skip_ws(src, len, i + 1);
        mem[n].val = src + i;
        j = skip_value(src, len, i);
        mem[n].vallen = j - i;
        n++;
        i = skip_ws(src, len, j);
        if (i < len && src[i] == ',')
            i = skip_ws(src, len, i + 1);
    }

    err = mr_buf_addc(out, '{');
    for (k = 0; !err && k < 3; k++) {
        v = over ? json_object_get(over, lead[k]) : NULL;
        if (v) {
            err = add_over(out, &first, lead[k], v);
            continue;
        }
        for (j = 0; j < n; j++)
            if (key_is(&mem[j], lead[k]))
                break;
        if (j < n)
            err = add_member(out, &first, &mem[j]);
    }
    for (j = 0; !err && j < n; j++) {
        int skip = 0;
        for (k = 0; k < 3; k++)
            if (key_is(&mem[j], lead[k]))
                skip = 1;
        if (skip)
            continue;
        const char *oname = NULL;
        json_t *ov = NULL;
        if (over) {
            /* json_object_foreach leaves its value set after the last
             * member, so remember the match explicitly. */
            json_object_foreach((json_t *)over, name, v)
            {
                if (key_is(&mem[j], name)) {
                    oname = name;
                    ov = v;
                    break;
                }
            }
        }
        if (ov)
            err = add_over(out, &first, oname, ov);
        else
            err = add_member(out, &first, &mem[j]);
    }
    if (over) {
        json_object_foreach((json_t *)over, name, v)
        {
            if (err)
                break;
            for (k = 0; k < 3; k++)
                if (!strcmp(name, lead[k]))
                    break;
            if (k < 3)
                continue;
            for (j = 0; j < n; j++)
                if (key_is(&mem[j], name))
                    break;
            if (j == n)
                err = add_over(out, &first, name, v);
        }
    }
    if (!err)
        err = mr_buf_addc(out, '}');
done:
    mr_free(mem);
    return err;
}

/* Find member `name` of the object starting at src[i] ('{'); returns the
 * index of its value, or len if absent. */
static size_t member_value(const char *src, size_t len, size_t i,
                           const char *name, size_t *end)
{
    struct member m;
    size_t j;

    i = skip_ws(src, len, i + 1);
    while (i < len && src[i] != '}') {
        if (src[i] != '"')
            return len;
        m.key = src + i;
        j = skip_string(src, len, i);
        m.keylen = j - i;
        i = skip_ws(src, len, j);
        if (i >= len || src[i] != ':')
            return len;
        i = skip_ws(src, len, i + 1);
        j = skip_value(src, len, i);
        if (key_is(&m, name)) {
            *end = j;
            return i;
        }
        i = skip_ws(src, len, j);
        if (i < len && src[i] == ',')
            i = skip_ws(src, len, i + 1);
    }
    return len;
}

enum mr_err mr_json_bundle_resources(const char *src, size_t len,
                                     struct mr_span *out, size_t max, size_t *n)
{
    size_t i, end = 0, vend = 0, count = 0, v;

    i = skip_ws(src, len, 0);
    if (i >= len || src[i] != '{')
        return MR_EJSON;
    i = member_value(src, len, i, "entry", &end);
    if (i >= len || src[i] != '[') {
        *n = 0;
        return MR_OK;
    }
    i = skip_ws(src, len, i + 1);
    while (i < end && src[i] != ']') {
        size_t e = skip_value(src, len, i);
        if (count < max) {
            out[count].ptr = NULL;
            out[count].len = 0;
            if (src[i] == '{') {
                v = member_value(src, len, i, "resource", &vend);
                if (v < len) {
                    out[count].ptr = src + v;
                    out[count].len = vend - v;
                }
            }
        }
        count++;
        i = skip_ws(src, len, e);
        if (i < len && src[i] == ',')
            i = skip_ws(src, len, i + 1);
    }
    *n = count;
    return MR_OK;
}

static enum mr_err add_escaped(struct mr_buf *out, const char *s)
{
    enum mr_err err = mr_buf_addc(out, '"');

    for (; !err && *s; s++) {
        if (*s == '"' || *s == '\\') {
            err = mr_buf_addc(out, '\\');
            if (!err)
                err = mr_buf_addc(out, *s);
        } else if ((unsigned char)*s < 0x20) {
            err = mr_buf_addf(out, "\\u%04x", (unsigned char)*s);
        } else {
            err = mr_buf_addc(out, *s);
        }
    }
    if (!err)
        err = mr_buf_addc(out, '"');
    return err;
}

enum mr_err
mr_json_replace_strings(const char *src, size_t len,
                        const char *(*repl)(void *ctx, const char *s, size_t n),
                        void *ctx, struct mr_buf *out)
{
    size_t i = 0, start;
    enum mr_err err;
    const char *r;

    while (i < len) {
        if (is_ws(src[i])) {
            i++;
            continue;
        }
        start = i;
        if (src[i] == '"') {
            i = skip_string(src, len, i);
            r = i - start >= 2 ? repl(ctx, src + start + 1, i - start - 2)
                               : NULL;
            if (r) {
                err = add_escaped(out, r);
                if (err)
                    return err;
                continue;
            }
        } else {
            while (i < len && !is_ws(src[i]) && src[i] != '"')
                i++;
        }
        err = mr_buf_add(out, src + start, i - start);
        if (err)
            return err;
    }
    return MR_OK;
}

int mr_json_member_string(const char *src, size_t len, const char *name,
                          char *out, size_t cap)
{
    size_t i = skip_ws(src, len, 0), end = 0, v;

    if (i >= len || src[i] != '{' || cap == 0)
        return -1;
    v = member_value(src, len, i, name, &end);
    if (v >= len || src[v] != '"' || end - v < 2 || end - v - 2 >= cap)
        return -1;
    memcpy(out, src + v + 1, end - v - 2);
    out[end - v - 2] = '\0';
    return 0;
}
