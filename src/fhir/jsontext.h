/*
 * JSON text that keeps its bytes. jansson turns every decimal into a C
 * double and prints it back with up to 17 digits, so "1.50" would come
 * back as 1.5 and 0.1 as 0.10000000000000001; FHIR decimals carry their
 * precision in the text. Stored resources are therefore written from the
 * client's own bytes: minified, with only the members medrec sets (id,
 * meta, an added identifier ...) replaced.
 */
#ifndef MR_FHIR_JSONTEXT_H
#define MR_FHIR_JSONTEXT_H

#include "core/buf.h"
#include "medrec/medrec.h"

#include <jansson.h>

/*
 * Append to out the JSON object src[0..len) (already validated, e.g. by
 * json_loadb) without insignificant whitespace, with the members of
 * `over` (a JSON object, may be NULL) replacing or adding members. Output
 * order: resourceType, id, meta (when present in either), then src's other
 * members in their order, then over's members not in src. Members of
 * `over` whose value is JSON null are removed. String and number bytes
 * from src are copied unchanged.
 */
enum mr_err mr_json_splice(const char *src, size_t len, const json_t *over,
                           struct mr_buf *out) MR_WUR;

/* Append src[0..len) without insignificant whitespace. */
enum mr_err mr_json_minify(const char *src, size_t len,
                           struct mr_buf *out) MR_WUR;

/* A byte range of JSON text. */
struct mr_span {
    const char *ptr;
    size_t len;
};

/*
 * For a Bundle's JSON text, the byte ranges of entry[i].resource (len 0
 * when an entry has none), in order, at most max of them. *n receives the
 * number of entries (which may exceed max: the caller refuses that).
 * MR_EJSON if the text is not an object.
 */
enum mr_err mr_json_bundle_resources(const char *src, size_t len,
                                     struct mr_span *out, size_t max,
                                     size_t *n) MR_WUR;

/*
 * Append src minified, with every string value for which repl(ctx, s, n)
 * (s: the raw bytes between the quotes) returns a non-NULL replacement
 * written as that replacement (a plain string, JSON-escaped here).
 * Used to rewrite urn:uuid references inside a transaction.
 */
enum mr_err
mr_json_replace_strings(const char *src, size_t len,
                        const char *(*repl)(void *ctx, const char *s, size_t n),
                        void *ctx, struct mr_buf *out) MR_WUR;

/* Copy the top-level string member `name` of the object src[0..len)
 * (raw, without decoding escapes) into out; 0 if found, -1 if not. */
int mr_json_member_string(const char *src, size_t len, const char *name,
                          char *out, size_t cap);

#endif
