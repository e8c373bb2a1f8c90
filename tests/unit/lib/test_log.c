/*
 * test_log.c - log line rendering: plain and JSON formats, escaping of quoted
 * field values, levels. stderr is captured into a temporary file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log/log.h"

struct capture {
    FILE *f;
    int saved;
    char buf[32768];
    size_t len;
};

static void
capture_start(struct capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    assert_non_null(c->f);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written, NUL-terminated. */
static const char *
capture_end(struct capture *c)
{
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    rewind(c->f);
    c->len = fread(c->buf, 1, sizeof(c->buf) - 1, c->f);
    c->buf[c->len] = '\0';
    fclose(c->f);
    return c->buf;
}

static int
count_char(const char *s, char ch)
{
    int n = 0;
    for (; *s; s++)
        n += *s == ch;
    return n;
}

static int
setup(void **state)
{
    (void)state;
    log_set_json(false);
    log_set_level(LOG_INFO);
    return 0;
}

/* "2026-01-02T03:04:05.123456Z" */
static void
assert_rfc3339_us(const char *p)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd')
            assert_true(p[i] >= '0' && p[i] <= '9');
        else
            assert_int_equal(p[i], shape[i]);
    }
}

static void
test_plain_line(void **state)
{
    struct capture c;
    const struct log_field f[] = {
        {"src.addr", "198.18.0.1:40000", false},
        {"missing", NULL, true},
        {"dst.identity", "spiffe://td/ns/a/sa/\"b\"\\c", true},
        {"why", "line1\nline2\ttab\x01", true},
    };
    (void)state;

    capture_start(&c);
    log_fields(LOG_INFO, "access", "connection complete", f, 4);
    const char *out = capture_end(&c);

    /* One line: control characters in values never break it. */
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(out[c.len - 1], '\n');
    assert_rfc3339_us(out);
    const char *rest = out + 27;
    assert_string_equal(rest, "\tinfo\taccess\tconnection complete\tsrc.addr=198.18.0.1:40000 "
                              "dst.identity=\"spiffe://td/ns/a/sa/\\\"b\\\"\\\\c\" "
                              "why=\"line1\\u000aline2\\u0009tab\\u0001\"\n");
}

/* A peer's string with a newline cannot forge a second line (a node id, a NACK message). */
static void
test_plain_no_forged_lines(void **state)
{
    struct capture c;
    (void)state;

    capture_start(&c);
    log_msg(LOG_WARN, "xds", "stream from %s",
            "ztunnel\n2026-01-01T00:00:00Z\tinfo\tca\tCA: signed spiffe://x for node n");
    const char *out = capture_end(&c);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_non_null(strstr(out, "stream from ztunnel\\x0a2026-01-01T00:00:00Z\\x09info"));
}

static void
test_plain_msg(void **state)
{
    struct capture c;
    (void)state;

    capture_start(&c);
    log_msg(LOG_WARN, "inbound", "refused %s with %d", "198.18.0.1:80", 403);
    log_msg(LOG_DEBUG, "inbound", "not shown at info");
    const char *out = capture_end(&c);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_non_null(strstr(out, "\twarn\tinbound\trefused 198.18.0.1:80 with 403\n"));
}

static json_t *
parse_line(const char *line)
{
    json_error_t err;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", err.text, line);
    return j;
}

static void
test_json_fields_round_trip(void **state)
{
    struct capture c;
    static const char tricky[] = "quote\" backslash\\ nl\n cr\r tab\t bell\x07 esc\x1b end";
    const struct log_field f[] = {
        {"src.addr", "198.18.0.1:40000", true},
        {"bytes_sent", "12345", false},
        {"skipped", NULL, true},
        {"why", tricky, true},
    };
    (void)state;

    log_set_json(true);
    capture_start(&c);
    log_fields(LOG_ERROR, "sc\"ope", "msg with \"quotes\"\nand a newline", f, 4);
    const char *out = capture_end(&c);
    log_set_json(false);

    assert_int_equal(count_char(out, '\n'), 1);
    json_t *j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "sc\"ope");
    assert_string_equal(json_string_value(json_object_get(j, "message")),
                        "msg with \"quotes\"\nand a newline");
    assert_string_equal(json_string_value(json_object_get(j, "src.addr")), "198.18.0.1:40000");
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_sent")), 12345);
    assert_null(json_object_get(j, "skipped"));
    assert_string_equal(json_string_value(json_object_get(j, "why")), tricky);
    const char *ts = json_string_value(json_object_get(j, "time"));
    assert_non_null(ts);
    assert_rfc3339_us(ts);
    json_decref(j);
}

static void
test_json_msg(void **state)
{
    struct capture c;
    (void)state;

    log_set_json(true);
    capture_start(&c);
    log_msg(LOG_INFO, "h2", "peer said \"%s\"\t%d", "bye\\", 7);
    const char *out = capture_end(&c);
    log_set_json(false);
    json_t *j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "message")), "peer said \"bye\\\"\t7");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    json_decref(j);
}

/* An over-long message is cut, but the output is still exactly one line. */
static void
test_long_message_one_line(void **state)
{
    struct capture c;
    char *big = malloc(20000);
    (void)state;

    memset(big, 'x', 19999);
    big[19999] = '\0';
    capture_start(&c);
    log_msg(LOG_ERROR, "t", "%s", big);
    const char *out = capture_end(&c);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(out[c.len - 1], '\n');
    assert_true(c.len <= 8192);
    free(big);
}

