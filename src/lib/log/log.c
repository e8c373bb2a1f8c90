/*
 * log.c - formats log lines (plain or JSON) and writes each with one write(2),
 * so lines from concurrent processes sharing stderr do not interleave.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

#define LOG_LINE_MAX 8192

/*
 * Atomic (relaxed: nothing else is published with them): every thread reads the level on
 * each log call, and the admin endpoint (POST /logging) sets it on its own loop's thread
 * while worker threads log.
 */
static _Atomic int cur_level = LOG_INFO;
static atomic_bool use_json;

/* Rate-limit budgets are shared by threads: a static one per call site is reached by every
 * worker that runs that code. One mutex for all of them; the section is a few loads and
 * stores, taken only on lines a peer can trigger, never on the data path proper. */
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;

void
log_set_level(enum log_level level)
{
    atomic_store_explicit(&cur_level, (int)level, memory_order_relaxed);
}

enum log_level
log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&cur_level, memory_order_relaxed);
}

void
log_set_json(bool json)
{
    atomic_store_explicit(&use_json, json, memory_order_relaxed);
}

static bool
json_on(void)
{
    return atomic_load_explicit(&use_json, memory_order_relaxed);
}

const char *
log_level_name(enum log_level level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    return names[level];
}

int
log_parse_level(const char *s)
{
    if (strcasecmp(s, "error") == 0)
        return LOG_ERROR;
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        return LOG_WARN;
    if (strcasecmp(s, "info") == 0)
        return LOG_INFO;
    if (strcasecmp(s, "debug") == 0 || strcasecmp(s, "trace") == 0)
        return LOG_DEBUG;
    return -1;
}

/* A bounded line builder: output past the end is dropped, never overflowed. */
struct line {
    char b[LOG_LINE_MAX];
    size_t n;
};

static void
put(struct line *l, const char *s, size_t n)
{
    if (n > sizeof(l->b) - 1 - l->n)
        n = sizeof(l->b) - 1 - l->n;
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

static void
puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/*
 * A message in the plain format: control characters (a peer's string may
 * carry a newline or a tab) are written as \xNN, so one call is one line and
 * nobody can forge another.
 */
static void
put_message(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != 0x7f) {
            put(l, s, 1);
        } else {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            put(l, e, 4);
        }
    }
}

static void
put_json_str(struct line *l, const char *s)
{
    put(l, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put(l, "\"", 1);
}

static bool
is_json_number(const char *v)
{
    if (*v == '-')
        v++;
    if (*v < '0' || *v > '9' || (v[0] == '0' && v[1] != '\0'))
        return false;
    while (*v >= '0' && *v <= '9')
        v++;
    return *v == '\0';
}

static void
put_time(struct line *l)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%06ldZ", (long)tv.tv_usec);
    if (json_on())
        put_json_str(l, ts);
    else
        puts_(l, ts);
}

static void
emit(enum log_level level, const char *scope, const char *message, const struct log_field *fields,
     size_t n)
{
    struct line l;
    bool json = json_on();
    l.n = 0;

    if (json) {
        puts_(&l, "{\"level\":");
        put_json_str(&l, log_level_name(level));
        puts_(&l, ",\"time\":");
        put_time(&l);
        puts_(&l, ",\"scope\":");
        put_json_str(&l, scope);
        puts_(&l, ",\"message\":");
        put_json_str(&l, message);
        for (size_t i = 0; i < n; i++) {
            if (fields[i].value == NULL)
                continue;
            puts_(&l, ",");
            put_json_str(&l, fields[i].key);
            puts_(&l, ":");
            /* JSON: only a plain number may go unquoted; addresses and the like are strings. */
            if (fields[i].quote || !is_json_number(fields[i].value))
                put_json_str(&l, fields[i].value);
            else
                puts_(&l, fields[i].value);
        }
        puts_(&l, "}");
    } else {
        put_time(&l);
        puts_(&l, "\t");
        puts_(&l, log_level_name(level));
        puts_(&l, "\t");
        puts_(&l, scope);
        puts_(&l, "\t");
        put_message(&l, message);
        const char *sep = "\t";
        for (size_t i = 0; i < n; i++) {
            if (fields[i].value == NULL)
                continue;
            puts_(&l, sep);
            sep = " ";
            puts_(&l, fields[i].key);
            puts_(&l, "=");
            if (fields[i].quote)
                put_json_str(&l, fields[i].value);
            else
                put_message(&l, fields[i].value);
        }
    }
    l.b[l.n++] = '\n';
    ssize_t w = write(STDERR_FILENO, l.b, l.n);
    (void)w;
}

