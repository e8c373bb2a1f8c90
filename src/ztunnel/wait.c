/*
 * wait.c - connections held until what they need is known.
 *
 * A pod may send traffic before ztunnel has its workload from xDS or its
 * certificate from the CA (reference 2.7: accept at once, hold until ready).
 * Such a connection parks here; every model update and every certificate
 * that arrives wakes all waiters, which look again and either proceed or
 * park again until their deadline.
 *
 * Waiters are kept in the order they parked, so a wake-up that re-parks some
 * of them finds the next one still to run at the head in O(1). Their number
 * is capped (ZT_HOLD_MAX): past it, callers refuse instead of holding.
 */
#include <stdlib.h>

#include "base/base.h"
#include "ztunnel.h"

static void
unlink_waiter(struct zwait *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        w->zt->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        w->zt->waiters_tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
    w->zt->n_waiters--;
}

static void
on_deadline(void *arg)
{
    struct zwait *w = arg;
    unlink_waiter(w);
    w->fn(w->arg, true);
}

void
zwait_start(struct zt *zt, struct zwait *w, uint64_t deadline_ms, zwait_fn *fn, void *arg)
{
    unlink_waiter(w);
    w->zt = zt;
    w->fn = fn;
    w->arg = arg;
    w->deadline_ms = deadline_ms;
    w->gen = zt->wake_gen;
    w->prev = zt->waiters_tail;
    w->next = NULL;
    if (zt->waiters_tail)
        zt->waiters_tail->next = w;
    else
        zt->waiters = w;
    zt->waiters_tail = w;
    w->queued = true;
    zt->n_waiters++;
    uint64_t now = loop_now_ms(zt->loop);
    loop_timer_start(zt->loop, &w->timer, deadline_ms > now ? deadline_ms - now : 0, on_deadline,
                     w);
}

bool
zwait_room(const struct zt *zt, const struct zwait *w)
{
    return w->queued || zt->n_waiters < zt_share(zt, ZT_HOLD_MAX);
}

void
zwait_cancel(struct zwait *w)
{
    if (w->zt == NULL)
        return;
    unlink_waiter(w);
    loop_timer_stop(w->zt->loop, &w->timer);
}

void
zt_wake(struct zt *zt)
{
    /*
     * Each waiter parked before this wake-up runs once. A callback may park
     * its waiter again (at the tail, with the new generation) or end any
     * connection, so the head is looked at afresh after every call instead of
     * the list being walked; everything parked before is ahead of the rest.
     */
    uint64_t gen = ++zt->wake_gen;
    for (;;) {
        struct zwait *w = zt->waiters;
        if (w == NULL || w->gen >= gen)
            return;
        unlink_waiter(w);
        loop_timer_stop(zt->loop, &w->timer);
        w->fn(w->arg, false);
    }
}

void
zt_expire_waiters(struct zt *zt)
{
    while (zt->waiters != NULL) {
        struct zwait *w = zt->waiters;
        unlink_waiter(w);
        loop_timer_stop(zt->loop, &w->timer);
        w->fn(w->arg, true);
    }
}
