"""test_broker.py - MQTT 3.1.1 behaviour of the real sol binary, driven by
mosquitto_pub/mosquitto_sub, paho-mqtt and raw sockets: QoS flows, persistent
sessions across disconnects, SIGTERM and kill -9, retained messages, wills,
takeover, resend with DUP, QoS 2 duplicates, MQTT 3.1 clients, client ids.

Each test gets its own broker (fresh data dir, free port). Every wait is
bounded. Not for: network-layer edge cases (test_network.py) or the crash
loop (test_crash.py).
"""

import struct
import time

import harness
from harness import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, UNSUBACK, Raw,
                     ack_packet, check, connect_packet, mqtt_connect, mqtt_string, packet,
                     parse_publish, publish_packet, subscribe_packet)


def subscribe(raw, filters, packet_id=1):
    raw.send(subscribe_packet(packet_id, filters))
    _, _, body = raw.expect(SUBACK)
    check(struct.unpack("!H", body[:2])[0] == packet_id, "SUBACK packet id")
    return list(body[2:])


def read_publish(raw, timeout_s=harness.IO_TIMEOUT_S):
    _, flags, body = raw.expect(PUBLISH, timeout_s)
    return parse_publish(flags, body)


def publish_qos1(raw, topic, payload, packet_id):
    raw.send(publish_packet(topic, payload, qos=1, packet_id=packet_id))
    _, _, body = raw.expect(PUBACK)
    check(struct.unpack("!H", body)[0] == packet_id, "PUBACK packet id")


def nothing_arrives(raw, seconds):
    try:
        pkt = raw.read_packet(seconds)
    except harness.TestFailure:
        return True
    return pkt is None


# ---- real clients ----

def test_mosquitto_clients_qos_0_1_2(broker):
    for qos in (0, 1, 2):
        sub = harness.MosquittoSub(broker.port, "it/q%d" % qos, count=1, qos=qos)
        rc, lines, err = harness.publish_until_received(broker.port, sub, "it/q%d" % qos,
                                                        "hello %d" % qos, qos=qos)
        check(rc == 0, "mosquitto_sub exit %s: %s" % (rc, err))
        check(lines and lines[0] == "it/q%d hello %d" % (qos, qos), "got %r" % lines)


def test_mqtt31_client_accepted(broker):
    sub = harness.MosquittoSub(broker.port, "it/v31", count=1, qos=1, extra=["-V", "mqttv31"])
    rc, lines, err = harness.publish_until_received(broker.port, sub, "it/v31", "old", qos=1)
    check(rc == 0 and lines == ["it/v31 old"], "MQTT 3.1 subscriber: %s %r %s" % (rc, lines, err))
    res = harness.mosquitto_pub(broker.port, "it/v31", "x", qos=1, extra=["-V", "mqttv31"])
    check(res.returncode == 0, "MQTT 3.1 publisher: %s" % res.stderr)


def test_mqtt31_resent_subscribe_with_dup_flag_accepted(broker):
    c = Raw.tcp(broker.port)
    c.send(connect_packet("old-client", name="MQIsdp", level=3))
    c.expect(CONNACK)
    body = struct.pack("!H", 5) + mqtt_string("v31/dup") + b"\x01"
    c.send(packet(harness.SUBSCRIBE, 0x0A, body))  # DUP set, as 3.1 allowed on a resend
    _, _, ack = c.expect(SUBACK)
    check(ack == b"\x00\x05\x01", "SUBACK %r" % ack)
    v311 = mqtt_connect(broker.port, "new-client")
    v311.send(packet(harness.SUBSCRIBE, 0x0A, body))  # the same is malformed in 3.1.1
    check(v311.wait_closed(2), "3.1.1 SUBSCRIBE with flags 1010 not refused")


def test_paho_persistent_session_gets_queued_messages_in_order(broker):
    import paho.mqtt.client as mqtt
    got = []

    def on_message(client, userdata, msg):
        got.append(msg.payload.decode())

    def connect(flags_out):
        c = mqtt.Client(client_id="paho-sub", clean_session=False)
        c.on_message = on_message
        c.on_connect = lambda cl, ud, flags, rc: flags_out.append((flags, rc))
        c.connect("127.0.0.1", broker.port, keepalive=30)
        c.loop_start()
        harness.wait_until(lambda: flags_out, 5, "paho CONNACK")
        return c

    first = []
    c = connect(first)
    check(first[0][1] == 0 and first[0][0]["session present"] == 0, "first CONNACK %r" % first)
    r = c.subscribe("paho/q", qos=1)
    check(r[0] == mqtt.MQTT_ERR_SUCCESS, "subscribe")
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()

    for i in range(20):
        res = harness.mosquitto_pub(broker.port, "paho/q", "m%02d" % i, qos=1)
        check(res.returncode == 0, "publish %d: %s" % (i, res.stderr))

    second = []
    c = connect(second)
    check(second[0][0]["session present"] == 1, "session present after reconnect: %r" % second)
    harness.wait_until(lambda: len(got) >= 20, 10, "20 queued messages")
    c.disconnect()
    c.loop_stop()
    check(got == ["m%02d" % i for i in range(20)], "order: %r" % got)


