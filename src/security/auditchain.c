#include "security/auditchain.h"
#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Domain tags: a hash or signature of one kind never passes for the
 * other, and a future encoding gets a new tag. */
static const char ENTRY_TAG[] = "medrec-audit-v1";
static const char CKPT_TAG[] = "medrec-audit-checkpoint-v1";

static void be64(unsigned char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    int i;

    for (i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

void mr_audit_text_set(struct mr_audit_text *t, const char *s)
{
    t->p = s;
    t->n = s ? strlen(s) : 0;
}

/* Small pieces are gathered into one update: most fields are a few
 * bytes and each update call has a fixed cost. */
struct hasher {
    crypto_generichash_state st;
    unsigned char buf[256];
    size_t n;
};

static void h_flush(struct hasher *h)
{
    if (h->n)
        crypto_generichash_update(&h->st, h->buf, h->n);
    h->n = 0;
}

static void h_add(struct hasher *h, const void *p, size_t n)
{
    if (n > sizeof(h->buf) - h->n) {
        h_flush(h);
        if (n > sizeof(h->buf)) {
            crypto_generichash_update(&h->st, p, n);
            return;
        }
    }
    memcpy(h->buf + h->n, p, n);
    h->n += n;
}

void mr_auditchain_hash(const unsigned char prev[MR_AUDIT_HASH_BYTES],
                        const struct mr_audit_row *row,
                        unsigned char out[MR_AUDIT_HASH_BYTES])
{
    struct hasher h;
    unsigned char num[8], tag;
    int i;

    crypto_generichash_init(&h.st, NULL, 0, MR_AUDIT_HASH_BYTES);
    h.n = 0;
    h_add(&h, prev, MR_AUDIT_HASH_BYTES);
    h_add(&h, ENTRY_TAG, sizeof(ENTRY_TAG)); /* with its NUL */
    be64(num, row->seq);
    h_add(&h, num, 8);
    be64(num, row->ts);
    h_add(&h, num, 8);
    for (i = 0; i < MR_AUDIT_NFIELDS; i++) {
        tag = row->f[i].p ? 1 : 0;
        h_add(&h, &tag, 1);
        if (!tag)
            continue;
        be64(num, (int64_t)row->f[i].n);
        h_add(&h, num, 8);
        h_add(&h, row->f[i].p, row->f[i].n);
    }
    h_flush(&h);
    crypto_generichash_final(&h.st, out, MR_AUDIT_HASH_BYTES);
}

/* ---- the signing key ---------------------------------------------------- */

void mr_auditkey_id(const unsigned char pk[MR_AUDIT_PK_BYTES],
                    char id[MR_AUDIT_KEY_ID_LEN + 1])
{
    unsigned char h[32];

    crypto_generichash(h, sizeof(h), pk, MR_AUDIT_PK_BYTES, NULL, 0);
    sodium_bin2hex(id, MR_AUDIT_KEY_ID_LEN + 1, h, MR_AUDIT_KEY_ID_LEN / 2);
}

static void key_from_seed(struct mr_audit_key *k, const unsigned char seed[32])
{
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    mr_auditkey_id(k->pk, k->id);
}

void mr_auditkey_wipe(struct mr_audit_key *k)
{
    sodium_memzero(k, sizeof(*k));
}

static int sodium_ready(struct mr_diag *d)
{
    if (sodium_init() < 0) {
        mr_diag_set(d, MR_EINTERNAL, "libsodium failed to initialise");
        return 0;
    }
    return 1;
}

/* The file: comment lines, then the 32-byte Ed25519 seed in hex. */
#define KEY_FILE_MAX 4096
static const char KEY_HEADER[] =
    "# medrec audit signing key (Ed25519 seed, hex). Keep it secret, mode\n"
    "# 0600, and out of database backups: whoever holds it can sign\n"
    "# checkpoints. The public key is kept in the database.\n";

enum mr_err mr_auditkey_load(const char *path, struct mr_audit_key *k,
                             struct mr_diag *d)
{
    char text[KEY_FILE_MAX + 1];
    unsigned char seed[32];
    struct stat sb;
    ssize_t got;
    size_t n = 0, bin = 0;
    const char *line, *end;
    int fd;
    enum mr_err err = MR_OK;

    if (!sodium_ready(d))
        return MR_EINTERNAL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return mr_diag_set(d, MR_ENOTFOUND, "%s: no audit signing key",
                               path);
        return mr_diag_set(d, MR_EIO, "%s: %s", path, strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mr_diag_set(d, MR_EINVALID,
                           "%s: the audit signing key is not a regular file",
                           path);
    }
    if (sb.st_mode & 077) {
        close(fd);
        return mr_diag_set(d, MR_EDENIED,
                           "%s: the audit signing key may be read by others "
                           "(mode %04o); chmod 600 it",
                           path, (unsigned)(sb.st_mode & 07777));
    }
    while (n < KEY_FILE_MAX &&
           (got = read(fd, text + n, KEY_FILE_MAX - n)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return mr_diag_set(d, MR_EIO, "%s: %s", path, strerror(errno));
        }
        n += (size_t)got;
    }
    close(fd);
    text[n] = '\0';
    /* The first line that is not a comment holds the seed. */
    for (line = text; *line; line = end + (*end == '\n')) {
        end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        if (*line == '#' || line == end)
            continue;
        if (end - line != 64 ||
            sodium_hex2bin(seed, sizeof(seed), line, 64, NULL, &bin, NULL) !=
                0 ||
            bin != sizeof(seed))
            err = MR_EINVALID;
        break;
    }
    if (!err && !*line)
        err = MR_EINVALID;
    if (err) {
        sodium_memzero(text, sizeof(text));
        sodium_memzero(seed, sizeof(seed));
        return mr_diag_set(d, MR_EINVALID,
                           "%s: not a medrec audit signing key (want 64 hex "
                           "digits on a line)",
                           path);
    }
    key_from_seed(k, seed);
    sodium_memzero(text, sizeof(text));
    sodium_memzero(seed, sizeof(seed));
    return MR_OK;
}

/* Make a new link durable: fsync the directory that holds path. */
static void sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

enum mr_err mr_auditkey_create(const char *path, struct mr_audit_key *k,
                               struct mr_diag *d)
{
    unsigned char seed[32];
    char hex[65], text[sizeof(KEY_HEADER) + 80], *tmp;
    size_t plen = strlen(path), tlen;
    int fd, rc, saved;
    enum mr_err err = MR_OK;

    if (!sodium_ready(d))
        return MR_EINTERNAL;
    tmp = mr_malloc(plen + 8);
    if (!tmp)
        return mr_diag_set(d, MR_ENOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    /* mkstemp creates the file with mode 0600. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        err = mr_diag_set(d, MR_EIO,
                          "%s: cannot create the audit signing key: %s", path,
                          strerror(errno));
        mr_free(tmp);
        return err;
    }
    randombytes_buf(seed, sizeof(seed));
    sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
    tlen = (size_t)snprintf(text, sizeof(text), "%s%s\n", KEY_HEADER, hex);
    rc = fchmod(fd, 0600) == 0 && write(fd, text, tlen) == (ssize_t)tlen &&
         fsync(fd) == 0;
    saved = errno;
    sodium_memzero(hex, sizeof(hex));
    sodium_memzero(text, sizeof(text));
    if (close(fd) != 0 && rc) {
        rc = 0;
        saved = errno;
    }
    /* link() never replaces a file: of two processes creating the key at
     * once, one wins and the other reads the winner's. */
    if (rc && link(tmp, path) != 0) {
        rc = 0;
        saved = errno;
    }
    unlink(tmp);
    mr_free(tmp);
    if (!rc) {
        sodium_memzero(seed, sizeof(seed));
        if (saved == EEXIST)
            return mr_diag_set(d, MR_EEXISTS,
                               "%s: an audit signing key already exists", path);
        return mr_diag_set(d, MR_EIO,
                           "%s: cannot write the audit signing key: %s", path,
                           strerror(saved));
    }
    sync_dir(path);
    key_from_seed(k, seed);
    sodium_memzero(seed, sizeof(seed));
    return MR_OK;
}

/* tag || seq || ts || hash */
#define CKPT_MSG_LEN (sizeof(CKPT_TAG) + 16 + MR_AUDIT_HASH_BYTES)

static void ckpt_msg(unsigned char msg[CKPT_MSG_LEN], int64_t seq, int64_t ts,
                     const unsigned char hash[MR_AUDIT_HASH_BYTES])
{
    memcpy(msg, CKPT_TAG, sizeof(CKPT_TAG));
    be64(msg + sizeof(CKPT_TAG), seq);
    be64(msg + sizeof(CKPT_TAG) + 8, ts);
    memcpy(msg + sizeof(CKPT_TAG) + 16, hash, MR_AUDIT_HASH_BYTES);
}

void mr_auditchain_sign(const struct mr_audit_key *k, int64_t seq, int64_t ts,
                        const unsigned char hash[MR_AUDIT_HASH_BYTES],
                        unsigned char sig[MR_AUDIT_SIG_BYTES])
{
    unsigned char msg[CKPT_MSG_LEN];

    ckpt_msg(msg, seq, ts, hash);
    crypto_sign_detached(sig, NULL, msg, sizeof(msg), k->sk);
}

int mr_auditchain_sig_ok(const unsigned char pk[MR_AUDIT_PK_BYTES], int64_t seq,
                         int64_t ts,
                         const unsigned char hash[MR_AUDIT_HASH_BYTES],
                         const unsigned char sig[MR_AUDIT_SIG_BYTES])
{
    unsigned char msg[CKPT_MSG_LEN];

    ckpt_msg(msg, seq, ts, hash);
    return crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) == 0;
}

/* ---- verification ------------------------------------------------------- */

struct mr_auditchain_key_ {
    char id[MR_AUDIT_KEY_ID_LEN + 1];
    unsigned char pk[MR_AUDIT_PK_BYTES];
    int ok; /* 32 bytes and matching its id */
};

struct mr_auditchain_ckpt_ {
    int64_t seq, ts;
    unsigned char hash[MR_AUDIT_HASH_BYTES];
    char key_id[MR_AUDIT_KEY_ID_LEN + 1];
    int ok; /* a valid signature by a registered key */
};

void mr_auditchain_verifier_init(struct mr_auditchain_verifier *v)
{
    memset(v, 0, sizeof(*v));
}

void mr_auditchain_verifier_release(struct mr_auditchain_verifier *v)
{
    mr_free(v->keys);
    mr_free(v->ckpts);
    memset(v, 0, sizeof(*v));
}

/* Keep the problem that comes first in the trail. */
static void problem(struct mr_auditchain_verifier *v, int64_t seq,
                    const char *fmt, ...) MR_PRINTF(3, 4);
static void problem(struct mr_auditchain_verifier *v, int64_t seq,
                    const char *fmt, ...)
{
    va_list ap;

    if (v->problem[0] && seq >= v->bad_seq)
        return;
    v->bad_seq = seq;
    va_start(ap, fmt);
    vsnprintf(v->problem, sizeof(v->problem), fmt, ap);
    va_end(ap);
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    size_t ncap;
    void *np;

    if (n < *cap)
        return p;
    ncap = *cap ? *cap * 2 : 16;
    np = mr_realloc(p, ncap * size);
    if (np)
        *cap = ncap;
    return np;
}

enum mr_err mr_auditchain_add_key(struct mr_auditchain_verifier *v,
                                  const char *key_id, const void *pk,
                                  size_t pklen)
{
    struct mr_auditchain_key_ *k;
    char id[MR_AUDIT_KEY_ID_LEN + 1];
    void *np = grow(v->keys, &v->capkeys, v->nkeys, sizeof(*v->keys));

    if (!np)
        return MR_ENOMEM;
    v->keys = np;
    k = &v->keys[v->nkeys++];
    memset(k, 0, sizeof(*k));
    snprintf(k->id, sizeof(k->id), "%s", key_id ? key_id : "");
    if (pk && pklen == MR_AUDIT_PK_BYTES) {
        memcpy(k->pk, pk, MR_AUDIT_PK_BYTES);
        mr_auditkey_id(k->pk, id);
        k->ok = key_id && !strcmp(id, key_id);
    }
    return MR_OK;
}

static const struct mr_auditchain_key_ *
find_key(const struct mr_auditchain_verifier *v, const char *id)
{
    size_t i;

    for (i = 0; id && i < v->nkeys; i++)
        if (!strcmp(v->keys[i].id, id))
            return &v->keys[i];
    return NULL;
}

enum mr_err mr_auditchain_add_checkpoint(struct mr_auditchain_verifier *v,
                                         int64_t seq, int64_t ts,
                                         const void *hash, size_t hlen,
                                         const char *key_id, const void *sig,
                                         size_t slen)
{
    struct mr_auditchain_ckpt_ *c;
    const struct mr_auditchain_key_ *k;
    void *np = grow(v->ckpts, &v->capckpts, v->nckpts, sizeof(*v->ckpts));

    if (!np)
        return MR_ENOMEM;
    v->ckpts = np;
    c = &v->ckpts[v->nckpts++];
    memset(c, 0, sizeof(*c));
    c->seq = seq;
    c->ts = ts;
    snprintf(c->key_id, sizeof(c->key_id), "%s", key_id ? key_id : "");
    v->checkpoints++;
    k = find_key(v, key_id);
    if (!hash || hlen != MR_AUDIT_HASH_BYTES) {
        problem(v, seq, "checkpoint at audit entry %lld: malformed hash",
                (long long)seq);
        return MR_OK;
    }
    memcpy(c->hash, hash, MR_AUDIT_HASH_BYTES);
    if (!key_id || !sig)
        problem(v, seq,
                "checkpoint at audit entry %lld: not signed (forged or "
                "altered)",
                (long long)seq);
    else if (!k)
        problem(v, seq,
                "checkpoint at audit entry %lld: signed by key %s, which "
                "is not registered",
                (long long)seq, key_id);
    else if (!k->ok)
        problem(v, seq,
                "checkpoint at audit entry %lld: key %s is malformed or "
                "does not match its id",
                (long long)seq, key_id);
    else if (slen != MR_AUDIT_SIG_BYTES ||
             !mr_auditchain_sig_ok(k->pk, seq, ts, c->hash, sig))
        problem(v, seq,
                "checkpoint at audit entry %lld: signature does not "
                "verify (forged or altered)",
                (long long)seq);
    else
        c->ok = 1;
    return MR_OK;
}

static int stop(struct mr_auditchain_verifier *v)
{
    v->stopped = 1;
    return 1;
}

int mr_auditchain_feed(struct mr_auditchain_verifier *v,
                       const struct mr_audit_row *row, const void *prev,
                       size_t plen, const void *hash, size_t hlen)
{
    unsigned char h[MR_AUDIT_HASH_BYTES];
    int64_t want = v->entries ? v->last_seq + 1 : 1;
    struct mr_auditchain_ckpt_ *c;

    if (v->stopped)
        return 1;
    /* A valid checkpoint for an entry that is not there. */
    while (v->next_ckpt < v->nckpts && v->ckpts[v->next_ckpt].seq < row->seq) {
        c = &v->ckpts[v->next_ckpt++];
        if (c->ok) {
            problem(v, c->seq,
                    "audit entry %lld is missing (a signed checkpoint "
                    "covers it)",
                    (long long)c->seq);
            return stop(v);
        }
    }
    if (row->seq != want) {
        if (row->seq == want + 1)
            problem(v, row->seq,
                    "audit entry %lld: entry %lld before it is missing "
                    "(removed)",
                    (long long)row->seq, (long long)want);
        else
            problem(v, row->seq,
                    "audit entry %lld: entries %lld to %lld before it are "
                    "missing (removed)",
                    (long long)row->seq, (long long)want,
                    (long long)row->seq - 1);
        return stop(v);
    }
    if (!prev || plen != MR_AUDIT_HASH_BYTES ||
        memcmp(prev, v->prev, MR_AUDIT_HASH_BYTES) != 0) {
        problem(v, row->seq,
                "audit entry %lld: hash does not match (changed or "
                "removed entries before it)",
                (long long)row->seq);
        return stop(v);
    }
    mr_auditchain_hash(v->prev, row, h);
    if (!hash || hlen != MR_AUDIT_HASH_BYTES ||
        memcmp(hash, h, MR_AUDIT_HASH_BYTES) != 0) {
        problem(v, row->seq,
                "audit entry %lld: hash does not match its contents (the "
                "entry was changed)",
                (long long)row->seq);
        return stop(v);
    }
    memcpy(v->prev, h, MR_AUDIT_HASH_BYTES);
    v->entries++;
    v->last_seq = row->seq;
    if (v->anchor_seq == row->seq &&
        memcmp(v->anchor_hash, h, MR_AUDIT_HASH_BYTES) != 0) {
        problem(v, row->seq,
                "audit entry %lld: hash does not match the anchor (the "
                "trail up to it was rewritten)",
                (long long)row->seq);
        return stop(v);
    }
    while (v->next_ckpt < v->nckpts && v->ckpts[v->next_ckpt].seq == row->seq) {
        c = &v->ckpts[v->next_ckpt++];
        if (!c->ok)
            continue;
        if (memcmp(c->hash, h, MR_AUDIT_HASH_BYTES) != 0) {
            problem(v, row->seq,
                    "checkpoint at audit entry %lld: the signed hash does "
                    "not match the trail (entries up to it were changed, "
                    "removed or rewritten)",
                    (long long)row->seq);
            return stop(v);
        }
        v->signed_seq = c->seq;
        v->signed_ts = c->ts;
        memcpy(v->signed_hash, c->hash, MR_AUDIT_HASH_BYTES);
        memcpy(v->signed_key, c->key_id, sizeof(v->signed_key));
    }
    return 0;
}

int mr_auditchain_finish(struct mr_auditchain_verifier *v)
{
    size_t i;

    if (!v->stopped) {
        for (i = v->next_ckpt; i < v->nckpts; i++)
            if (v->ckpts[i].ok) {
                problem(v, v->last_seq + 1,
                        "audit trail truncated: a signed checkpoint covers "
                        "entry %lld, but the trail ends at entry %lld",
                        (long long)v->ckpts[i].seq, (long long)v->last_seq);
                break;
            }
        if (v->anchor_seq > v->last_seq)
            problem(v, v->last_seq + 1,
                    "audit trail truncated: the anchor entry %lld is "
                    "missing; the trail ends at entry %lld",
                    (long long)v->anchor_seq, (long long)v->last_seq);
    }
    return v->problem[0] == '\0';
}
