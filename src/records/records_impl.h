/*
 * Internals of the records service shared by its files (records.c, the
 * writes and reads; search.c, searches). Not for adapters.
 */
#ifndef MR_RECORDS_IMPL_H
#define MR_RECORDS_IMPL_H

#include "fhir/index.h"
#include "records/records.h"

#include <jansson.h>

struct mr_records {
    struct mr_store *st;
    struct mr_ix ix;
    struct mr_buf out; /* stored JSON being built */
    /* Inside a transaction Bundle the operations share one store
     * transaction, which the bundle code begins, commits or rolls back. */
    int in_bundle;
    const char *next_id;             /* id for the next create (bundle POST) */
    struct mr_audit_batch *deferred; /* reads' audit entries, if set */
    /* In a Bundle: references to resources the Bundle itself creates
     * count as resolvable even before their entry has run. */
    int (*ref_planned)(void *ctx, const char *ref);
    void *ref_ctx;
    /* In a transaction Bundle (validated whole): the next write's resource
     * already parsed, so it is neither parsed nor validated again. */
    json_t *preparsed;
};

/* Transactions that join an enclosing transaction Bundle when there is
 * one. */
enum mr_err mr__tx_begin(struct mr_records *r, struct mr_diag *d);
/* For reads: a read transaction when audits are deferred. */
enum mr_err mr__tx_begin_read(struct mr_records *r, struct mr_diag *d);
enum mr_err mr__tx_commit(struct mr_records *r, struct mr_diag *d);
void mr__tx_rollback(struct mr_records *r);

enum mr_err mr__check_actor(const struct mr_actor *a, struct mr_diag *d);
enum mr_err mr__check_type(const char *type, struct mr_diag *d);

/* Append an audit entry in the current transaction. */
enum mr_err mr__audit(struct mr_records *r, const struct mr_actor *a,
                      const char *action, enum mr_err outcome, const char *type,
                      const char *id, const char *patient, const char *query,
                      const char *detail, struct mr_diag *d);

/* Audit a read with its outcome and commit; returns the read's error. */
enum mr_err mr__finish_read(struct mr_records *r, const struct mr_actor *a,
                            const char *action, enum mr_err rerr,
                            const char *type, const char *id,
                            const char *patient, const char *query,
                            struct mr_diag *d);

/* "Patient/x" for the audit trail: the resource itself or its subject. */
void mr__patient_of(const char *type, const char *id, const json_t *root,
                    char *out, size_t cap);

#endif
