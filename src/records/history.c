/*
 * The FHIR form of one history entry, shared by every adapter that shows
 * history (CLI --json, instance/type/system history over HTTP).
 */
#include "core/time.h"
#include "records/records.h"

#include <jansson.h>
#include <stdlib.h>

/* Who made a version and why, as extensions of the entry's request (the
 * web workspace shows them). Free text, so JSON-escaped by jansson. */
static enum mr_err who_and_why(struct mr_buf *out, const struct mr_version *m)
{
    json_t *ext = json_array();
    char *text;
    enum mr_err err;

    if (!ext)
        return MR_ENOMEM;
    if (m->author[0])
        json_array_append_new(ext,
                              json_pack("{s:s,s:s}", "url", "urn:medrec:author",
                                        "valueString", m->author));
    if (m->reason[0])
        json_array_append_new(ext,
                              json_pack("{s:s,s:s}", "url", "urn:medrec:reason",
                                        "valueString", m->reason));
    if (!json_array_size(ext)) {
        json_decref(ext);
        return MR_OK;
    }
    text = json_dumps(ext, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ext);
    if (!text)
        return MR_ENOMEM;
    err = mr_buf_addf(out, "\"extension\":%s,", text);
    free(text);
    return err;
}

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
        err = mr_buf_adds(out, "\"request\":{");
    if (!err)
        err = who_and_why(out, m);
    if (!err)
        err = mr_buf_addf(
            out,
            "\"method\":\"%s\",\"url\":\"%s/%s\"},"
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
