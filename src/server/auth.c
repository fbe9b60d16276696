/*
 * Sign-in over HTTP: sessions (in memory, keyed by the hash of their
 * token, never the token), API tokens (checked through the records
 * service, remembered for a short while), and the /auth endpoints. The
 * password rules, lockout and audit are the records service's.
 */
#include "server/auth.h"
#include "core/time.h"
#include "security/token.h"
#include "server/errmap.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SESSIONS 4096
#define MAX_TOKENS 256
/* A revoked API token stops working within this time. */
#define TOKEN_CACHE_MS 30000
#define SESSION_MAX_MS (12LL * 3600 * 1000)

struct entry {
    char hash[MR_TOKEN_HASH_HEX]; /* "" = free */
    struct mr_principal who;
    int64_t created, seen, checked;
};

struct mr_auth {
    pthread_mutex_t lock;
    int64_t idle_ms;
    int require_mfa;
    struct entry sessions[MAX_SESSIONS];
    struct entry tokens[MAX_TOKENS];
};

enum mr_err mr_auth_new(unsigned idle_seconds, int require_mfa,
                        struct mr_auth **out, struct mr_diag *d)
{
    struct mr_auth *a = calloc(1, sizeof(*a));

    if (!a)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    pthread_mutex_init(&a->lock, NULL);
    a->idle_ms = (int64_t)(idle_seconds ? idle_seconds : 900) * 1000;
    a->require_mfa = require_mfa;
    *out = a;
    return MR_OK;
}

void mr_auth_free(struct mr_auth *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    sodium_memzero(a, sizeof(*a));
    free(a);
}

static struct entry *find(struct entry *v, size_t n, const char *hash)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].hash[0] && mr_token_hash_equal(v[i].hash, hash))
            return &v[i];
    return NULL;
}

/* "Authorization: Bearer X" or the __Host-medrec cookie. */
static const char *credential(const struct mr_http_req *req, char *buf,
                              size_t cap)
{
    const char *h = req->header(req->header_ctx, "Authorization");
    const char *c, *e;

    if (h && !strncasecmp(h, "Bearer ", 7)) {
        snprintf(buf, cap, "%s", h + 7);
        return buf;
    }
    c = req->header(req->header_ctx, "Cookie");
    if (c && (c = strstr(c, MR_AUTH_COOKIE "=")) != NULL) {
        c += strlen(MR_AUTH_COOKIE) + 1;
        e = c + strcspn(c, "; ");
        if ((size_t)(e - c) < cap) {
            memcpy(buf, c, (size_t)(e - c));
            buf[e - c] = '\0';
            return buf;
        }
    }
    return NULL;
}

static enum mr_err check(struct mr_auth *a, const char *t,
                         struct mr_records *records, struct mr_principal *who,
                         struct mr_diag *d)
{
    char hash[MR_TOKEN_HASH_HEX];
    int64_t now = mr_time_now_ms();
    struct entry *e;
    enum mr_err err;

    mr_token_hash(t, hash);
    pthread_mutex_lock(&a->lock);
    if (!strncmp(t, MR_TOKEN_PREFIX_SESSION, 4)) {
        e = find(a->sessions, MAX_SESSIONS, hash);
        if (e &&
            (now - e->seen > a->idle_ms || now - e->created > SESSION_MAX_MS)) {
            memset(e, 0, sizeof(*e));
            pthread_mutex_unlock(&a->lock);
            return mr_diag_set(d, MR_EUNAUTH,
                               "the session has expired; sign in again");
        }
        if (e) {
            e->seen = now;
            *who = e->who;
        }
        pthread_mutex_unlock(&a->lock);
        return e ? MR_OK
                 : mr_diag_set(d, MR_EUNAUTH,
                               "unknown or ended session; sign in again");
    }
    e = find(a->tokens, MAX_TOKENS, hash);
    if (e && now - e->checked < TOKEN_CACHE_MS && e->who.expires > now) {
        *who = e->who;
        pthread_mutex_unlock(&a->lock);
        return MR_OK;
    }
    pthread_mutex_unlock(&a->lock);
    err = mr_records_token_check(records, t, who, d);
    if (err) {
        char msg[sizeof(d->msg)];
        snprintf(msg, sizeof(msg), "%s", mr_diag_msg(d));
        return mr_diag_set(d, MR_EUNAUTH, "%s", msg);
    }
    pthread_mutex_lock(&a->lock);
    e = find(a->tokens, MAX_TOKENS, hash);
    if (!e) {
        size_t i, oldest = 0;
        for (i = 0; i < MAX_TOKENS; i++) {
            if (!a->tokens[i].hash[0]) {
                oldest = i;
                break;
            }
            if (a->tokens[i].checked < a->tokens[oldest].checked)
                oldest = i;
        }
        e = &a->tokens[oldest];
        snprintf(e->hash, sizeof(e->hash), "%s", hash);
    }
    e->who = *who;
    e->checked = now;
    pthread_mutex_unlock(&a->lock);
    return MR_OK;
}