void
log_fields(enum log_level level, const char *scope, const char *message,
           const struct log_field *fields, size_t n)
{
    if (level > log_get_level())
        return;
    emit(level, scope, message, fields, n);
}

void
log_msg(enum log_level level, const char *scope, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;

    if (level > log_get_level())
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, scope, msg, NULL, 0);
}

bool
log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
    bool ok = false;

    pthread_mutex_lock(&rl_mu);
    /* A clock read on another thread just before may be older than this window's start:
     * the unsigned difference would wrap, and that is a new window too (harmless). */
    if (rl->passed == 0 || now_ms - rl->window_start_ms >= rl->interval_ms) {
        rl->window_start_ms = now_ms;
        rl->passed = 0;
    }
    if (rl->passed >= rl->burst) {
        rl->suppressed++;
    } else {
        rl->passed++;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
        ok = true;
    }
    pthread_mutex_unlock(&rl_mu);
    return ok;
}

struct log_ratelimit *
log_ratelimit_for(struct log_ratelimit_set *set, const char *key)
{
    struct log_ratelimit *rl = &set->other;

    pthread_mutex_lock(&rl_mu);
    for (size_t i = 0; i < set->n; i++)
        if (strncmp(set->slot[i].key, key, LOG_RATELIMIT_KEY_MAX - 1) == 0) {
            rl = &set->slot[i].rl;
            goto out;
        }
    if (set->n < LOG_RATELIMIT_KEYS) {
        size_t i = set->n++;
        snprintf(set->slot[i].key, sizeof(set->slot[i].key), "%s", key);
        set->slot[i].rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(set->interval_ms, set->burst);
        rl = &set->slot[i].rl;
    }
out:
    pthread_mutex_unlock(&rl_mu);
    return rl;
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
log_msg_rl(struct log_ratelimit *rl, enum log_level level, const char *scope, const char *fmt, ...)
{
    uint64_t suppressed;
    char buf[LOG_LINE_MAX];
    va_list ap;

    if (!log_enabled(level) || !log_ratelimit_allow(rl, mono_ms(), &suppressed))
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n >= 0 && suppressed > 0 && (size_t)n < sizeof(buf))
        snprintf(buf + n, sizeof(buf) - (size_t)n, " (%llu similar suppressed)",
                 (unsigned long long)suppressed);
    log_msg(level, scope, "%s", buf);
}

void
fatal(const char *fmt, ...)
{
    char msg[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(LOG_ERROR, "amesh", msg, NULL, 0);
    exit(1);
}

long
flag_long(const char *flag, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        fatal("%s: \"%s\" is not a number in [%ld, %ld]", flag, s, min, max);
    return v;
}

void
flag_log_level(const char *s)
{
    int lv = log_parse_level(s);
    if (lv < 0)
        fatal("--log-level: unknown level \"%s\" (want error, warn, info or debug)", s);
    log_set_level((enum log_level)lv);
}

bool
flag_log_json(const char *s)
{
    if (strcmp(s, "json") != 0 && strcmp(s, "plain") != 0)
        fatal("--log-format: \"%s\" is not plain or json", s);
    return strcmp(s, "json") == 0;
}
