#include "server/errmap.h"

#include <jansson.h>
#include <stdlib.h>

unsigned mr_errmap_http_status(enum mr_err err)
{
    switch (err) {
    case MR_OK:
        return 200;
    case MR_EINVALID:
    case MR_EJSON:
    case MR_EUSAGE:
        return 400;
    case MR_EDENIED:
        return 403;
    case MR_EUNAUTH:
        return 401;
    case MR_ETHROTTLED:
        return 429;
    case MR_ENOTFOUND:
        return 404;
    case MR_ECONFLICT:
        return 412;
    case MR_EDUPLICATE:
    case MR_EEXISTS:
        return 409;
    case MR_EGONE:
        return 410;
    case MR_ETOOBIG:
        return 413;
    case MR_EUNSUPPORTED:
        return 501;
    case MR_EBUSY:
        return 503;
    default:
        return 500;
    }
}

const char *mr_errmap_issue_code(enum mr_err err)
{
    switch (err) {
    case MR_OK:
        return "informational";
    case MR_EINVALID:
    case MR_EUSAGE:
        return "invalid";
    case MR_EJSON:
        return "structure";
    case MR_EDENIED:
        return "forbidden";
    case MR_EUNAUTH:
        return "login";
    case MR_ETHROTTLED:
        return "throttled";
    case MR_ENOTFOUND:
        return "not-found";
    case MR_EGONE:
        return "deleted";
    case MR_ECONFLICT:
    case MR_EEXISTS:
        return "conflict";
    case MR_EDUPLICATE:
        return "duplicate";
    case MR_ETOOBIG:
        return "too-costly";
    case MR_EUNSUPPORTED:
        return "not-supported";
    case MR_EBUSY:
        return "transient";
    default:
        return "exception";
    }
}

enum mr_err mr_errmap_outcome(struct mr_buf *out, enum mr_err err,
                              const char *severity, const char *msg)
{
    json_t *o;
    char *text;
    enum mr_err e;

    o = json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "resourceType", "OperationOutcome",
                  "issue", "severity", severity ? severity : "error", "code",
                  mr_errmap_issue_code(err), "diagnostics",
                  msg && *msg ? msg : mr_strerror(err));
    if (!o) /* msg was not UTF-8: say less rather than nothing */
        o = json_pack(
            "{s:s,s:[{s:s,s:s,s:s}]}", "resourceType", "OperationOutcome",
            "issue", "severity", severity ? severity : "error", "code",
            mr_errmap_issue_code(err), "diagnostics", mr_strerror(err));
    if (!o)
        return MR_ENOMEM;
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return MR_ENOMEM;
    e = mr_buf_adds(out, text);
    free(text);
    return e;
}
