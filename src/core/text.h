/*
 * Text normalisation for string search: case- and accent-insensitive
 * matching as FHIR string search requires ("Muñoz" is found by "munoz").
 */
#ifndef MR_CORE_TEXT_H
#define MR_CORE_TEXT_H

#include "core/buf.h"

#include <stddef.h>

/*
 * Append to out the folded form of UTF-8 s[0..n): lower case, Latin
 * diacritics removed (é->e, ß->ss, ø->o ...), runs of whitespace and
 * punctuation collapsed to one space, leading/trailing space trimmed.
 * Invalid UTF-8 bytes are dropped. Returns MR_ETOOBIG/MR_ENOMEM from out.
 */
enum mr_err mr_text_fold(const char *s, size_t n, struct mr_buf *out) MR_WUR;

/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates), else 0. */
int mr_utf8_valid(const char *s, size_t n);

#endif
