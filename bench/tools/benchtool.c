/*
 * benchtool.c - small load tools for bench/run.sh (built into the run's temp dir).
 *
 *   benchtool echo PORT...                 epoll echo server on 0.0.0.0:PORT (many connections)
 *   benchtool rtt HOST PORT RATE SECS SIZE paced request/response: SIZE bytes out, SIZE bytes
 *                                          back, RATE per second on one connection (sleeping in
 *                                          between; RATE 0 = back to back); prints the round-trip
 *                                          percentiles in microseconds
 *   benchtool hold HOST PORT N SECS        opens N connections, each sends one byte and waits for
 *                                          its echo (so the tunnel is really up), prints
 *                                          "held OK FAILED" and keeps them open until SIGTERM
 *                                          (or 600 s); SECS bounds the set-up time
 *   benchtool hrtt HOST PORT RATE SECS PATH  as rtt, but each round trip is an HTTP/1.1 GET of
 *                                          PATH on one kept-alive connection (200 with a
 *                                          Content-Length body required); RATE 0 = back to back
 *   benchtool hhold HOST PORT N SECS PATH  as hold, but each connection makes one kept-alive
 *                                          GET of PATH and waits for its whole 200 response
 *   benchtool lat HOST PORT RATE SECS SIZE fixed-schedule round trips on one connection: a
 *                                          message is due every 1/RATE s and its latency runs
 *                                          from when it was due, so a stall counts in full for
 *                                          every message it delays (no coordinated omission)
 *   benchtool busy HOST PORT N SECS SIZE   a flood: N connections, each doing SIZE-byte round
 *                                          trips back to back for SECS
 *   benchtool storm HOST PORT C SECS       a flood of new connections: C at a time, each sends
 *                                          one byte, waits for its echo and closes, for SECS
 *
 * `benchtool -b SRC CMD ...` makes the clients' connections from address SRC (a second pod on
 * the same node). IPv4 only (the bench uses 198.18.0.0/15). Every loop is bounded in time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void
die(const char *what)
{
    fprintf(stderr, "benchtool: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
arg_long(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "benchtool: bad number %s\n", s);
        exit(2);
    }
    return v;
}

static double
arg_double(const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "benchtool: bad number %s\n", s);
        exit(2);
    }
    return v;
}

/* -b SRC: source address of every client connection (none: the kernel's choice). */
static struct in_addr g_src;
static bool g_have_src;

/* A TCP client socket bound to -b's address. IP_BIND_ADDRESS_NO_PORT leaves the port to
 * connect(), so a connection storm can reuse ports per destination as an unbound socket would. */
static int
client_socket(int flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
    if (fd < 0 || !g_have_src)
        return fd;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = g_src};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("bind -b");
    return fd;
}

static struct sockaddr_in
mkaddr(const char *host, const char *port)
{
    int p = (int)arg_long(port, 1, 65535);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "benchtool: bad IPv4 address %s\n", host);
        exit(2);
    }
    return a;
}

/* ---- echo server ---- */

static void
write_all_blocking(int fd, const char *p, size_t n)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    fcntl(fd, F_SETFL, fl);
}

static int
cmd_echo(int argc, char **argv)
{
    int ep = epoll_create1(0);
    int nl = argc;
    int *lfds = calloc((size_t)nl, sizeof(int));
    if (ep < 0 || lfds == NULL)
        die("epoll");
    for (int i = 0; i < nl; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)arg_long(argv[i], 1, 65535))};
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0)
            die("listen");
        lfds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, is_listener = 0;
            for (int j = 0; j < nl; j++)
                is_listener |= (fd == lfds[j]);
            if (is_listener) {
                for (int k = 0; k < 256; k++) {
                    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0)
                        break;
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r > 0) {
                ssize_t w = write(fd, buf, (size_t)r);
                if (w < 0)
                    w = 0;
                if (w < r)
                    write_all_blocking(fd, buf + w, (size_t)(r - w));
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(fd); /* also removes it from the epoll set */
            }
        }
    }
    return 0;
}

/* ---- HTTP/1.1 responses (the waypoint step) ---- */

/*
 * Is |b| (|n| bytes) a whole "200" response with a Content-Length body? 1 yes, 0 not yet,
 * -1 something else (another status, no Content-Length, too big). The bench's origin is nginx
 * serving a static file, so nothing else (chunked, 1xx) is expected.
 */
