/*
 * The store: versioned FHIR resources, their search indexes, sequences and
 * the audit table, behind one interface so that SQLite (sqlite.c) and,
 * later, PostgreSQL are two implementations and callers never see SQL.
 *
 * Only the records service (src/records) calls this for patient data.
 *
 * Model: a resource (type, id) has versions 1..n; each version records its
 * time, author, reason and JSON (NULL JSON with deleted=1 is a tombstone).
 * Versions are never updated or removed. The search index holds entries of
 * the current version only.
 *
 * Every call except open/close must happen inside mr_store_begin ..
 * mr_store_commit/rollback. A write is durable when mr_store_commit returns
 * MR_OK (SQLite: WAL with synchronous=FULL).
 */
#ifndef MR_STORE_STORE_H
#define MR_STORE_STORE_H

#include "core/buf.h"
#include "fhir/index.h"
#include "fhir/search.h"
#include "medrec/medrec.h"
#include "security/auditchain.h"

#include <stdint.h>

struct mr_store;

/* The newest schema this build knows; databases above it are refused. */
#define MR_STORE_SCHEMA_VERSION 4

enum mr_store_flags {
    MR_STORE_CREATE = 1,   /* create the database if missing */
    MR_STORE_READONLY = 2, /* open read-only (no migrations) */
};

/*
 * Open the store at `where`: a file path (SQLite). Applies pending
 * migrations (unless READONLY); refuses a database with a newer schema
 * (MR_ENEWER), a file that is not a medrec database (MR_ENOTDB), a missing
 * file without MR_STORE_CREATE (MR_ENOTFOUND). *out is freed with
 * mr_store_close.
 */
enum mr_err mr_store_open(const char *where, int flags, struct mr_store **out,
                          struct mr_diag *d) MR_WUR;
void mr_store_close(struct mr_store *st);

/* Transactions. write=1 takes the write lock at once (SQLite BEGIN
 * IMMEDIATE, waiting up to the busy timeout, then MR_EBUSY). */
enum mr_err mr_store_begin(struct mr_store *st, int write,
                           struct mr_diag *d) MR_WUR;
enum mr_err mr_store_commit(struct mr_store *st, struct mr_diag *d) MR_WUR;
void mr_store_rollback(struct mr_store *st);

/* Savepoints inside a transaction, so one part of a group commit can be
 * undone alone: op 0 opens one, 1 releases (keeps) it, 2 rolls back to it
 * and releases it. */
enum mr_savepoint_op { MR_SP_OPEN, MR_SP_RELEASE, MR_SP_ROLLBACK };
enum mr_err mr_store_savepoint(struct mr_store *st, enum mr_savepoint_op op,
                               struct mr_diag *d) MR_WUR;

/* One version's metadata; strings are owned by the struct (fixed sizes). */
struct mr_version {
    char type[64];
    char id[65];
    int64_t version;
    int64_t ts; /* UTC ms */
    int deleted;
    char author[128];
    char reason[512];
};

enum mr_put_expect {
    MR_PUT_NEW = -1, /* must not exist yet (create) */
    MR_PUT_ANY = 0,  /* no version check */
    /* > 0: must equal the current version (else MR_ECONFLICT) */
};

struct mr_put {
    const char *type;
    const char *id;
    int64_t expect;      /* enum mr_put_expect or the expected version */
    int64_t set_version; /* 0: next version; >0: use this number (import
                            of a new resource, keeps its versionId) */
    const char *json;    /* NULL for a delete (tombstone) */
    size_t json_len;
    int64_t ts;
    const char *author;
    const char *reason;     /* may be NULL */
    const struct mr_ix *ix; /* index entries of the new version, or NULL */
};

/* Write a new version. *version receives its number. MR_ECONFLICT when
 * the expectation fails (nothing written), MR_EGONE when deleting an
 * already deleted resource, MR_ENOTFOUND when updating a missing one with
 * expect > 0. */
enum mr_err mr_store_put(struct mr_store *st, const struct mr_put *p,
                         int64_t *version, struct mr_diag *d) MR_WUR;

