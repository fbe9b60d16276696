/*
 * One growable byte buffer (after git's strbuf and curl's dynbuf): ptr is
 * never NULL and always NUL-terminated, and growth stops at a hard maximum
 * with MR_ETOOBIG instead of growing without bound.
 */
#ifndef MR_CORE_BUF_H
#define MR_CORE_BUF_H

#include "medrec/medrec.h"

#include <stdarg.h>
#include <stddef.h>

extern char mr_buf_empty[];

struct mr_buf {
    char *ptr;
    size_t len;
    size_t cap; /* 0 while ptr is mr_buf_empty */
    size_t max; /* hard cap on len */
};

#define MR_BUF_INIT(maxlen)                                                    \
    {                                                                          \
        mr_buf_empty, 0, 0, (maxlen)                                           \
    }

void mr_buf_init(struct mr_buf *b, size_t max);
/* Free the storage; b is left empty and reusable. */
void mr_buf_release(struct mr_buf *b);
/* Take the storage (caller frees with mr_free); b is left empty.
 * Returns a heap string even when b was empty, or NULL on NOMEM. */
char *mr_buf_detach(struct mr_buf *b, size_t *len);
void mr_buf_reset(struct mr_buf *b);

enum mr_err mr_buf_grow(struct mr_buf *b, size_t extra) MR_WUR;
enum mr_err mr_buf_add(struct mr_buf *b, const void *p, size_t n) MR_WUR;
enum mr_err mr_buf_adds(struct mr_buf *b, const char *s) MR_WUR;
enum mr_err mr_buf_addc(struct mr_buf *b, char c) MR_WUR;
enum mr_err mr_buf_addf(struct mr_buf *b, const char *fmt, ...) MR_WUR
    MR_PRINTF(2, 3);
enum mr_err mr_buf_vaddf(struct mr_buf *b, const char *fmt, va_list ap) MR_WUR;

#endif
