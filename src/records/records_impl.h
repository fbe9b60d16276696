/*
 * Internals of the records service shared by its files (records.c, the
 * writes and reads; search.c, searches). Not for adapters.
 */
#ifndef MR_RECORDS_IMPL_H
#define MR_RECORDS_IMPL_H

#include "fhir/index.h"
#include "fhir/search.h"
#include "records/records.h"
#include "security/policy.h"

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
    struct mr_policy *policy; /* the access policy in force */
    char emergency[600];      /* detail for the next read's audit entry */
    /* Refusals inside a group commit, written after the request's
     * savepoint (which a failed request rolls back). */
    struct mr_audit_batch denials;
    /* The resource whose references are being checked (it may refer to
     * itself). */
    char self_ref[1], self_type[64], self_id[80];
};

/* A callback wrapper that passes on only what the actor may see (of the
 * types the policy allows for `act`), redacted where needed, and notes
 * emergency access for the audit entry. */
struct mr__filter {
    struct mr_records *r;
    const struct mr_actor *a;
    enum mr_action act;
    mr_store_cb cb;
    void *ctx;
    struct mr_buf red;
    int64_t skipped;
};
void mr__filter_init(struct mr__filter *f, struct mr_records *r,
                     const struct mr_actor *a, enum mr_action act,
                     mr_store_cb cb, void *ctx);
void mr__filter_release(struct mr__filter *f);
int mr__filter_cb(void *ctx, const struct mr_version *m, const char *json,
                  size_t len);

/* Audit a refused access (in its own transaction, or deferred) and
 * return the refusal. */
enum mr_err mr__denied(struct mr_records *r, const struct mr_actor *a,
                       const char *action, const char *type, const char *id,
                       struct mr_diag *d);

/* An emergency (break-the-glass) access, for the audit entry. */
struct mr_emergency {
    int used;
    char reason[512];
};

enum mr_err mr__policy_load(struct mr_records *r, struct mr_diag *d);
/* May the actor do `act` on resources of `type` at all? MR_EDENIED with
 * the reason if not. */
enum mr_err mr__authorize(struct mr_records *r, const struct mr_actor *a,
                          enum mr_action act, const char *type,
                          struct mr_diag *d);
enum mr_err mr__authorize_priv(struct mr_records *r, const struct mr_actor *a,
                               enum mr_privilege priv, struct mr_diag *d);
/* May the actor see this stored resource? MR_EDENIED (restricted) or
 * MR_ENOTFOUND (the patient role: not theirs or not released). When
 * redacted is given and elements must be hidden, it receives the redacted
 * JSON (otherwise it is left empty). em (may be NULL) tells whether
 * emergency access was needed. */
enum mr_err mr__visible(struct mr_records *r, const struct mr_actor *a,
                        const char *type, const char *id, const char *json,
                        size_t len, struct mr_buf *redacted,
                        struct mr_emergency *em, struct mr_diag *d);
/* Narrow a search to what the actor may see: labels not held, results not
 * released (patients), other patients' charts (patients). */
enum mr_err mr__restrict_query(struct mr_records *r, const struct mr_actor *a,
                               struct mr_query *q, struct mr_diag *d);

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
