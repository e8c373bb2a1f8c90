/*
 * test_lib_threads.c - the src/lib state ztunnel's worker threads share, used
 * from several threads at once: tls_creds references, the SSL ex-data index
 * and BIO method made on first use, the log level and rate-limit budgets, a
 * metrics registry. Each test checks exact totals (a lost update shows even
 * without a sanitizer); `make tsan` runs it under ThreadSanitizer, which
 * fails it on any data race.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "buf/buf.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "metrics/process.h"
#include "tls/tls.h"
#include "tls/tls_bio.h"
#include "unit_certs.h"

#define N_THREADS 4

/* cmocka's asserts jump out of the test on the main thread only: workers count what fails
 * here and the test asserts the count once they are joined. */
static atomic_int worker_failures;
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            atomic_fetch_add(&worker_failures, 1);                                                 \
        }                                                                                          \
    } while (0)

/* Starts N_THREADS running |fn| on |arg| and waits for them; they start together. */
struct gate {
    pthread_barrier_t b;
    void *(*fn)(void *);
    void *arg;
};

static void *
gated(void *p)
{
    struct gate *g = p;
    pthread_barrier_wait(&g->b);
    return g->fn(g->arg);
}

static void
run_threads(void *(*fn)(void *), void *arg)
{
    struct gate g = {.fn = fn, .arg = arg};
    pthread_t t[N_THREADS];

    atomic_store(&worker_failures, 0);
    assert_int_equal(pthread_barrier_init(&g.b, NULL, N_THREADS), 0);
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gated, &g), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&g.b);
    assert_int_equal(atomic_load(&worker_failures), 0);
}

/* ---- tls_creds, SSL ex-data index, BIO method ------------------------------- */

#define CREDS_ROUNDS 20000

static void *
creds_worker(void *arg)
{
    struct tls_creds *c = arg;
    struct tls_check chk = {.trust_domain = "cluster.local"};
    struct buf out;

    /* First use of the SSL ex-data index and the BIO method, from every thread at once. */
    SSL *ssl = tls_new_server(c, &chk);
    EXPECT(ssl != NULL);
    buf_init(&out, 1 << 16);
    BIO *b = tls_bio_new(NULL, &out);
    EXPECT(b != NULL);
    BIO_free(b);
    SSL_free(ssl);
    buf_cleanup(&out);
    /* A worker's connections take and drop references while the others do the same. */
    for (int i = 0; i < CREDS_ROUNDS; i++) {
        tls_creds_ref(c);
        tls_creds_ref(c);
        tls_creds_unref(c);
        tls_creds_unref(c);
    }
    return NULL;
}

static void
test_creds_refs(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("threads root", 3600);
    assert_non_null(ca);
    struct tls_creds *c = unit_creds_simple(ca, "cluster.local", "default", "server");

    run_threads(creds_worker, c);
    /* The count is back to the one reference held here: this unref frees (LeakSanitizer
     * reports it otherwise), and a count lost low would have freed it under the workers. */
    assert_string_equal(tls_creds_id(c)->sa, "server");
    tls_creds_unref(c);
    ca_free(ca);
}

/* ---- log level and rate-limit budgets ------------------------------------- */

#define RL_CALLS 50000
#define RL_BURST 7

struct rl_shared {
    struct log_ratelimit rl;
    struct log_ratelimit_set set;
    int allowed[N_THREADS];
    int slot;
    pthread_mutex_t mu;
};

static void *
rl_worker(void *arg)
{
    struct rl_shared *s = arg;
    uint64_t suppressed;
    int me;

    pthread_mutex_lock(&s->mu);
    me = s->slot++;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < RL_CALLS; i++) {
        /* One window (the same now_ms): RL_BURST lines pass in all, whoever asks. */
        if (log_ratelimit_allow(&s->rl, 1000, &suppressed))
            s->allowed[me]++;
        char key[16];
        snprintf(key, sizeof(key), "k%d", i % 20);
        EXPECT(log_ratelimit_for(&s->set, key) != NULL);
        /* The admin endpoint sets the level while workers read it on every line. */
        if (me == 0 && i % 1000 == 0)
            log_set_level(i % 2000 == 0 ? LOG_ERROR : LOG_WARN);
        EXPECT(!log_enabled(LOG_DEBUG));
    }
    return NULL;
}

