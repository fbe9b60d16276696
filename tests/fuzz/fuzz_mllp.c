/* Fuzz target: arbitrary bytes as an MLLP stream. The first byte picks the
 * largest frame, the next eight the sizes of the chunks the rest is fed
 * in (cycled); the stream is also fed whole. Must never crash, leak or
 * loop, and keeps these invariants: each call consumes bytes or reports
 * an event; a frame holds no framing byte and fits the limit; garbage
 * points into the chunk; and the events (frames, refusals, garbage byte
 * count) are the same however the stream is cut. Each frame is also
 * re-encoded and decoded back. */
#include "core/buf.h"
#include "hl7/mllp.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 9

/* Feed in[0..n) in chunks; append a log of the events to log (garbage runs
 * merged so any chunking logs the same). */
static void run(const char *in, size_t n, const uint8_t *sizes, size_t nsizes,
                size_t max_frame, struct mr_buf *log)
{
    struct mr_mllp_decoder dec;
    size_t off = 0, k = 0, garbage = 0, calls = 0;

    mr_mllp_decoder_init(&dec, max_frame);
    while (off < n) {
        size_t chunk = nsizes ? sizes[k++ % nsizes] : 0;
        const char *p = in + off;
        size_t left;

        if (chunk == 0 || chunk > n - off)
            chunk = n - off;
        left = chunk;
        off += chunk;
        while (left > 0) {
            struct mr_mllp_event ev;
            struct mr_diag d;
            size_t used = (size_t)-1;
            enum mr_err err;

            if (++calls > 4 * n + 16)
                __builtin_trap(); /* no progress */
            err = mr_mllp_decode(&dec, p, left, &used, &ev, &d);
            if (used > left || (used == 0 && ev.kind == MR_MLLP_NONE))
                __builtin_trap();
            if (ev.kind == MR_MLLP_GARBAGE) {
                if (err || ev.len == 0 || ev.ptr < p ||
                    ev.ptr + ev.len > p + used)
                    __builtin_trap();
                garbage += ev.len;
            }
            p += used;
            left -= used;
            if (ev.kind == MR_MLLP_GARBAGE || ev.kind == MR_MLLP_NONE) {
                if (err)
                    __builtin_trap();
                continue;
            }
            if (garbage && mr_buf_addf(log, "G%zu;", garbage))
                __builtin_trap();
            garbage = 0;
            if (ev.kind == MR_MLLP_FRAME) {
                struct mr_buf enc = MR_BUF_INIT(max_frame + 3);
                struct mr_mllp_decoder back;
                struct mr_mllp_event ev2;
                size_t used2;

                if (err || ev.len > max_frame ||
                    memchr(ev.ptr, MR_MLLP_SB, ev.len) ||
                    memchr(ev.ptr, MR_MLLP_EB, ev.len))
                    __builtin_trap();
                if (mr_buf_addf(log, "F%zu:", ev.len) ||
                    mr_buf_add(log, ev.ptr, ev.len) || mr_buf_addc(log, ';'))
                    __builtin_trap();
                /* encode and decode back */
                if (mr_mllp_encode(&enc, ev.ptr, ev.len) != MR_OK)
                    __builtin_trap();
                mr_mllp_decoder_init(&back, max_frame);
                if (mr_mllp_decode(&back, enc.ptr, enc.len, &used2, &ev2,
                                   NULL) != MR_OK ||
                    ev2.kind != MR_MLLP_FRAME || used2 != enc.len ||
                    ev2.len != ev.len || memcmp(ev2.ptr, ev.ptr, ev.len))
                    __builtin_trap();
                mr_mllp_decoder_release(&back);
                mr_buf_release(&enc);
            } else if (ev.kind == MR_MLLP_TOOBIG) {
                if (err != MR_ETOOBIG || d.msg[0] == '\0' ||
                    mr_buf_adds(log, "T;"))
                    __builtin_trap();
            } else if (ev.kind == MR_MLLP_BROKEN) {
                if (err != MR_EINVALID || d.msg[0] == '\0' ||
                    mr_buf_adds(log, "B;"))
                    __builtin_trap();
            } else {
                __builtin_trap();
            }
        }
    }
    if (garbage && mr_buf_addf(log, "G%zu;", garbage))
        __builtin_trap();
    if (mr_mllp_pending(&dec) > max_frame ||
        (mr_mllp_pending(&dec) && !mr_mllp_in_frame(&dec)))
        __builtin_trap();
    if (mr_mllp_in_frame(&dec) &&
        mr_buf_addf(log, "P%zu;", mr_mllp_pending(&dec)))
        __builtin_trap();
    mr_mllp_decoder_reset(&dec);
    if (mr_mllp_in_frame(&dec) || mr_mllp_pending(&dec))
        __builtin_trap();
    mr_mllp_decoder_release(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_buf whole = MR_BUF_INIT(1 << 24), cut = MR_BUF_INIT(1 << 24);
    static const uint8_t one[] = {1};
    size_t max_frame;

    if (size < HEADER)
        return 0;
    /* 1..256 bytes, or the default when the byte is 0 */
    max_frame = data[0] ? data[0] : MR_MLLP_MAX_FRAME;
    run((const char *)data + HEADER, size - HEADER, NULL, 0, max_frame, &whole);
    run((const char *)data + HEADER, size - HEADER, data + 1, 8, max_frame,
        &cut);
    if (whole.len != cut.len || memcmp(whole.ptr, cut.ptr, whole.len))
        __builtin_trap();
    mr_buf_reset(&cut);
    run((const char *)data + HEADER, size - HEADER, one, 1, max_frame, &cut);
    if (whole.len != cut.len || memcmp(whole.ptr, cut.ptr, whole.len))
        __builtin_trap();
    mr_buf_release(&whole);
    mr_buf_release(&cut);
    return 0;
}
