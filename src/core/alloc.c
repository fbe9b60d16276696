#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1;

static int should_fail(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0)
        return 1;
    fail_countdown--;
    return 0;
}

void mr_alloc_fail_after(long n)
{
    fail_countdown = n;
}

void *mr_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *mr_calloc(size_t count, size_t n)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, n ? n : 1);
}

void *mr_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void mr_free(void *p)
{
    free(p);
}

char *mr_strndup(const char *s, size_t n)
{
    char *p = mr_malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mr_strdup(const char *s)
{
    return mr_strndup(s, strlen(s));
}

struct mr_arena_chunk {
    struct mr_arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *mr_arena_alloc(struct mr_arena *a, size_t n)
{
    struct mr_arena_chunk *c = a->head;
    size_t need;

    if (n > ((size_t)-1) / 2)
        return NULL;
    need = (n + 15) & ~(size_t)15;

    if (!c || c->size - c->used < need) {
        size_t size = need > 16384 ? need : 16384;
        if (c && c->size * 2 > size && c->size < (1u << 20))
            size = c->size * 2 > need ? c->size * 2 : need;
        c = mr_malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += size;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

char *mr_arena_strndup(struct mr_arena *a, const char *s, size_t n)
{
    char *p = mr_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mr_arena_strdup(struct mr_arena *a, const char *s)
{
    return mr_arena_strndup(a, s, strlen(s));
}

void mr_arena_release(struct mr_arena *a)
{
    struct mr_arena_chunk *c = a->head;
    while (c) {
        struct mr_arena_chunk *next = c->next;
        mr_free(c);
        c = next;
    }
    a->head = NULL;
    a->used = a->total = 0;
}
