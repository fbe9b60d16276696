#include "core/buf.h"
#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

char mr_buf_empty[1];

void mr_buf_init(struct mr_buf *b, size_t max)
{
    b->ptr = mr_buf_empty;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void mr_buf_release(struct mr_buf *b)
{
    if (b->cap)
        mr_free(b->ptr);
    b->ptr = mr_buf_empty;
    b->len = b->cap = 0;
}

char *mr_buf_detach(struct mr_buf *b, size_t *len)
{
    char *p;

    if (len)
        *len = b->len;
    if (!b->cap)
        return mr_strdup("");
    p = b->ptr;
    b->ptr = mr_buf_empty;
    b->len = b->cap = 0;
    return p;
}

void mr_buf_reset(struct mr_buf *b)
{
    b->len = 0;
    b->ptr[0] = '\0';
}

enum mr_err mr_buf_grow(struct mr_buf *b, size_t extra)
{
    size_t want, ncap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return MR_ETOOBIG;
    want = b->len + extra + 1;
    if (want <= b->cap)
        return MR_OK;
    ncap = b->cap ? b->cap : 64;
    while (ncap < want)
        ncap = ncap * 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    p = mr_realloc(b->cap ? b->ptr : NULL, ncap);
    if (!p)
        return MR_ENOMEM;
    if (!b->cap)
        p[0] = '\0';
    b->ptr = p;
    b->cap = ncap;
    return MR_OK;
}

enum mr_err mr_buf_add(struct mr_buf *b, const void *p, size_t n)
{
    enum mr_err err = mr_buf_grow(b, n);
    if (err)
        return err;
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return MR_OK;
}

enum mr_err mr_buf_adds(struct mr_buf *b, const char *s)
{
    return mr_buf_add(b, s, strlen(s));
}

enum mr_err mr_buf_addc(struct mr_buf *b, char c)
{
    return mr_buf_add(b, &c, 1);
}

enum mr_err mr_buf_vaddf(struct mr_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;
    enum mr_err err;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return MR_EINTERNAL;
    err = mr_buf_grow(b, (size_t)n);
    if (err)
        return err;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MR_OK;
}

enum mr_err mr_buf_addf(struct mr_buf *b, const char *fmt, ...)
{
    va_list ap;
    enum mr_err err;

    va_start(ap, fmt);
    err = mr_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return err;
}
