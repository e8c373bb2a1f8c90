/*
 * node_tokens.c - this node's credentials for meshd (control-plane mode): one
 * token per audience (xds, ca) from the token file, kept in memory, renewed
 * before they expire, and taken from the file again whenever it changes.
 *
 * Renewal: at half-life each token is exchanged for a fresh one of the same
 * audience and lifetime (TOKEN_RENEW_METHOD on meshd, over the channel of
 * that audience), so a running proxy never loses its credential. The fresh
 * tokens are written back to the file (temporary file, rename) when it is
 * writable, so a restart starts from them; a read-only file (a mounted
 * secret) is left alone and the renewed tokens live in memory.
 *
 * External rotation: before every use and every renewal the file's identity
 * (inode, size, times) is compared with what was last read or written; when
 * someone else replaced it (an operator after `meshd token --revoke`, a
 * projected token), its tokens win over the ones in memory.
 *
 * Kubernetes: the file may instead hold a projected service-account token (a
 * JWT, audience istio-ca; token_file_kind() tells the formats apart). As
 * Istio's ztunnel does, the same token then serves both audiences, is never
 * renewed through meshd (the kubelet rewrites the file well before it
 * expires) and is taken again whenever the file changes; meshd checks it with
 * a TokenReview. Like every token, it is never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "token"
#include "base/base.h"
#include "cpcall/cp_unary.h"
#include "identity/node_tokens.h"
#include "log/log.h"
#include "pbcheck/pbcheck.h"
#include "token.pb-c.h"

#define RENEW_DEADLINE_MS 10000
#define RENEW_RETRY_START_MS 1000
#define RENEW_RETRY_MAX_MS 60000
#define EXPIRED_POLL_MS 5000 /* an expired token cannot renew: wait for the file to change */
#define RENEW_MAX_RESPONSE 1024

struct tok_slot {
    struct node_tokens *owner;
    enum token_aud aud;
    char tok[TOKEN_JWT_MAX + 1]; /* "" when the file had none for this audience */
    size_t len;
    bool jwt;       /* a Kubernetes token: the kubelet renews it, not meshd */
    bool renewable; /* a v2 token: |c| holds its fields */
    struct token_claims c;
    uint64_t version;        /* bumped by adopt(): which token |tok| is */
    uint64_t call_version;   /* the token the renewal in flight presented... */
    bool call_sent;          /* ...once it did */
    struct loop_timer timer; /* next renewal, or retry */
    struct cp_unary call;    /* the renewal in flight */
    uint64_t backoff_ms;
    bool said_expired; /* logged once per token */
};

struct node_tokens {
    struct loop *loop;
    char *path, *authority, *cluster, *who;
    struct channel *chan[2]; /* xds, ca */
    struct tok_slot slot[2]; /* xds, ca */
    struct stat seen;        /* the file as last read or written */
    bool have_seen;
    bool warned_mode, warned_ro;
};

static void schedule(struct tok_slot *s);

