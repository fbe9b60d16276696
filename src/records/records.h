/*
 * The records service: the one door to patient data. Every read and write
 * from every adapter (CLI, HTTP, HL7) comes through here, which
 * authorizes, validates, indexes, stores and audits, in that order, in one
 * transaction: a success return means the change and its audit entry are
 * committed to disk.
 *
 * A struct mr_records is one connection; use one per thread.
 */
#ifndef MR_RECORDS_RECORDS_H
#define MR_RECORDS_RECORDS_H

#include "core/buf.h"
#include "medrec/medrec.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Largest resource accepted, in bytes of JSON. */
#define MR_MAX_RESOURCE_BYTES (4u << 20)
/* Largest batch/transaction Bundle, in bytes and in entries. */
#define MR_MAX_BUNDLE_BYTES (32u << 20)
#define MR_MAX_BUNDLE_ENTRIES 10000u

/* The identifier system of medrec-assigned medical record numbers. */
#define MR_MRN_SYSTEM "urn:medrec:mrn"
/* First MRN sequence number (gives 8-digit MRNs with the check digit). */
#define MR_MRN_START 1000000

/* Who is acting: a signed-in user, a system token, or the command line.
 * The access policy (src/security/policy.h) decides by role. */
struct mr_actor {
    const char *user;    /* login or system name */
    const char *role;    /* a role of the policy; NULL only for local */
    const char *source;  /* "cli", "127.0.0.1:5000" ... */
    const char *patient; /* the patient role: "Patient/id" of their chart */
    int local;           /* the command line: with no role it has the rights of
                            whoever can open the database file */
};

struct mr_records;

/* Open (flags: MR_STORE_CREATE to create) the database at path. */
enum mr_err mr_records_open(const char *path, int flags,
                            struct mr_records **out, struct mr_diag *d) MR_WUR;
void mr_records_close(struct mr_records *r);

/* A stored resource as returned to callers. json is the stored bytes
 * (with meta.versionId and meta.lastUpdated). */
struct mr_result {
    struct mr_version meta;
    struct mr_buf json;
};
void mr_result_init(struct mr_result *res);
void mr_result_release(struct mr_result *res);

enum mr_write_flags {
    MR_WRITE_FORCE = 1,  /* register even if a possible duplicate exists */
    MR_WRITE_UPSERT = 2, /* update of a missing resource creates it */
};

/*
 * Create a resource from JSON text. Validates it (structure and, for
 * Patient, registration rules), assigns a new id (any id in the input is
 * replaced) and, for a Patient, a medical record number. MR_EDUPLICATE
 * (with the matching MRN in d) when a Patient with the same name, birth
 * date and gender exists, unless MR_WRITE_FORCE. res may be NULL.
 */
enum mr_err mr_records_create(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *json, size_t len,
                              const char *reason, int flags,
                              struct mr_result *res, struct mr_diag *d) MR_WUR;

/* Replace the current version of type/id with json (its id must match or
 * be absent). expect > 0 refuses a stale version (MR_ECONFLICT); 0 skips
 * the check. The MRN of a Patient is kept even if omitted. */
enum mr_err mr_records_update(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *id,
                              const char *json, size_t len, int64_t expect,
                              const char *reason, struct mr_result *res,
                              struct mr_diag *d) MR_WUR;

/* mr_records_update with flags: MR_WRITE_UPSERT creates type/id when it
 * does not exist (FHIR update-as-create; *created, if given, says which
 * happened). Writing a deleted resource makes it current again. */
enum mr_err mr_records_put(struct mr_records *r, const struct mr_actor *a,
                           const char *type, const char *id, const char *json,
                           size_t len, int64_t expect, const char *reason,
                           int flags, struct mr_result *res, int *created,
                           struct mr_diag *d) MR_WUR;

/* Delete: writes a tombstone version. */
enum mr_err mr_records_delete(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *id, int64_t expect,
                              const char *reason, struct mr_diag *d) MR_WUR;

