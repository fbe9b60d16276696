/* Fuzz target: arbitrary bytes as an HL7 v2 message (mr_hl7_parse), then
 * every accessor over every segment, field, repetition, component and
 * subcomponent, unescaping each value, and ACKs for it; the same for each
 * message mr_hl7_next_message splits out. Must never crash, leak or read
 * out of bounds, and keeps these invariants: a failure has a message; a
 * value lies inside the input; unescaped text is valid UTF-8; every ACK
 * medrec builds parses back and names the original control id. */
#include "core/buf.h"
#include "core/text.h"
#include "hl7/ack.h"
#include "hl7/parse.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ack_parses(const struct mr_buf *ack, const char *ctrl,
                             size_t ctrl_len)
{
    struct mr_hl7_msg a;
    struct mr_hl7_slice v;
    struct mr_diag d;

    if (mr_hl7_parse(&a, ack->ptr, ack->len, NULL, NULL, &d) != MR_OK)
        __builtin_trap();
    if (!mr_hl7_eq(a.hdr.msg_type, "ACK") ||
        mr_hl7_get(&a, "MSA", 1, 2, 0, 0, 0, &v) != MR_OK)
        __builtin_trap();
    if (ctrl && (v.len != ctrl_len || memcmp(v.ptr, ctrl, ctrl_len) != 0))
        __builtin_trap();
    mr_hl7_release(&a);
}

static void walk(const struct mr_hl7_msg *m)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);
    struct mr_hl7_slice v;

    for (size_t i = 0; i < m->nsegs; i++) {
        const struct mr_hl7_seg *s = &m->segs[i];

        if (mr_hl7_find(m, s->id, 1) == NULL ||
            mr_hl7_occurrences(m, s->id) == 0)
            __builtin_trap();
        for (size_t f = 0; f <= s->nfields + 1; f++) {
            size_t nr = mr_hl7_count(m, s, f, 0, 0);
            if (mr_hl7_seg_get(m, s, f, 0, 0, 0, &v) != MR_OK)
                __builtin_trap();
            for (size_t r = 1; r <= nr + 1; r++) {
                size_t nc = mr_hl7_count(m, s, f, r, 0);
                for (size_t c = 1; c <= nc + 1; c++) {
                    size_t ns = mr_hl7_count(m, s, f, r, c);
                    for (size_t k = 0; k <= ns + 1; k++) {
                        if (mr_hl7_seg_get(m, s, f, r, c, k, &v) != MR_OK)
                            __builtin_trap();
                        if (v.ptr < m->data || v.ptr + v.len > m->data + m->len)
                            __builtin_trap();
                        mr_buf_reset(&b);
                        if (mr_hl7_unescape(&m->delims, m->hdr.charset, v.ptr,
                                            v.len, &b) != MR_OK)
                            __builtin_trap();
                        if (!mr_utf8_valid(b.ptr, b.len))
                            __builtin_trap();
                    }
                }
            }
        }
    }
    if (mr_hl7_seg_get(m, &m->segs[0], 3, 0, 1, 0, &v) != MR_EINVALID)
        __builtin_trap();
    mr_buf_release(&b);
}

