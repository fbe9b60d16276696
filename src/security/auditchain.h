/*
 * The tamper-evident audit trail: the hash chain over audit entries, the
 * Ed25519 signing key kept beside the database, signed checkpoints, and
 * a verifier that replays a trail. Pure helpers over libsodium (no
 * database, no clock), so any store backend and the tests share them.
 *
 * Chain: hash(n) = BLAKE2b-256(hash(n-1) || encoding(entry n)), with 32
 * zero bytes before the first entry. The encoding is canonical and
 * unambiguous (docs/audit.md gives it byte by byte): a version tag, seq
 * and ts as 8-byte big-endian integers, then each text field as one byte
 * 0 (NULL) or 1 (present) followed, when present, by its length as an
 * 8-byte big-endian integer and its bytes.
 *
 * Checkpoint: an Ed25519 signature over (tag, seq, ts, hash(seq)).
 */
#ifndef MR_SECURITY_AUDITCHAIN_H
#define MR_SECURITY_AUDITCHAIN_H

#include "medrec/medrec.h"

#include <stddef.h>
#include <stdint.h>

#define MR_AUDIT_HASH_BYTES 32
#define MR_AUDIT_SIG_BYTES 64
#define MR_AUDIT_PK_BYTES 32
#define MR_AUDIT_KEY_ID_LEN 16 /* hex digits of a key id */
/* The text fields of an entry, in chain order: actor, role, source,
 * action, outcome, type, id, patient, query, detail. */
#define MR_AUDIT_NFIELDS 10

/* One text field: p NULL stands for SQL NULL (distinct from ""). */
struct mr_audit_text {
    const char *p;
    size_t n;
};

/* One audit entry as the chain sees it. */
struct mr_audit_row {
    int64_t seq;
    int64_t ts;
    struct mr_audit_text f[MR_AUDIT_NFIELDS];
};

/* t = s (NUL-terminated, or NULL). */
void mr_audit_text_set(struct mr_audit_text *t, const char *s);

/* out = BLAKE2b-256(prev || encoding(row)). Allocates nothing. */
void mr_auditchain_hash(const unsigned char prev[MR_AUDIT_HASH_BYTES],
                        const struct mr_audit_row *row,
                        unsigned char out[MR_AUDIT_HASH_BYTES]);

/* ---- the signing key ---------------------------------------------------- */

/* An Ed25519 key pair. Wipe it with mr_auditkey_wipe when done. */
struct mr_audit_key {
    unsigned char sk[64];
    unsigned char pk[MR_AUDIT_PK_BYTES];
    char id[MR_AUDIT_KEY_ID_LEN + 1];
};

/* The id of a public key: the first 8 bytes of its BLAKE2b-256, in hex. */
void mr_auditkey_id(const unsigned char pk[MR_AUDIT_PK_BYTES],
                    char id[MR_AUDIT_KEY_ID_LEN + 1]);

/* Load the key file at path: MR_ENOTFOUND if there is none; MR_EDENIED
 * if group or others may read it (it must be mode 0600 or stricter);
 * MR_EINVALID if it is not a medrec audit key. k is untouched on error. */
enum mr_err mr_auditkey_load(const char *path, struct mr_audit_key *k,
                             struct mr_diag *d) MR_WUR;

/* Create a new key file at path (mode 0600, written whole then linked
 * into place, so a reader never sees half a key) and fill k.
 * MR_EEXISTS, k untouched, if a file is already there. */
enum mr_err mr_auditkey_create(const char *path, struct mr_audit_key *k,
                               struct mr_diag *d) MR_WUR;

void mr_auditkey_wipe(struct mr_audit_key *k);

/* Sign a checkpoint: entry seq, whose chain hash is hash, at time ts. */
void mr_auditchain_sign(const struct mr_audit_key *k, int64_t seq, int64_t ts,
                        const unsigned char hash[MR_AUDIT_HASH_BYTES],
                        unsigned char sig[MR_AUDIT_SIG_BYTES]);

/* 1 if sig is a valid checkpoint signature by pk, else 0. */
int mr_auditchain_sig_ok(const unsigned char pk[MR_AUDIT_PK_BYTES], int64_t seq,
                         int64_t ts,
                         const unsigned char hash[MR_AUDIT_HASH_BYTES],
                         const unsigned char sig[MR_AUDIT_SIG_BYTES]);

/* ---- verification ------------------------------------------------------- */

/*
 * Replays a trail: feed the keys, then the checkpoints in seq order,
 * then every entry in seq order with its stored prev and hash (blobs as
 * stored, any length). The first problem (by position in the trail) is
 * kept in bad_seq and problem; the rest of the result says how far the
 * signatures reach.
 */
struct mr_auditchain_verifier {
    /* Results. */
    int64_t entries;     /* entries read */
    int64_t last_seq;    /* seq of the last entry, 0 if none */
    int64_t checkpoints; /* checkpoints read */
    int64_t signed_seq;  /* last entry covered by a valid checkpoint */
    int64_t signed_ts;
    unsigned char signed_hash[MR_AUDIT_HASH_BYTES];
    char signed_key[MR_AUDIT_KEY_ID_LEN + 1];
    int64_t bad_seq;   /* where the first problem is; 0 none */
    char problem[320]; /* "" while intact */
    /* Optional anchor (seq and hash recorded elsewhere earlier): the
     * trail must still hold that entry with that hash. */
    int64_t anchor_seq;
    unsigned char anchor_hash[MR_AUDIT_HASH_BYTES];

    /* Internal. */
    struct mr_auditchain_key_ *keys;
    size_t nkeys, capkeys;
    struct mr_auditchain_ckpt_ *ckpts;
    size_t nckpts, capckpts, next_ckpt;
    unsigned char prev[MR_AUDIT_HASH_BYTES];
    int stopped;
};

void mr_auditchain_verifier_init(struct mr_auditchain_verifier *v);
void mr_auditchain_verifier_release(struct mr_auditchain_verifier *v);

/* Add a registered public key (pk of pklen bytes). MR_ENOMEM. */
enum mr_err mr_auditchain_add_key(struct mr_auditchain_verifier *v,
                                  const char *key_id, const void *pk,
                                  size_t pklen) MR_WUR;

/* Add a checkpoint (after every key; in seq order). The signature is
 * checked here. MR_ENOMEM. */
enum mr_err mr_auditchain_add_checkpoint(struct mr_auditchain_verifier *v,
                                         int64_t seq, int64_t ts,
                                         const void *hash, size_t hlen,
                                         const char *key_id, const void *sig,
                                         size_t slen) MR_WUR;

/* Feed the next entry. Returns 0 to go on, 1 once the trail is known to
 * be broken (further entries change nothing). */
int mr_auditchain_feed(struct mr_auditchain_verifier *v,
                       const struct mr_audit_row *row, const void *prev,
                       size_t plen, const void *hash, size_t hlen);

/* After the last entry: checks what lies beyond the end of the trail.
 * Returns 1 if the trail is intact, 0 if not (see problem). */
int mr_auditchain_finish(struct mr_auditchain_verifier *v);

#endif
