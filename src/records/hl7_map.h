/*
 * HL7 v2 to FHIR: applies one parsed ADT, ORU or ORM/OML message through
 * the records service (the one door), acting as the sending system. The
 * mapping table is in docs/hl7.md. Every write is a new version, so a
 * correction or an update never overwrites; the caller (the interface log
 * in src/records/hl7.c) holds the transaction and undoes everything if
 * this fails.
 */
#ifndef MR_RECORDS_HL7_MAP_H
#define MR_RECORDS_HL7_MAP_H

#include "hl7/parse.h"
#include "records/records.h"

/* What applying a message did or why it did not. */
struct mr_hl7_applied {
    struct mr_hl7_loc where; /* the field at fault (errors, unmatched) */
    char reason[600];        /* for the ERR segment and the log */
    char patient[100];       /* "Patient/id" the message was filed to */
    char warning[300];       /* applied, with something the sender should
                                know (an AA with a warning ERR) */
    struct mr_buf resources; /* JSON array of "Type/id/_history/v" */
};
void mr_hl7_applied_init(struct mr_hl7_applied *o);
void mr_hl7_applied_release(struct mr_hl7_applied *o);

/*
 * Apply m as the sender a (its role decides what it may write). ns names
 * the sender for identifiers that carry no assigning authority
 * ("urn:medrec:aa:<ns>"). Returns:
 *   MR_OK           applied (out->resources lists the versions written);
 *   MR_ENOTFOUND    unmatched: the patient, visit or order it refers to is
 *                   not known (nothing should be kept; out->where/reason);
 *   MR_EUNSUPPORTED a message type or event this does not apply (AR);
 *   MR_EINVALID, MR_EDENIED, ... the message cannot be applied as sent
 *                   (AE, out->where/reason name the field);
 *   MR_EIO, MR_EBUSY, MR_ENOMEM, MR_EINTERNAL: medrec's own failure.
 * Whatever it returns, the caller must roll back on anything but MR_OK.
 */
enum mr_err mr_hl7_apply(struct mr_records *r, const struct mr_actor *a,
                         const struct mr_hl7_msg *m, const char *ns,
                         struct mr_hl7_applied *out, struct mr_diag *d) MR_WUR;

/* The FHIR identifier system of an assigning authority: HD components
 * (namespace, universal id, universal id type), or the sender's ns when
 * all are empty. */
void mr_hl7_id_system(const char *namespace_id, const char *universal_id,
                      const char *universal_type, const char *ns, char *out,
                      size_t cap);

#endif