/* Read a version (version 0 = current) into meta and json (json may be
 * NULL). A current tombstone gives MR_EGONE with meta filled. */
enum mr_err mr_store_read(struct mr_store *st, const char *type, const char *id,
                          int64_t version, struct mr_version *meta,
                          struct mr_buf *json, struct mr_diag *d) MR_WUR;

/* Callback for iterations: return non-zero to stop (that value is
 * returned as MR_EINTERNAL unless it is a valid enum mr_err). */
typedef int (*mr_store_cb)(void *ctx, const struct mr_version *meta,
                           const char *json, size_t len);

/* Every version of one resource, newest first. MR_ENOTFOUND if none. */
enum mr_err mr_store_history(struct mr_store *st, const char *type,
                             const char *id, mr_store_cb cb, void *ctx,
                             struct mr_diag *d) MR_WUR;

/* Every current, not deleted resource (of `type`, or all when NULL), in
 * the order they were first created. */
enum mr_err mr_store_scan(struct mr_store *st, const char *type, mr_store_cb cb,
                          void *ctx, struct mr_diag *d) MR_WUR;

/* Run a parsed search; calls cb for each match of the page (q->count from
 * q->offset); *total (may be NULL) receives the number of matches. */
enum mr_err mr_store_search(struct mr_store *st, const struct mr_query *q,
                            mr_store_cb cb, void *ctx, int64_t *total,
                            struct mr_diag *d) MR_WUR;

/* Next value of a named counter (e.g. "mrn"), starting at `start`. */
enum mr_err mr_store_next_seq(struct mr_store *st, const char *name,
                              uint64_t start, uint64_t *out,
                              struct mr_diag *d) MR_WUR;

/* Raise a named counter so that its next value is above `used` (an
 * imported record already holds that number). Never lowers it. */
enum mr_err mr_store_seq_used(struct mr_store *st, const char *name,
                              uint64_t used, struct mr_diag *d) MR_WUR;

struct mr_audit_entry {
    int64_t ts;
    const char *actor; /* user or system name */
    const char *role;
    const char *source;  /* "cli", an address ... */
    const char *action;  /* read, vread, search, create, update, delete,
                            history, import, export */
    const char *outcome; /* "ok" or the error name */
    const char *type;    /* resource type or NULL */
    const char *id;      /* resource id or NULL */
    const char *patient; /* patient reference "Patient/x" or NULL */
    const char *query;   /* search query or NULL (never health data
                            beyond what the actor typed) */
    const char *detail;  /* short free text or NULL */
};

/* Append an audit entry in the current transaction. Entries are
 * append-only: the store refuses updates and deletes. */
enum mr_err mr_store_audit(struct mr_store *st, const struct mr_audit_entry *e,
                           struct mr_diag *d) MR_WUR;

/* Read audit entries (oldest first), optionally for one patient. */
typedef int (*mr_audit_cb)(void *ctx, int64_t seq,
                           const struct mr_audit_entry *e);
enum mr_err mr_store_audit_scan(struct mr_store *st, const char *patient,
                                mr_audit_cb cb, void *ctx,
                                struct mr_diag *d) MR_WUR;

/* Security documents (kind "user", "token", "grant", "policy"), JSON,
 * versioned: a put appends version n+1. mr_store_sec_get gives the
 * newest (MR_ENOTFOUND if none); a put with expect > 0 must match the
 * current version (MR_ECONFLICT otherwise), expect -1 requires none. */
enum mr_err mr_store_sec_get(struct mr_store *st, const char *kind,
                             const char *name, struct mr_buf *json,
                             int64_t *version, struct mr_diag *d) MR_WUR;
enum mr_err mr_store_sec_put(struct mr_store *st, const char *kind,
                             const char *name, const char *json, int64_t expect,
                             const char *author, struct mr_diag *d) MR_WUR;
/* The newest version of every document of `kind`, by name. */
typedef int (*mr_sec_cb)(void *ctx, const char *name, int64_t version,
                         const char *json);
enum mr_err mr_store_sec_list(struct mr_store *st, const char *kind,
                              mr_sec_cb cb, void *ctx,
                              struct mr_diag *d) MR_WUR;

