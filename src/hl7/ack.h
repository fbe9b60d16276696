/*
 * HL7 v2 acknowledgements (original mode ACK: MSH, MSA, and ERR on an
 * error). Pure: the caller passes the ACK's control id and timestamp; no
 * clock, no I/O.
 */
#ifndef MR_HL7_ACK_H
#define MR_HL7_ACK_H

#include "core/buf.h"
#include "hl7/parse.h"
#include "medrec/medrec.h"

#include <stdint.h>

enum mr_hl7_ack_code {
    MR_HL7_AA, /* accepted: applied and committed */
    MR_HL7_AE, /* error: fix the message before sending it again */
    MR_HL7_AR  /* rejected: MSH-9/11/12, an unknown sender, or our failure */
};

struct mr_hl7_ack {
    enum mr_hl7_ack_code code;
    /* MSH-10 of the ACK, fresh for each ACK: 1 to 199 printable ASCII
     * characters, none of them a delimiter. */
    const char *control_id;
    /* MSH-7: an HL7 date/time such as "20260301120000+0100" (digits and
     * '.', '+', '-' only, at most 24 characters). */
    const char *timestamp;
    /* For AE and AR: where the error is and its table 0357 code (NULL:
     * no location, code 207), and the reason as UTF-8 text (NULL: the
     * code's description). For AA, a reason makes the ERR a warning
     * (ERR-4 "W"; MSA-3 before v2.5) and where is its location. */
    const struct mr_hl7_loc *where;
    const char *reason;
};

/*
 * Append to out the ACK for m (successfully parsed and not yet released),
 * segments ended by CR:
 *   MSH with m's own delimiters (MSH-1, MSH-2 as received), MSH-3/4 =
 *       m's MSH-5/6 and MSH-5/6 = m's MSH-3/4 (as received), MSH-7 =
 *       a->timestamp, MSH-9 = ACK^<m's trigger>^ACK (ACK^<trigger> for
 *       v2.3, which has no message structure component), MSH-10 =
 *       a->control_id, MSH-11 and MSH-12 echoed (MSH-11 "P" if empty),
 *       MSH-18 echoed when m has one;
 *   MSA|<code>|<m's MSH-10 as received>, and for v2.3/2.4 errors MSA-3 =
 *       the reason;
 *   ERR for AE/AR: v2.5 and later ERR||<seg>^<seq>^<field>|<code>^<text>^
 *       HL70357|E||||<reason> (ERR-2, ERR-3, ERR-4, ERR-8); before v2.5
 *       ERR|<seg>^<seq>^<field>^<code>&<reason>&HL70357 (ERR-1).
 * Text is escaped for m's delimiters and converted to m's character set
 * (a character it cannot hold becomes '?'). On failure (MR_EINVALID for a
 * bad control id or timestamp, MR_ETOOBIG, MR_ENOMEM) out is left as it
 * was.
 */
enum mr_err mr_hl7_ack_build(const struct mr_hl7_msg *m,
                             const struct mr_hl7_ack *a, struct mr_buf *out,
                             struct mr_diag *d) MR_WUR;

/*
 * Append to out an ACK for bytes that did not parse (a->code AE or AR,
 * usually AR with where/reason from mr_hl7_parse): default delimiters
 * |^~\&, MSH-3 to MSH-6 empty, MSH-9 "ACK", MSH-10 a->control_id, MSH-11
 * the original's if it is P, D or T (else P), MSH-12 the original's if it
 * is 2.3 to 2.8 (else 2.5). MSA-2 is the original's MSH-10 when the first
 * line is an MSH whose field separator and MSH-10 (1 to 199 printable
 * ASCII characters) can be found, re-escaped for the default delimiters;
 * otherwise empty. Errors as mr_hl7_ack_build (AA is MR_EINVALID).
 */
enum mr_err mr_hl7_ack_unparsed(const char *data, size_t len,
                                const struct mr_hl7_ack *a, struct mr_buf *out,
                                struct mr_diag *d) MR_WUR;

/* An HL7 DTM for a time in UTC ms, "20261127145225.661+0000", for
 * MSH-7 of an ACK (out holds at least 32 bytes). */
void mr_hl7_timestamp(int64_t ms, char out[32]);

/* "AA", "AE", "AR". */
const char *mr_hl7_ack_code_name(enum mr_hl7_ack_code c);

/* The description of a table 0357 code ("Required field missing");
 * "Application internal error" for codes it does not know. */
const char *mr_hl7_errcode_text(enum mr_hl7_errcode c);

#endif
