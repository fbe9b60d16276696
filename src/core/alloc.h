/*
 * All allocation goes through these so tests can fail the Nth allocation
 * (after SQLite's fault injection). mr_free(NULL) is a no-op.
 */
#ifndef MR_CORE_ALLOC_H
#define MR_CORE_ALLOC_H

#include <stddef.h>

void *mr_malloc(size_t n);
void *mr_calloc(size_t count, size_t n);
void *mr_realloc(void *p, size_t n);
void mr_free(void *p);
/* A heap copy of s (caller frees with mr_free); NULL on allocation failure. */
char *mr_strdup(const char *s);
char *mr_strndup(const char *s, size_t n);

/* Test hook: make the allocation after `n` more succeed fail (n < 0: never). */
void mr_alloc_fail_after(long n);

/*
 * Arena: bump allocation in chunks, freed in one call. Nothing allocated
 * from an arena outlives mr_arena_release without a copy.
 */
struct mr_arena_chunk;
struct mr_arena {
    struct mr_arena_chunk *head;
    size_t used, total;
};
#define MR_ARENA_INIT                                                          \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

void *mr_arena_alloc(struct mr_arena *a, size_t n);
char *mr_arena_strndup(struct mr_arena *a, const char *s, size_t n);
char *mr_arena_strdup(struct mr_arena *a, const char *s);
/* Free every allocation at once; the arena may be reused afterwards. */
void mr_arena_release(struct mr_arena *a);

#endif