# ---- durability ----

def persistent_subscriber(broker, client_id, topic, qos):
    raw = mqtt_connect(broker.port, client_id, clean=False)
    check(subscribe(raw, [(topic, qos)]) == [qos], "granted QoS")
    raw.send(harness.DISCONNECT_BYTES)
    raw.close()


def test_acked_qos1_survives_kill9_and_subscription_too(broker):
    persistent_subscriber(broker, "dur-sub", "dur/#", 1)
    pub = mqtt_connect(broker.port, "dur-pub")
    for i in range(10):
        publish_qos1(pub, "dur/t", b"msg%d" % i, i + 1)
    broker.kill9()  # every PUBACK above promised durability
    broker.start()
    sub = Raw.tcp(broker.port)
    sub.send(connect_packet("dur-sub", clean=False))
    _, _, body = sub.expect(CONNACK)
    check(body == b"\x01\x00", "session present after kill -9: %r" % body)
    got = []
    for _ in range(10):
        topic, pid, payload, qos, dup, retain = read_publish(sub)
        check(qos == 1 and topic == "dur/t", "delivery %r" % ((topic, qos),))
        got.append(payload)
        sub.send(ack_packet(PUBACK, pid))
    check(got == [b"msg%d" % i for i in range(10)], "order after restart: %r" % got)
    # The subscription itself survived: a new publish reaches the session.
    pub = mqtt_connect(broker.port, "dur-pub2")
    publish_qos1(pub, "dur/live", b"live", 1)
    topic, pid, payload, _, _, _ = read_publish(sub)
    check(payload == b"live", "live after restart")


def test_without_storage_thread_acked_qos1_survives_kill9(broker):
    """storage_thread false: the loop commits at the end of each turn itself;
    the promise is the same."""
    check("storage thread" not in broker.log(), "a storage thread was started")
    test_acked_qos1_survives_kill9_and_subscription_too(broker)


def test_storage_thread_is_the_default(broker):
    broker.wait_for_log("commits run on a storage thread")


def test_io_uring_is_the_default(broker):
    broker.wait_for_log("go to io_uring together")


def test_without_io_uring_clients_are_served_by_plain_syscalls(broker):
    """io_uring false: every read and writev is its own system call (also what
    a kernel that refuses io_uring gets); the same clients work."""
    broker.wait_for_log("plain read and writev per connection (io_uring false)")
    check("go to io_uring" not in broker.log(), "io_uring was used anyway")
    test_mosquitto_clients_qos_0_1_2(broker)
    test_stalled_subscriber_does_not_stall_others(broker)


def test_sigterm_exits_0_and_state_survives(broker):
    persistent_subscriber(broker, "term-sub", "term", 2)
    pub = mqtt_connect(broker.port, "term-pub")
    pub.send(publish_packet("term", b"two", qos=2, packet_id=9))
    pub.expect(PUBREC)
    pub.send(ack_packet(PUBREL, 9))
    pub.expect(PUBCOMP)
    check(broker.stop() == 0, "SIGTERM exit code")
    broker.start()
    sub = mqtt_connect(broker.port, "term-sub", clean=False)
    topic, pid, payload, qos, _, _ = read_publish(sub)
    check((topic, payload, qos) == ("term", b"two", 2), "QoS 2 after restart")
    sub.send(ack_packet(PUBREC, pid))
    sub.expect(PUBREL)
    sub.send(ack_packet(PUBCOMP, pid))
    check(nothing_arrives(sub, 0.5), "exactly once")


def test_unacked_delivery_is_resent_with_dup_after_reconnect(broker):
    persistent_subscriber(broker, "dup-sub", "dup", 1)
    sub = mqtt_connect(broker.port, "dup-sub", clean=False)
    pub = mqtt_connect(broker.port, "dup-pub")
    publish_qos1(pub, "dup", b"x", 1)
    _, pid, payload, _, dup, _ = read_publish(sub)
    check(not dup, "first delivery has DUP 0")
    sub.close()  # no PUBACK
    time.sleep(0.2)
    sub = mqtt_connect(broker.port, "dup-sub", clean=False)
    _, pid2, payload2, _, dup2, _ = read_publish(sub)
    check(dup2 and pid2 == pid and payload2 == b"x", "resent with DUP and the same packet id")
    sub.send(ack_packet(PUBACK, pid2))
    sub.close()
    sub = mqtt_connect(broker.port, "dup-sub", clean=False)
    check(nothing_arrives(sub, 0.5), "acked message not resent")


