/*
 * The MLLP listener (mllp.c): HL7 v2 messages over TCP, each applied
 * through the records service on the server's group-commit queue and
 * acknowledged once committed. Started by mr_server_run when
 * mr_server_config.mllp is set.
 */
#ifndef MR_SERVER_MLLP_H
#define MR_SERVER_MLLP_H

#include "medrec/medrec.h"
#include "records/records.h"

#include <stddef.h>

struct mr_mllp_config {
    const char *addr;         /* "127.0.0.1:2575"; port 0 picks one */
    unsigned frame_timeout_s; /* a started frame must end within (30) */
    unsigned idle_timeout_s;  /* a silent connection is closed (3600) */
    size_t max_frame;         /* larger frames: AR, connection closed (1 MiB) */
    int allow_remote;         /* plain MLLP beyond loopback (a tunnel) */
    /* MLLP over TLS (1.2/1.3) with this certificate and key (PEM); with
     * client_ca, every client must show a certificate signed by it. */
    const char *tls_cert, *tls_key, *client_ca;
};

struct mr_mllp_server;

/* Listen and accept in the background; *port receives the port. */
enum mr_err mr_mllp_server_start(const struct mr_mllp_config *cfg,
                                 struct mr_queue *q,
                                 struct mr_mllp_server **out, unsigned *port,
                                 struct mr_diag *d) MR_WUR;
/* Stop accepting, answer what is in flight, close every connection. The
 * queue must still be running. */
void mr_mllp_server_stop(struct mr_mllp_server *s);

#endif
