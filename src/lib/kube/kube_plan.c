/*
 * kube_plan.c - what a reflector does after each way a LIST or WATCH can end,
 * after client-go's reflector and pager (reference kubernetes.md section 2):
 *   - too old (410 Expired/Gone, in-stream or HTTP, also on a continue page)
 *     and 504 ResourceVersionTooLarge: relist from "" (a consistent read);
 *   - 429: the same again after Retry-After;
 *   - 404: the kind is not served (a CRD not installed): reported, retried slowly;
 *   - a watch that ends cleanly: watch again at once from the last RV, unless
 *     it was "very short" (< 1 s, no event), which backs off and relists;
 *   - a cut stream or another error status: back off, then the same request
 *     (a watch resumes from the last RV, so nothing is lost or repeated);
 *   - an ERROR event that is not "too old", or a line we could not take
 *     (an event may be lost): back off and relist from the last RV.
 */
#include "kube/kube_proto.h"

struct kube_plan
kube_plan_next(bool watching, enum kube_outcome o, enum kube_verdict v, unsigned wait_ms)
{
    struct kube_plan p = {.step = watching ? KUBE_STEP_WATCH : KUBE_STEP_SAME, .backoff = true};
    switch (o) {
    case KUBE_OUT_END:
        p.backoff = false;
        p.step = KUBE_STEP_WATCH;
        return p;
    case KUBE_OUT_SHORT:
    case KUBE_OUT_BAD:
        p.step = KUBE_STEP_LIST;
        return p;
    case KUBE_OUT_CUT:
        return p;
    case KUBE_OUT_EVENT:
    case KUBE_OUT_STATUS:
        break;
    }
    switch (v) {
    case KUBE_V_EXPIRED:
    case KUBE_V_TOO_LARGE:
        p.step = KUBE_STEP_LIST_FRESH;
        break;
    case KUBE_V_THROTTLED:
        p.backoff = false;
        p.wait_ms = wait_ms;
        break;
    case KUBE_V_ABSENT:
        p.step = watching ? KUBE_STEP_LIST : KUBE_STEP_ABSENT;
        p.backoff = watching;
        break;
    case KUBE_V_OK:
    case KUBE_V_RETRY:
        if (o == KUBE_OUT_EVENT)
            p.step = KUBE_STEP_LIST;
        break;
    }
    return p;
}