def test_qos2_resent_publish_is_delivered_once(broker):
    sub = mqtt_connect(broker.port, "q2-sub")
    subscribe(sub, [("q2", 2)])
    pub = mqtt_connect(broker.port, "q2-pub")
    pub.send(publish_packet("q2", b"once", qos=2, packet_id=77))
    pub.expect(PUBREC)
    pub.send(publish_packet("q2", b"once", qos=2, packet_id=77, dup=True))
    pub.expect(PUBREC)
    pub.send(ack_packet(PUBREL, 77))
    pub.expect(PUBCOMP)
    _, pid, payload, qos, _, _ = read_publish(sub)
    check(payload == b"once" and qos == 2, "delivered")
    sub.send(ack_packet(PUBREC, pid))
    sub.expect(PUBREL)
    sub.send(ack_packet(PUBCOMP, pid))
    check(nothing_arrives(sub, 0.5), "QoS 2 duplicate delivered")


# ---- retained ----

def test_retained_set_delivered_with_flag_and_cleared(broker):
    res = harness.mosquitto_pub(broker.port, "ret/a", "kept", qos=1, extra=["-r"])
    check(res.returncode == 0, res.stderr)
    sub = mqtt_connect(broker.port, "ret-sub")
    subscribe(sub, [("ret/#", 1)])
    topic, pid, payload, qos, dup, retain = read_publish(sub)
    check((topic, payload, retain) == ("ret/a", b"kept", True), "retained with RETAIN 1")
    sub.send(ack_packet(PUBACK, pid))
    # A live forward of a retained publish has RETAIN 0.
    # QoS 1: its PUBACK promises the retained message is stored (a QoS 0
    # publish promises nothing, so a kill -9 right after it may lose it).
    harness.mosquitto_pub(broker.port, "ret/a", "newer", qos=1, extra=["-r"])
    topic, _, payload, _, _, retain = read_publish(sub)
    check(payload == b"newer" and not retain, "live forward RETAIN 0")
    broker.kill9()
    broker.start()
    sub = mqtt_connect(broker.port, "ret-sub2")
    subscribe(sub, [("ret/a", 0)])
    _, _, payload, _, _, retain = read_publish(sub)
    check(payload == b"newer" and retain, "retained survives kill -9")
    res = harness.mosquitto_pub(broker.port, "ret/a", "", qos=1, extra=["-r", "-n"])
    check(res.returncode == 0, res.stderr)
    sub3 = mqtt_connect(broker.port, "ret-sub3")
    subscribe(sub3, [("ret/#", 0)])
    check(nothing_arrives(sub3, 0.5), "cleared retained message delivered")


# ---- wills, keepalive, takeover ----

def test_will_on_keepalive_expiry_not_after_disconnect(broker):
    watcher = mqtt_connect(broker.port, "will-watch")
    subscribe(watcher, [("will/#", 1)])
    w = Raw.tcp(broker.port)
    w.send(connect_packet("will-1", keepalive_s=1, will=("will/t", b"gone", 1, False)))
    w.expect(CONNACK)
    t0 = time.monotonic()
    topic, pid, payload, qos, _, _ = read_publish(watcher, timeout_s=5)
    elapsed = time.monotonic() - t0
    check((topic, payload) == ("will/t", b"gone"), "will delivered")
    check(elapsed >= 1.0, "will fired before 1.5 x keepalive (%.2f s)" % elapsed)
    watcher.send(ack_packet(PUBACK, pid))
    check(w.wait_closed(2), "silent client closed")
    w2 = Raw.tcp(broker.port)
    w2.send(connect_packet("will-2", will=("will/t", b"no", 0, False)))
    w2.expect(CONNACK)
    w2.send(harness.DISCONNECT_BYTES)
    check(nothing_arrives(watcher, 0.7), "will published after DISCONNECT")


def test_takeover_closes_the_old_connection(broker):
    old = mqtt_connect(broker.port, "same-id")
    new = mqtt_connect(broker.port, "same-id")
    check(old.wait_closed(3), "old connection still open after takeover")
    new.send(harness.PINGREQ_BYTES)
    new.expect(harness.PINGRESP)


