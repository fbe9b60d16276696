/*
 * Bearer tokens for sessions and API clients: 256 random bits, URL-safe
 * base64 without padding, behind a short prefix so that a leaked token is
 * recognisable to secret scanners ("mrs_..." a session, "mrt_..." an API
 * token). Only mr_token_hash of a token is ever stored; the token itself
 * is shown once and then exists only on the client.
 */
#ifndef MR_SECURITY_TOKEN_H
#define MR_SECURITY_TOKEN_H

#include "medrec/medrec.h"

#include <stddef.h>

#define MR_TOKEN_BYTES 32     /* random bytes in a token (256 bits) */
#define MR_TOKEN_B64_LEN 43   /* base64url characters of 32 bytes */
#define MR_TOKEN_PREFIX_MAX 8 /* characters, [a-z0-9_] */
#define MR_TOKEN_MAX (MR_TOKEN_PREFIX_MAX + MR_TOKEN_B64_LEN + 1) /* + NUL */
#define MR_TOKEN_HASH_HEX 65 /* 64 hex digits + NUL */

#define MR_TOKEN_PREFIX_SESSION "mrs_"
#define MR_TOKEN_PREFIX_API "mrt_"

/*
 * Write a new token, prefix followed by 43 base64url characters of 32
 * random bytes, NUL-terminated into out. MR_EINVALID (out untouched) if
 * prefix is not 1..MR_TOKEN_PREFIX_MAX characters of [a-z0-9_].
 */
enum mr_err mr_token_new(const char *prefix, char out[MR_TOKEN_MAX]) MR_WUR;

/*
 * 1 if token has the shape mr_token_new gives with this prefix (exactly
 * 43 canonical base64url characters after it), else 0. A cheap filter
 * before hashing what a client sent; it says nothing about validity.
 */
int mr_token_wellformed(const char *token, const char *prefix) MR_WUR;

/*
 * The BLAKE2b-256 of the NUL-terminated token (prefix included) as 64
 * lower-case hex digits and a NUL: the form that is stored and looked up.
 * The token has 256 bits of entropy, so an unkeyed fast hash suffices.
 */
void mr_token_hash(const char *token, char hex[MR_TOKEN_HASH_HEX]);

/*
 * 1 if a and b are the same 64-hex-digit hash, else 0 (also when either
 * is NULL or not 64 characters). Constant time in the contents.
 */
int mr_token_hash_equal(const char *a, const char *b) MR_WUR;

#endif