/* Read the current (version 0) or a given version. */
enum mr_err mr_records_read(struct mr_records *r, const struct mr_actor *a,
                            const char *type, const char *id, int64_t version,
                            struct mr_result *res, struct mr_diag *d) MR_WUR;

/* Find a Patient by MRN (or "Patient/ID", or a bare resource id). */
enum mr_err mr_records_patient_by_mrn(struct mr_records *r,
                                      const struct mr_actor *a, const char *mrn,
                                      struct mr_result *res,
                                      struct mr_diag *d) MR_WUR;

/* Every version, newest first. */
enum mr_err mr_records_history(struct mr_records *r, const struct mr_actor *a,
                               const char *type, const char *id, mr_store_cb cb,
                               void *ctx, struct mr_diag *d) MR_WUR;

/* Search with a FHIR query string ("name=riv&birthdate=1984-03-09").
 * Unknown or unsupported parameters are refused (MR_EINVALID). */
enum mr_err mr_records_search(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *query,
                              mr_store_cb cb, void *ctx, int64_t *total,
                              struct mr_diag *d) MR_WUR;

enum mr_search_flags {
    /* Ignore unknown parameters (listed in info->ignored) instead of
     * refusing the search: the client's Prefer: handling=lenient. */
    MR_SEARCH_LENIENT = 1,
    /* Count every match for info->total (else past MR_QUERY_TOTAL_CAP the
     * total is MR_TOTAL_UNKNOWN unless the query asks _total=accurate). */
    MR_SEARCH_EXACT_TOTAL = 2,
};

/* What a search found, besides its resources. */
struct mr_search_info {
    int64_t total;      /* matches in all */
    uint32_t count;     /* page size asked for */
    uint32_t offset;    /* first match of the page */
    int summary_count;  /* _summary=count: no resources were returned */
    char ignored[1024]; /* lenient: ignored parameters, ", "-separated */
    int keyset;         /* paged in creation order: links use page */
    struct mr_q_page page;
};

/*
 * Search with everything mr_records_search does plus _include and
 * _revinclude (include is called for each included resource after the
 * matches; NULL leaves them out), _elements (match receives the subset,
 * tagged SUBSETTED) and flags (enum mr_search_flags). info (may be NULL)
 * is filled on success.
 */
enum mr_err mr_records_search_ex(struct mr_records *r, const struct mr_actor *a,
                                 const char *type, const char *query, int flags,
                                 mr_store_cb match, mr_store_cb include,
                                 void *ctx, struct mr_search_info *info,
                                 struct mr_diag *d) MR_WUR;

/* Instance (type and id), type (id NULL) or system history (both NULL):
 * versions newest first, a page at a time; query may hold _since (an
 * instant), _count (1..1000, default 50) and _page_after (a cursor from
 * *next). *total (may be NULL) receives the number of versions since
 * then; *next (may be NULL) the cursor of the next page, 0 if none. */
enum mr_err mr_records_history_all(struct mr_records *r,
                                   const struct mr_actor *a, const char *type,
                                   const char *id, const char *query,
                                   mr_store_cb cb, void *ctx, int64_t *total,
                                   int64_t *next, struct mr_diag *d) MR_WUR;

/* Patient/{id}/$everything: the Patient, then every current resource in
 * its compartment (in creation order), audited as one read. MR_ETOOBIG
 * above 20000 resources. *total (may be NULL) receives the number sent. */
enum mr_err mr_records_everything(struct mr_records *r,
                                  const struct mr_actor *a, const char *id,
                                  mr_store_cb cb, void *ctx, int64_t *total,
                                  struct mr_diag *d) MR_WUR;

/* Write every current resource as NDJSON to out. *count may be NULL. */
enum mr_err mr_records_export(struct mr_records *r, const struct mr_actor *a,
                              FILE *out, int64_t *count,
                              struct mr_diag *d) MR_WUR;

/*
 * Import NDJSON resources (one per line, ids kept, meta.versionId and
 * meta.lastUpdated kept for resources new to this database) in batches of
 * `batch` per transaction. After each commit calls progress(ctx, total
 * committed so far) — only then are those records durable. Stops at the
 * first bad line with MR_EINVALID naming the line; earlier batches stay.
 */
