/*
 * timers.c - when each session next needs attention, without walking the
 * sessions: a binary min-heap of sessions keyed by due_s, the earliest of
 *   - its will's delay ending (a will waiting after the connection ended), and
 *   - its expiry: an offline persistent session ends its Session Expiry
 *     Interval after it went offline, last_seen_s (3.1.1 sessions, whose
 *     interval is "never", use persistent_client_expiration when set).
 * Deadlines are whole seconds (timers_deadline(): never early, at most a
 * second late).
 * Sessions with neither are not in the heap. Insert, update and remove are
 * O(log n) whatever intervals clients choose; session_expire() pops what is
 * due. Times are the manager's clock (session_now_s()).
 * Not for: acting on what is due (session.c), or the clock itself.
 */
#include <errno.h>
#include <stdlib.h>

#include "session_internal.h"

/* Never: a session with no deadline. */
#define DUE_NEVER UINT64_MAX

static uint64_t add_clamped(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t timers_deadline(uint64_t start_s, uint64_t interval_s)
{
    return interval_s == 0 ? start_s : add_clamped(start_s, add_clamped(interval_s, 1));
}

uint64_t timers_expires_at(const struct session_mgr *mgr, const struct session *s)
{
    if (!s->is_offline)
        return DUE_NEVER;
    uint64_t interval = s->expiry_s;
    if (s->expiry_s == SESSION_EXPIRY_NEVER)
        interval = mgr->config.persistent_client_expiration_s;
    if (interval == 0 && s->expiry_s == SESSION_EXPIRY_NEVER)
        return DUE_NEVER;
    return timers_deadline(s->last_seen_s, interval);
}

static uint64_t due_of(const struct session_mgr *mgr, const struct session *s)
{
    uint64_t due = timers_expires_at(mgr, s);
    if (s->will && s->will->at_s < due)
        due = s->will->at_s;
    return due;
}

static void place(struct session_mgr *mgr, size_t i, struct session *s)
{
    mgr->timers[i] = s;
    s->timer_slot = i + 1;
}

static void sift_up(struct session_mgr *mgr, size_t i)
{
    struct session *s = mgr->timers[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (mgr->timers[parent]->due_s <= s->due_s)
            break;
        place(mgr, i, mgr->timers[parent]);
        i = parent;
    }
    place(mgr, i, s);
}

static void sift_down(struct session_mgr *mgr, size_t i)
{
    struct session *s = mgr->timers[i];
    size_t n = mgr->timer_count;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && mgr->timers[child + 1]->due_s < mgr->timers[child]->due_s)
            child++;
        if (mgr->timers[child]->due_s >= s->due_s)
            break;
        place(mgr, i, mgr->timers[child]);
        i = child;
    }
    place(mgr, i, s);
}

void timers_remove(struct session_mgr *mgr, struct session *s)
{
    if (s->timer_slot == 0)
        return;
    size_t i = s->timer_slot - 1;
    s->timer_slot = 0;
    struct session *last = mgr->timers[--mgr->timer_count];
    if (last == s)
        return;
    place(mgr, i, last);
    sift_down(mgr, i);
    sift_up(mgr, last->timer_slot - 1);
}

static int grow(struct session_mgr *mgr)
{
    if (mgr->timer_count < mgr->timer_cap)
        return 0;
    size_t cap = mgr->timer_cap ? mgr->timer_cap * 2 : 64;
    struct session **t = realloc(mgr->timers, cap * sizeof(*t));
    if (!t)
        return -ENOMEM;
    mgr->timers = t;
    mgr->timer_cap = cap;
    return 0;
}

int timers_schedule(struct session_mgr *mgr, struct session *s)
{
    uint64_t due = due_of(mgr, s);
    if (due == DUE_NEVER) {
        timers_remove(mgr, s);
        return 0;
    }
    if (s->timer_slot != 0) {
        size_t i = s->timer_slot - 1;
        s->due_s = due;
        sift_down(mgr, i);
        sift_up(mgr, s->timer_slot - 1);
        return 0;
    }
    if (grow(mgr) != 0)
        return -ENOMEM;
    s->due_s = due;
    mgr->timers[mgr->timer_count] = s;
    s->timer_slot = ++mgr->timer_count;
    sift_up(mgr, mgr->timer_count - 1);
    return 0;
}

struct session *timers_first_due(const struct session_mgr *mgr, uint64_t now_s)
{
    if (mgr->timer_count == 0 || mgr->timers[0]->due_s > now_s)
        return NULL;
    return mgr->timers[0];
}
