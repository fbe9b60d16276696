/*
 * HL7 v2 ER7 ("pipe and hat") parsing: bytes in, a structure of slices into
 * those bytes out. No copies of field data, no I/O, no clock.
 *
 * A message is a list of segments; a segment is a 3-character id and
 * fields; a field holds repetitions, a repetition components, a component
 * subcomponents. Numbering is HL7's, 1-based: PID-3.1 is field 3, first
 * component. In MSH, field 1 is the field separator itself and field 2 the
 * encoding characters, so MSH-9 is the ninth field as HL7 counts, not the
 * ninth after the id; both are returned whole, never split.
 *
 * Slices are raw: escape sequences (\F\ ...) are still in them; decode text
 * with mr_hl7_unescape. A slice is valid while the input bytes are.
 */
#ifndef MR_HL7_PARSE_H
#define MR_HL7_PARSE_H

#include "core/buf.h"
#include "medrec/medrec.h"

#include <stddef.h>

/* Default limits; pass a struct mr_hl7_limits to change them. */
#define MR_HL7_MAX_BYTES (1024u * 1024u) /* one message, BOM included */
#define MR_HL7_MAX_SEGMENTS 10000u
#define MR_HL7_MAX_FIELDS 256u     /* per segment, MSH-1 counted */
#define MR_HL7_MAX_CONTROL_ID 199u /* MSH-10, bytes as sent */

struct mr_hl7_limits {
    size_t max_bytes;
    size_t max_segments;
    size_t max_fields;
};

/* A run of bytes in the input. ptr is never NULL (an absent value is an
 * empty slice). */
struct mr_hl7_slice {
    const char *ptr;
    size_t len;
};

/* The message's delimiters, from MSH-1 and MSH-2. truncation (the fifth
 * encoding character, v2.7+) is '\0' when MSH-2 has only four. */
struct mr_hl7_delims {
    char field, component, repetition, escape, subcomponent, truncation;
};

/* MSH-18. DEFAULT (absent or empty) means ASCII, and UTF-8 is passed
 * through; ASCII is also taken to allow UTF-8 (a superset), so every
 * accepted byte sequence is valid UTF-8 except under LATIN1, whose bytes
 * mr_hl7_unescape converts. */
enum mr_hl7_charset {
    MR_HL7_CS_DEFAULT,
    MR_HL7_CS_ASCII,  /* "ASCII" */
    MR_HL7_CS_LATIN1, /* "8859/1" */
    MR_HL7_CS_UTF8    /* "UNICODE UTF-8" */
};

/* HL7 table 0357 (message error condition codes), for ERR segments. */
enum mr_hl7_errcode {
    MR_HL7_ERR_ACCEPTED = 0,
    MR_HL7_ERR_SEGMENT_SEQUENCE = 100,
    MR_HL7_ERR_REQUIRED_MISSING = 101,
    MR_HL7_ERR_DATA_TYPE = 102,
    MR_HL7_ERR_TABLE_VALUE = 103,
    MR_HL7_ERR_VALUE_TOO_LONG = 104,
    MR_HL7_ERR_UNSUPPORTED_TYPE = 200,
    MR_HL7_ERR_UNSUPPORTED_EVENT = 201,
    MR_HL7_ERR_UNSUPPORTED_PROCESSING_ID = 202,
    MR_HL7_ERR_UNSUPPORTED_VERSION = 203,
    MR_HL7_ERR_UNKNOWN_KEY = 204,
    MR_HL7_ERR_DUPLICATE_KEY = 205,
    MR_HL7_ERR_RECORD_LOCKED = 206,
    MR_HL7_ERR_INTERNAL = 207
};

/* Where an error is, as an ERR segment reports it. seg is "" and seq 0
 * when no segment can be named; field 0 names the whole segment; rep,
 * comp and sub are 0 when not meaningful. */
struct mr_hl7_loc {
    char seg[4];
    unsigned seq;   /* 1-based occurrence among segments with this id */
    unsigned field; /* HL7 field position (MSH-1 is the separator) */
    unsigned rep, comp, sub;
    enum mr_hl7_errcode code;
};

