/*
 * Patient registration rules beyond FHIR structure: what a records
 * department requires before a chart exists.
 */
#ifndef MR_RECORDS_PATIENT_H
#define MR_RECORDS_PATIENT_H

#include "medrec/medrec.h"

#include <jansson.h>
#include <stdint.h>

/*
 * Check a (structurally valid) Patient: a name or an identifier is
 * required; birthDate not in the future (relative to now_ms) and not
 * before 1850; deceasedDateTime not before birthDate; phone numbers and
 * e-mail addresses of a plausible shape; addresses not empty.
 * MR_EINVALID with the field path in d.
 */
enum mr_err mr_patient_check(const json_t *p, int64_t now_ms,
                             struct mr_diag *d) MR_WUR;

/* 1 if v looks like a phone number: digits with + ( ) - . space and an
 * optional extension, 7 to 15 digits. */
int mr_phone_valid(const char *v);
/* 1 if v looks like an e-mail address (one @, a dot after it, no space). */
int mr_email_valid(const char *v);

#endif
