/*
 * Time-based one-time passwords (RFC 6238) as authenticator apps use them:
 * HMAC-SHA1, 6 digits, 30-second steps; base32 (RFC 4648) for the secret.
 * Self-contained: storing the secret and the last used step is the
 * caller's business.
 */
#ifndef MR_SECURITY_TOTP_H
#define MR_SECURITY_TOTP_H

#include "core/buf.h"
#include "medrec/medrec.h"

#include <stddef.h>
#include <stdint.h>

#define MR_TOTP_KEY_LEN 20 /* bytes of a new secret (160 bits, RFC 4226) */
#define MR_TOTP_KEY_MIN 16 /* RFC 4226 requires at least 128 bits */
#define MR_TOTP_KEY_MAX 64
#define MR_TOTP_DIGITS 6
#define MR_TOTP_PERIOD 30 /* seconds per step */

/* Characters of the unpadded base32 form of n bytes (without the NUL). */
#define MR_BASE32_LEN(n) (((n)*8 + 4) / 5)

/* A new random secret (libsodium's CSPRNG). */
void mr_totp_secret_new(uint8_t key[MR_TOTP_KEY_LEN]);

/*
 * Encode in[0..n) as upper-case RFC 4648 base32 without padding into out,
 * NUL-terminated. outsize must be at least MR_BASE32_LEN(n) + 1, else
 * MR_ETOOBIG with out untouched.
 */
enum mr_err mr_totp_base32_encode(const uint8_t *in, size_t n, char *out,
                                  size_t outsize) MR_WUR;

/*
 * Decode base32 s[0..len) into out, setting *outlen. Either case is
 * accepted, and trailing '=' padding; anything else (spaces, a length no
 * encoding produces, non-zero unused trailing bits) is MR_EINVALID with
 * the reason in d. MR_ETOOBIG when out (outsize bytes) is too small.
 * out and *outlen are untouched on failure.
 */
enum mr_err mr_totp_base32_decode(const char *s, size_t len, uint8_t *out,
                                  size_t outsize, size_t *outlen,
                                  struct mr_diag *d) MR_WUR;

/*
 * Append to out the provisioning URI for an authenticator app (usually
 * shown as a QR code):
 *   otpauth://totp/medrec:USERNAME?secret=BASE32&issuer=medrec
 *     &algorithm=SHA1&digits=6&period=30
 * with the username percent-encoded (every byte but A-Z a-z 0-9 - . _ ~).
 * MR_EINVALID for an empty username or a key length outside
 * MR_TOTP_KEY_MIN..MAX; MR_ETOOBIG/MR_ENOMEM from out, which is untouched
 * on failure. The URI holds the secret: treat it like one.
 */
enum mr_err mr_totp_uri(const char *username, const uint8_t *key, size_t keylen,
                        struct mr_buf *out) MR_WUR;

/*
 * The code (0..999999) for time step `step` (unix time / 30), or -1 for a
 * negative step, a key length outside MR_TOTP_KEY_MIN..MAX, or an HMAC
 * failure. Format it with "%06d".
 */
int mr_totp_code(const uint8_t *key, size_t keylen, int64_t step);

/*
 * Check a code typed by the user at unix time now_unix. code must be
 * exactly 6 ASCII digits (NUL-terminated). The steps now-1, now and now+1
 * are tried (clock drift of up to 30 s either way), each compared in
 * constant time; a step <= last_used_step is refused so a code cannot be
 * used twice (pass -1 when none was used yet). Returns the matched step,
 * which the caller stores as the new last_used_step once sign-in
 * succeeds, or -1 when nothing matched.
 */
int64_t mr_totp_verify(const uint8_t *key, size_t keylen, const char *code,
                       int64_t now_unix, int64_t last_used_step);

#endif