static struct tok_slot *
slot_of(struct node_tokens *t, enum token_aud aud)
{
    return &t->slot[aud == TOKEN_AUD_CA ? 1 : 0];
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Takes |tok| as |s|'s token (when it differs) and plans its renewal. */
static void
adopt(struct tok_slot *s, const char *tok, size_t len, bool jwt, const char *from)
{
    const char *why;
    if (len == s->len && memcmp(tok, s->tok, len) == 0)
        return;
    memcpy(s->tok, tok, len);
    s->tok[len] = '\0';
    s->len = len;
    s->jwt = jwt;
    s->version++;
    s->renewable = !jwt && token_parse(tok, len, &s->c, &why) == 0 && s->c.aud == s->aud;
    s->backoff_ms = 0;
    s->said_expired = false;
    if (jwt)
        ; /* refresh() says it once for both audiences */
    else if (s->renewable)
        log_info("%s token for node %s from %s, valid until %" PRId64 " (generation %" PRIu64 ")",
                 token_aud_name(s->aud), s->c.node, from, s->c.expires, s->c.gen);
    else
        log_warn("%s token from %s is not one %s can renew (%s); using it as it is",
                 token_aud_name(s->aud), from, s->owner->who, why ? why : "another audience");
    schedule(s);
}

/*
 * Reads the file again if it changed since last read or written. Returns 0,
 * or -1 with |why| when it cannot be read (the tokens in memory stay).
 */
static int
refresh(struct node_tokens *t, char *why, size_t whylen)
{
    const char *path = t->path;
    /* A JWT of the cap with some white space around it still fits; more is refused. */
    enum { TEXT_MAX = TOKEN_JWT_MAX + 64 };
    char *text;
    struct stat st;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, whylen, "token %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (t->have_seen && same_file(&st, &t->seen)) {
        close(fd);
        return 0;
    }
    text = xmalloc(TEXT_MAX + 1);
    size_t n = 0;
    ssize_t r;
    while (n <= TEXT_MAX && (r = read(fd, text + n, TEXT_MAX + 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (n > TEXT_MAX) {
        snprintf(why, whylen, "token %s is larger than %d bytes", path, TEXT_MAX);
        free(text);
        return -1;
    }
    const char *tok;
    size_t len;
    char kwhy[120];
    enum token_file_kind kind = token_file_kind(text, n, &tok, &len, kwhy, sizeof(kwhy));
    if (kind == TOKEN_FILE_BAD) {
        snprintf(why, whylen, "token %s %s", path, kwhy);
        free(text);
        return -1;
    }
    /*
     * meshd's node tokens are this node's alone: readable by others, they let anyone get its
     * certificates. A projected token's mode is the pod spec's (0644 by default) and the
     * directory the kubelet mounts guards it, so that file is not warned about.
     */
    if (kind == TOKEN_FILE_NODE && !t->warned_mode && (st.st_mode & 077) != 0) {
        log_warn("token %s is readable by group or others (mode %03o): it lets anyone get this "
                 "node's certificates", path, st.st_mode & 0777);
        t->warned_mode = true;
    }
    t->seen = st;
    t->have_seen = true;
    bool any = false;
    if (kind == TOKEN_FILE_JWT) {
        bool changed = len != t->slot[0].len || memcmp(tok, t->slot[0].tok, len) != 0 ||
                       len != t->slot[1].len || memcmp(tok, t->slot[1].tok, len) != 0;
        for (int i = 0; i < 2; i++)
            adopt(&t->slot[i], tok, len, true, path);
        if (changed)
            log_info("token %s: a Kubernetes service-account token (%zu bytes) for xDS and the "
                     "CA; the kubelet rotates it, %s reads it again when it changes",
                     path, len, t->who);
        free(text);
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        if (token_file_pick(text, n, t->slot[i].aud, &tok, &len) == 0 && len <= TOKEN_MAX_LEN &&
            memchr(tok, '\r', len) == NULL) {
            adopt(&t->slot[i], tok, len, false, path);
            any = true;
        }
    }
    free(text);
    if (!any) {
        snprintf(why, whylen, "token %s holds no token %s can use", path, t->who);
        return -1;
    }
    /* Back from a Kubernetes token to node tokens: an audience the file lacks has none now. */
    for (int i = 0; i < 2; i++)
        if (t->slot[i].jwt && t->slot[i].len > 0) {
            t->slot[i].len = 0;
            t->slot[i].tok[0] = '\0';
            t->slot[i].jwt = false;
            t->slot[i].version++;
        }
    return 0;
}

int
node_tokens_bearer(struct node_tokens *t, enum token_aud aud, char *out, size_t outlen, char *why,
                   size_t whylen)
{
    struct tok_slot *s = slot_of(t, aud);
    char rwhy[300];
    if (refresh(t, rwhy, sizeof(rwhy)) < 0 && s->len == 0) {
        snprintf(why, whylen, "%s", rwhy);
        return -1;
    }
    if (s->len == 0) {
        snprintf(why, whylen, "token %s has no %s token", t->path, token_aud_name(aud));
        return -1;
    }
    if (s->len + sizeof("Bearer ") > outlen) {
        snprintf(why, whylen, "token %s: its %zu bytes do not fit the call's metadata", t->path,
                 s->len);
        return -1;
    }
    snprintf(out, outlen, "Bearer %s", s->tok);
    return 0;
}

/* Writes the tokens in memory back to the file, if it is ours to write. */
static void
persist(struct node_tokens *t)
{
    const char *path = t->path;
    char tmp[4200], text[2 * (TOKEN_MAX_LEN + 1) + 1] = "", why[300];
    struct stat st;

    /* Someone replaced the file meanwhile: theirs wins, nothing is overwritten. */
    if (stat(path, &st) == 0 && t->have_seen && !same_file(&st, &t->seen)) {
        refresh(t, why, sizeof(why));
        return;
    }
    if (access(path, W_OK) < 0) {
        if (!t->warned_ro)
            log_info("token %s is not writable (%s): renewed tokens stay in memory", path,
                     strerror(errno));
        t->warned_ro = true;
        return;
    }
    size_t len = 0;
    for (int i = 0; i < 2; i++) /* only node tokens, which fit: a JWT is never written */
        if (t->slot[i].len > 0 && !t->slot[i].jwt && t->slot[i].len <= TOKEN_MAX_LEN)
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\n", t->slot[i].tok);
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) < 0) {
        log_warn("cannot write the renewed tokens to %s: %s", path, strerror(errno));
        unlink(tmp);
        return;
    }
    if (stat(path, &st) == 0) {
        t->seen = st;
        t->have_seen = true;
    }
}

/* ---- renewal ------------------------------------------------------------- */

static void on_due(void *arg);

/* Plans the next renewal at half-life (now, if that has passed). */
static void
schedule(struct tok_slot *s)
{
    struct loop *loop = s->owner->loop;
    loop_timer_stop(loop, &s->timer);
    if (!s->renewable || cp_unary_active(&s->call))
        return; /* a renewal in flight reschedules when it ends */
    int64_t due_ms = (s->c.issued + (s->c.expires - s->c.issued) / 2) * 1000;
    int64_t now_ms = (int64_t)clock_wall_ms();
    loop_timer_start(loop, &s->timer, due_ms > now_ms ? (uint64_t)(due_ms - now_ms) : 0,
                     on_due, s);
}

static void
failed(struct tok_slot *s, const char *why)
{
    cp_unary_cancel(&s->call);
    s->backoff_ms = s->backoff_ms == 0 ? RENEW_RETRY_START_MS : s->backoff_ms * 2;
    if (s->backoff_ms > RENEW_RETRY_MAX_MS)
        s->backoff_ms = RENEW_RETRY_MAX_MS;
    log_warn("cannot renew the %s token: %s; retrying in %" PRIu64 " ms (valid until %" PRId64
             ")", token_aud_name(s->aud), why, s->backoff_ms, s->c.expires);
    loop_timer_start(s->owner->loop, &s->timer, s->backoff_ms, on_due, s);
}

/* The token the renewal presents: this slot's, whichever it is once the session is up. */
static int
renew_bearer(void *arg, char *out, size_t outlen, char *why, size_t whylen)
{
    struct tok_slot *s = arg;
    if (s->jwt || s->len == 0 || s->len + sizeof("Bearer ") > outlen) {
        /* The file turned into a Kubernetes token meanwhile: meshd does not renew those. */
        snprintf(why, whylen, "the %s token is no longer a node token", token_aud_name(s->aud));
        return -1;
    }
    snprintf(out, outlen, "Bearer %s", s->tok);
    s->call_version = s->version;
    s->call_sent = true;
    return 0;
}

static void
on_renewed(void *arg, const uint8_t *resp, size_t resp_len, const char *failure)
{
    struct tok_slot *s = arg;
    struct token_claims c;
    const char *why = NULL;
    char buf[300];

    if (s->call_sent && s->call_version != s->version) {
        /*
         * The file gave this slot another token while the call was out (an
         * operator's replacement, maybe after a revocation): the answer is about
         * a token no longer in use, and taking it would undo the replacement.
         */
        log_info("dropped meshd's answer to the renewal of a %s token replaced meanwhile",
                 token_aud_name(s->aud));
        schedule(s);
        return;
    }
    if (resp == NULL) {
        failed(s, failure);
        return;
    }
    char pbwhy[PB_ERR_MAX];
    Amesh__Token__V1__RenewResponse *r =
        pb_unpack_checked(&amesh__token__v1__renew_response__descriptor, resp, resp_len,
                          RENEW_MAX_RESPONSE, pbwhy, sizeof(pbwhy));
    if (r == NULL)
        why = pbwhy;
    const char *tok = r ? r->token : NULL;
    size_t len = tok ? strlen(tok) : 0;
    /* Trust only what was asked for: the same audience and node, living longer. */
    if (tok == NULL || token_parse(tok, len, &c, &why) < 0 || c.aud != s->aud ||
        strcmp(c.node, s->c.node) != 0 || c.expires <= s->c.expires) {
        amesh__token__v1__renew_response__free_unpacked(r, NULL);
        snprintf(buf, sizeof(buf), "meshd's answer is not a fresh token: %s",
                 why ? why : "another audience, node or no later expiry");
        failed(s, buf);
        return;
    }
    adopt(s, tok, len, false, "meshd (renewed)");
    amesh__token__v1__renew_response__free_unpacked(r, NULL);
    persist(s->owner);
}

static void
on_due(void *arg)
{
    struct tok_slot *s = arg;
    struct node_tokens *t = s->owner;
    char why[300];

    /* A fresher token may be in the file (adopt() then plans anew). */
    if (refresh(s->owner, why, sizeof(why)) < 0)
        log_warn("%s", why);
    if (!s->renewable || loop_timer_armed(&s->timer))
        return;
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    if (s->c.expires <= now) {
        if (!s->said_expired)
            log_error("the %s token expired at %" PRId64 " and cannot be renewed; waiting for a "
                      "new one in %s (meshd token --node %s)", token_aud_name(s->aud), s->c.expires,
                      t->path, s->c.node);
        s->said_expired = true;
        loop_timer_start(t->loop, &s->timer, EXPIRED_POLL_MS, on_due, s);
        return;
    }
    const struct cp_unary_config uc = {
        .loop = t->loop,
        .chan = t->chan[s->aud == TOKEN_AUD_CA ? 1 : 0],
        .method = TOKEN_RENEW_METHOD,
        .auth = {.authority = t->authority, .cluster = t->cluster, .bearer = renew_bearer,
                 .bearer_arg = s},
        .peer = "meshd",
        .max_response = RENEW_MAX_RESPONSE,
        .timeout_ms = RENEW_DEADLINE_MS,
    };
    s->call_sent = false;
    cp_unary_start(&s->call, &uc, (const uint8_t *)"", 0, on_renewed, s);
}

struct node_tokens *
node_tokens_new(const struct node_tokens_config *cfg)
{
    struct node_tokens *t = xcalloc(1, sizeof(*t));
    char why[300];
    t->loop = cfg->loop;
    t->path = xstrdup(cfg->path);
    t->authority = xstrdup(cfg->authority ? cfg->authority : "");
    t->cluster = xstrdup(cfg->cluster ? cfg->cluster : "");
    t->who = xstrdup(cfg->who ? cfg->who : "this proxy");
    t->chan[0] = cfg->xds_chan;
    t->chan[1] = cfg->ca_chan;
    for (int i = 0; i < 2; i++) {
        t->slot[i].owner = t;
        t->slot[i].aud = i == 0 ? TOKEN_AUD_XDS : TOKEN_AUD_CA;
    }
    /* Unreadable now is not fatal: every use tries again, as the file may appear. */
    if (refresh(t, why, sizeof(why)) < 0)
        log_warn("%s", why);
    return t;
}

void
node_tokens_free(struct node_tokens *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        struct tok_slot *s = &t->slot[i];
        loop_timer_stop(t->loop, &s->timer);
        cp_unary_cancel(&s->call);
    }
    free(t->path);
    free(t->authority);
    free(t->cluster);
    free(t->who);
    free(t);
}

int
node_tokens_bearer_xds(void *t, char *out, size_t outlen, char *why, size_t whylen)
{
    return node_tokens_bearer(t, TOKEN_AUD_XDS, out, outlen, why, whylen);
}

int
node_tokens_bearer_ca(void *t, char *out, size_t outlen, char *why, size_t whylen)
{
    return node_tokens_bearer(t, TOKEN_AUD_CA, out, outlen, why, whylen);
}
