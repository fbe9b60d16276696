/*
 * medrec public API: error codes and version.
 *
 * Errors are generated from one X-macro list so that names and messages
 * cannot drift apart (after libuv). MR_OK is 0; every fallible function
 * returns an enum mr_err and leaves its out-parameters untouched on failure.
 * The detail (field path and reason) travels in a struct mr_diag.
 */
#ifndef MEDREC_MEDREC_H
#define MEDREC_MEDREC_H

#include <stddef.h>

#define MEDREC_VERSION "0.1.0"

#define MR_ERRORS(X)                                                           \
    X(OK, "success")                                                           \
    X(NOMEM, "out of memory")                                                  \
    X(INVALID, "invalid input")                                                \
    X(JSON, "malformed JSON")                                                  \
    X(TOOBIG, "input too large")                                               \
    X(NOTFOUND, "not found")                                                   \
    X(GONE, "resource deleted")                                                \
    X(CONFLICT, "version conflict")                                            \
    X(DUPLICATE, "possible duplicate")                                         \
    X(EXISTS, "already exists")                                                \
    X(IO, "input/output error")                                                \
    X(BUSY, "database is locked")                                              \
    X(CORRUPT, "database is corrupt")                                          \
    X(NEWER, "database is from a newer medrec")                                \
    X(NOTDB, "not a medrec database")                                          \
    X(DENIED, "access denied")                                                 \
    X(UNAUTH, "not signed in")                                                 \
    X(THROTTLED, "too many attempts")                                          \
    X(UNSUPPORTED, "not supported")                                            \
    X(USAGE, "bad usage")                                                      \
    X(INTERNAL, "internal error")

enum mr_err {
#define MR__ERR_ENUM(name, msg) MR_E##name,
    MR_ERRORS(MR__ERR_ENUM)
#undef MR__ERR_ENUM
        MR__ERR_COUNT
};
#define MR_OK MR_EOK

#if defined(__GNUC__)
#define MR_WUR __attribute__((warn_unused_result))
#define MR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MR_WUR
#define MR_PRINTF(f, a)
#endif

/* Short, static description of an error code. Never NULL. */
const char *mr_strerror(enum mr_err err);

/* The symbolic name ("NOTFOUND") of an error code. Never NULL. */
const char *mr_errname(enum mr_err err);

/*
 * Diagnostic detail for one failed call: the code and a one-line message
 * naming the field and the reason, e.g.
 *   Patient.birthDate: "1984-13-09" is not a valid date
 * Callers own it (usually on the stack); functions taking a NULL diag
 * simply skip the detail.
 */
struct mr_diag {
    enum mr_err code;
    char msg[512];
};

/* Record err and a printf-style message in d (if d is not NULL); returns
 * err so callers can write `return mr_diag_set(d, MR_EINVALID, ...)`. */
enum mr_err mr_diag_set(struct mr_diag *d, enum mr_err err, const char *fmt,
                        ...) MR_PRINTF(3, 4);

/* Reset d to MR_OK and an empty message. */
void mr_diag_clear(struct mr_diag *d);

/* The best message for d: its detail, or mr_strerror(code) when empty. */
const char *mr_diag_msg(const struct mr_diag *d);

#endif
