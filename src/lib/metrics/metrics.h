/*
 * metrics.h - a small Prometheus registry: counters, gauges and histograms
 * with label sets, rendered in the text exposition format 0.0.4.
 *
 * A registry holds metric families (name, help, type, label names); a family
 * holds one series per distinct tuple of label values. The number of series
 * per family is capped: past the cap an update is dropped and counted in the
 * registry's own family METRICS_OVERFLOW_NAME{metric="<family>"}, so label
 * values a peer influences cannot grow memory without bound. Label values
 * are cut to METRICS_VALUE_MAX bytes and invalid UTF-8 is replaced by U+FFFD,
 * so every value renders as a valid exposition.
 *
 * Rendering is stable: families in registration order, series sorted by their
 * label values, then the overflow family. Thread-safe: every call takes the
 * registry's mutex, so workers on several threads may update while another renders.
 */
#ifndef MESH_LIB_METRICS_H
#define MESH_LIB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_CONTENT_TYPE       "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX_LABELS         32
#define METRICS_VALUE_MAX          512  /* bytes of one label value, longer ones are cut */
#define METRICS_DEFAULT_MAX_SERIES 1024 /* per family, when 0 is given */
#define METRICS_OVERFLOW_NAME      "amesh_metrics_series_overflow_total"

enum metric_type { METRIC_COUNTER = 1, METRIC_GAUGE = 2, METRIC_HISTOGRAM = 3 };

/*
 * Envoy's default histogram bounds (source/common/stats/histogram_impl.cc,
 * supportedBuckets), which Istio's request duration and size histograms use:
 * 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
 * 60000, 300000, 600000, 1800000, 3600000.
 */
#define METRICS_ENVOY_N_BUCKETS 19
extern const double metrics_envoy_buckets[METRICS_ENVOY_N_BUCKETS];
#define METRICS_MAX_BUCKETS 64

struct metrics;       /* a registry */
struct metric;        /* a family */
struct metric_series; /* one label set of a family, and its value */

/* Lifecycle. metrics_free() accepts NULL and frees every family and series. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *r);

/*
 * Registers a family. |name| and each of the |n_labels| |labels| must be valid
 * Prometheus names (labels not starting with "__", no duplicates) and |name|
 * unique in |r|: anything else is a programming error and aborts. Counters'
 * names should end in "_total". Keeps at most |max_series| label sets
 * (0: METRICS_DEFAULT_MAX_SERIES; a family without labels has exactly one).
 * Everything is copied. The family lives as long as |r|.
 */
struct metric *metrics_add(struct metrics *r, enum metric_type type, const char *name,
                           const char *help, const char *const *labels, size_t n_labels,
                           size_t max_series);

/*
 * Registers a histogram family as metrics_add() does, with |n_bounds| (1 to
 * METRICS_MAX_BUCKETS) finite, strictly increasing upper bounds; "+Inf" is
 * implied. Rendered as <name>_bucket{...,le="B"} (cumulative), <name>_sum and
 * <name>_count. |bounds| is copied.
 */
struct metric *metrics_add_histogram(struct metrics *r, const char *name, const char *help,
                                     const char *const *labels, size_t n_labels,
                                     size_t max_series, const double *bounds, size_t n_bounds);

/*
 * The series of |m| for |values| (one per label, in the family's order; NULL
 * reads as ""; |values| may be NULL for a family without labels), created
 * with value 0 on first use. Returns NULL when |m| already holds its maximum
 * number of series: the overflow is counted and the caller's update is lost.
 * A series stays valid, at its place, until metrics_free().
 */
struct metric_series *metric_series(struct metric *m, const char *const *values);

/* The series' label values as stored (cut, UTF-8 repaired), in label order. */
const char *const *metric_series_labels(const struct metric_series *s);

/*
 * Updates. All accept NULL (a series lost to the cap) and do nothing then.
 * add and set are for counters and gauges, observe for histograms only.
 */
void metric_series_add(struct metric_series *s, double v);
void metric_series_set(struct metric_series *s, double v);
void metric_series_observe(struct metric_series *s, double v);
/* A counter's or gauge's value; a histogram's sum. */
double metric_series_value(const struct metric_series *s);
/* A histogram's number of observations (0 for other series). */
uint64_t metric_series_count(const struct metric_series *s);

/* metric_series() then add or set. */
void metric_add(struct metric *m, const char *const *values, double v);
void metric_set(struct metric *m, const char *const *values, double v);
void metric_observe(struct metric *m, const char *const *values, double v);

size_t metric_n_series(const struct metric *m);
/* Updates dropped because |m| was at its cap. */
uint64_t metric_overflows(const struct metric *m);

/*
 * Renders every family in the text exposition format 0.0.4 (HELP, TYPE, one
 * line per series) into a new heap string.
 */
char *metrics_render(const struct metrics *r);

#endif