static void
test_levels(void **state)
{
    struct capture c;
    static const struct {
        const char *in;
        int level;
    } cases[] = {
        {"error", LOG_ERROR}, {"WARN", LOG_WARN},   {"warning", LOG_WARN}, {"info", LOG_INFO},
        {"Debug", LOG_DEBUG}, {"trace", LOG_DEBUG}, {"verbose", -1},       {"", -1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(log_parse_level(cases[i].in), cases[i].level);
    assert_string_equal(log_level_name(LOG_WARN), "warn");
    assert_string_equal(log_level_name(LOG_DEBUG), "debug");

    log_set_level(LOG_WARN);
    assert_int_equal(log_get_level(), LOG_WARN);
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_ERROR));
    capture_start(&c);
    log_msg(LOG_INFO, "t", "hidden");
    log_fields(LOG_INFO, "t", "hidden too", NULL, 0);
    log_msg(LOG_ERROR, "t", "shown");
    log_fields(LOG_WARN, "t", "shown too", NULL, 0);
    const char *out = capture_end(&c);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "\terror\tt\tshown\n"));
    assert_non_null(strstr(out, "\twarn\tt\tshown too\n"));
    assert_int_equal(count_char(out, '\n'), 2);

    log_set_level(LOG_DEBUG);
    capture_start(&c);
    log_msg(LOG_DEBUG, "t", "now visible");
    out = capture_end(&c);
    assert_non_null(strstr(out, "\tdebug\tt\tnow visible\n"));
    log_set_level(LOG_INFO);
}

/* Two lines per second pass; the rest are counted and reported by the next one through. */
static void
test_ratelimit_window(void **state)
{
    (void)state;
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 2);
    uint64_t sup = 99;

    assert_true(log_ratelimit_allow(&rl, 5000, &sup));
    assert_int_equal(sup, 0);
    assert_true(log_ratelimit_allow(&rl, 5001, &sup));
    for (int i = 0; i < 1000; i++)
        assert_false(log_ratelimit_allow(&rl, 5002 + (uint64_t)i % 900, &sup));
    assert_true(log_ratelimit_allow(&rl, 6000, &sup));
    assert_int_equal(sup, 1000);
    assert_true(log_ratelimit_allow(&rl, 6001, &sup));
    assert_int_equal(sup, 0);
    assert_false(log_ratelimit_allow(&rl, 6002, &sup));
}

/* A flood of one reason does not use up another's budget; keys past the table share one. */
static void
test_ratelimit_per_key(void **state)
{
    (void)state;
    static struct log_ratelimit_set set = LOG_RATELIMIT_SET_INIT(1000, 1);
    uint64_t sup;

    assert_true(log_ratelimit_allow(log_ratelimit_for(&set, "expired"), 10, &sup));
    assert_false(log_ratelimit_allow(log_ratelimit_for(&set, "expired"), 11, &sup));
    assert_true(log_ratelimit_allow(log_ratelimit_for(&set, "no URI SAN"), 12, &sup));
    assert_ptr_equal(log_ratelimit_for(&set, "expired"), log_ratelimit_for(&set, "expired"));
    char key[32];
    for (int i = 0; i < LOG_RATELIMIT_KEYS + 4; i++) {
        snprintf(key, sizeof(key), "reason %d", i);
        log_ratelimit_for(&set, key);
    }
    assert_int_equal(set.n, LOG_RATELIMIT_KEYS);
    assert_ptr_equal(log_ratelimit_for(&set, "reason 30"), &set.other);
    assert_ptr_equal(log_ratelimit_for(&set, "reason 31"), &set.other);
}

/* Runs |fn(arg)| in a child; returns its exit status (fatal() exits 1). */
static int
child_status(void (*fn)(const char *), const char *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fclose(stderr); /* the fatal line is expected */
        fn(arg);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
call_json(const char *s)
{
    (void)flag_log_json(s);
}

/* --log-level and --log-format as every binary parses them. */
static void
test_log_flags(void **state)
{
    (void)state;
    assert_true(flag_log_json("json"));
    assert_false(flag_log_json("plain"));
    flag_log_level("debug");
    assert_int_equal(log_get_level(), LOG_DEBUG);
    flag_log_level("warn");
    assert_int_equal(log_get_level(), LOG_WARN);
    assert_int_equal(child_status(call_json, "xml"), 1);
    assert_int_equal(child_status(call_json, ""), 1);
    assert_int_equal(child_status(flag_log_level, "loud"), 1);
    assert_int_equal(log_get_level(), LOG_WARN);
    flag_log_level("info");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plain_line, setup),
        cmocka_unit_test_setup(test_plain_msg, setup),
        cmocka_unit_test_setup(test_plain_no_forged_lines, setup),
        cmocka_unit_test_setup(test_json_fields_round_trip, setup),
        cmocka_unit_test_setup(test_json_msg, setup),
        cmocka_unit_test_setup(test_long_message_one_line, setup),
        cmocka_unit_test_setup(test_levels, setup),
        cmocka_unit_test(test_ratelimit_window),
        cmocka_unit_test(test_ratelimit_per_key),
        cmocka_unit_test(test_log_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
