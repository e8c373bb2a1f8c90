/*
 * pipe_group.c - pipes sharing one budget of bytes per loop turn.
 *
 * Every read a member makes is charged to the group for the current turn
 * (loop_turn()). A member that finds the budget spent parks: it stops reading
 * (its interest in input is dropped, so no event wakes it) and joins the
 * group's queue. The group asks the loop for its next turn
 * (loop_defer_turn()), where it resumes the members that were parked, oldest
 * first, until the new budget is spent again; the rest wait on. Writes of
 * bytes already read are never held back.
 */
#include <stdlib.h>

#include "base/base.h"
#include "conn/pipe_internal.h"

/*
 * What one read costs beyond its bytes, in bytes: a read, the write it feeds and the TLS
 * record around it cost about as much as moving a few KB (bench/README.md: ~11 us per 1 KB
 * request and side against ~0.9 ns per bulk byte), so many small reads spend the budget too.
 */
#define PIPE_GROUP_READ_COST 4096

struct pipe_group {
    struct loop *loop;
    int refs;
    size_t quantum;
    uint64_t turn; /* the turn |used| counts */
    size_t used;
    struct pipe *head, *tail; /* parked, in order */
    size_t n_parked;
    struct loop_defer resume;
    uint64_t bytes, yields;
};

struct pipe_group *
pipe_group_new(struct loop *l, size_t quantum)
{
    struct pipe_group *g = xcalloc(1, sizeof(*g));
    g->loop = l;
    g->refs = 1;
    g->quantum = quantum > 0 ? quantum : 1;
    return g;
}

void
pipe_group_ref(struct pipe_group *g)
{
    g->refs++;
}

void
pipe_group_unref(struct pipe_group *g)
{
    if (g != NULL && --g->refs == 0)
        free(g);
}

void
pipe_group_counts(const struct pipe_group *g, uint64_t *bytes, uint64_t *yields)
{
    *bytes = g->bytes;
    *yields = g->yields;
}

void
pipe_set_group(struct pipe *p, struct pipe_group *g)
{
    pipe_group_leave(p);
    pipe_group_unref(p->group);
    p->group = g;
    if (g != NULL)
        pipe_group_ref(g);
}

static void
fresh_turn(struct pipe_group *g)
{
    uint64_t t = loop_turn(g->loop);
    if (g->turn != t) {
        g->turn = t;
        g->used = 0;
    }
}

bool
pipe_group_spent(struct pipe *p)
{
    struct pipe_group *g = p->group;
    if (g == NULL)
        return false;
    fresh_turn(g);
    return g->used >= g->quantum;
}

void
pipe_group_charge(struct pipe *p, size_t n)
{
    struct pipe_group *g = p->group;
    if (g == NULL)
        return;
    fresh_turn(g);
    g->used += n + PIPE_GROUP_READ_COST;
    g->bytes += n;
}

static void
unlink_parked(struct pipe_group *g, struct pipe *p)
{
    if (p->gprev)
        p->gprev->gnext = p->gnext;
    else
        g->head = p->gnext;
    if (p->gnext)
        p->gnext->gprev = p->gprev;
    else
        g->tail = p->gprev;
    p->gprev = p->gnext = NULL;
    p->parked = false;
    g->n_parked--;
}

/* The next turn: members parked before it resume in order while the budget lasts. */
static void
on_resume(void *arg)
{
    struct pipe_group *g = arg;
    size_t n = g->n_parked; /* those that park again go to the tail: not this time */

    for (size_t i = 0; i < n && g->head != NULL; i++) {
        struct pipe *p = g->head;
        unlink_parked(g, p);
        pipe_kick(p); /* may park it again */
    }
    pipe_group_unref(g); /* the queued resume's reference */
}

void
pipe_group_park(struct pipe *p)
{
    struct pipe_group *g = p->group;
    if (p->parked)
        return;
    p->parked = true;
    p->gprev = g->tail;
    p->gnext = NULL;
    if (g->tail)
        g->tail->gnext = p;
    else
        g->head = p;
    g->tail = p;
    g->n_parked++;
    g->yields++;
    if (!g->resume.queued) {
        pipe_group_ref(g);
        loop_defer_turn(g->loop, &g->resume, on_resume, g);
    }
}

void
pipe_group_leave(struct pipe *p)
{
    if (p->group != NULL && p->parked)
        unlink_parked(p->group, p);
}
