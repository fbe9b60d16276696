/* Fuzz target: arbitrary bytes as a FHIR search query string for Patient
 * and for Observation (mr_query_parse), and as a date and as text to fold.
 * Must never crash, leak or read out of bounds, and what it returns must
 * keep the documented invariants. */
#include "core/buf.h"
#include "core/text.h"
#include "core/time.h"
#include "fhir/search.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_query(const char *type, const char *s, size_t n)
{
    struct mr_query q;
    struct mr_diag d;
    enum mr_err err;

    mr_diag_clear(&d);
    err = mr_query_parse(&q, type, s, n, &d);
    if (err != MR_OK) {
        if (d.msg[0] == '\0' || d.code != err)
            __builtin_trap();
    } else {
        if (q.count < 1 || q.count > MR_QUERY_MAX_COUNT || q.n > 64)
            __builtin_trap();
        for (size_t i = 0; i < q.n; i++) {
            const struct mr_q_clause *c = &q.clauses[i];
            if (c->nvals == 0 || (c->special == MR_Q_PARAM) != !!c->param)
                __builtin_trap();
            for (size_t k = 0; k < c->nvals; k++) {
                const struct mr_q_value *v = &c->vals[k];
                if (c->modifier == MR_MOD_MISSING)
                    continue;
                if (c->kind == MR_IX_STRING && (!v->s1 || strlen(v->s1) > n))
                    __builtin_trap();
                if (c->kind == MR_IX_DATE && v->lo >= v->hi)
                    __builtin_trap();
                if (c->kind == MR_IX_TOKEN && !v->s1 && !v->s2)
                    __builtin_trap();
            }
        }
        for (size_t i = 0; i < q.nunknown; i++)
            if (!q.unknown[i])
                __builtin_trap();
    }
    mr_query_release(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct mr_daterange r;
    struct mr_buf b = MR_BUF_INIT(1 << 20);

    check_query("Patient", s, size);
    check_query("Observation", s, size);

    for (int k = MR_DATE_DATE; k <= MR_DATE_TIME; k++) {
        if (mr_date_parse(s, size, (enum mr_date_kind)k, &r) == MR_OK &&
            k != MR_DATE_TIME && r.lo >= r.hi)
            __builtin_trap();
    }
    if (mr_date_parse_search(s, size, &r) == MR_OK && r.lo >= r.hi)
        __builtin_trap();

    if (mr_text_fold(s, size, &b) == MR_OK) {
        /* Folded text is valid UTF-8 with no leading/trailing space. */
        if (!mr_utf8_valid(b.ptr, b.len) ||
            (b.len && (b.ptr[0] == ' ' || b.ptr[b.len - 1] == ' ')))
            __builtin_trap();
    }
    mr_buf_release(&b);
    return 0;
}
