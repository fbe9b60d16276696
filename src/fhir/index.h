/*
 * Search index entries: what a resource version contributes to search.
 * Produced by mr_fhir_extract() from the compiled search parameters and
 * written by the store into its per-kind index tables.
 */
#ifndef MR_FHIR_INDEX_H
#define MR_FHIR_INDEX_H

#include "core/alloc.h"
#include "fhir/defs.h"
#include "medrec/medrec.h"

#include <jansson.h>
#include <stdint.h>

/* Index-table kinds; several search-parameter types share one. */
enum mr_ix_kind {
    MR_IX_STRING,    /* s1 = folded text (prefix-searchable), s2 = exact */
    MR_IX_TOKEN,     /* s1 = system (NULL if none), s2 = code/value */
    MR_IX_DATE,      /* lo, hi: [lo, hi) in UTC ms */
    MR_IX_REFERENCE, /* s1 = "Type/id" or absolute URL */
    MR_IX_NUMBER,    /* n */
    MR_IX_QUANTITY,  /* n, s1 = system (NULL if none), s2 = code or unit */
    MR_IX_URI        /* s1 = uri */
};

struct mr_ix_entry {
    enum mr_ix_kind kind;
    uint32_t key;        /* mr_search_param.key */
    const char *s1, *s2; /* arena strings or NULL */
    double n;
    int64_t lo, hi;
};

/* The entries of one resource version. Strings live in the arena. */
struct mr_ix {
    struct mr_ix_entry *v;
    size_t n, cap;
    struct mr_arena arena;
};

void mr_ix_init(struct mr_ix *ix);
/* Drop the entries but keep the storage for reuse. */
void mr_ix_reset(struct mr_ix *ix);
void mr_ix_release(struct mr_ix *ix);
/* Append a copy of e (strings copied into the arena). */
enum mr_err mr_ix_add(struct mr_ix *ix, const struct mr_ix_entry *e) MR_WUR;

/*
 * Extract the index entries of resource `res` (a FHIR R4 JSON object whose
 * resourceType is `type`) for every search parameter of that type, per
 * the FHIR search rules for each parameter type (HumanName: family, given,
 * text, prefix, suffix as separate string entries plus the folded full
 * name; CodeableConcept: one token per coding plus its text for :text;
 * Identifier/ContactPoint: system|value; Period/date/dateTime/instant:
 * ranges; ...). Appends to ix; does not reset it.
 */
enum mr_err mr_fhir_extract(const json_t *res, const char *type,
                            struct mr_ix *ix) MR_WUR;

#endif