enum mr_err mr_records_import(struct mr_records *r, const struct mr_actor *a,
                              FILE *in, const char *name, size_t batch,
                              void (*progress)(void *ctx, int64_t n), void *ctx,
                              struct mr_diag *d) MR_WUR;

/*
 * Process a FHIR batch or transaction Bundle (JSON text). A transaction is
 * atomic: every entry or none, in one store transaction, with urn:uuid
 * fullUrls and conditional references ("Patient?identifier=s|v") resolved
 * to the ids assigned; an error names the entry. A batch runs each entry
 * on its own and reports each outcome. The response Bundle (JSON) is
 * appended to out. Entries are processed DELETE, POST, PUT in that order.
 */
enum mr_err mr_records_bundle(struct mr_records *r, const struct mr_actor *a,
                              const char *json, size_t len, struct mr_buf *out,
                              struct mr_diag *d) MR_WUR;

/* Storage integrity and schema version (report lines appended). */
enum mr_err mr_records_check(struct mr_records *r, const struct mr_actor *a,
                             struct mr_buf *report, int *schema,
                             struct mr_diag *d) MR_WUR;

/* Audit entries for one patient reference (or all when NULL). */
enum mr_err mr_records_audit_scan(struct mr_records *r,
                                  const struct mr_actor *a, const char *patient,
                                  mr_audit_cb cb, void *ctx,
                                  struct mr_diag *d) MR_WUR;

/*
 * Group commit. A server answers many requests at once; instead of one
 * disk commit per request, writes run on one committer thread that puts
 * every queued job into one transaction (each job in its own savepoint,
 * so a failing job is undone alone) and commits once. Reads run on their
 * own threads and queue only their audit entries; the answer is released
 * after the commit that holds them, so nothing is disclosed unaudited.
 */
struct mr_audit_batch {
    struct mr_audit_entry *v;
    size_t n, cap;
    struct mr_arena arena; /* the entries' strings */
};
void mr_audit_batch_init(struct mr_audit_batch *b);
void mr_audit_batch_release(struct mr_audit_batch *b);

/* While b is set, reads on r keep their audit entries in b instead of
 * committing them (the caller must get them committed, e.g. with a job
 * calling mr_records_write_audits, before answering). NULL turns it off. */
void mr_records_defer_audit(struct mr_records *r, struct mr_audit_batch *b);

/* Write b's entries in the current (queue) transaction. */
enum mr_err mr_records_write_audits(struct mr_records *r,
                                    const struct mr_audit_batch *b,
                                    struct mr_diag *d) MR_WUR;

struct mr_job {
    /* Runs on the committer thread inside the group transaction, with
     * the committer's records handle. Non-zero: undo this job's writes. */
    int (*run)(void *ctx, struct mr_records *r);
    /* Called after the group commit: MR_OK if durable (jobs that asked
     * to be undone still get MR_OK: nothing of theirs was written). */
    void (*done)(void *ctx, enum mr_err commit);
    void *ctx;
    /* MR_JOB_APPEND: the job only appends (audit entries) and needs no
     * savepoint of its own; if it fails the whole batch fails. */
    unsigned flags;
    struct mr_job *next; /* queue link */
};
#define MR_JOB_APPEND 1u

struct mr_queue;

/* Start a committer thread on its own connection to db. */
enum mr_err mr_queue_start(const char *db, struct mr_queue **out,
                           struct mr_diag *d) MR_WUR;
/* Queue a job (the caller keeps it alive until done is called). */
void mr_queue_submit(struct mr_queue *q, struct mr_job *job);
/* Finish the queued jobs, stop the thread, free q. */
void mr_queue_stop(struct mr_queue *q);

/* Append one FHIR history Bundle entry for version m (stored JSON json):
 * fullUrl base/Type/id (relative when base is "" or NULL), the resource
 * unless it is a deletion, and request/response as history shows them;
 * preceded by a comma unless first. */