/* One segment. fields[0] is field 1 (for MSH, the separator). */
struct mr_hl7_seg {
    char id[4];                  /* NUL-terminated copy of the id */
    struct mr_hl7_slice text;    /* the whole segment, no terminator */
    struct mr_hl7_slice *fields; /* nfields slices, inside the message */
    size_t nfields;              /* highest field position present */
};

/* The header summary. Slices are raw (still escaped) and empty when the
 * field is; the whole field unless a component is named. */
struct mr_hl7_header {
    struct mr_hl7_slice sending_app, sending_facility;     /* MSH-3, MSH-4 */
    struct mr_hl7_slice receiving_app, receiving_facility; /* MSH-5, MSH-6 */
    struct mr_hl7_slice datetime;      /* MSH-7.1 (not validated) */
    struct mr_hl7_slice msg_type;      /* MSH-9.1, required */
    struct mr_hl7_slice trigger;       /* MSH-9.2 */
    struct mr_hl7_slice structure;     /* MSH-9.3 */
    struct mr_hl7_slice control_id;    /* MSH-10, required, <= 199 bytes */
    struct mr_hl7_slice processing_id; /* MSH-11.1 */
    struct mr_hl7_slice version;       /* MSH-12.1, required: 2.3 .. 2.8.x */
    int version_minor;                 /* x of "2.x": 3 .. 8 */
    struct mr_hl7_slice accept_ack;    /* MSH-15 */
    struct mr_hl7_slice app_ack;       /* MSH-16 */
    struct mr_hl7_slice charset_name;  /* MSH-18 as sent ("" when absent) */
    enum mr_hl7_charset charset;
};

/* A parsed message. The caller owns the struct; mr_hl7_release frees what
 * mr_hl7_parse allocated. data/len exclude a leading UTF-8 BOM. */
struct mr_hl7_msg {
    const char *data;
    size_t len;
    struct mr_hl7_delims delims;
    struct mr_hl7_seg *segs;
    size_t nsegs;
    struct mr_hl7_header hdr;
    void *mem; /* one allocation holding segs and all field slices */
};

/*
 * Parse one message from data[0..len): a UTF-8 BOM is skipped, segments
 * end at CR, LF or CRLF, blank lines are skipped. The first segment must
 * be MSH; FHS/BHS/BTS/FTS and a second MSH are refused (split batches
 * first). Delimiters must be distinct printable ASCII, neither
 * alphanumeric nor '"'. Control characters other than TAB are refused
 * (HL7 escapes them as \Xhh\). lim NULL means the MR_HL7_MAX_* defaults.
 *
 * On success *m is filled (release with mr_hl7_release; it points into
 * data, which must outlive it). On failure *m is untouched, nothing stays
 * allocated, d says e.g. "MSH-9: message type is required" or
 * "segment 4: does not start with a 3-character segment id", and *where
 * (if not NULL) locates the error for an ERR segment. Errors:
 * MR_EINVALID (syntax, required field), MR_EUNSUPPORTED (version or
 * MSH-18 character set), MR_ETOOBIG (a limit), MR_ENOMEM.
 */
enum mr_err mr_hl7_parse(struct mr_hl7_msg *m, const char *data, size_t len,
                         const struct mr_hl7_limits *lim,
                         struct mr_hl7_loc *where, struct mr_diag *d) MR_WUR;

/*
 * Split a stream of messages (one file with several, or an FHS/BHS batch)
 * without parsing them: from *off, skip blank lines and the envelope
 * segments FHS, BHS, BTS and FTS, and set *msg to the bytes from there up
 * to (not including) the next MSH or envelope line. Lines that are not in
 * a message (a batch without MSH) come back as a "message" of their own,
 * which mr_hl7_parse then refuses, so nothing is dropped unseen. Returns 1
 * with *msg and *off advanced, or 0 at the end. Envelope counts (BTS-1,
 * FTS-1) are not checked.
 */
int mr_hl7_next_message(const char *data, size_t len, size_t *off,
                        struct mr_hl7_slice *msg);

/* Free what mr_hl7_parse allocated; m is left empty. Safe to call twice. */
void mr_hl7_release(struct mr_hl7_msg *m);

/* The occurrence-th (1-based) segment with this id, or NULL. */
const struct mr_hl7_seg *mr_hl7_find(const struct mr_hl7_msg *m, const char *id,
                                     size_t occurrence);

