/*
 * Sign-in for the HTTP adapter: sessions and API tokens, and the /auth
 * endpoints (login, logout, break-glass, whoami).
 */
#ifndef MR_SERVER_AUTH_H
#define MR_SERVER_AUTH_H

#include "server/server.h"

/* The web UI's session cookie (the __Host- prefix: Secure, Path=/, no
 * Domain). */
#define MR_AUTH_COOKIE "__Host-medrec"

struct mr_auth;

enum mr_err mr_auth_new(unsigned idle_seconds, int require_mfa,
                        struct mr_auth **out, struct mr_diag *d) MR_WUR;
void mr_auth_free(struct mr_auth *a);

/* Who sends this request (session cookie or Bearer token)? MR_EUNAUTH
 * with the reason if nobody valid. */
enum mr_err mr_auth_check(struct mr_auth *a, const struct mr_http_req *req,
                          struct mr_records *records, struct mr_principal *who,
                          struct mr_diag *d) MR_WUR;

/* /auth/... (req->path below /auth). */
void mr_auth_handle(struct mr_auth *a, const struct mr_http_req *req,
                    struct mr_http_resp *resp, int authenticated);

#endif