enum mr_err mr_history_entry(struct mr_buf *out, const char *base,
                             const struct mr_version *m, const char *json,
                             size_t len, int first) MR_WUR;

/* The MRN of a Patient resource (from its identifiers), or NULL. The
 * pointer is into res. */
const char *mr_patient_mrn(const json_t *patient);

/* ---- access: users, tokens, sign-in, emergency access (access.c) ---- */

struct mr_user_info {
    char name[72];
    char role[40];
    char patient[80];
    int mfa, locked, failures;
    int64_t held_until; /* sign-in backoff, UTC ms */
    int64_t version;
};

/* Whom a session or token stands for. */
struct mr_principal {
    char user[72];
    char role[40];
    char patient[80];
    int64_t expires; /* tokens: UTC ms */
};

/* Add a user (needs manage-users). The password is checked against the
 * password rules and stored as an Argon2id hash. A patient account names
 * its chart ("Patient/id"). */
enum mr_err mr_records_user_add(struct mr_records *r, const struct mr_actor *a,
                                const char *name, const char *role,
                                const char *pw, size_t pwlen,
                                const char *patient, struct mr_diag *d) MR_WUR;
/* op: "lock", "unlock", "role" (arg: the role), "password" (arg), "mfa-on"
 * (uri receives the otpauth:// URI), "mfa-off". Audited. */
enum mr_err mr_records_user_change(struct mr_records *r,
                                   const struct mr_actor *a, const char *name,
                                   const char *op, const char *arg,
                                   size_t arglen, struct mr_buf *uri,
                                   struct mr_diag *d) MR_WUR;
enum mr_err mr_records_user_list(struct mr_records *r, const struct mr_actor *a,
                                 int (*cb)(void *ctx,
                                           const struct mr_user_info *u),
                                 void *ctx, struct mr_diag *d) MR_WUR;
/* The role (and patient) of a registered user; MR_ENOTFOUND if none. */
enum mr_err mr_records_user_role(struct mr_records *r, const char *name,
                                 char *role, size_t rcap, char *patient,
                                 size_t pcap, struct mr_diag *d) MR_WUR;
/* Check a password (and TOTP code when the user has MFA). Failures count
 * per account and hold it for increasing times; every attempt is audited.
 * With require_mfa, admins and clinicians without MFA are refused. */
enum mr_err mr_records_login(struct mr_records *r, const char *source,
                             const char *name, const char *pw, size_t pwlen,
                             const char *code, int require_mfa,
                             struct mr_principal *out,
                             struct mr_diag *d) MR_WUR;
/* A system token ("mrt_...") carrying `role` for ttl_ms; only its hash is
 * stored. */
enum mr_err mr_records_token_create(struct mr_records *r,
                                    const struct mr_actor *a, const char *name,
                                    const char *role, int64_t ttl_ms,
                                    char out[61], struct mr_diag *d) MR_WUR;
#define MR_RECORDS_TOKEN_MAX 61
enum mr_err mr_records_token_revoke(struct mr_records *r,
                                    const struct mr_actor *a, const char *name,
                                    struct mr_diag *d) MR_WUR;
/* Who a token stands for; MR_EDENIED if unknown, expired or revoked. */
enum mr_err mr_records_token_check(struct mr_records *r, const char *token,
                                   struct mr_principal *out,
                                   struct mr_diag *d) MR_WUR;
/* Break the glass: for `minutes` (at most 60) the actor may open the
 * restricted records of `patient` ("Patient/id"); each such access is
 * audited as emergency access with the reason. */
enum mr_err mr_records_break_glass(struct mr_records *r,
                                   const struct mr_actor *a,
                                   const char *patient, const char *reason,
                                   int minutes, int64_t *until,
                                   struct mr_diag *d) MR_WUR;
/* The policy in force (JSON), and replacing it (needs manage-policy; the
 * new one is validated first and kept as a new version). */
