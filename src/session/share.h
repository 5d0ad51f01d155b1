/*
 * share.h - shared subscriptions ("$share/GROUP/FILTER"), for the session
 * manager's own files. Accepted from MQTT 3.1.1 clients as Mosquitto does;
 * MQTT 5 uses the same code.
 *
 * A group is the set of sessions subscribed to the same "$share/GROUP/FILTER";
 * membership is nothing but those subscriptions (stored as any other), so a
 * group needs no record of its own. Each message matching FILTER goes to one
 * member: round robin among the connected members that may read it (the READ
 * gate). Once routed to a member it is that member's, in its session's queue
 * or window like any delivery (QoS 2 exactly once; nothing is moved between
 * members). When no member is connected, a QoS 1/2 message waits in the
 * group's own queue in the store (written in the publish's batch, so the
 * publisher's ack promises it) until a member connects: connected members
 * with window room take from it, oldest first. The group, and its queue, end
 * with the last member (unsubscribe, clean session end, expiry); messages
 * still queued for it are then deleted: no member is left to receive them
 * (Mosquitto has no group queue at all).
 *
 * With shared_subscriptions false (session_config's
 * shared_subscription_available) the groups of stored shared subscriptions
 * are loaded as usual, so their queues are neither orphans nor deleted, but
 * nothing is routed to them or taken from their queues (logged once at
 * start); a group still ends, queue and all, with its last member.
 *
 * Not for: the wire (subscribe.c validates and answers SUBACK), non-shared
 * routing (publish.c), or the store's layout (storage/groupq.c).
 */
#ifndef SOL_SHARE_H
#define SOL_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"

struct session_mgr;
struct session;
struct msg;
struct share_index;

/* Is filter a shared subscription (starts with "$share/")? O(1). */
bool share_is_shared(struct mqtt_bytes filter);

/*
 * Splits a shared filter into GROUP and FILTER and checks them [MQTT-4.8.2]:
 * GROUP non-empty without '+', '#' or '/', FILTER a non-empty valid filter.
 * Returns true with *group and *inner pointing into filter, else false.
 */
bool share_parse(struct mqtt_bytes filter, struct mqtt_bytes *group, struct mqtt_bytes *inner);

/* Returns a new empty index (NULL: out of memory); share_index_free() frees
 * it (groups, members); the sessions' subscriptions are not touched. */
struct share_index *share_index_new(void);
void share_index_free(struct share_index *idx);

/* Number of shared subscriptions (members of all groups), and of groups. */
size_t share_subscription_count(const struct share_index *idx);
size_t share_group_count(const struct share_index *idx);

/*
 * s subscribed to the shared filter (grant: as the trie keeps it, sub_grant())
 * (or changed its QoS): s joins (or stays
 * in) the group, created on first use. O(levels of FILTER). Returns 0 or
 * -ENOMEM (nothing changed). Called only by the subscription index in
 * session.c, so it follows the subscriptions and their undo (effects.c).
 */
int share_join(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
               uint32_t grant);

/* s no longer has the shared filter: it leaves the group; the last member
 * ends the group and records the deletion of its queue in the turn's batch. */
void share_leave(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter);

/* s's client connected / is going away: its groups route to it or stop. */
void share_session_online(struct session_mgr *mgr, struct session *s);
void share_session_offline(struct session_mgr *mgr, struct session *s);

/* Does a group of s hold queued messages? O(groups of s). */
bool share_has_backlog(struct session_mgr *mgr, struct session *s);

/* Hands s queued group messages while s has room to send (after a commit:
 * reads the store). */
void share_pull(struct session_mgr *mgr, struct session *s);

/* After the subscriptions are loaded at start: reads the group queues'
 * positions and sizes, and records the deletion of queues no group owns. */
int share_recover(struct session_mgr *mgr, char *err, size_t err_len);

/*
 * Routing (publish.c). share_route_match() picks, for each group whose
 * FILTER matches m's topic, the member that gets m (round robin, READ gate)
 * or the group queue; share_route_records() is how many store records that
 * choice writes (for the reservation); share_route_deliver() delivers, with
 * RETAIN published_retain to members whose subscription has Retain As
 * Published (MQTT 5 3.8.3.1; no exception for shared subscriptions, and
 * Mosquitto 2 does the same) and 0 to the others; the group queue keeps
 * published_retain for the member that takes the message. The choice is kept
 * in the index between the calls. Return 0 / -ENOMEM; deliver returns the
 * first error.
 */
int share_route_match(struct session_mgr *mgr, const struct msg *m);
size_t share_route_records(const struct session_mgr *mgr, const struct msg *m);
/* How many groups share_route_match() chose a target in (until delivered). */
size_t share_route_targets(const struct session_mgr *mgr);
int share_route_deliver(struct session_mgr *mgr, struct msg *m, bool published_retain);

#endif /* SOL_SHARE_H */
