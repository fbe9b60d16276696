/*
 * Fuzz target for the byte-preserving JSON splice: for any JSON object
 * jansson accepts, splicing in an id and meta must give JSON that jansson
 * accepts and that equals the input with those members replaced.
 */
#include "core/buf.h"
#include "fhir/jsontext.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in, *over, *out, *want;
    struct mr_buf b = MR_BUF_INIT(1 << 24);
    const char *k;
    json_t *v;

    in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!in)
        return 0;
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    over = json_pack("{s:s,s:{s:s},s:n}", "id", "fuzz", "meta", "versionId",
                     "1", "drop");
    if (mr_json_splice((const char *)data, size, over, &b) == MR_OK) {
        out = json_loadb(b.ptr, b.len, JSON_REJECT_DUPLICATES, NULL);
        if (!out)
            abort(); /* splice produced invalid JSON */
        want = json_deep_copy(in);
        json_object_foreach(over, k, v)
        {
            if (json_is_null(v))
                json_object_del(want, k);
            else
                json_object_set(want, k, v);
        }
        if (!json_equal(out, want))
            abort(); /* splice changed the meaning */
        json_decref(want);
        json_decref(out);
    }
    json_decref(over);
    json_decref(in);
    mr_buf_release(&b);
    return 0;
}
