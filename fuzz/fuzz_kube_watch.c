/*
 * fuzz_kube_watch.c - a watch body as the API server (or an attacker in its
 * place) sends it: the first byte picks how the rest is cut into chunks,
 * the line splitter (small cap) puts lines back together, and each line is
 * decoded as an event; ERROR events are classified, others keyed. Checked:
 * the lines are the same whatever the chunking, and no line exceeds the cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube_proto.h"

#define CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
    uint64_t hash;
    size_t lines;
};

static int
on_line(void *arg, const char *line, size_t len)
{
    struct acc *a = arg;
    struct kube_event ev;
    char err[160], key[KUBE_KEY_MAX];
    if (len > CAP)
        abort();
    for (size_t i = 0; i < len; i++)
        a->hash = (a->hash ^ (uint8_t)line[i]) * 1099511628211ull;
    a->hash = (a->hash ^ '\n') * 1099511628211ull;
    a->lines++;
    if (kube_event_decode(line, len, &ev, err, sizeof(err)) != 0)
        return 0;
    if (ev.type == KUBE_EV_ERROR) {
        unsigned w;
        enum kube_verdict v = kube_classify(0, ev.obj, NULL, &w);
        if (v == KUBE_V_THROTTLED && (w < 1000 || w > 600000))
            abort();
    } else if (ev.rv == NULL || *ev.rv == '\0' || strlen(ev.rv) > KUBE_RV_MAX) {
        abort();
    } else {
        (void)kube_obj_key(ev.obj, key);
    }
    kube_event_clear(&ev);
    return 0;
}

static int
run(const uint8_t *p, size_t n, size_t chunk, struct acc *a)
{
    struct kube_lines lb;
    int rc = 0;
    kube_lines_init(&lb, CAP);
    for (size_t off = 0; off < n && rc == 0; off += chunk)
        rc = kube_lines_feed(&lb, p + off, n - off < chunk ? n - off : chunk, on_line, a);
    if (kube_lines_pending(&lb) > CAP)
        abort();
    kube_lines_free(&lb);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 23) + 1;
    struct acc whole = {14695981039346656037ull, 0}, cut = whole;
    int rc1 = run(data + 1, size - 1, size, &whole);
    int rc2 = run(data + 1, size - 1, chunk, &cut);
    if (rc1 != rc2 || whole.hash != cut.hash || whole.lines != cut.lines)
        abort();
    return 0;
}
