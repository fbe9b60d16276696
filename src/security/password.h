/*
 * Passwords: the choice policy (NIST SP 800-63B 5.1.1.2) and Argon2id
 * hashing. Self-contained: nothing here touches the store.
 *
 * Passwords are taken as (pointer, length) and need not be NUL-terminated;
 * an embedded NUL is refused everywhere rather than silently truncating.
 * No function here copies a password to the heap or puts it in a message.
 */
#ifndef MR_SECURITY_PASSWORD_H
#define MR_SECURITY_PASSWORD_H

#include "medrec/medrec.h"

#include <stddef.h>

/* Length limits in Unicode code points (not bytes). */
#define MR_PASSWORD_MIN_CHARS 12
#define MR_PASSWORD_MAX_CHARS 128
/* The most bytes MR_PASSWORD_MAX_CHARS code points can take in UTF-8. */
#define MR_PASSWORD_MAX_BYTES (4 * MR_PASSWORD_MAX_CHARS)

/* Size of an encoded hash including its NUL (crypto_pwhash_STRBYTES). */
#define MR_PASSWORD_HASH_LEN 128

/* Argon2id cost: OWASP's minimum (19 MiB, 2 passes, 1 lane). A stored hash
 * with other parameters is reported by mr_password_needs_rehash. */
#define MR_PASSWORD_OPSLIMIT 2
#define MR_PASSWORD_MEMLIMIT (19u * 1024u * 1024u)

/*
 * Check a new password against the policy: valid UTF-8 without NULs,
 * 12..128 code points, not the username (ignoring ASCII case), and not a
 * common breached password. A password whose trailing digits, spaces and
 * punctuation are stripped ("Password2024!" -> "password") is also refused
 * when the rest is a common password or the username. Returns MR_OK or
 * MR_EINVALID with a message in d naming `password` and the reason (never
 * the password). username may be NULL or empty to skip that rule.
 */
enum mr_err mr_password_check(const char *pw, size_t len, const char *username,
                              struct mr_diag *d) MR_WUR;

/*
 * Hash pw with Argon2id at MR_PASSWORD_OPSLIMIT/MEMLIMIT and a random salt
 * into out, a NUL-terminated "$argon2id$v=19$m=19456,t=2,p=1$..." string.
 * Does not apply the policy (call mr_password_check first for a new
 * password). MR_EINVALID for an empty password or one with a NUL,
 * MR_ETOOBIG past MR_PASSWORD_MAX_BYTES, MR_ENOMEM when Argon2 cannot get
 * its memory. out is untouched on failure.
 */
enum mr_err mr_password_hash(const char *pw, size_t len,
                             char out[MR_PASSWORD_HASH_LEN],
                             struct mr_diag *d) MR_WUR;

/*
 * 1 if pw matches hash (an encoded Argon2 string from mr_password_hash),
 * else 0: also for a NULL, unterminated or malformed hash, and for a
 * password mr_password_hash would refuse. libsodium compares the derived
 * key in constant time. Costs one Argon2 run (~50-100 ms, 19 MiB).
 */
int mr_password_verify(const char *hash, const char *pw, size_t len) MR_WUR;

/*
 * 1 if hash should be replaced by a new mr_password_hash of the password
 * (just verified) at the next sign-in: not Argon2id, other parameters than
 * the current ones, or malformed. 0 if it is current.
 */
int mr_password_needs_rehash(const char *hash) MR_WUR;

/* Internal, for tests: 1 if the lower-cased s[0..n) is in the generated
 * common-password list, else 0. */
int mr__password_is_common(const char *s, size_t n);

#endif
