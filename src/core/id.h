/*
 * Identifiers: random resource ids and medical record numbers.
 */
#ifndef MR_CORE_ID_H
#define MR_CORE_ID_H

#include <stdint.h>

#define MR_ID_LEN 16

/* A new random resource id: 16 characters of lower-case base32 (80 bits
 * from libsodium's CSPRNG), NUL-terminated into out. */
void mr_id_new(char out[MR_ID_LEN + 1]);

/* 1 if s is a valid FHIR id ([A-Za-z0-9\-\.]{1,64}), else 0. */
int mr_id_valid(const char *s);

/*
 * Medical record numbers: the sequence number as at least 7 digits followed
 * by a Damm check digit, which catches every single-digit error and every
 * transposition of adjacent digits. out needs 24 bytes.
 */
void mr_mrn_format(uint64_t seq, char out[24]);
/* 1 if s is all digits (8..21) and its check digit is right, else 0. */
int mr_mrn_valid(const char *s);

#endif
