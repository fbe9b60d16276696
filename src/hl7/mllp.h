/*
 * MLLP (Minimal Lower Layer Protocol) framing, no I/O: a frame is
 *   0x0B <payload> 0x1C 0x0D
 * The decoder is incremental: feed it whatever a read returned, in any
 * chunks, and take events one at a time until it has consumed the chunk.
 *
 *   while (n > 0) {
 *       size_t used;
 *       struct mr_mllp_event ev;
 *       enum mr_err err = mr_mllp_decode(&dec, p, n, &used, &ev, &d);
 *       p += used, n -= used;
 *       ... ev.kind: FRAME (ev.ptr/len the payload), GARBAGE (bytes outside
 *       a frame), TOOBIG / BROKEN (err and d say why), NONE ...
 *   }
 *
 * A frame that is not finished stays pending inside the decoder; timing it
 * out is the caller's job (mr_mllp_pending, mr_mllp_decoder_reset).
 */
#ifndef MR_HL7_MLLP_H
#define MR_HL7_MLLP_H

#include "core/buf.h"
#include "medrec/medrec.h"

#include <stddef.h>

#define MR_MLLP_SB '\x0b' /* start block */
#define MR_MLLP_EB '\x1c' /* end block, followed by a carriage return */
#define MR_MLLP_CR '\x0d'

/* Default largest payload: the HL7 parser's message limit. */
#define MR_MLLP_MAX_FRAME (1024u * 1024u)

enum mr_mllp_kind {
    MR_MLLP_NONE,    /* the chunk is consumed; nothing (more) to report */
    MR_MLLP_FRAME,   /* a complete payload: ptr/len, valid until the next
                        call on this decoder */
    MR_MLLP_GARBAGE, /* bytes outside any frame (ptr/len point into the
                        caller's chunk); reported, never merged */
    MR_MLLP_TOOBIG,  /* a frame passed the maximum: its bytes are dropped
                        up to its end block or the next start block */
    MR_MLLP_BROKEN   /* a frame was cut short: a start block inside it, or
                        an end block not followed by CR; len bytes of it
                        are dropped */
};

struct mr_mllp_event {
    enum mr_mllp_kind kind;
    const char *ptr;
    size_t len;
};

/* Caller-allocated; init before use, release after. */
struct mr_mllp_decoder {
    size_t max_frame;
    int state;
    struct mr_buf frame;
};

/* max_frame 0 means MR_MLLP_MAX_FRAME. */
void mr_mllp_decoder_init(struct mr_mllp_decoder *dec, size_t max_frame);
void mr_mllp_decoder_release(struct mr_mllp_decoder *dec);

/* Drop a pending partial frame (after a time-out) and wait for a start
 * block again. */
void mr_mllp_decoder_reset(struct mr_mllp_decoder *dec);

/* Bytes of payload received for a frame that has started but not ended,
 * or 0 between frames. */
size_t mr_mllp_pending(const struct mr_mllp_decoder *dec);

/* 1 while inside a frame (start block seen, end not yet), else 0. */
int mr_mllp_in_frame(const struct mr_mllp_decoder *dec);

/*
 * Consume a prefix of in[0..n) and report at most one event. Always sets
 * *used and *ev; a call that consumes nothing reports an event, so the
 * loop above always ends. Returns MR_OK for NONE, FRAME and
 * GARBAGE; MR_ETOOBIG for TOOBIG; MR_EINVALID for BROKEN; MR_ENOMEM when
 * the frame could not be stored (it is dropped like an oversize one). The
 * decoder stays usable after every error, and d (if not NULL) says what
 * happened.
 */
enum mr_err mr_mllp_decode(struct mr_mllp_decoder *dec, const char *in,
                           size_t n, size_t *used, struct mr_mllp_event *ev,
                           struct mr_diag *d) MR_WUR;

/* Append one frame around payload[0..n) to out. MR_EINVALID if the
 * payload holds a start or end block byte (it would break the framing);
 * out is then, as on MR_ETOOBIG or MR_ENOMEM, left as it was. */
enum mr_err mr_mllp_encode(struct mr_buf *out, const char *payload,
                           size_t n) MR_WUR;

#endif
