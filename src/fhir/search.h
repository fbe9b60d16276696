/*
 * FHIR search query parsing: "name=riv&birthdate=ge1984-03-09&_count=20"
 * into a struct mr_query the store can run. No SQL is built from input
 * text: the query carries parameter keys, prefixes and values only.
 */
#ifndef MR_FHIR_SEARCH_H
#define MR_FHIR_SEARCH_H

#include "core/alloc.h"
#include "fhir/defs.h"
#include "fhir/index.h"
#include "medrec/medrec.h"

#include <stdint.h>

enum mr_prefix {
    MR_PFX_EQ,
    MR_PFX_NE,
    MR_PFX_LT,
    MR_PFX_GT,
    MR_PFX_LE,
    MR_PFX_GE,
    MR_PFX_SA,
    MR_PFX_EB,
    MR_PFX_AP
};

enum mr_modifier {
    MR_MOD_NONE,
    MR_MOD_EXACT,
    MR_MOD_CONTAINS,
    MR_MOD_MISSING,
    MR_MOD_NOT,
    MR_MOD_TEXT
};

/* One value of a parameter; the fields used depend on the index kind,
 * as in struct mr_ix_entry (strings already folded for MR_IX_STRING).
 *   string:    s1 folded (prefix match; :contains substring); with :exact
 *              s2 is the value as given (compare with the entry's s2).
 *   token:     s1 system (NULL = any, "" = none), s2 code (NULL = any code
 *              of that system: "system|"). Phone-like values of ContactPoint
 *              params are digits only, as the index also stores them.
 *              With :text the clause kind is MR_IX_STRING (s1 folded).
 *   reference: s1 "Type/id" or absolute URL; a bare id is expanded into one
 *              value per target type. Only for a param without declared
 *              targets: s1 NULL and s2 the bare id (any type).
 *   quantity:  n, s1 system (NULL = any), s2 code or unit (NULL = any).
 *   date:      [lo, hi) of the value; number: n. */
struct mr_q_value {
    enum mr_prefix prefix;
    const char *s1, *s2; /* token: s1 system (NULL = any, "" = none) */
    double n;
    int64_t lo, hi; /* date: the span of the given value */
    int missing;    /* for :missing=true/false */
};

/* Special parameters that are resource columns, not index tables. */
enum mr_q_special { MR_Q_PARAM = 0, MR_Q_ID, MR_Q_LASTUPDATED };

/* One parameter occurrence: values are ORed (comma). */
struct mr_q_clause {
    enum mr_q_special special;
    const struct mr_search_param *param; /* NULL for specials */
    enum mr_ix_kind kind;
    enum mr_modifier modifier;
    struct mr_q_value *vals;
    size_t nvals;
    /* Chained parameter ("subject:Patient.name=x"): param is the reference
     * parameter of the searched type, chain the parameter of chain_type
     * that vals, kind and modifier apply to. NULL when not chained. */
    const struct mr_search_param *chain;
    const char *chain_type;
};

/* One _sort key: a column (_id, _lastUpdated) or an indexed parameter of
 * kind string, date, token, number or quantity. */
struct mr_q_sort {
    enum mr_q_special special;
    const struct mr_search_param *param; /* for MR_Q_PARAM */
    int desc;
};

/* One _include ("Type:param[:target]", "*") or _revinclude
 * ("Type:param"). param NULL means every reference parameter of source. */
struct mr_q_include {
    int rev;
    const char *source;
    const struct mr_search_param *param;
    const char *target; /* _include only: keep this type; NULL = any */
};

#define MR_QUERY_MAX_SORT 8
#define MR_QUERY_MAX_INCLUDE 16
#define MR_QUERY_MAX_ELEMENTS 64

#define MR_QUERY_MAX_COUNT 1000
/* Matches counted by default for Bundle.total; past this the total is
 * left out unless _total=accurate asks for the full count. */
#define MR_QUERY_TOTAL_CAP 10000
enum { MR_TOTAL_BOUNDED, MR_TOTAL_NONE, MR_TOTAL_ACCURATE };
/* *total when it was not counted. */
#define MR_TOTAL_UNKNOWN (-1)
#define MR_QUERY_DEFAULT_COUNT 50

/* A search: clauses are ANDed. Everything lives in `arena`. */
/* What the store reports about a page in creation order (no _sort): its
 * first and last internal sequence numbers and whether more matches lie
 * before or after it. Cursors built from these stay valid while resources
 * are added or deleted, unlike offsets. */
struct mr_q_page {
    int64_t first, last;
    int more_before, more_after;
};

struct mr_query {
    const char *type;
    struct mr_q_clause *clauses;
    size_t n;
    uint32_t count;  /* page size, 1..MR_QUERY_MAX_COUNT */
    uint32_t offset; /* _offset paging */
    /* _page_after / _page_before: keyset paging in creation order (refused
     * with _sort and _offset); 0 when absent. */
    int64_t page_after, page_before;
    struct mr_q_page *page; /* filled by the store when not NULL */
    int summary_count;      /* _summary=count */
    /* _total: MR_TOTAL_BOUNDED (default: counted up to MR_QUERY_TOTAL_CAP,
     * else left out), MR_TOTAL_NONE, MR_TOTAL_ACCURATE. */
    int total_mode;
    /* Parameters that are not known for `type` (ignored, reported). */
    const char **unknown;
    size_t nunknown;
    struct mr_arena arena;
    /* _sort keys in order (the store always ends with the resource's
     * creation order as a tie-break). */
    struct mr_q_sort *sort;
    size_t nsort;
    /* _include and _revinclude, one level. */
    struct mr_q_include *include;
    size_t ninclude;
    /* _elements: top-level element names to keep (id, meta and
     * resourceType are always kept). */
    const char **elements;
    size_t nelements;
};

/*
 * Parse an application/x-www-form-urlencoded query (percent-decoding it)
 * for resource `type` into q (initialised here; release with
 * mr_query_release even on failure). Bad syntax or values give
 * MR_EINVALID with d naming the parameter and the reason.
 */
enum mr_err mr_query_parse(struct mr_query *q, const char *type, const char *qs,
                           size_t len, struct mr_diag *d) MR_WUR;

/* Add one already-decoded name=value pair (name may carry a :modifier). */
enum mr_err mr_query_add(struct mr_query *q, const char *name,
                         const char *value, struct mr_diag *d) MR_WUR;

void mr_query_init(struct mr_query *q, const char *type);

/* The Patient compartment (R4 CompartmentDefinition "patient"): for each
 * resource type, the parameters whose reference puts a resource in a
 * patient's compartment. Generated in src/fhir/gen/compartment.c; sorted
 * by resource then code. */
struct mr_compartment_param {
    const char *resource;
    const char *code;
};
extern const struct mr_compartment_param mr_patient_compartment[];
extern const size_t mr_patient_compartment_count;
void mr_query_release(struct mr_query *q);

#endif
