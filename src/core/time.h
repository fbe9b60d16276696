/*
 * Time: UTC milliseconds since the epoch, and the FHIR date formats.
 * No gmtime/localtime: civil-date arithmetic is done here, thread-safe.
 */
#ifndef MR_CORE_TIME_H
#define MR_CORE_TIME_H

#include "medrec/medrec.h"

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time in UTC milliseconds since 1970-01-01. */
int64_t mr_time_now_ms(void);

/* Format ms as an RFC 3339 / FHIR instant "2026-11-27T09:55:15.123Z" into
 * out (at least 32 bytes). */
void mr_time_format(int64_t ms, char out[32]);

/* Days since 1970-01-01 for a proleptic Gregorian civil date, and back. */
int64_t mr_days_from_civil(int y, unsigned m, unsigned d);
void mr_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d);

enum mr_date_kind {
    MR_DATE_DATE,     /* YYYY, YYYY-MM, YYYY-MM-DD */
    MR_DATE_DATETIME, /* a date, or YYYY-MM-DDThh:mm:ss(.s+)?(Z|+hh:mm) */
    MR_DATE_INSTANT,  /* full dateTime with seconds and a zone */
    MR_DATE_TIME      /* hh:mm:ss(.s+)? (no range is computed) */
};

/*
 * The span a FHIR date value covers, as [lo, hi) in UTC ms: "1984" covers
 * the whole year, "1984-03-09" that day (dates without a zone are taken as
 * UTC), "1984-03-09T10:00:00+01:00" one second.
 */
struct mr_daterange {
    int64_t lo, hi;
};

/* Parse and validate s[0..n) as the given kind (real calendar dates, hours
 * 0-23 etc.). On success fills *out (which may be NULL). Returns
 * MR_EINVALID for anything else. */
enum mr_err mr_date_parse(const char *s, size_t n, enum mr_date_kind kind,
                          struct mr_daterange *out) MR_WUR;

/*
 * Parse a date given in a search query ("birthdate=ge1984-03-09"): any
 * FHIR dateTime, and also, as FHIR search allows, a time without seconds
 * ("2024-01-05T10:30", one minute) and a time without a zone (taken as
 * UTC, like dates). Returns MR_EINVALID for anything else.
 */
enum mr_err mr_date_parse_search(const char *s, size_t n,
                                 struct mr_daterange *out) MR_WUR;

/* Whole years between a YYYY-MM-DD (or YYYY-MM / YYYY) birth date and the
 * UTC day of now_ms; -1 if the date is not valid or in the future. */
int mr_age_years(const char *birth_date, int64_t now_ms);

#endif
