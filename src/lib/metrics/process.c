/*
 * process.c - see process.h.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/base.h"
#include "metrics/process.h"

static void
statm(double *vsize, double *rss)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            pages = res = 0;
        fclose(f);
    }
    *vsize = (double)pages * (double)sysconf(_SC_PAGESIZE);
    *rss = (double)res * (double)sysconf(_SC_PAGESIZE);
}

static double
open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    if (dir == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n - 1; /* the directory's own fd */
}

/* Seconds since the epoch when the process started: /proc/self/stat's starttime + btime. */
static double
process_start_time(void)
{
    char buf[1024];
    unsigned long long ticks = 0, btime = 0;
    double fallback = (double)clock_wall_ms() / 1000.0;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    /* starttime is field 22; field 3 is the first after the command's ')'. */
    for (int field = 2; p != NULL && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p, " %llu", &ticks) != 1)
        return fallback;
    f = fopen("/proc/stat", "r");
    while (f != NULL && fgets(buf, sizeof(buf), f) != NULL)
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    if (f != NULL)
        fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime == 0 || hz <= 0)
        return fallback;
    return (double)btime + (double)ticks / (double)hz;
}

/* The start time never changes: read once per process (pthread_once, since the metrics of
 * any thread may ask first). */
static double start_time;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static void
start_time_init(void)
{
    start_time = process_start_time();
}

void
process_stats_read(struct process_stats *s)
{
    struct rusage ru;
    struct rlimit rl;

    getrusage(RUSAGE_SELF, &ru);
    s->cpu_seconds = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    statm(&s->vsize_bytes, &s->rss_bytes);
    s->open_fds = open_fds();
    s->max_fds = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        s->max_fds = rl.rlim_cur == RLIM_INFINITY ? (double)INT64_MAX : (double)rl.rlim_cur;
    pthread_once(&start_once, start_time_init);
    s->start_time = start_time;
}