/* ---- the HL7 v2 interface log (docs/hl7.md) ---- */

/* One received message. Strings may be NULL; in callbacks they (and raw,
 * ack) live until the callback returns. */
struct mr_hl7_row {
    int64_t id, received, updated, repeats;
    const char *sender;     /* "APP|FAC" */
    const char *control_id; /* MSH-10 */
    const char *type;       /* "ADT^A01" */
    const char *source;     /* peer address, "cli" */
    const char *status;     /* applied, unmatched, error, rejected */
    const char *ack_code;   /* AA, AE, AR */
    const char *detail;     /* why, for errors and unmatched */
    const char *patient;    /* "Patient/id" it was filed to */
    const char *resources;  /* JSON array of "Type/id/_history/v" */
    const char *raw;
    size_t raw_len;
    const char *ack;
    size_t ack_len;
};

/* Add a row (id, updated and repeats are set here); *id receives its id.
 * MR_EEXISTS when sender and control id are already there (not for
 * status "rejected"). */
enum mr_err mr_store_hl7_add(struct mr_store *st, const struct mr_hl7_row *row,
                             int64_t *id, struct mr_diag *d) MR_WUR;
/* Set the outcome of row->id: status, ack_code, ack, detail, patient,
 * resources (the message itself never changes). repeat: only count one
 * more arrival, ignoring the rest. */
enum mr_err mr_store_hl7_update(struct mr_store *st,
                                const struct mr_hl7_row *row, int repeat,
                                struct mr_diag *d) MR_WUR;
/* Which rows: by id, by sender and control id, or a listing filtered by
 * status and type, newest first, at most limit (0: all). with_raw: fill
 * raw (else NULL). */
struct mr_hl7_filter {
    int64_t id;
    const char *sender, *control_id;
    const char *status, *type;
    int64_t limit;
    int with_raw;
};
typedef int (*mr_hl7_cb)(void *ctx, const struct mr_hl7_row *row);
enum mr_err mr_store_hl7_query(struct mr_store *st,
                               const struct mr_hl7_filter *f, mr_hl7_cb cb,
                               void *ctx, struct mr_diag *d) MR_WUR;

/* Integrity: storage-level check plus consistency of current pointers and
 * versions. Appends a human-readable report to `report` (one line per
 * finding); MR_ECORRUPT if anything is wrong. */
enum mr_err mr_store_check(struct mr_store *st, struct mr_buf *report,
                           struct mr_diag *d) MR_WUR;

/* Token values (code, in `system`) that more than one current resource
 * holds for the search parameter `key`: *count receives how many values
 * are shared, `first` (cap bytes) one of them. For uniqueness checks such
 * as medical record numbers. */
enum mr_err mr_store_shared_tokens(struct mr_store *st, uint32_t key,
                                   const char *system, int64_t *count,
                                   char *first, size_t cap,
                                   struct mr_diag *d) MR_WUR;

/* For a handle that commits often (a server's committer): move the
 * backend's housekeeping after commits (SQLite: WAL checkpoints) to a
 * background thread, so commits do not wait for it. Until close. */
enum mr_err mr_store_background_checkpoints(struct mr_store *st,
                                            struct mr_diag *d) MR_WUR;

/* Schema version of the open database. */
int mr_store_schema(struct mr_store *st);

/* Counts for reports: resources (current, not deleted) and versions. */
enum mr_err mr_store_counts(struct mr_store *st, int64_t *resources,
                            int64_t *versions, int64_t *audits,
                            struct mr_diag *d) MR_WUR;

/* mr_store_search with _include/_revinclude: cb for each match of the
 * page, then inc (NULL: none) for each included resource, once each and
 * never one of the matches; MR_ETOOBIG past 10000 included resources. */
enum mr_err mr_store_search_ex(struct mr_store *st, const struct mr_query *q,
                               mr_store_cb cb, mr_store_cb inc, void *ctx,
                               int64_t *total, struct mr_diag *d) MR_WUR;