/* How many segments have this id. */
size_t mr_hl7_occurrences(const struct mr_hl7_msg *m, const char *id);

/*
 * The value at field/rep/comp/sub of segment s (all 1-based; field 0 is
 * the segment id). 0 for rep, comp or sub means "the whole": rep 0 gives
 * the field with its repetitions, comp 0 the whole repetition, sub 0 the
 * whole component; the levels after a 0 must be 0 too (else MR_EINVALID).
 * A position beyond what the segment holds is an empty slice: HL7 does
 * not tell an absent value from an empty one. MSH-1 and MSH-2 are never
 * split. Returns MR_OK, or MR_EINVALID for bad arguments.
 */
enum mr_err mr_hl7_seg_get(const struct mr_hl7_msg *m,
                           const struct mr_hl7_seg *s, size_t field, size_t rep,
                           size_t comp, size_t sub,
                           struct mr_hl7_slice *out) MR_WUR;

/* mr_hl7_seg_get on the occurrence-th segment with this id, e.g.
 * mr_hl7_get(m, "PID", 1, 3, 1, 1, 0, &out) for PID-3.1 of the first
 * repetition. MR_ENOTFOUND when there is no such segment. */
enum mr_err mr_hl7_get(const struct mr_hl7_msg *m, const char *seg,
                       size_t occurrence, size_t field, size_t rep, size_t comp,
                       size_t sub, struct mr_hl7_slice *out) MR_WUR;

/*
 * How many values the next level holds: with rep 0, the repetitions of the
 * field; with comp 0, the components of repetition rep; else the
 * subcomponents of component comp. An empty value holds 0.
 */
size_t mr_hl7_count(const struct mr_hl7_msg *m, const struct mr_hl7_seg *s,
                    size_t field, size_t rep, size_t comp);

/* 1 if the value is the explicit null "" (two double quotes), else 0. */
int mr_hl7_is_null(struct mr_hl7_slice v);

/* 1 if the slice equals the C string s. */
int mr_hl7_eq(struct mr_hl7_slice v, const char *s);

/*
 * Append the text of a raw value to out, as UTF-8: \F\ \S\ \T\ \R\ \E\
 * (and \P\ when a truncation character is defined) become the delimiter,
 * \Xhh..\ the bytes it spells, \.br\ a line feed. Anything else (\H\,
 * \N\, \.sp\, \Cxxyy\, an unterminated or malformed sequence, \X\ that
 * spells a NUL or invalid UTF-8) is copied as it stands, so it stays
 * visible. Under MR_HL7_CS_LATIN1 every byte is converted to UTF-8.
 * The explicit null "" is copied as two quotes: test mr_hl7_is_null first.
 * Returns MR_ETOOBIG past out's limit or MR_ENOMEM; out is then left as it
 * was.
 */
enum mr_err mr_hl7_unescape(const struct mr_hl7_delims *dl,
                            enum mr_hl7_charset cs, const char *s, size_t n,
                            struct mr_buf *out) MR_WUR;

/*
 * Append s[0..n) to out escaped for a value under dl: the delimiters
 * become \F\ \S\ \T\ \R\ \E\ (\P\), a line feed (or CRLF) \.br\, other
 * control characters but TAB \Xhh\. Other bytes are copied. out is left as it
 * was on failure (MR_ETOOBIG, MR_ENOMEM).
 */
enum mr_err mr_hl7_escape(const struct mr_hl7_delims *dl, const char *s,
                          size_t n, struct mr_buf *out) MR_WUR;

/* The delimiters a message gets when none are given: |^~\& */
extern const struct mr_hl7_delims mr_hl7_default_delims;

/* Internal (for ack.c): the delimiters of an MSH segment s[0..n), checked
 * as mr_hl7_parse checks them; and the minor x of a version "2.x[.y]", or
 * -1. */
enum mr_err mr__hl7_parse_delims(const char *s, size_t n,
                                 struct mr_hl7_delims *dl,
                                 struct mr_hl7_loc *where,
                                 struct mr_diag *d) MR_WUR;
int mr__hl7_version_minor(struct mr_hl7_slice v);

#endif