static void
test_log_shared(void **state)
{
    (void)state;
    struct rl_shared s = {
        .rl = LOG_RATELIMIT_INIT(60000, RL_BURST),
        .set = LOG_RATELIMIT_SET_INIT(60000, 1),
    };
    enum log_level was = log_get_level();

    pthread_mutex_init(&s.mu, NULL);
    log_set_level(LOG_WARN);
    run_threads(rl_worker, &s);
    log_set_level(was);
    int total = 0;
    for (int i = 0; i < N_THREADS; i++)
        total += s.allowed[i];
    assert_int_equal(total, RL_BURST);
    assert_int_equal(s.rl.suppressed, (uint64_t)N_THREADS * RL_CALLS - RL_BURST);
    /* 20 keys asked for: the first 16 got a slot each, never one key twice. */
    assert_int_equal(s.set.n, LOG_RATELIMIT_KEYS);
    for (size_t i = 0; i < s.set.n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s.set.slot[i].key, s.set.slot[j].key);
    pthread_mutex_destroy(&s.mu);
}

/* ---- a metrics registry --------------------------------------------------- */

#define M_ADDS 20000

static const char *const dirs[] = {"inbound", "outbound", "a", "b", "c", "d", "e", "f"};

struct m_shared {
    struct metrics *r;
    struct metric *opened, *bytes, *lat;
    struct metric_series *total;
};

static void *
metrics_worker(void *arg)
{
    struct m_shared *s = arg;
    struct process_stats ps;

    process_stats_read(&ps);
    for (int i = 0; i < M_ADDS; i++) {
        /* New series appear (the table grows) while other threads add to existing ones. */
        char peer[32];
        snprintf(peer, sizeof(peer), "peer-%d", i % 97);
        metric_add(s->opened, (const char *const[]){dirs[i % 8], peer}, 1);
        metric_series_add(s->total, 2);
        metric_observe(s->lat, NULL, (double)(i % 100));
        if (i % 5000 == 0) {
            char *text = metrics_render(s->r);
            EXPECT(strstr(text, "test_total") != NULL);
            free(text);
        }
    }
    return NULL;
}

static void
test_metrics_shared(void **state)
{
    (void)state;
    static const char *const labels[] = {"direction", "peer"};
    struct m_shared s = {.r = metrics_new()};
    double bounds[] = {10, 50};

    s.opened = metrics_add(s.r, METRIC_COUNTER, "test_opened_total", "opened", labels, 2, 0);
    s.total =
        metric_series(metrics_add(s.r, METRIC_COUNTER, "test_total", "all", NULL, 0, 0), NULL);
    s.lat = metrics_add_histogram(s.r, "test_lat", "latency", NULL, 0, 0, bounds, 2);
    run_threads(metrics_worker, &s);

    assert_int_equal((long)metric_series_value(s.total), 2L * N_THREADS * M_ADDS);
    double sum = 0;
    /* 8 directions x 97 peers: every (i % 8, i % 97) pair in 0..775 is one series. */
    assert_int_equal(metric_n_series(s.opened), 8 * 97);
    for (int d = 0; d < 8; d++)
        for (int p = 0; p < 97; p++) {
            char peer[32];
            snprintf(peer, sizeof(peer), "peer-%d", p);
            sum +=
                metric_series_value(metric_series(s.opened, (const char *const[]){dirs[d], peer}));
        }
    assert_int_equal((long)sum, (long)N_THREADS * M_ADDS);
    struct metric_series *lat = metric_series(s.lat, NULL);
    assert_int_equal(metric_series_count(lat), (uint64_t)N_THREADS * M_ADDS);
    metrics_free(s.r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creds_refs),
        cmocka_unit_test(test_log_shared),
        cmocka_unit_test(test_metrics_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
