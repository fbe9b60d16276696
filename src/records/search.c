/*
 * Searches through the records service: parse, authorize, run, audit.
 */
#include "fhir/search.h"
#include "records/records_impl.h"
#include "store/store.h"

#include <string.h>

enum mr_err mr_records_search(struct mr_records *r, const struct mr_actor *a,
                              const char *type, const char *query,
                              mr_store_cb cb, void *ctx, int64_t *total,
                              struct mr_diag *d)
{
    struct mr_query q;
    enum mr_err err;

    if ((err = mr__check_actor(a, d)) || (err = mr__check_type(type, d)))
        return err;
    err = mr_query_parse(&q, type, query, strlen(query), d);
    if (!err && q.nunknown)
        /* Refused rather than ignored: a mistyped parameter must not
         * silently widen a search. */
        err = mr_diag_set(d, MR_EINVALID,
                          "%s: \"%s\" is not a supported search parameter",
                          type, q.unknown[0]);
    if (err) {
        mr_query_release(&q);
        return err;
    }
    err = mr__tx_begin(r, d);
    if (!err) {
        err = mr_store_search(r->st, &q, cb, ctx, total, d);
        err = mr__finish_read(r, a, "search", err, type, NULL, NULL, query, d);
    }
    mr_query_release(&q);
    return err;
}
