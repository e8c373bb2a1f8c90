/*
 * hold_conn.c - hold-conn: one long-lived TCP connection, probed on a timer.
 *
 * Connects to HOST:PORT (retrying until --wait-secs), reads the echo server's
 * banner line, then every --interval-ms sends a line and expects it echoed
 * within --timeout-ms. One stdout line per probe; the first failure (reset,
 * close, timeout, wrong bytes, unsolicited bytes) exits 1, so a demo can show
 * that a connection opened before enrollment survives it. Plain libc, no loop:
 * one socket, poll(2) deadlines.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define HOLD_MAX_LINE 1024

struct hold_opts {
    long interval_ms;
    long timeout_ms;
    long count;     /* 0: until a signal */
    long wait_secs; /* for the first connection */
    bool banner;
    char host[256];
    char port[8];
};

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: hold-conn [flags] HOST:PORT\n"
               "  --interval-ms N  between probes (default 1000)\n"
               "  --timeout-ms N   for connecting, the banner and each echo (default 2000)\n"
               "  --count N        exit 0 after N probes (default 0: until SIGTERM)\n"
               "  --wait-secs N    keep retrying the first connection this long (default 30)\n"
               "  --no-banner      the server sends no banner line first\n"
               "HOST is an IP ([v6] in brackets) or a name. For a name, the Kubernetes service\n"
               "variable <FIRST LABEL>_SERVICE_HOST (echo.demo.svc -> ECHO_SERVICE_HOST) is used\n"
               "when set, else the resolver (DNS, /etc/hosts).\n");
}

static long
parse_num(const char *flag, const char *s, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min) {
        fprintf(stderr, "hold-conn: %s: not a number >= %ld: %s\n", flag, min, s);
        exit(2);
    }
    return v;
}

static void
parse_target(const char *s, struct hold_opts *o)
{
    const char *colon = strrchr(s, ':');
    const char *h = s, *he = colon;

    if (colon != NULL && s[0] == '[' && colon > s && colon[-1] == ']') {
        h = s + 1;
        he = colon - 1;
    }
    if (colon == NULL || he == h || (size_t)(he - h) >= sizeof(o->host) ||
        strlen(colon + 1) >= sizeof(o->port) || parse_num("port", colon + 1, 1) > 65535) {
        fprintf(stderr, "hold-conn: want HOST:PORT, got \"%s\"\n", s);
        exit(2);
    }
    memcpy(o->host, h, (size_t)(he - h));
    o->host[he - h] = '\0';
    snprintf(o->port, sizeof(o->port), "%s", colon + 1);
}

static void
parse_flags(int argc, char **argv, struct hold_opts *o)
{
    enum { OPT_INTERVAL = 1, OPT_TIMEOUT, OPT_COUNT, OPT_WAIT, OPT_NO_BANNER, OPT_HELP };
    static const struct option longopts[] = {
        {"interval-ms", required_argument, NULL, OPT_INTERVAL},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"count", required_argument, NULL, OPT_COUNT},
        {"wait-secs", required_argument, NULL, OPT_WAIT},
        {"no-banner", no_argument, NULL, OPT_NO_BANNER},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *o = (struct hold_opts){
        .interval_ms = 1000, .timeout_ms = 2000, .wait_secs = 30, .banner = true};
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_INTERVAL:
            o->interval_ms = parse_num("--interval-ms", optarg, 1);
            break;
        case OPT_TIMEOUT:
            o->timeout_ms = parse_num("--timeout-ms", optarg, 1);
            break;
        case OPT_COUNT:
            o->count = parse_num("--count", optarg, 0);
            break;
        case OPT_WAIT:
            o->wait_secs = parse_num("--wait-secs", optarg, 0);
            break;
        case OPT_NO_BANNER:
            o->banner = false;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        exit(2);
    }
    parse_target(argv[optind], o);
}

/* "echo.demo.svc" -> getenv("ECHO_SERVICE_HOST"), as Kubernetes injects for services. */
static const char *
service_env_host(const char *host)
{
    char var[sizeof(((struct hold_opts *)0)->host) + 16];
    size_t n = strcspn(host, ".");

    if (n + sizeof("_SERVICE_HOST") > sizeof(var))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char ch = host[i];
        var[i] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    memcpy(var + n, "_SERVICE_HOST", sizeof("_SERVICE_HOST"));
    return getenv(var);
}

static int
wait_fd(int fd, short events, int64_t deadline_us)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int64_t left = deadline_us - now_us();
        if (left <= 0)
            return -ETIMEDOUT;
        int n = poll(&p, 1, (int)((left + 999) / 1000));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (stopping)
            return -EINTR;
    }
}

static int
connect_one(const struct addrinfo *ai, long timeout_ms)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, err = 0, rc;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        rc = -errno;
        goto fail;
    }
    if ((rc = wait_fd(fd, POLLOUT, now_us() + timeout_ms * 1000)) < 0)
        goto fail;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        rc = -err;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

static const char *
addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, outlen, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, outlen, "%s:%u", ip, ntohs(s4->sin_port));
    }
    return out;
}