static void one_message(const char *s, size_t n)
{
    struct mr_hl7_msg m;
    struct mr_hl7_loc where;
    struct mr_diag d;
    struct mr_buf ack = MR_BUF_INIT(1 << 20);
    struct mr_hl7_ack a = {MR_HL7_AA, "ACK1", "20260301120000+0100", NULL,
                           NULL};
    enum mr_err err;

    mr_diag_clear(&d);
    err = mr_hl7_parse(&m, s, n, NULL, &where, &d);
    if (err != MR_OK) {
        if (d.msg[0] == '\0' || d.code != err)
            __builtin_trap();
        a.code = MR_HL7_AR;
        a.where = &where;
        a.reason = d.msg;
        {
            struct mr_diag d2;
            if (mr_hl7_ack_unparsed(s, n, &a, &ack, &d2) != MR_OK)
                __builtin_trap();
        }
        check_ack_parses(&ack, NULL, 0);
        mr_buf_release(&ack);
        return;
    }
    if (m.nsegs == 0 || strcmp(m.segs[0].id, "MSH") != 0 ||
        m.hdr.control_id.len == 0 || m.hdr.msg_type.len == 0 ||
        m.hdr.version_minor < 3 || m.hdr.version_minor > 8)
        __builtin_trap();
    walk(&m);

    if (mr_hl7_ack_build(&m, &a, &ack, &d) != MR_OK)
        __builtin_trap();
    check_ack_parses(&ack, m.hdr.control_id.ptr, m.hdr.control_id.len);

    /* an error ACK with the message's own text as the reason */
    {
        struct mr_hl7_loc w = {"PID", 2, 3, 1, 2, 1, MR_HL7_ERR_DATA_TYPE};
        struct mr_buf reason = MR_BUF_INIT(1 << 20);
        struct mr_hl7_slice v;

        if (mr_hl7_seg_get(&m, &m.segs[m.nsegs - 1], 1, 0, 0, 0, &v) ||
            mr_buf_add(&reason, v.ptr, v.len))
            __builtin_trap();
        a.code = MR_HL7_AE;
        a.where = &w;
        a.reason = reason.ptr;
        for (int pass = 0; pass < 2; pass++) {
            mr_buf_reset(&ack);
            if (mr_hl7_ack_build(&m, &a, &ack, &d) != MR_OK)
                __builtin_trap();
            check_ack_parses(&ack, m.hdr.control_id.ptr, m.hdr.control_id.len);
            a.where = NULL;
        }
        mr_buf_release(&reason);
    }
    mr_hl7_release(&m);
    mr_buf_release(&ack);
}

/* The escape functions on raw bytes: Latin-1 always gives UTF-8, UTF-8
 * stays UTF-8, and escaping then unescaping gives the text back (line
 * ends as \n; a NUL cannot come back, \X00\ stays visible). */
static void escapes(const char *s, size_t n)
{
    struct mr_buf a = MR_BUF_INIT(1 << 22), b = MR_BUF_INIT(1 << 22);
    struct mr_buf want = MR_BUF_INIT(1 << 22);
    const struct mr_hl7_delims *dl = &mr_hl7_default_delims;

    if (mr_hl7_unescape(dl, MR_HL7_CS_LATIN1, s, n, &a) != MR_OK ||
        !mr_utf8_valid(a.ptr, a.len))
        __builtin_trap();
    mr_buf_reset(&a);
    if (mr_hl7_unescape(dl, MR_HL7_CS_UTF8, s, n, &a) != MR_OK ||
        (mr_utf8_valid(s, n) && !mr_utf8_valid(a.ptr, a.len)))
        __builtin_trap();
    mr_buf_reset(&a);
    if (memchr(s, '\0', n) == NULL) {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
                continue;
            if (mr_buf_addc(&want, s[i]))
                __builtin_trap();
        }
        if (mr_hl7_escape(dl, s, n, &a) != MR_OK ||
            mr_hl7_unescape(dl, MR_HL7_CS_DEFAULT, a.ptr, a.len, &b) != MR_OK ||
            b.len != want.len || memcmp(b.ptr, want.ptr, b.len) != 0)
            __builtin_trap();
        for (size_t i = 0; i < a.len; i++)
            if (a.ptr[i] == '|' || a.ptr[i] == '^' || a.ptr[i] == '~' ||
                a.ptr[i] == '&' || a.ptr[i] == '\r' || a.ptr[i] == '\n')
                __builtin_trap();
    }
    mr_buf_release(&a);
    mr_buf_release(&b);
    mr_buf_release(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct mr_hl7_slice msg;
    size_t off = 0, prev = 0, count = 0;

    one_message(s, size);
    escapes(s, size);

    /* the same bytes as a stream of messages */
    while (mr_hl7_next_message(s, size, &off, &msg)) {
        if (off <= prev && count > 0)
            __builtin_trap();
        if (msg.ptr < s || msg.ptr + msg.len > s + size || msg.len == 0)
            __builtin_trap();
        prev = off;
        if (++count > size)
            __builtin_trap();
        one_message(msg.ptr, msg.len);
    }
    return 0;
}