static int
http_done(const char *b, size_t n, size_t cap)
{
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (end == NULL)
        return n >= cap ? -1 : 0;
    size_t head = (size_t)(end - b) + 4;
    if (n < 12 || memcmp(b, "HTTP/1.1 200", 12) != 0)
        return -1;
    long cl = -1;
    for (const char *p = b; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            cl = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    if (cl < 0 || head + (size_t)cl > cap)
        return -1;
    return n >= head + (size_t)cl ? 1 : 0;
}

static int
http_request(char *out, size_t cap, const char *host, const char *port, const char *path)
{
    int n = snprintf(out, cap, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: benchtool\r\n\r\n",
                     path, host, port);
    if (n <= 0 || (size_t)n >= cap) {
        fprintf(stderr, "benchtool: path too long\n");
        exit(2);
    }
    return n;
}

/* ---- paced round trips ---- */

static int
cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * |from_due|: a message's latency runs from when it was due on the fixed schedule rather than
 * from when it was sent (sending is late when the previous answer was): what a paced client
 * with a queue in front of it would see.
 */
static int
cmd_rtt(int argc, char **argv, bool http, bool from_due)
{
    if (argc != 5) {
        fprintf(stderr,
                "usage: benchtool rtt HOST PORT RATE SECS SIZE | hrtt HOST PORT RATE SECS PATH\n");
        return 2;
    }
    struct sockaddr_in a = mkaddr(argv[0], argv[1]);
    double rate = arg_double(argv[2], 0, 1e6), secs = arg_double(argv[3], 0.01, 3600);
    char req[1024];
    size_t size = http ? (size_t)http_request(req, sizeof(req), argv[0], argv[1], argv[4])
                       : (size_t)arg_long(argv[4], 1, 65536);
    const size_t in_cap = 16384;
    int fd = client_socket(0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("connect");
    size_t cap = 1 << 16, count = 0;
    char *out = malloc(size), *in = malloc(http ? in_cap : size);
    double *rtt = malloc(cap * sizeof(double)), *svc = malloc(cap * sizeof(double));
    if (out == NULL || in == NULL || rtt == NULL || svc == NULL)
        die("malloc");
    if (http)
        memcpy(out, req, size);
    else
        memset(out, 'r', size);
    /* Warm-up for a tenth of the time (not recorded), then measure for SECS. */
    double period = rate > 0 ? 1.0 / rate : 0, start = now_s(), next = start;
    double t_meas = start + secs / 10, t_end = t_meas + secs;
    for (;;) {
        next += period;
        if (rate > 0) {
            struct timespec ts = {.tv_sec = (time_t)next,
                                  .tv_nsec = (long)((next - (double)(time_t)next) * 1e9)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        double t0 = now_s();
        if (t0 >= t_end)
            break;
        if (write(fd, out, size) != (ssize_t)size)
            die("write");
        size_t got = 0, want = http ? in_cap : size;
        for (int done = 0; done == 0;) {
            ssize_t r = read(fd, in + got, want - got);
            if (r <= 0) {
                fprintf(stderr, "benchtool rtt: read failed after %zu messages\n", count);
                return 1;
            }
            got += (size_t)r;
            done = http ? http_done(in, got, in_cap) : got == size;
            if (done < 0) {
                fprintf(stderr, "benchtool rtt: not a 200 response after %zu messages: %.40s\n",
                        count, in);
                return 1;
            }
        }
        if (t0 < t_meas)
            continue;
        if (count == cap) {
            cap *= 2;
            rtt = realloc(rtt, cap * sizeof(double));
            svc = realloc(svc, cap * sizeof(double));
            if (rtt == NULL || svc == NULL)
                die("realloc");
        }
        double t1 = now_s();
        svc[count] = (t1 - t0) * 1e6;
        rtt[count++] = (t1 - (from_due && rate > 0 ? next : t0)) * 1e6;
    }
    if (count == 0)
        return 1;
    qsort(rtt, count, sizeof(double), cmp_dbl);
#define PCT(p) rtt[(size_t)((double)(count - 1) * (p) / 100.0)]
    printf("RESULT n=%zu p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f", count, PCT(50), PCT(90),
           PCT(99), PCT(99.9), rtt[count - 1]);
    if (from_due) {
        /* The same from the actual send: a message's own round trip, without the wait for the
         * ones before it; and how many were sent per second (below RATE: the path kept up with
         * less than what was asked). */
        qsort(svc, count, sizeof(double), cmp_dbl);
        printf(" sent_p50=%.1f sent_p99=%.1f per_s=%.1f", svc[(size_t)((double)(count - 1) * 0.5)],
               svc[(size_t)((double)(count - 1) * 0.99)], (double)count / secs);
    }
    printf("\n");
    return 0;
}

/* ---- hold N tunnels open ---- */

enum { C_CONNECTING = 1, C_WAITING = 2, C_HELD = 3, C_FAILED = 4 };

static int
cmd_hold(int argc, char **argv, bool http)
{
    if (argc != (http ? 5 : 4)) {
        fprintf(stderr, "usage: benchtool hold HOST PORT N SECS | hhold HOST PORT N SECS PATH\n");
        return 2;
    }
    struct sockaddr_in a = mkaddr(argv[0], argv[1]);
    long n = arg_long(argv[2], 1, 1000000);
    double deadline = now_s() + arg_double(argv[3], 0.1, 3600);
    const int max_inflight = 128;
    enum { RBUF = 4096 };
    char req[1024] = "x";
    size_t req_n = http ? (size_t)http_request(req, sizeof(req), argv[0], argv[1], argv[4]) : 1;
    int *fds = calloc((size_t)n, sizeof(int));
    char *st = calloc((size_t)n, 1);
    /* HTTP: a response buffer per connection still waiting (max_inflight of them). */
    char *rbuf = http ? malloc((size_t)n * RBUF) : NULL;
    size_t *rgot = http ? calloc((size_t)n, sizeof(size_t)) : NULL;
    int ep = epoll_create1(0);
    if (fds == NULL || st == NULL || ep < 0 || (http && (rbuf == NULL || rgot == NULL)))
        die("setup");
    long next = 0, held = 0, failed = 0, inflight = 0;
    struct epoll_event evs[256];
    while (held + failed < n && now_s() < deadline) {
        while (next < n && inflight < max_inflight) {
            int fd = client_socket(SOCK_NONBLOCK);
            if (fd < 0) {
                st[next++] = C_FAILED;
                failed++;
                continue;
            }
            fds[next] = fd;
            int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
            if (r < 0 && errno != EINPROGRESS) {
                close(fd);
                st[next++] = C_FAILED;
                failed++;
                continue;
            }
            st[next] = C_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)next};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            next++;
            inflight++;
        }
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            long id = (long)evs[i].data.u64;
            int fd = fds[id];
            if (st[id] == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err == 0 && write(fd, req, req_n) == (ssize_t)req_n) {
                    st[id] = C_WAITING;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)id};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                    continue;
                }
            } else if (st[id] == C_WAITING && http) {
                char *b = rbuf + (size_t)id * RBUF;
                ssize_t r = read(fd, b + rgot[id], RBUF - rgot[id]);
                int done = r > 0 ? http_done(b, rgot[id] += (size_t)r, RBUF) : -1;
                if (done == 0)
                    continue;
                if (done == 1) {
                    st[id] = C_HELD;
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    held++;
                    inflight--;
                    continue;
                }
            } else if (st[id] == C_WAITING) {
                char c;
                if (read(fd, &c, 1) == 1 && c == 'x') {
                    st[id] = C_HELD;
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    held++;
                    inflight--;
                    continue;
                }
            } else {
                continue;
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            st[id] = C_FAILED;
            failed++;
            inflight--;
        }
    }
    printf("RESULT held=%ld failed=%ld timedout=%ld\n", held, failed, n - held - failed);
    fflush(stdout);
    /* Hold until told to stop; never longer than 10 minutes. */
    alarm(600);
    for (;;)
        pause();
}

