"""test_limits.py - connection limits and hostile clients against the real
broker: max_connections (accept and close, logged once per burst), 500
connections that never send CONNECT, a PUBLISH trickled one byte per 100 ms
and a CONNECT trickled past the deadline, each while a legitimate client is
timed doing CONNECT and a publish/subscribe round trip; and the limits one
client cannot exceed (issue 10): max_subscriptions_per_client (SUBACK 0x80,
one log line), the input budget max_input_buffer_bytes (large packets wait,
none fails), queue-limit drops of a clean session ($SYS and one log line).
test_hostile.py runs the heavier attacks.

Every wait is bounded. Not for: TLS (test_tls.py), framing details
(test_network.py).
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

# A legitimate client's CONNECT + SUBSCRIBE + PUBLISH round trip must stay
# well under this while hostile clients hold connections open.
SERVED_WITHIN_S = 1.0


def round_trip_s(port, client_id):
    """Seconds for CONNECT, SUBSCRIBE and a PUBLISH back to ourselves."""
    t0 = time.monotonic()
    c = h.mqtt_connect(port, client_id)
    c.send(h.subscribe_packet(1, [("limits/%s" % client_id, 0)]))
    c.expect(h.SUBACK)
    c.send(h.publish_packet("limits/%s" % client_id, b"ping"))
    _, flags, body = c.expect(h.PUBLISH)
    check(h.parse_publish(flags, body)[2] == b"ping", "round trip payload garbled")
    c.send(h.DISCONNECT_BYTES)
    c.close()
    return time.monotonic() - t0


def check_served(port, client_id):
    took = round_trip_s(port, client_id)
    check(took < SERVED_WITHIN_S, "legitimate client took %.2f s" % took)
    return took


# ---- max_connections ----

def test_max_connections_closes_the_connection_over_the_limit(b):
    held = [h.mqtt_connect(b.port, "held-%d" % i) for i in range(3)]
    extra = [h.Raw.tcp(b.port) for _ in range(10)]
    for r in extra:
        check(r.wait_closed(5), "a connection over max_connections stayed open")
    b.wait_for_log("max_connections (3) reached")
    lines = [l for l in b.log().splitlines() if "max_connections (3) reached" in l]
    check(len(lines) == 1, "a burst of 10 refusals logged %d times" % len(lines))
    for c in held:
        c.send(h.PINGREQ_BYTES)
        c.expect(h.PINGRESP)
    held.pop().close()
    # The close is noticed at the broker's next turn: retry for a bounded time.
    deadline = time.monotonic() + 5
    while True:
        try:
            c = h.mqtt_connect(b.port, "after-burst")
            break
        except (h.TestFailure, OSError):
            check(time.monotonic() < deadline, "no connection admitted after one closed")
            time.sleep(0.05)
    c.close()
    # 10 refused, or more when a retry above came before the close was noticed.
    b.wait_for_log("accepting connections again: ")
    line = [l for l in b.log().splitlines() if "accepting connections again: " in l][0]
    refused = int(line.split("accepting connections again: ")[1].split()[0])
    check(refused >= 10, "refusal count %d, want at least 10" % refused)
    for c in held:
        c.close()


# ---- hostile clients ----

def open_idle(port, count):
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def test_500_connections_without_connect_do_not_starve_a_client(b):
    idle = open_idle(b.port, 500)
    try:
        for i in range(5):
            check_served(b.port, "legit-%d" % i)
    finally:
        for s in idle:
            s.close()
    check_served(b.port, "legit-after")


def test_connections_without_connect_are_closed_at_the_deadline(b):
    idle = open_idle(b.port, 200)
    try:
        deadline = time.monotonic() + 10
        for s in idle:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            check(s.recv(1) == b"", "an idle connection got data instead of a close")
    finally:
        for s in idle:
            s.close()
    check_served(b.port, "legit")


def trickle(sock, data, interval_s, stop):
    for byte in data:
        if stop.is_set():
            return
        sock.sendall(bytes([byte]))
        time.sleep(interval_s)


def test_publish_one_byte_per_100ms_while_others_are_served(b):
    sub = h.mqtt_connect(b.port, "slow-sub")
    sub.send(h.subscribe_packet(1, [("slow/t", 0)]))
    sub.expect(h.SUBACK)
    slow = h.mqtt_connect(b.port, "slow-pub", keepalive_s=60)
    payload = b"trickled payload"
    pkt = h.publish_packet("slow/t", payload)
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(slow.sock, pkt, 0.1, stop), daemon=True)
    t.start()
    try:
        worst = 0.0
        for i in range(10):
            worst = max(worst, check_served(b.port, "busy-%d" % i))
            time.sleep(0.1)
        t.join(len(pkt) * 0.1 + 5)
        check(not t.is_alive(), "the trickling thread did not finish")
    finally:
        stop.set()
    _, flags, body = sub.expect(h.PUBLISH)
    check(h.parse_publish(flags, body)[2] == payload, "the trickled PUBLISH arrived garbled")
    slow.send(h.PINGREQ_BYTES)
    slow.expect(h.PINGRESP)
    sub.close()
    slow.close()


def test_connect_trickled_past_the_deadline_is_closed(b):
    slow = h.Raw.tcp(b.port)
    pkt = h.connect_packet("too-slow")
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(slow.sock, pkt, 0.2, stop), daemon=True)
    t.start()
    try:
        check_served(b.port, "meanwhile")
        check(slow.wait_closed(5), "a CONNECT trickled past the deadline was not cut off")
    finally:
        stop.set()
        t.join(5)
    b.wait_for_log("closing: no CONNECT within 1.0 s")


# ---- limits one client cannot exceed (issue 10) ----

def test_subscribe_over_max_subscriptions_per_client_gets_0x80_logged_once(b):
    c = h.mqtt_connect(b.port, "greedy")
    n = 5000
    c.send(h.subscribe_packet(1, [("greedy/%d" % i, 1) for i in range(n)]))
    _, _, body = c.expect(h.SUBACK, timeout_s=30)
    codes = body[2:]
    check(len(codes) == n, "SUBACK with %d codes for %d filters" % (len(codes), n))
    check(all(code == 1 for code in codes[:100]), "the first 100 filters were not granted")
    check(all(code == 0x80 for code in codes[100:]), "filters past the limit were granted")
    # An update of a filter it has is not a new subscription: granted.
    check(h.subscribe_one(c, "greedy/7", 0, packet_id=2) == 0, "re-subscribing was refused")
    b.wait_for_log("max_subscriptions_per_client (100) reached")
    lines = [l for l in b.log().splitlines() if "max_subscriptions_per_client (100)" in l]
    check(len(lines) == 1, "4900 refusals logged %d times" % len(lines))
    check_served(b.port, "other-client")  # the limit is per client
    c.close()


def send_slowly_in_parts(sock, data, parts, stop):
    step = (len(data) + parts - 1) // parts
    for i in range(0, len(data), step):
        if stop.is_set():
            return
        sock.sendall(data[i:i + step])
        time.sleep(0.05)


def test_input_budget_makes_large_publishes_wait_and_all_arrive(b):
    """8 publishers each send a 600 KB PUBLISH at the same time through a 1 MB
    input budget: some wait (logged at debug level), all are delivered."""
    sub = h.mqtt_connect(b.port, "big-sub")
    check(h.subscribe_one(sub, "big/#", 1) == 1, "SUBSCRIBE refused")
    pubs = [h.mqtt_connect(b.port, "big-pub-%d" % i) for i in range(8)]
    payload = bytes(range(256)) * 2400  # 614,400 bytes
    stop = threading.Event()
    threads = []
    for i, p in enumerate(pubs):
        pkt = h.publish_packet("big/%d" % i, payload, qos=1, packet_id=1)
        t = threading.Thread(target=send_slowly_in_parts, args=(p.sock, pkt, 20, stop),
                             daemon=True)
        threads.append(t)
        t.start()
    try:
        got = set()
        for _ in range(8):
            m = h.next_publish(sub, timeout_s=20, ack=True)
            check(m is not None, "only %d of 8 large messages arrived" % len(got))
            check(m[1] == payload, "a large message arrived garbled")
            got.add(m[0])
        check(len(got) == 8, "duplicates instead of 8 messages: %s" % sorted(got))
        for p in pubs:
            p.expect(h.PUBACK, timeout_s=20)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    check("waiting to buffer" in b.log(), "no connection waited for the input budget")
    check_served(b.port, "after-big")
    for p in pubs:
        p.close()
    sub.close()


def test_clean_session_queue_drops_are_counted_and_logged_once(b):
    stalled = h.mqtt_connect(b.port, "no-acks")  # clean session, never acks
    check(h.subscribe_one(stalled, "drop/t", 1) == 1, "SUBSCRIBE refused")
    watcher = h.mqtt_connect(b.port, "watcher")
    check(h.subscribe_one(watcher, "$SYS/broker/messages/dropped", 0) == 0, "$SYS refused")
    pub = h.mqtt_connect(b.port, "dropper")
    for i in range(1, 11):  # 1 inflight + 2 queued, 7 dropped
        pub.send(h.publish_packet("drop/t", b"m%d" % i, qos=1, packet_id=i))
        pub.expect(h.PUBACK)
    b.wait_for_log("client no-acks: queue full")
    lines = [l for l in b.log().splitlines() if "client no-acks: queue full" in l]
    check(len(lines) == 1, "7 drops logged %d times" % len(lines))
    deadline = time.monotonic() + 5
    dropped = 0
    while time.monotonic() < deadline and dropped < 7:
        m = h.next_publish(watcher, timeout_s=max(0.1, deadline - time.monotonic()))
        if m is not None:
            dropped = int(m[1])
    check(dropped >= 7, "$SYS/broker/messages/dropped says %d, want 7" % dropped)
    for c in (stalled, watcher, pub):
        c.close()


def main():
    r = h.Runner()
    r.run(test_max_connections_closes_the_connection_over_the_limit,
          extra_config=["max_connections 3"])
    r.run(test_500_connections_without_connect_do_not_starve_a_client)
    r.run(test_connections_without_connect_are_closed_at_the_deadline,
          args=["--connect-timeout", "1"])
    r.run(test_publish_one_byte_per_100ms_while_others_are_served)
    r.run(test_connect_trickled_past_the_deadline_is_closed, args=["--connect-timeout", "1"])
    r.run(test_subscribe_over_max_subscriptions_per_client_gets_0x80_logged_once)
    r.run(test_input_budget_makes_large_publishes_wait_and_all_arrive, args=["-v"],
          extra_config=["max_input_buffer_bytes 1M"])
    r.run(test_clean_session_queue_drops_are_counted_and_logged_once,
          extra_config=["max_inflight_messages 1", "max_queued_messages 2", "sys_interval 1"])
    r.finish()


if __name__ == "__main__":
    main()
