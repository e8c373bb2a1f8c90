/*
 * log.h - leveled logging in ztunnel's line format.
 *
 * Plain: "<RFC3339 UTC>\t<level>\t<scope>\t<message>[\t<k=v ...>]"
 * JSON:  {"level":..,"time":..,"scope":..,"message":..,"<k>":..}
 * A file sets its scope with "#define LOG_SCOPE "inbound"" before including.
 */
#ifndef MESH_LIB_LOG_H
#define MESH_LIB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* A structured field; |quote| renders the value as a string ("...") in plain format. */
struct log_field {
    const char *key;
    const char *value;
    bool quote;
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug" (also "warning", "trace" = debug); -1 if unknown. */
int log_parse_level(const char *s);
void log_set_json(bool json);
const char *log_level_name(enum log_level level);

static inline bool
log_enabled(enum log_level level)
{
    return level <= log_get_level();
}

void log_msg(enum log_level level, const char *scope, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Emits one line with structured fields; fields with a NULL value are skipped. */
void log_fields(enum log_level level, const char *scope, const char *message,
                const struct log_field *fields, size_t n);

#ifndef LOG_SCOPE
#define LOG_SCOPE "amesh"
#endif
#define log_error(...) log_msg(LOG_ERROR, LOG_SCOPE, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, LOG_SCOPE, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, LOG_SCOPE, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, LOG_SCOPE, __VA_ARGS__);                                            \
    } while (0)

/*
 * Rate limiting for lines a peer can trigger at will (refused connections,
 * floods): at most |burst| lines per |interval_ms|; the rest are counted and
 * reported by the next line that passes ("(N similar suppressed)").
 * One static struct per call site; thread-safe (one mutex in log.c guards every budget).
 */
struct log_ratelimit {
    unsigned interval_ms;
    unsigned burst;
    uint64_t window_start_ms;
    unsigned passed;
    uint64_t suppressed;
};
#define LOG_RATELIMIT_INIT(interval, n) {.interval_ms = (interval), .burst = (n)}

/*
 * One budget per distinct key (a refusal reason, say), so that a flood of one
 * kind of failure cannot hide the first line of another. The first
 * LOG_RATELIMIT_KEYS keys get their own; later ones share |other|. Thread-safe too.
 */
#define LOG_RATELIMIT_KEYS 16
#define LOG_RATELIMIT_KEY_MAX 64
struct log_ratelimit_set {
    unsigned interval_ms;
    unsigned burst;
    size_t n;
    struct {
        char key[LOG_RATELIMIT_KEY_MAX];
        struct log_ratelimit rl;
    } slot[LOG_RATELIMIT_KEYS];
    struct log_ratelimit other;
};
#define LOG_RATELIMIT_SET_INIT(interval, n)                                                        \
    {.interval_ms = (interval), .burst = (n), .other = LOG_RATELIMIT_INIT(interval, n)}
struct log_ratelimit *log_ratelimit_for(struct log_ratelimit_set *set, const char *key);

/* True if a line may be written at |now_ms|; *|suppressed| gets the count held back since. */
bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);
void log_msg_rl(struct log_ratelimit *rl, enum log_level level, const char *scope,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define log_warn_rl(rl, ...) log_msg_rl((rl), LOG_WARN, LOG_SCOPE, __VA_ARGS__)
#define log_info_rl(rl, ...) log_msg_rl((rl), LOG_INFO, LOG_SCOPE, __VA_ARGS__)

/* Logs |fmt| and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Command lines: the decimal value of |s| for |flag|, which must lie in
 * [min, max]; anything else is fatal() with a message naming the flag.
 */
long flag_long(const char *flag, const char *s, long min, long max);
/* --log-level LEVEL: sets the level; an unknown one is fatal(). */
void flag_log_level(const char *s);
/* --log-format FORMAT: true for json, false for plain; anything else is fatal(). */
bool flag_log_json(const char *s);

#endif
