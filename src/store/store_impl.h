/*
 * Backend interface behind store.h (after curl's lib/vtls): each backend
 * fills a struct mr_store_ops and its handle starts with a struct
 * mr_store. store.c dispatches; callers never see which backend runs.
 */
#ifndef MR_STORE_IMPL_H
#define MR_STORE_IMPL_H

#include "store/store.h"

struct mr_store_ops {
    const char *name;
    void (*close)(struct mr_store *st);
    enum mr_err (*begin)(struct mr_store *st, int write, struct mr_diag *d);
    enum mr_err (*commit)(struct mr_store *st, struct mr_diag *d);
    void (*rollback)(struct mr_store *st);
    enum mr_err (*savepoint)(struct mr_store *st, enum mr_savepoint_op op,
                             struct mr_diag *d);
    enum mr_err (*put)(struct mr_store *st, const struct mr_put *p,
                       int64_t *version, struct mr_diag *d);
    enum mr_err (*read)(struct mr_store *st, const char *type, const char *id,
                        int64_t version, struct mr_version *meta,
                        struct mr_buf *json, struct mr_diag *d);
    enum mr_err (*history)(struct mr_store *st, const char *type,
                           const char *id, mr_store_cb cb, void *ctx,
                           struct mr_diag *d);
    enum mr_err (*scan)(struct mr_store *st, const char *type, mr_store_cb cb,
                        void *ctx, struct mr_diag *d);
    enum mr_err (*search)(struct mr_store *st, const struct mr_query *q,
                          mr_store_cb cb, void *ctx, int64_t *total,
                          struct mr_diag *d);
    enum mr_err (*next_seq)(struct mr_store *st, const char *name,
                            uint64_t start, uint64_t *out, struct mr_diag *d);
    enum mr_err (*seq_used)(struct mr_store *st, const char *name,
                            uint64_t used, struct mr_diag *d);
    enum mr_err (*audit)(struct mr_store *st, const struct mr_audit_entry *e,
                         struct mr_diag *d);
    enum mr_err (*audit_scan)(struct mr_store *st, const char *patient,
                              mr_audit_cb cb, void *ctx, struct mr_diag *d);
    enum mr_err (*check)(struct mr_store *st, struct mr_buf *report,
                         struct mr_diag *d);
    int (*schema)(struct mr_store *st);
    enum mr_err (*shared_tokens)(struct mr_store *st, uint32_t key,
                                 const char *system, int64_t *count,
                                 char *first, size_t cap, struct mr_diag *d);
    enum mr_err (*counts)(struct mr_store *st, int64_t *resources,
                          int64_t *versions, int64_t *audits,
                          struct mr_diag *d);
    enum mr_err (*search_ex)(struct mr_store *st, const struct mr_query *q,
                             mr_store_cb cb, mr_store_cb inc, void *ctx,
                             int64_t *total, struct mr_diag *d);
    enum mr_err (*history_all)(struct mr_store *st, struct mr_history_q *hq,
                               mr_store_cb cb, void *ctx, int64_t *total,
                               struct mr_diag *d);
    enum mr_err (*compartment)(struct mr_store *st, const char *ref,
                               uint32_t limit, mr_store_cb cb, void *ctx,
                               struct mr_diag *d);
    enum mr_err (*sec_get)(struct mr_store *st, const char *kind,
                           const char *name, struct mr_buf *json,
                           int64_t *version, struct mr_diag *d);
    enum mr_err (*sec_put)(struct mr_store *st, const char *kind,
                           const char *name, const char *json, int64_t expect,
                           const char *author, struct mr_diag *d);
    enum mr_err (*sec_list)(struct mr_store *st, const char *kind, mr_sec_cb cb,
                            void *ctx, struct mr_diag *d);
    /* The tamper-evident audit trail. */
    enum mr_err (*audit_query)(struct mr_store *st,
                               const struct mr_audit_filter *f, mr_audit_cb cb,
                               void *ctx, struct mr_diag *d);
    enum mr_err (*audit_chain)(struct mr_store *st,
                               const struct mr_audit_chain_cb *cb, void *ctx,
                               struct mr_diag *d);
    void (*audit_signer)(struct mr_store *st, struct mr_audit_signer *out);
    enum mr_err (*audit_new_key)(struct mr_store *st, char *key_id,
                                 struct mr_diag *d);
    enum mr_err (*hl7_add)(struct mr_store *st, const struct mr_hl7_row *row,
                           int64_t *id, struct mr_diag *d);
    enum mr_err (*hl7_update)(struct mr_store *st, const struct mr_hl7_row *row,
                              int repeat, struct mr_diag *d);
    enum mr_err (*hl7_query)(struct mr_store *st, const struct mr_hl7_filter *f,
                             mr_hl7_cb cb, void *ctx, struct mr_diag *d);
    enum mr_err (*background_checkpoints)(struct mr_store *st,
                                          struct mr_diag *d);
};

struct mr_store {
    const struct mr_store_ops *ops;
};

enum mr_err mr__sqlite_open(const char *path, int flags, struct mr_store **out,
                            struct mr_diag *d);

#endif
