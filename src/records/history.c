/*
 * The FHIR form of one history entry, shared by every adapter that shows
 * history (CLI --json, instance/type/system history over HTTP).
 */
#include "core/time.h"
#include "records/records.h"

enum mr_err mr_history_entry(struct mr_buf *out, const char *base,
                             const struct mr_version *m, const char *json,
                             size_t len, int first)
{
    char ts[32];
    enum mr_err err;

    mr_time_format(m->ts, ts);
    err =
        mr_buf_addf(out, "%s{\"fullUrl\":\"%s%s%s/%s\",", first ? "" : ",",
                    base ? base : "", base && *base ? "/" : "", m->type, m->id);
    if (!err && !m->deleted)
        err = mr_buf_addf(out, "\"resource\":%.*s,", (int)len, json);
    if (!err)
        err = mr_buf_addf(
            out,
            "\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"},"
            "\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%lld\\\"\","
            "\"lastModified\":\"%s\"}}",
            m->deleted        ? "DELETE"
            : m->version == 1 ? "POST"
                              : "PUT",
            m->type, m->id,
            m->deleted        ? "204"
            : m->version == 1 ? "201"
                              : "200",
            (long long)m->version, ts);
    return err;
}