enum mr_err mr_records_policy_get(struct mr_records *r,
                                  const struct mr_actor *a, struct mr_buf *out,
                                  struct mr_diag *d) MR_WUR;
enum mr_err mr_records_policy_set(struct mr_records *r,
                                  const struct mr_actor *a, const char *json,
                                  size_t len, struct mr_diag *d) MR_WUR;

/* ---- the audit trail and disclosures (audit.c; docs/audit.md) ---- */

/*
 * Who looked at this chart: the audit entries matching f, oldest first.
 * f->patient may be an MRN (resolved with mr_records_patient_by_mrn,
 * itself an audited read) or "Patient/id" (taken as it is). Needs search
 * rights on AuditEvent. The search is audited ("audit-search", the filter
 * as its query) after the entries are read and before this returns: cb
 * sees them first, so an adapter that may show nothing unaudited keeps
 * them until this returns MR_OK.
 */
enum mr_err mr_records_audit_search(struct mr_records *r,
                                    const struct mr_actor *a,
                                    const struct mr_audit_filter *f,
                                    mr_audit_cb cb, void *ctx,
                                    struct mr_diag *d) MR_WUR;

/* What mr_records_audit_verify found. */
struct mr_audit_report {
    int64_t entries, checkpoints, keys;
    int64_t last_seq;   /* the last entry, 0 if none */
    int64_t signed_seq; /* the last entry a valid checkpoint covers; 0 */
    int64_t signed_ts;  /* that checkpoint's time (UTC ms) */
    char signed_hash[2 * MR_AUDIT_HASH_BYTES + 1]; /* hex */
    char signed_key[MR_AUDIT_KEY_ID_LEN + 1];
    int64_t uncovered; /* entries after signed_seq */
    int64_t bad_seq;   /* where the first problem is; 0 if intact */
    char problem[320];
    struct mr_audit_signer signer; /* can this handle sign? */
};

/*
 * Verify the whole trail: recompute the hash chain, check every
 * checkpoint's signature against the registered public keys and its hash
 * against the chain, and, when anchor ("SEQ:HASH", 64 hex digits, as an
 * earlier verify printed; may be NULL) is given, that entry SEQ still has
 * that hash. MR_ECORRUPT, with d naming the first bad entry, if the trail
 * is not intact; rep is filled either way. Needs search rights on
 * AuditEvent; audited ("audit-verify") with its outcome.
 */
enum mr_err mr_records_audit_verify(struct mr_records *r,
                                    const struct mr_actor *a,
                                    const char *anchor,
                                    struct mr_audit_report *rep,
                                    struct mr_diag *d) MR_WUR;

/* Make a new audit signing key after the old key file was lost (the
 * command line only; MR_EEXISTS while a key file is there). Audited
 * ("audit-key"). */
enum mr_err mr_records_audit_new_key(struct mr_records *r,
                                     const struct mr_actor *a,
                                     char key_id[MR_AUDIT_KEY_ID_LEN + 1],
                                     struct mr_diag *d) MR_WUR;

/* The accounting of disclosures covers this many years back. */
#define MR_DISCLOSURE_YEARS 6

/* One disclosure of a patient's record (HIPAA accounting of
 * disclosures). Text only; no clinical content beyond the description. */
struct mr_disclosure {
    const char *recipient; /* to whom: 1..200 bytes */
    const char *purpose;   /* why: 1..500 bytes */
    const char *what;      /* what was disclosed: 0..1000 bytes, or NULL */
    const char *date;      /* YYYY-MM-DD, not in the future; NULL: today */
    /* Filled by mr_records_disclosures: */
    const char *by;   /* who recorded it */
    int64_t recorded; /* when (UTC ms) */
};

/* Record a disclosure of the chart of mrn (an MRN or "Patient/id", found
 * with mr_records_patient_by_mrn) as an audit entry: action "disclose",
 * detail a JSON object {date, recipient, purpose, what}. */
enum mr_err mr_records_disclose(struct mr_records *r, const struct mr_actor *a,
                                const char *mrn,
                                const struct mr_disclosure *dsc,
                                struct mr_diag *d) MR_WUR;

