/*
 * The one place where an error becomes an HTTP status and a FHIR
 * OperationOutcome (and, later, an HL7 ACK code).
 */
#ifndef MR_SERVER_ERRMAP_H
#define MR_SERVER_ERRMAP_H

#include "core/buf.h"
#include "medrec/medrec.h"

/* HTTP status for an error code. */
unsigned mr_errmap_http_status(enum mr_err err);

/* FHIR issue-type code (http://hl7.org/fhir/issue-type) for an error. */
const char *mr_errmap_issue_code(enum mr_err err);

/* Append an OperationOutcome with one issue (severity "error" unless
 * severity is given) whose diagnostics is msg, JSON-escaped. */
enum mr_err mr_errmap_outcome(struct mr_buf *out, enum mr_err err,
                              const char *severity, const char *msg) MR_WUR;

#endif