def test_client_id_rules(broker):
    c = Raw.tcp(broker.port)
    c.send(connect_packet("", clean=True))
    _, _, body = c.expect(CONNACK)
    check(body == b"\x00\x00", "empty id with clean session accepted: %r" % body)
    c2 = Raw.tcp(broker.port)
    c2.send(connect_packet("", clean=False))
    _, _, body = c2.expect(CONNACK)
    check(body[1] == 2, "empty id without clean session: CONNACK 2, got %r" % body)
    check(c2.wait_closed(2), "refused connection closed")


def test_dollar_topics_not_matched_by_hash(broker):
    sub = mqtt_connect(broker.port, "dollar-sub")
    subscribe(sub, [("#", 0), ("$test/+", 0)])
    pub = mqtt_connect(broker.port, "dollar-pub")
    pub.send(publish_packet("$test/x", b"d"))
    topic, _, _, _, _, _ = read_publish(sub)
    check(topic == "$test/x", "explicit $ filter matches")
    check(nothing_arrives(sub, 0.3), "# matched a $ topic twice or at all")


def test_unsubscribe_and_invalid_filter(broker):
    sub = mqtt_connect(broker.port, "unsub")
    check(subscribe(sub, [("a/+", 1), ("bad#", 1)]) == [1, 0x80], "SUBACK codes")
    body = struct.pack("!H", 4) + mqtt_string("a/+")
    sub.send(packet(harness.UNSUBSCRIBE, 2, body))
    _, _, ack = sub.expect(UNSUBACK)
    check(ack == b"\x00\x04", "UNSUBACK id")
    pub = mqtt_connect(broker.port, "unsub-pub")
    pub.send(publish_packet("a/b", b"x"))
    check(nothing_arrives(sub, 0.4), "delivery after UNSUBSCRIBE")


# ---- back-pressure ----

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_stalled_subscriber_does_not_stall_others(broker):
    stalled = mqtt_connect(broker.port, "bp-stalled")
    subscribe(stalled, [("bp/#", 0)])
    stalled.sock.setsockopt(harness.socket.SOL_SOCKET, harness.socket.SO_RCVBUF, 4096)
    reader = mqtt_connect(broker.port, "bp-reader")
    subscribe(reader, [("bp/#", 1)])
    pub = mqtt_connect(broker.port, "bp-pub")
    payload = b"x" * 16384
    count = 3000  # 48 MB: far more than the stalled socket and the QoS 0 limit take
    rss_before = rss_kb(broker.proc.pid)
    got = 0
    for i in range(count):
        pub.send(publish_packet("bp/t", payload, qos=0))
        # Keep the reader draining as we go, acking its QoS 1 deliveries.
        for _ in range(8):
            try:
                pkt = reader.read_packet(timeout_s=0.001 if i < count - 1 else 5)
            except harness.TestFailure:
                break
            if pkt is None:
                break
            got += 1
    deadline = time.monotonic() + 20
    while got < count and time.monotonic() < deadline:
        pkt = reader.read_packet(timeout_s=5)
        check(pkt is not None, "reader connection closed")
        got += 1
    check(got == count, "reader got %d of %d while another subscriber stalled" % (got, count))
    broker.wait_for_log("client bp-stalled: output buffer full, dropping QoS 0 messages")
    with open("/proc/%d/maps" % broker.proc.pid) as f:
        sanitized = "libasan" in f.read()  # ASan's quarantine makes RSS meaningless
    grew_mb = (rss_kb(broker.proc.pid) - rss_before) / 1024
    check(sanitized or grew_mb < 64, "broker RSS grew %.0f MB for a stalled client" % grew_mb)
    reader.send(harness.PINGREQ_BYTES)


def main():
    r = harness.Runner()
    for fn in (test_mosquitto_clients_qos_0_1_2, test_mqtt31_client_accepted,
               test_mqtt31_resent_subscribe_with_dup_flag_accepted,
               test_paho_persistent_session_gets_queued_messages_in_order,
               test_acked_qos1_survives_kill9_and_subscription_too,
               test_sigterm_exits_0_and_state_survives,
               test_unacked_delivery_is_resent_with_dup_after_reconnect,
               test_qos2_resent_publish_is_delivered_once,
               test_retained_set_delivered_with_flag_and_cleared,
               test_will_on_keepalive_expiry_not_after_disconnect,
               test_takeover_closes_the_old_connection, test_client_id_rules,
               test_dollar_topics_not_matched_by_hash, test_unsubscribe_and_invalid_filter,
               test_stalled_subscriber_does_not_stall_others, test_storage_thread_is_the_default,
               test_io_uring_is_the_default):
        r.run(fn)
    r.run(test_without_io_uring_clients_are_served_by_plain_syscalls,
          extra_config=["io_uring false"])
    r.run(test_without_storage_thread_acked_qos1_survives_kill9,
          extra_config=["storage_thread false"])
    r.finish()


if __name__ == "__main__":
    main()