/* The disclosures of the chart of mrn dated in the last
 * MR_DISCLOSURE_YEARS years, oldest first (by date, then as recorded).
 * The listing is audited ("audit-search") before cb is called; the
 * strings cb sees live until it returns. */
typedef int (*mr_disclosure_cb)(void *ctx, const struct mr_disclosure *dsc);
enum mr_err mr_records_disclosures(struct mr_records *r,
                                   const struct mr_actor *a, const char *mrn,
                                   mr_disclosure_cb cb, void *ctx,
                                   struct mr_diag *d) MR_WUR;

/* ---- the HL7 v2 feed (hl7.c; docs/hl7.md) ---- */

/* A sending system: MSH-3.1 app and MSH-4.1 facility ("" app: any app of
 * that facility; "" facility: any facility of that app), acting with
 * role. tls_client (NULL or ""): its messages must come over TLS with a
 * verified client certificate of that common name. processing: the
 * MSH-11 processing ids accepted, e.g. "P" (NULL: "P"; "PT" also takes
 * training messages, for a test system). */
struct mr_hl7_sender {
    const char *app, *facility, *role, *tls_client, *processing;
    int active;
};

/* Register (s->active) or withdraw a sender. Needs manage-interfaces;
 * versioned and audited. */
enum mr_err mr_records_hl7_sender_set(struct mr_records *r,
                                      const struct mr_actor *a,
                                      const struct mr_hl7_sender *s,
                                      struct mr_diag *d) MR_WUR;
typedef int (*mr_hl7_sender_cb)(void *ctx, const struct mr_hl7_sender *s);
enum mr_err mr_records_hl7_senders(struct mr_records *r,
                                   const struct mr_actor *a,
                                   mr_hl7_sender_cb cb, void *ctx,
                                   struct mr_diag *d) MR_WUR;

/* What became of a received message. */
struct mr_hl7_outcome {
    int64_t id;       /* its row in the interface log */
    char status[16];  /* applied, unmatched, error, rejected */
    char ack_code[4]; /* AA, AE, AR */
    int repeat;       /* a repeat of a logged message: not applied again */
    char detail[800];
};

/*
 * Receive one HL7 v2 message (the bytes of one MLLP frame or one message
 * of a file) carried by `via` (the transport: its user and source are
 * audited; the sender's identity and role come from MSH-3/MSH-4 and the
 * registry; peer_cn is the common name of the connection's verified TLS
 * client certificate, or NULL). The message is logged, applied as its sender,
 * and its outcome, ACK and audit entries are kept, in the caller's group commit
 * or in a transaction of its own. ack receives the ACK to send (for a
 * repeat, the one sent before). MR_OK means the ACK may be sent (once the
 * transaction commits); an error means medrec itself failed and nothing
 * was kept: send no AA.
 */
enum mr_err mr_records_hl7_receive(struct mr_records *r,
                                   const struct mr_actor *via,
                                   const char *peer_cn, const char *bytes,
                                   size_t len, struct mr_buf *ack,
                                   struct mr_hl7_outcome *out,
                                   struct mr_diag *d) MR_WUR;

/* Apply logged message id again (after the patient was registered or the
 * sender fixed): for unmatched, error and rejected messages that were
 * kept. Needs manage-interfaces. */
enum mr_err mr_records_hl7_replay(struct mr_records *r,
                                  const struct mr_actor *a, int64_t id,
                                  struct mr_buf *ack,
                                  struct mr_hl7_outcome *out,
                                  struct mr_diag *d) MR_WUR;

/* The interface log, newest first (needs manage-interfaces; audited after
 * cb has seen the rows: an adapter shows nothing until MR_OK). */
enum mr_err mr_records_hl7_messages(struct mr_records *r,
                                    const struct mr_actor *a,
                                    const struct mr_hl7_filter *f, mr_hl7_cb cb,
                                    void *ctx, struct mr_diag *d) MR_WUR;

#endif