/* ---- floods: many busy connections, or a storm of new ones ---- */

enum { F_CONNECTING = 1, F_SENT = 2 };

struct fconn {
    int fd;
    char state;
    size_t got; /* bytes of the echo read so far */
};

/* Opens connection |id| (non-blocking); false when the socket or connect fails at once. */
static bool
flood_open(int ep, struct fconn *c, long id, const struct sockaddr_in *a)
{
    c->fd = client_socket(SOCK_NONBLOCK);
    if (c->fd < 0)
        return false;
    if (connect(c->fd, (const struct sockaddr *)a, sizeof(*a)) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = F_CONNECTING;
    c->got = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)id};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return true;
}

/*
 * busy (|storm| false): N connections, each sending |size| bytes and reading the echo, again
 * and again. storm: N connections at a time, each sending one byte, reading its echo and
 * closing; a new one replaces it. Prints round trips (busy) or connections (storm) per second.
 */
static int
cmd_flood(int argc, char **argv, bool storm)
{
    if (argc != (storm ? 4 : 5)) {
        fprintf(stderr, "usage: benchtool busy HOST PORT N SECS SIZE | storm HOST PORT C SECS\n");
        return 2;
    }
    struct sockaddr_in a = mkaddr(argv[0], argv[1]);
    long n = arg_long(argv[2], 1, 100000);
    double secs = arg_double(argv[3], 0.1, 3600);
    size_t size = storm ? 1 : (size_t)arg_long(argv[4], 1, 65536);
    struct fconn *cs = calloc((size_t)n, sizeof(*cs));
    char *out = malloc(size), *in = malloc(size);
    int ep = epoll_create1(0);
    if (cs == NULL || out == NULL || in == NULL || ep < 0)
        die("setup");
    memset(out, 'f', size);
    long ops = 0, failed = 0, opened = 0;
    double t_end = now_s() + secs;
    for (long i = 0; i < n; i++) {
        if (!flood_open(ep, &cs[i], i, &a))
            failed++;
        else
            opened++;
    }
    struct epoll_event evs[256];
    while (now_s() < t_end) {
        int k = epoll_wait(ep, evs, 256, 50);
        for (int e = 0; e < k; e++) {
            long id = (long)evs[e].data.u64;
            struct fconn *c = &cs[id];
            bool bad = false;
            if (c->state == F_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                bad = err != 0 || write(c->fd, out, size) != (ssize_t)size;
                if (!bad) {
                    c->state = F_SENT;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)id};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            } else {
                ssize_t r = read(c->fd, in, size - c->got);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                bad = r <= 0;
                if (!bad && (c->got += (size_t)r) == size) {
                    ops++;
                    c->got = 0;
                    if (storm) {
                        close(c->fd); /* leaves the epoll set too */
                        if (!flood_open(ep, c, id, &a))
                            failed++;
                        else
                            opened++;
                    } else if (write(c->fd, out, size) != (ssize_t)size) {
                        /* A message fits the socket buffer: a short write is a failure. */
                        bad = true;
                    }
                }
            }
            if (bad) {
                failed++;
                close(c->fd);
                if (!flood_open(ep, c, id, &a)) /* keep N going */
                    failed++;
                else
                    opened++;
            }
        }
    }
    printf("RESULT ops=%ld per_s=%.0f opened=%ld failed=%ld\n", ops, (double)ops / secs, opened,
           failed);
    return 0;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 3 && strcmp(argv[1], "-b") == 0) {
        if (inet_pton(AF_INET, argv[2], &g_src) != 1) {
            fprintf(stderr, "benchtool: bad source address %s\n", argv[2]);
            return 2;
        }
        g_have_src = true;
        argc -= 2;
        argv += 2;
    }
    if (argc >= 2 && strcmp(argv[1], "echo") == 0 && argc >= 3)
        return cmd_echo(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "rtt") == 0)
        return cmd_rtt(argc - 2, argv + 2, false, false);
    if (argc >= 2 && strcmp(argv[1], "hrtt") == 0)
        return cmd_rtt(argc - 2, argv + 2, true, false);
    if (argc >= 2 && strcmp(argv[1], "lat") == 0)
        return cmd_rtt(argc - 2, argv + 2, false, true);
    if (argc >= 2 && strcmp(argv[1], "busy") == 0)
        return cmd_flood(argc - 2, argv + 2, false);
    if (argc >= 2 && strcmp(argv[1], "storm") == 0)
        return cmd_flood(argc - 2, argv + 2, true);
    if (argc >= 2 && strcmp(argv[1], "hold") == 0)
        return cmd_hold(argc - 2, argv + 2, false);
    if (argc >= 2 && strcmp(argv[1], "hhold") == 0)
        return cmd_hold(argc - 2, argv + 2, true);
    fprintf(stderr,
            "usage: benchtool [-b SRC] echo PORT... | rtt HOST PORT RATE SECS SIZE | lat HOST "
            "PORT RATE SECS SIZE | hold HOST PORT N SECS | hrtt HOST PORT RATE SECS PATH | hhold "
            "HOST PORT N SECS PATH | busy HOST PORT N SECS SIZE | storm HOST PORT C SECS\n");
    return 2;
}