enum mr_err mr_auth_check(struct mr_auth *a, const struct mr_http_req *req,
                          struct mr_records *records, struct mr_principal *who,
                          struct mr_diag *d)
{
    char tok[128];
    const char *t = credential(req, tok, sizeof(tok));
    enum mr_err err;

    if (!t)
        return mr_diag_set(d, MR_EUNAUTH,
                           "sign in first (POST /auth/login) or send "
                           "Authorization: Bearer <token>");
    err = check(a, t, records, who, d);
    sodium_memzero(tok, sizeof(tok));
    return err;
}

static enum mr_err session_new(struct mr_auth *a,
                               const struct mr_principal *who,
                               char token[MR_TOKEN_MAX], struct mr_diag *d)
{
    int64_t now = mr_time_now_ms();
    struct entry *slot = NULL;
    size_t i;

    if (mr_token_new(MR_TOKEN_PREFIX_SESSION, token))
        return mr_diag_set(d, MR_EINTERNAL, "cannot make a session token");
    pthread_mutex_lock(&a->lock);
    for (i = 0; i < MAX_SESSIONS && !slot; i++) {
        struct entry *e = &a->sessions[i];
        if (!e->hash[0] || now - e->seen > a->idle_ms ||
            now - e->created > SESSION_MAX_MS)
            slot = e;
    }
    if (slot) {
        mr_token_hash(token, slot->hash);
        slot->who = *who;
        slot->created = slot->seen = now;
    }
    pthread_mutex_unlock(&a->lock);
    if (!slot) {
        sodium_memzero(token, MR_TOKEN_MAX);
        return mr_diag_set(d, MR_EBUSY, "too many open sessions");
    }
    return MR_OK;
}

static void json_answer(struct mr_http_resp *resp, unsigned status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    mr_buf_reset(&resp->body);
    if (text && !mr_buf_adds(&resp->body, text)) {
        resp->status = status;
        resp->content_type = "application/json";
    } else {
        resp->status = 500;
    }
    free(text);
    json_decref(o);
}

static void fail(struct mr_http_resp *resp, const struct mr_diag *d)
{
    unsigned st = mr_errmap_http_status(d->code);

    json_answer(resp, st,
                json_pack("{s:s,s:s}", "error", mr_errname(d->code), "message",
                          mr_diag_msg(d)));
}

static json_t *body_json(const struct mr_http_req *req, struct mr_diag *d)
{
    json_error_t je;
    json_t *o;

    if (req->body_len > 64 * 1024) {
        mr_diag_set(d, MR_ETOOBIG, "sign-in requests are at most 64 KiB");
        return NULL;
    }
    o = json_loadb(req->body, req->body_len, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        mr_diag_set(d, MR_EJSON, "expected a JSON object");
        return NULL;
    }
    return o;
}

static void login(struct mr_auth *a, const struct mr_http_req *req,
                  struct mr_http_resp *resp)
{
    struct mr_principal who;
    struct mr_diag d;
    char token[MR_TOKEN_MAX];
    json_t *o;
    const char *pw;

    mr_diag_clear(&d);
    if (!(o = body_json(req, &d))) {
        fail(resp, &d);
        return;
    }
    pw = json_string_value(json_object_get(o, "password"));
    if (mr_records_login(req->records, req->actor.source,
                         json_string_value(json_object_get(o, "username")), pw,
                         pw ? json_string_length(json_object_get(o, "password"))
                            : 0,
                         json_string_value(json_object_get(o, "code")),
                         a->require_mfa, &who, &d) ||
        session_new(a, &who, token, &d)) {
        json_decref(o);
        fail(resp, &d);
        return;
    }
    json_decref(o);
    snprintf(resp->set_cookie, sizeof(resp->set_cookie),
             MR_AUTH_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict",
             token);
    json_answer(resp, 200,
                json_pack("{s:s,s:s,s:s,s:s?,s:I}", "token", token, "user",
                          who.user, "role", who.role, "patient",
                          who.patient[0] ? who.patient : NULL, "idle_timeout_s",
                          (json_int_t)(a->idle_ms / 1000)));
    sodium_memzero(token, sizeof(token));
}

static void logout(struct mr_auth *a, const struct mr_http_req *req,
                   struct mr_http_resp *resp)
{
    char tok[128], hash[MR_TOKEN_HASH_HEX];
    const char *t = credential(req, tok, sizeof(tok));
    struct entry *e;

    if (t) {
        mr_token_hash(t, hash);
        pthread_mutex_lock(&a->lock);
        if ((e = find(a->sessions, MAX_SESSIONS, hash)) != NULL)
            memset(e, 0, sizeof(*e));
        pthread_mutex_unlock(&a->lock);
        sodium_memzero(tok, sizeof(tok));
    }
    snprintf(resp->set_cookie, sizeof(resp->set_cookie),
             MR_AUTH_COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Strict; "
                            "Max-Age=0");
    resp->status = 204;
    mr_buf_reset(&resp->body);
}