/* One page of history, newest first (in the order they were written). */
struct mr_history_q {
    const char *type; /* NULL: every type */
    const char *id;   /* with type: one resource (MR_ENOTFOUND if none) */
    int64_t since;    /* UTC ms; INT64_MIN for all */
    int64_t after;    /* cursor from `next`: versions older than it; 0 none */
    uint32_t limit;
    int64_t next; /* out: the cursor of the next page, 0 if this is the last */
};

/* Versions matching hq, at most hq->limit of them; *total (may be NULL)
 * receives how many match in all (cursor aside). */
enum mr_err mr_store_history_all(struct mr_store *st, struct mr_history_q *hq,
                                 mr_store_cb cb, void *ctx, int64_t *total,
                                 struct mr_diag *d) MR_WUR;

/* Every current resource in the compartment of `ref` ("Patient/x": the
 * parameters of mr_patient_compartment referring to it), in creation
 * order. MR_ETOOBIG (nothing returned) when more than `limit`. */
enum mr_err mr_store_compartment(struct mr_store *st, const char *ref,
                                 uint32_t limit, mr_store_cb cb, void *ctx,
                                 struct mr_diag *d) MR_WUR;

/* ---- the tamper-evident audit trail (docs/audit.md) ---------------------
 *
 * mr_store_audit chains every entry (prev, hash: src/security/auditchain.h)
 * and, at a commit that wrote entries, adds a checkpoint signed with the
 * key in "<database>.audit-key" once 1000 entries or 60 seconds have
 * passed since the last one; closing a handle that wrote entries adds one
 * too. Without the key file (when the database already has a key) writes
 * go on and no checkpoints are written.
 */

/* Audit entries matching every given condition, oldest first. */
struct mr_audit_filter {
    const char *patient; /* "Patient/x", or NULL */
    const char *actor;   /* user name, or NULL */
    const char *action;  /* "read", "disclose" ..., or NULL */
    int64_t since;       /* UTC ms: ts >= since; 0: no lower bound */
    int64_t until;       /* UTC ms: ts < until; 0: no upper bound */
    int emergency;       /* only entries whose detail starts "emergency" */
};
enum mr_err mr_store_audit_query(struct mr_store *st,
                                 const struct mr_audit_filter *f,
                                 mr_audit_cb cb, void *ctx,
                                 struct mr_diag *d) MR_WUR;

/* The stored chain, for verification: every registered public key, then
 * every checkpoint and then every entry, both in seq order, with blobs
 * as stored (any length; NULL with length 0 when missing). A non-zero
 * callback result stops (and is returned as for mr_store_cb). */
struct mr_audit_chain_cb {
    int (*key)(void *ctx, const char *key_id, const void *pk, size_t pklen,
               int64_t created);
    int (*checkpoint)(void *ctx, int64_t seq, int64_t ts, const void *hash,
                      size_t hlen, const char *key_id, const void *sig,
                      size_t slen);
    int (*entry)(void *ctx, const struct mr_audit_row *row, const void *prev,
                 size_t plen, const void *hash, size_t hlen);
};
enum mr_err mr_store_audit_chain(struct mr_store *st,
                                 const struct mr_audit_chain_cb *cb, void *ctx,
                                 struct mr_diag *d) MR_WUR;

/* Whether this handle can sign checkpoints. */
enum mr_audit_signer_state {
    MR_SIGNER_OK,      /* the key file is loaded */
    MR_SIGNER_MISSING, /* the database has a key but the file is gone */
    MR_SIGNER_NONE     /* read-only handle: never signs */
};
struct mr_audit_signer {
    enum mr_audit_signer_state state;
    char key_id[MR_AUDIT_KEY_ID_LEN + 1]; /* when OK */
    const char *key_path; /* "<database>.audit-key"; valid while open */
};
void mr_store_audit_signer(struct mr_store *st, struct mr_audit_signer *out);

/* Create a new signing key file (MR_EEXISTS if one is there) and register
 * its public key, in its own transaction (outside any other). From then
 * on this handle signs with it; key_id receives its id. */
enum mr_err mr_store_audit_new_key(struct mr_store *st,
                                   char key_id[MR_AUDIT_KEY_ID_LEN + 1],
                                   struct mr_diag *d) MR_WUR;

#endif
