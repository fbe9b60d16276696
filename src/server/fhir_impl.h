/*
 * Internals shared by the FHIR REST files (fhir.c, fhir_search.c).
 */
#ifndef MR_SERVER_FHIR_IMPL_H
#define MR_SERVER_FHIR_IMPL_H

#include "server/server.h"

/* Set resp to an error status with an OperationOutcome. */
void mr__fhir_fail(struct mr_http_resp *resp, enum mr_err err, const char *msg);
void mr__fhir_fail_diag(struct mr_http_resp *resp, const struct mr_diag *d);

/* GET /fhir/Type?query and POST /fhir/Type/_search. */
void mr__fhir_search(const struct mr_http_req *req, struct mr_http_resp *resp,
                     const char *type, const char *query);

/* GET /fhir/Type/id/_history, /fhir/Type/_history (id NULL) and
 * /fhir/_history (both NULL), a page at a time with a next link. */
/* GET /fhir/AuditEvent: the audit trail (fhir_audit.c). */
void mr__fhir_audit(const struct mr_http_req *req, struct mr_http_resp *resp);

void mr__fhir_history_all(const struct mr_http_req *req,
                          struct mr_http_resp *resp, const char *type,
                          const char *id);

/* GET /fhir/Patient/{id}/$everything. */
void mr__fhir_everything(const struct mr_http_req *req,
                         struct mr_http_resp *resp, const char *id);

/* History Bundle entries (instance, type and system history). */
struct mr__fhir_hist {
    struct mr_buf *out;
    const char *base;
    int n;
};
int mr__fhir_hist_entry(void *ctx, const struct mr_version *m, const char *json,
                        size_t len);

#endif
