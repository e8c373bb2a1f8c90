/*
 * tokens.c - node tokens on meshd's side: `meshd token` (issue, revoke) and
 * the per-node generation table a running meshd follows.
 *
 *   meshd token --state-dir DIR --node NAME [--ttl DUR] [--audience xds|ca]
 *   meshd token --state-dir DIR --node NAME --revoke
 *
 * The table is TOKEN_GENS_FILE in the state directory. `--revoke` rewrites it
 * whole (temporary file, fsync, rename) while holding the state directory's
 * lock, the one meshd and `meshd token` take to create the state, so two
 * revocations cannot lose each other's bump. meshd watches the directory
 * (inotify, debounced 50 ms, and a full re-read every 30 s) and swaps in the
 * new table; calls are checked against it from then on and the xDS streams of
 * revoked nodes are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define LOG_SCOPE "tokens"
#include "base/base.h"
#include "casvc/token_gens.h"
#include "dirwatch/dirwatch.h"
#include "log/log.h"
#include "meshd.h"

#define GENS_DEBOUNCE_MS 50

/* Reads |path| whole (at most |max| bytes). Returns 0, -ENOENT, or another -errno / -EFBIG. */
static int
read_small(const char *path, size_t max, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        int e = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
        close(fd);
        return e;
    }
    char *buf = xmalloc((size_t)st.st_size + 1);
    size_t n = 0;
    ssize_t r;
    while (n < (size_t)st.st_size && (r = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

int
meshd_gens_load(const char *dir, struct token_gens **out, char *err, size_t errlen)
{
    char path[4200], why[400];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/" TOKEN_GENS_FILE, dir);
    int rc = read_small(path, TOKEN_GENS_MAX_BYTES, &text, &len);
    if (rc == -ENOENT) {
        *out = token_gens_new(); /* nothing revoked yet */
        return 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, rc == -EFBIG ? "too large" : strerror(-rc));
        return -1;
    }
    *out = token_gens_parse(text, len, why, sizeof(why));
    free(text);
    if (*out == NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
}

/* Writes |text| to |path| through a synced temporary file and a rename. */
static int
write_atomic_text(const char *dir, const char *path, const char *text)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    ssize_t w = 0;
    while (off < len && (w = write(fd, text + off, len - off)) > 0)
        off += (size_t)w;
    int rc = off == len && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    /* The rename itself must survive a crash, or a revocation could come undone. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Bumps |node|'s generation under the state lock. Returns 0 with |*gen|, or -1 with |err|. */
static int
gens_revoke(const char *dir, const char *node, uint64_t *gen, char *err, size_t errlen)
{
    char path[4200];
    struct token_gens *g = NULL;
    snprintf(path, sizeof(path), "%s/" TOKEN_GENS_FILE, dir);
    int lock = meshd_state_lock(dir, err, errlen);
    if (lock < 0)
        return -1;
    int rc = -1;
    if (meshd_gens_load(dir, &g, err, errlen) == 0) {
        if ((*gen = token_gens_bump(g, node)) == 0) {
            /* %.900s: an error line, not a path to use; keeps gcc's truncation check quiet. */
            snprintf(err, errlen, "%.900s: cannot raise the generation of %s", path, node);
        } else {
            char *text = token_gens_format(g);
            int w = write_atomic_text(dir, path, text);
            free(text);
            if (w < 0)
                snprintf(err, errlen, "%.900s: %s", path, strerror(-w));
            rc = w < 0 ? -1 : 0;
        }
    }
    token_gens_free(g);
    close(lock); /* releases the lock */
    return rc;
}

/* "90", "90s", "15m", "12h", "7d" -> seconds in [TOKEN_MIN_TTL, TOKEN_MAX_TTL]; exits on junk. */
static long
parse_ttl(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    long mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    else if (*end == 'd')
        mul = 86400, end++;
    if (*s == '\0' || *s == '-' || *s == '+' || *end != '\0' || errno != 0 || v < 0 ||
        v > TOKEN_MAX_TTL || v * mul < TOKEN_MIN_TTL || v * mul > TOKEN_MAX_TTL)
        fatal("--ttl: \"%s\" is not a duration from %lds to %ldd (e.g. 20s, 12h, 7d)", s,
              TOKEN_MIN_TTL, TOKEN_MAX_TTL / 86400);
    return v * mul;
}

static void
token_usage(FILE *f)
{
    fprintf(f,
            "usage: meshd token --state-dir DIR --node NAME [--ttl DUR] [--audience xds|ca]\n"
            "       meshd token --state-dir DIR --node NAME --revoke\n"
            "  prints the node's tokens, one per line (xds, then ca), for ztunnel --token FILE\n"
            "  --ttl DUR        lifetime, renewed by ztunnel at half-life: 20s, 15m, 12h, 7d\n"
            "                   (default 24h, at most 30d)\n"
            "  --audience AUD   only the token for xds or for ca\n"
            "  --revoke         refuse every token of the node issued until now (also on a\n"
            "                   running meshd, within a second; its xDS streams are closed)\n");
}

int
meshd_cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"node", required_argument, NULL, 'n'},
        {"ttl", required_argument, NULL, 't'},
        {"audience", required_argument, NULL, 'a'},
        {"revoke", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *node = NULL;
    long ttl = TOKEN_DEFAULT_TTL;
    enum token_aud only = TOKEN_AUD_ANY;
    bool revoke = false, ttl_set = false;
    char err[1024], tok[TOKEN_MAX_LEN];
    uint8_t key[TOKEN_KEY_LEN];
    struct token_gens *gens;
    struct ca *ca;
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'n': node = optarg; break;
        case 't': ttl = parse_ttl(optarg), ttl_set = true; break;
        case 'a':
            if ((only = token_aud_parse(optarg)) == TOKEN_AUD_ANY)
                fatal("--audience: \"%s\" is not xds or ca", optarg);
            break;
        case 'r': revoke = true; break;
        case 'h': token_usage(stdout); return 0;
        default: token_usage(stderr); return 2;
        }
    }
    if (state == NULL || node == NULL || optind != argc ||
        (revoke && (ttl_set || only != TOKEN_AUD_ANY))) {
        token_usage(stderr);
        return 2;
    }
    if (!token_node_valid(node))
        fatal("--node: \"%s\" is not a node name (lower-case letters, digits, '-', '.')", node);
    if (revoke) {
        struct stat st;
        uint64_t gen;
        if (stat(state, &st) < 0 || !S_ISDIR(st.st_mode))
            fatal("%s: no state directory here", state);
        if (gens_revoke(state, node, &gen, err, sizeof(err)) < 0)
            fatal("%s", err);
        fprintf(stderr, "node %s: token generation now %" PRIu64 "; its earlier tokens are refused\n",
                node, gen);
        return 0;
    }
    if (meshd_state_open(state, &ca, key, err, sizeof(err)) < 0)
        fatal("%s", err);
    ca_free(ca);
    if (meshd_gens_load(state, &gens, err, sizeof(err)) < 0)
        fatal("%s", err);
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    struct token_claims cl = {.gen = token_gens_get(gens, node), .issued = now, .expires = now + ttl};
    snprintf(cl.node, sizeof(cl.node), "%s", node);
    token_gens_free(gens);
    for (enum token_aud a = TOKEN_AUD_XDS; a <= TOKEN_AUD_CA; a++) {
        if (only != TOKEN_AUD_ANY && a != only)
            continue;
        cl.aud = a;
        if (token_mint(key, &cl, tok, sizeof(tok)) < 0)
            fatal("cannot mint a token for %s", node);
        printf("%s\n", tok);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

/* ---- a running meshd follows the table ----------------------------------- */

static struct dirwatch *gens_watch;
static char *gens_text; /* the table in force, formatted: to tell a change from a re-read */

static void
on_state_dir(void *arg)
{
    struct meshd *d = arg;
    char err[600];
    struct token_gens *g;
    if (meshd_gens_load(d->opts.state_dir, &g, err, sizeof(err)) < 0) {
        log_error("%s; keeping the token generations in force", err);
        return;
    }
    char *text = token_gens_format(g);
    if (gens_text != NULL && strcmp(text, gens_text) == 0) {
        free(text);
        token_gens_free(g);
        return;
    }
    log_info("token generations changed: %zu nodes with revocations", token_gens_count(g));
    free(gens_text);
    gens_text = text;
    token_gens_free(d->gens);
    d->gens = g;
    server_tokens_revised(d->server);
}

int
meshd_tokens_start(struct meshd *d, char *err, size_t errlen)
{
    if (meshd_gens_load(d->opts.state_dir, &d->gens, err, errlen) < 0)
        return -1;
    gens_text = token_gens_format(d->gens);
    gens_watch = dirwatch_start(d->loop, d->opts.state_dir, GENS_DEBOUNCE_MS, on_state_dir, d,
                                err, errlen);
    return gens_watch ? 0 : -1;
}

void
meshd_tokens_stop(struct meshd *d)
{
    dirwatch_stop(gens_watch);
    gens_watch = NULL;
    token_gens_free(d->gens);
    d->gens = NULL;
    free(gens_text);
    gens_text = NULL;
}
