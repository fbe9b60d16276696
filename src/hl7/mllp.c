/*
 * MLLP framing: an incremental decoder and an encoder. The decoder is a
 * five-state machine over the byte stream; payload bytes are copied in
 * runs into one bounded buffer per connection.
 */
#include "hl7/mllp.h"

#include <string.h>

enum {
    ST_HUNT,    /* between frames: waiting for a start block */
    ST_BODY,    /* inside a frame */
    ST_BODY_EB, /* inside a frame, an end block seen: CR must follow */
    ST_SKIP,    /* dropping an oversize frame */
    ST_SKIP_EB  /* dropping, an end block seen */
};

/* A buffer that once held a big frame is given back rather than kept per
 * idle connection. */
#define KEEP_CAPACITY (64u * 1024u)

void mr_mllp_decoder_init(struct mr_mllp_decoder *dec, size_t max_frame)
{
    dec->max_frame = max_frame ? max_frame : MR_MLLP_MAX_FRAME;
    dec->state = ST_HUNT;
    mr_buf_init(&dec->frame, dec->max_frame);
}

void mr_mllp_decoder_release(struct mr_mllp_decoder *dec)
{
    mr_buf_release(&dec->frame);
    dec->state = ST_HUNT;
}

static void frame_reset(struct mr_mllp_decoder *dec)
{
    if (dec->frame.cap > KEEP_CAPACITY)
        mr_buf_release(&dec->frame);
    else
        mr_buf_reset(&dec->frame);
}

void mr_mllp_decoder_reset(struct mr_mllp_decoder *dec)
{
    frame_reset(dec);
    dec->state = ST_HUNT;
}

size_t mr_mllp_pending(const struct mr_mllp_decoder *dec)
{
    return (dec->state == ST_BODY || dec->state == ST_BODY_EB) ? dec->frame.len
                                                               : 0;
}

int mr_mllp_in_frame(const struct mr_mllp_decoder *dec)
{
    return dec->state == ST_BODY || dec->state == ST_BODY_EB;
}

static enum mr_err report(struct mr_mllp_event *ev, enum mr_mllp_kind kind,
                          const char *ptr, size_t len, size_t *used, size_t at)
{
    ev->kind = kind;
    ev->ptr = ptr;
    ev->len = len;
    *used = at;
    return MR_OK;
}

enum mr_err mr_mllp_decode(struct mr_mllp_decoder *dec, const char *in,
                           size_t n, size_t *used, struct mr_mllp_event *ev,
                           struct mr_diag *d)
{
    size_t i = 0;

    /* The previous FRAME event's payload is no longer needed. */
    if (dec->state == ST_HUNT && dec->frame.len)
        frame_reset(dec);
    report(ev, MR_MLLP_NONE, "", 0, used, 0);

    while (i < n) {
        switch (dec->state) {
        case ST_HUNT: {
            const char *sb = memchr(in + i, MR_MLLP_SB, n - i);
            size_t stop = sb ? (size_t)(sb - in) : n;
            if (stop > i)
                return report(ev, MR_MLLP_GARBAGE, in + i, stop - i, used,
                              stop);
            i++;
            dec->state = ST_BODY;
            frame_reset(dec);
            break;
        }
        case ST_BODY: {
            size_t j = i, dropped;
            while (j < n && in[j] != MR_MLLP_SB && in[j] != MR_MLLP_EB)
                j++;
            if (j > i) {
                enum mr_err err;
                if (j - i > dec->max_frame - dec->frame.len) {
                    dropped = dec->frame.len + (j - i);
                    frame_reset(dec);
                    dec->state = ST_SKIP;
                    report(ev, MR_MLLP_TOOBIG, "", dropped, used, j);
                    return mr_diag_set(d, MR_ETOOBIG,
                                       "MLLP frame larger than %zu bytes "
                                       "refused; dropped up to its end",
                                       dec->max_frame);
                }
                err = mr_buf_add(&dec->frame, in + i, j - i);
                if (err) {
                    dropped = dec->frame.len + (j - i);
                    frame_reset(dec);
                    dec->state = ST_SKIP;
                    report(ev, MR_MLLP_BROKEN, "", dropped, used, j);
                    return mr_diag_set(d, err,
                                       "MLLP frame dropped: %s after %zu "
                                       "bytes",
                                       mr_strerror(err), dropped);
                }
                i = j;
                break;
            }
            if (in[i] == MR_MLLP_EB) {
                dec->state = ST_BODY_EB;
                i++;
                break;
            }
            /* A start block inside a frame: the sender gave up on the
             * frame and began another. Say so; the new one is kept. */
            dropped = dec->frame.len;
            frame_reset(dec);
            report(ev, MR_MLLP_BROKEN, "", dropped, used, i + 1);
            return mr_diag_set(d, MR_EINVALID,
                               "MLLP start block inside a frame: %zu bytes "
                               "of an unfinished frame dropped",
                               dropped);
        }
        case ST_BODY_EB: {
            size_t dropped;
            if (in[i] == MR_MLLP_CR) {
                dec->state = ST_HUNT;
                return report(ev, MR_MLLP_FRAME, dec->frame.ptr, dec->frame.len,
                              used, i + 1);
            }
            /* Not consumed: in ST_HUNT a start block begins a frame and
             * anything else is reported as garbage. */
            dropped = dec->frame.len + 1;
            frame_reset(dec);
            dec->state = ST_HUNT;
            report(ev, MR_MLLP_BROKEN, "", dropped, used, i);
            return mr_diag_set(d, MR_EINVALID,
                               "MLLP end block not followed by a carriage "
                               "return: %zu bytes of a frame dropped",
                               dropped);
        }
        case ST_SKIP: {
            size_t j = i;
            while (j < n && in[j] != MR_MLLP_SB && in[j] != MR_MLLP_EB)
                j++;
            if (j == n) {
                i = n;
                break;
            }
            dec->state = in[j] == MR_MLLP_SB ? ST_BODY : ST_SKIP_EB;
            i = j + 1;
            break;
        }
        default: /* ST_SKIP_EB */
            if (in[i] == MR_MLLP_CR)
                dec->state = ST_HUNT;
            else if (in[i] == MR_MLLP_SB)
                dec->state = ST_BODY;
            else if (in[i] != MR_MLLP_EB)
                dec->state = ST_SKIP;
            i++;
            break;
        }
    }
    return report(ev, MR_MLLP_NONE, "", 0, used, n);
}

enum mr_err mr_mllp_encode(struct mr_buf *out, const char *payload, size_t n)
{
    enum mr_err err;

    if (memchr(payload, MR_MLLP_SB, n) || memchr(payload, MR_MLLP_EB, n))
        return MR_EINVALID;
    if (n > (size_t)-1 - 3)
        return MR_ETOOBIG;
    err = mr_buf_grow(out, n + 3);
    if (err)
        return err;
    /* cannot fail now: the room is there */
    if (mr_buf_addc(out, MR_MLLP_SB) || mr_buf_add(out, payload, n) ||
        mr_buf_add(out, "\x1c\x0d", 2))
        return MR_EINTERNAL;
    return MR_OK;
}
