#include "store/store_impl.h"

enum mr_err mr_store_open(const char *where, int flags, struct mr_store **out,
                          struct mr_diag *d)
{
    /* Only SQLite so far; a "postgresql://" URI will select libpq. */
    return mr__sqlite_open(where, flags, out, d);
}

void mr_store_close(struct mr_store *st)
{
    if (st)
        st->ops->close(st);
}

enum mr_err mr_store_begin(struct mr_store *st, int write, struct mr_diag *d)
{
    return st->ops->begin(st, write, d);
}

enum mr_err mr_store_commit(struct mr_store *st, struct mr_diag *d)
{
    return st->ops->commit(st, d);
}

void mr_store_rollback(struct mr_store *st)
{
    st->ops->rollback(st);
}

enum mr_err mr_store_savepoint(struct mr_store *st, enum mr_savepoint_op op,
                               struct mr_diag *d)
{
    return st->ops->savepoint(st, op, d);
}

enum mr_err mr_store_put(struct mr_store *st, const struct mr_put *p,
                         int64_t *version, struct mr_diag *d)
{
    return st->ops->put(st, p, version, d);
}

enum mr_err mr_store_read(struct mr_store *st, const char *type, const char *id,
                          int64_t version, struct mr_version *meta,
                          struct mr_buf *json, struct mr_diag *d)
{
    return st->ops->read(st, type, id, version, meta, json, d);
}

enum mr_err mr_store_history(struct mr_store *st, const char *type,
                             const char *id, mr_store_cb cb, void *ctx,
                             struct mr_diag *d)
{
    return st->ops->history(st, type, id, cb, ctx, d);
}

enum mr_err mr_store_scan(struct mr_store *st, const char *type, mr_store_cb cb,
                          void *ctx, struct mr_diag *d)
{
    return st->ops->scan(st, type, cb, ctx, d);
}

enum mr_err mr_store_search(struct mr_store *st, const struct mr_query *q,
                            mr_store_cb cb, void *ctx, int64_t *total,
                            struct mr_diag *d)
{
    return st->ops->search(st, q, cb, ctx, total, d);
}

enum mr_err mr_store_next_seq(struct mr_store *st, const char *name,
                              uint64_t start, uint64_t *out, struct mr_diag *d)
{
    return st->ops->next_seq(st, name, start, out, d);
}

enum mr_err mr_store_seq_used(struct mr_store *st, const char *name,
                              uint64_t used, struct mr_diag *d)
{
    return st->ops->seq_used(st, name, used, d);
}

enum mr_err mr_store_audit(struct mr_store *st, const struct mr_audit_entry *e,
                           struct mr_diag *d)
{
    return st->ops->audit(st, e, d);
}

enum mr_err mr_store_audit_scan(struct mr_store *st, const char *patient,
                                mr_audit_cb cb, void *ctx, struct mr_diag *d)
{
    return st->ops->audit_scan(st, patient, cb, ctx, d);
}

enum mr_err mr_store_check(struct mr_store *st, struct mr_buf *report,
                           struct mr_diag *d)
{
    return st->ops->check(st, report, d);
}

enum mr_err mr_store_shared_tokens(struct mr_store *st, uint32_t key,
                                   const char *system, int64_t *count,
                                   char *first, size_t cap, struct mr_diag *d)
{
    return st->ops->shared_tokens(st, key, system, count, first, cap, d);
}

int mr_store_schema(struct mr_store *st)
{
    return st->ops->schema(st);
}

enum mr_err mr_store_counts(struct mr_store *st, int64_t *resources,
                            int64_t *versions, int64_t *audits,
                            struct mr_diag *d)
{
    return st->ops->counts(st, resources, versions, audits, d);
}

enum mr_err mr_store_search_ex(struct mr_store *st, const struct mr_query *q,
                               mr_store_cb cb, mr_store_cb inc, void *ctx,
                               int64_t *total, struct mr_diag *d)
{
    return st->ops->search_ex(st, q, cb, inc, ctx, total, d);
}

enum mr_err mr_store_history_all(struct mr_store *st, struct mr_history_q *hq,
                                 mr_store_cb cb, void *ctx, int64_t *total,
                                 struct mr_diag *d)
{
    return st->ops->history_all(st, hq, cb, ctx, total, d);
}

enum mr_err mr_store_compartment(struct mr_store *st, const char *ref,
                                 uint32_t limit, mr_store_cb cb, void *ctx,
                                 struct mr_diag *d)
{
    return st->ops->compartment(st, ref, limit, cb, ctx, d);
}

enum mr_err mr_store_sec_get(struct mr_store *st, const char *kind,
                             const char *name, struct mr_buf *json,
                             int64_t *version, struct mr_diag *d)
{
    return st->ops->sec_get(st, kind, name, json, version, d);
}

enum mr_err mr_store_sec_put(struct mr_store *st, const char *kind,
                             const char *name, const char *json, int64_t expect,
                             const char *author, struct mr_diag *d)
{
    return st->ops->sec_put(st, kind, name, json, expect, author, d);
}

enum mr_err mr_store_sec_list(struct mr_store *st, const char *kind,
                              mr_sec_cb cb, void *ctx, struct mr_diag *d)
{
    return st->ops->sec_list(st, kind, cb, ctx, d);
}

enum mr_err mr_store_audit_query(struct mr_store *st,
                                 const struct mr_audit_filter *f,
                                 mr_audit_cb cb, void *ctx, struct mr_diag *d)
{
    return st->ops->audit_query(st, f, cb, ctx, d);
}

enum mr_err mr_store_audit_chain(struct mr_store *st,
                                 const struct mr_audit_chain_cb *cb, void *ctx,
                                 struct mr_diag *d)
{
    return st->ops->audit_chain(st, cb, ctx, d);
}

void mr_store_audit_signer(struct mr_store *st, struct mr_audit_signer *out)
{
    st->ops->audit_signer(st, out);
}

enum mr_err mr_store_audit_new_key(struct mr_store *st,
                                   char key_id[MR_AUDIT_KEY_ID_LEN + 1],
                                   struct mr_diag *d)
{
    return st->ops->audit_new_key(st, key_id, d);
}

enum mr_err mr_store_hl7_add(struct mr_store *st, const struct mr_hl7_row *row,
                             int64_t *id, struct mr_diag *d)
{
    return st->ops->hl7_add(st, row, id, d);
}

enum mr_err mr_store_hl7_update(struct mr_store *st,
                                const struct mr_hl7_row *row, int repeat,
                                struct mr_diag *d)
{
    return st->ops->hl7_update(st, row, repeat, d);
}

enum mr_err mr_store_hl7_query(struct mr_store *st,
                               const struct mr_hl7_filter *f, mr_hl7_cb cb,
                               void *ctx, struct mr_diag *d)
{
    return st->ops->hl7_query(st, f, cb, ctx, d);
}

enum mr_err mr_store_background_checkpoints(struct mr_store *st,
                                            struct mr_diag *d)
{
    return st->ops->background_checkpoints(st, d);
}