/* One attempt: resolve and try each address. Returns the fd or -errno (-ENOENT: no address). */
static int
try_connect(const struct hold_opts *o, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    const char *host = o->host, *env = service_env_host(o->host);
    struct in6_addr a6;

    /* The variable first: without cluster DNS a name lookup can take seconds to fail. */
    if (env != NULL && env[0] != '\0' && inet_pton(AF_INET6, o->host, &a6) != 1 &&
        inet_pton(AF_INET, o->host, &a6) != 1)
        host = env;
    int rc = getaddrinfo(host, o->port, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "resolve %s: %s", host, gai_strerror(rc));
        return -ENOENT;
    }
    int fd = -ENOENT;
    for (const struct addrinfo *ai = res; ai != NULL && !stopping; ai = ai->ai_next) {
        char a[INET6_ADDRSTRLEN + 8];
        if ((fd = connect_one(ai, o->timeout_ms)) >= 0) {
            say("connected to=%s", addr_text(ai->ai_addr, a, sizeof(a)));
            break;
        }
        snprintf(why, whylen, "connect %s: %s", addr_text(ai->ai_addr, a, sizeof(a)),
                 strerror(-fd));
    }
    freeaddrinfo(res);
    return fd;
}

static int
connect_wait(const struct hold_opts *o)
{
    int64_t deadline = now_us() + (int64_t)o->wait_secs * 1000000;
    char why[512] = "";

    for (;;) {
        int fd = try_connect(o, why, sizeof(why));
        if (fd >= 0 || stopping)
            return fd;
        if (now_us() >= deadline) {
            say("FAIL %s", why);
            return -1;
        }
        say("waiting: %s", why);
        struct timespec ts = {.tv_sec = 1};
        nanosleep(&ts, NULL);
    }
}

/* Receives exactly |n| bytes, or up to and including '\n' when |line|. Returns length or -errno. */
static ssize_t
recv_until(int fd, char *p, size_t n, bool line, int64_t deadline_us)
{
    size_t got = 0;

    while (got < n) {
        int rc = wait_fd(fd, POLLIN, deadline_us);
        if (rc < 0)
            return rc;
        ssize_t r = recv(fd, p + got, line ? 1 : n - got, 0);
        if (r == 0)
            return -ECONNABORTED;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (r > 0) {
            got += (size_t)r;
            if (line && p[got - 1] == '\n')
                return (ssize_t)got;
        }
    }
    return line ? -EMSGSIZE : (ssize_t)got;
}

static int
send_all(int fd, const char *p, size_t n, int64_t deadline_us)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int rc = wait_fd(fd, POLLOUT, deadline_us);
            if (rc < 0)
                return rc;
            continue;
        }
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *
why_text(int err)
{
    return err == -ECONNABORTED ? "connection closed by peer" : strerror(-err);
}

/*
 * Between probes the connection must stay silent: bytes or a close arriving
 * now are failures too. Returns 0 after |ms|, -EINTR on a signal, or a failure.
 */
static int
idle_wait(int fd, long ms, char *why, size_t whylen)
{
    int rc = wait_fd(fd, POLLIN, now_us() + (int64_t)ms * 1000);
    char b[64];

    if (rc == -ETIMEDOUT)
        return 0;
    if (rc < 0)
        return rc;
    ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
    if (r == 0)
        snprintf(why, whylen, "connection closed by peer");
    else if (r < 0)
        snprintf(why, whylen, "%s", strerror(errno));
    else
        snprintf(why, whylen, "%zd unexpected bytes between probes", r);
    return -EPROTO;
}

/* Probes until the count, a signal or a failure. Returns the exit status. */
static int
probe_loop(int fd, const struct hold_opts *o)
{
    char line[HOLD_MAX_LINE], back[HOLD_MAX_LINE], why[256];
    long done = 0;

    for (long i = 1; o->count == 0 || i <= o->count; i++) {
        int n = snprintf(line, sizeof(line), "hold-conn pid=%d probe=%ld\n", (int)getpid(), i);
        int64_t t0 = now_us(), deadline = t0 + o->timeout_ms * 1000;
        int rc = send_all(fd, line, (size_t)n, deadline);
        ssize_t got = rc < 0 ? rc : recv_until(fd, back, (size_t)n, false, deadline);
        if (got == -EINTR && stopping)
            break;
        if (got < 0) {
            say("probe=%ld FAIL %s", i, why_text((int)got));
            return 1;
        }
        if (memcmp(back, line, (size_t)n) != 0) {
            say("probe=%ld FAIL echo differs", i);
            return 1;
        }
        say("probe=%ld ok rtt_ms=%.3f", i, (double)(now_us() - t0) / 1000.0);
        done = i;
        if (o->count != 0 && i == o->count)
            break;
        rc = idle_wait(fd, o->interval_ms, why, sizeof(why));
        if (rc == -EINTR && stopping)
            break;
        if (rc < 0) {
            say("probe=%ld FAIL %s", i + 1, rc == -EPROTO ? why : strerror(-rc));
            return 1;
        }
    }
    say("%s probes=%ld", stopping ? "stopped" : "done", done);
    return 0;
}

int
main(int argc, char **argv)
{
    struct hold_opts o;
    struct sigaction sa = {.sa_handler = on_signal};
    char banner[HOLD_MAX_LINE];

    parse_flags(argc, argv, &o);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGINT, &sa, NULL);

    int fd = connect_wait(&o);
    if (fd < 0)
        return stopping ? 0 : 1;
    if (o.banner) {
        int64_t deadline = now_us() + o.timeout_ms * 1000;
        ssize_t n = recv_until(fd, banner, sizeof(banner) - 1, true, deadline);
        if (n < 0) {
            say("banner FAIL %s", why_text((int)n));
            close(fd);
            return stopping ? 0 : 1;
        }
        banner[n - 1] = '\0';
        say("banner %s", banner);
    }
    int rc = probe_loop(fd, &o);
    close(fd);
    return rc;
}