/* GET /auth/users: the users (administrators: manage-users). */
static int user_row(void *ctx, const struct mr_user_info *u)
{
    json_t *arr = ctx;
    int64_t now = mr_time_now_ms();

    json_array_append_new(
        arr, json_pack("{s:s,s:s,s:b,s:b,s:i,s:b,s:s?}", "name", u->name,
                       "role", u->role, "mfa", u->mfa, "locked", u->locked,
                       "failures", u->failures, "held", u->held_until > now,
                       "patient", u->patient[0] ? u->patient : NULL));
    return 0;
}

static void users(const struct mr_http_req *req, struct mr_http_resp *resp)
{
    struct mr_diag d;
    json_t *arr = json_array();

    mr_diag_clear(&d);
    if (!arr ||
        mr_records_user_list(req->records, &req->actor, user_row, arr, &d)) {
        json_decref(arr);
        if (!d.code)
            mr_diag_set(&d, MR_ENOMEM, "out of memory");
        fail(resp, &d);
        return;
    }
    json_answer(resp, 200, json_pack("{s:o}", "users", arr));
}

/* POST /auth/users/NAME/{lock,unlock,mfa-off}: an administrator's change,
 * audited by the records service. (Adding users and enabling MFA, which
 * shows a secret, stay on the command line.) */
static void user_change(const struct mr_http_req *req,
                        struct mr_http_resp *resp, const char *rest)
{
    char name[80];
    const char *slash = strchr(rest, '/');
    struct mr_diag d;

    mr_diag_clear(&d);
    if (!slash || (size_t)(slash - rest) >= sizeof(name) ||
        (strcmp(slash + 1, "lock") && strcmp(slash + 1, "unlock") &&
         strcmp(slash + 1, "mfa-off"))) {
        mr_diag_set(&d, MR_ENOTFOUND,
                    "expected /auth/users/NAME/lock, unlock or mfa-off");
        fail(resp, &d);
        return;
    }
    memcpy(name, rest, (size_t)(slash - rest));
    name[slash - rest] = '\0';
    if (mr_records_user_change(req->records, &req->actor, name, slash + 1, NULL,
                               0, NULL, &d)) {
        fail(resp, &d);
        return;
    }
    resp->status = 204;
    mr_buf_reset(&resp->body);
}

static void break_glass(const struct mr_http_req *req,
                        struct mr_http_resp *resp)
{
    struct mr_diag d;
    json_t *o;
    int64_t until = 0;
    char patient[128] = "";

    mr_diag_clear(&d);
    if (!(o = body_json(req, &d)) ||
        mr_records_break_glass(
            req->records, &req->actor,
            json_string_value(json_object_get(o, "patient")),
            json_string_value(json_object_get(o, "reason")),
            (int)json_integer_value(json_object_get(o, "minutes")), &until,
            &d)) {
        json_decref(o);
        fail(resp, &d);
        return;
    }
    snprintf(patient, sizeof(patient), "%s",
             json_string_value(json_object_get(o, "patient")));
    json_decref(o);
    json_answer(
        resp, 200,
        json_pack("{s:s,s:I}", "patient", patient, "until", (json_int_t)until));
}

void mr_auth_handle(struct mr_auth *a, const struct mr_http_req *req,
                    struct mr_http_resp *resp, int authenticated)
{
    const char *p = req->path;

    resp->route = "/auth";
    if (!strcmp(p, "/login") && !strcmp(req->method, "POST")) {
        resp->route = "/auth/login";
        login(a, req, resp);
    } else if (!authenticated) {
        struct mr_diag d;
        mr_diag_set(&d, MR_EUNAUTH, "sign in first");
        fail(resp, &d);
    } else if (!strcmp(p, "/logout") && !strcmp(req->method, "POST")) {
        resp->route = "/auth/logout";
        logout(a, req, resp);
    } else if (!strcmp(p, "/break-glass") && !strcmp(req->method, "POST")) {
        resp->route = "/auth/break-glass";
        break_glass(req, resp);
    } else if (!strcmp(p, "/users") && !strcmp(req->method, "GET")) {
        resp->route = "/auth/users";
        users(req, resp);
    } else if (!strncmp(p, "/users/", 7) && !strcmp(req->method, "POST")) {
        resp->route = "/auth/users/:name/:change";
        user_change(req, resp, p + 7);
    } else if (!strcmp(p, "/whoami") && !strcmp(req->method, "GET")) {
        resp->route = "/auth/whoami";
        json_answer(resp, 200,
                    json_pack("{s:s,s:s,s:s?,s:I}", "user", req->actor.user,
                              "role", req->actor.role ? req->actor.role : "",
                              "patient", req->actor.patient, "idle_timeout_s",
                              (json_int_t)(a->idle_ms / 1000)));
    } else {
        struct mr_diag d;
        mr_diag_set(&d, MR_ENOTFOUND, "no such endpoint");
        fail(resp, &d);
    }
}
