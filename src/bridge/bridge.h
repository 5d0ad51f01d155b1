/*
 * bridge.h - Sol's bridges: MQTT 3.1.1 / 3.1 clients of remote brokers
 * (Mosquitto's `connection` blocks), on the broker's own libev loop.
 *
 * Out: local publishes matching a bridge's `out` topics are queued in the
 * store by the session manager, in the same commit as the publish (see
 * session.h); this module reads the queue back, sends it in seq order
 * through an inflight window, and deletes each entry only when the remote
 * acknowledged it (PUBACK, or PUBCOMP at QoS 2), so an outage or a kill -9
 * loses nothing Sol acknowledged. In: it subscribes to the `in` topics on
 * the remote and publishes what arrives locally, acknowledging it to the
 * remote only after Sol's own commit. It reconnects with backoff, sends
 * CONNECT with the private-bridge flag (try_private) so a Mosquitto remote
 * does not echo, and publishes the connection state (notifications).
 *
 * Every byte from the remote is hostile: a bad packet closes that bridge's
 * connection (logged) and it reconnects later; the broker carries on.
 * Not for: routing or the store's records (the session manager's), accepting
 * connections (src/server/).
 */
#ifndef SOL_BRIDGE_H
#define SOL_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct ev_loop;
struct metrics_stats;
struct session_mgr;
struct store;
struct bridge_set;

struct bridge_options {
    const struct config_bridge *bridges; /* borrowed; must outlive the set */
    size_t bridge_count;
    uint32_t max_inflight;  /* QoS 1/2 messages sent and not yet acknowledged; 0: 65000 */
    size_t max_packet_size; /* larger packets from a remote close its connection; 0: protocol max */
    size_t max_output_bytes; /* unsent bytes per bridge before QoS 0 copies are dropped and the
                                queue waits; 0: 16 MiB */
};

/* Loads each bridge's TLS files as bridge_set_new() will, and frees them:
 * for start-up and `sol --test-config`, before anything listens. Returns 0,
 * or -1 with the same one-line reasons. */
int bridge_check_config(const struct config_bridge *bridges, size_t count, char *err,
                        size_t err_len);

/*
 * Creates every bridge (loading its TLS files) and starts connecting; loop,
 * mgr and store are borrowed and must outlive the set. Returns 0 and *out
 * (owned: bridge_set_free()), or -1 with a one-line reason in err naming the
 * connection line (e.g. "sol.conf:12: connection cloud: bridge_cafile /x:
 * No such file or directory").
 */
int bridge_set_new(struct ev_loop *loop, const struct bridge_options *opts, struct session_mgr *mgr,
                   struct store *store, struct bridge_set **out, char *err, size_t err_len);

/* Closes every connection (without DISCONNECT, so each remote publishes the
 * bridge's will) and frees the set. What waits in the queues stays in the
 * store. NULL does nothing. */
void bridge_set_free(struct bridge_set *set);

/* Points out->bridges at the set's figures (valid until the next call or
 * bridge_set_free()) and sets out->bridge_count; NULL set: none. */
void bridge_set_metrics(struct bridge_set *set, struct metrics_stats *out);

#endif /* SOL_BRIDGE_H */
