/*
 * process.h - the process_* metrics every Prometheus client exports (CPU,
 * memory, descriptors, start time), read from /proc for this process.
 */
#ifndef MESH_LIB_PROCESS_H
#define MESH_LIB_PROCESS_H

struct process_stats {
    double cpu_seconds; /* user + system */
    double rss_bytes;
    double vsize_bytes;
    double open_fds;
    double max_fds;    /* soft RLIMIT_NOFILE */
    double start_time; /* seconds since the epoch */
};

void process_stats_read(struct process_stats *s);

#endif
