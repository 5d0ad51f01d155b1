"""test_mqtt5.py - MQTT 5 connections against the real broker (issue 12):
CONNECT/CONNACK properties, session expiry (also across a restart), Receive
Maximum both ways, Maximum Packet Size both ways, Topic Aliases both ways,
Server Keep Alive, server DISCONNECT reason codes (takeover, keepalive,
protocol error, malformed, packet too large, shutting down, topic alias,
receive maximum), client DISCONNECT reason codes (0x04 will, session expiry
changes), wills (with their delay) of clients connected when the broker is
killed published after the restart, enhanced authentication refused (0x8C),
and 3.1.1 sessions picked up by MQTT 5 CONNECTs and the reverse.

Raw sockets where a real client cannot misbehave on purpose; paho-mqtt
(Debian's python3-paho-mqtt, protocol=MQTTv5) for the ordinary flows. Every
wait is bounded. Not for: PUBLISH properties and SUBSCRIBE options
(test_mqtt5_messages.py).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

RC_PROTOCOL_ERROR, RC_MALFORMED = 0x82, 0x81


def expiry_props(seconds, *more):
    return h.props_block(h.prop(h.P_SESSION_EXPIRY, seconds), *more)


def expect_disconnect(c, reason, timeout_s=h.IO_TIMEOUT_S):
    """Reads until a DISCONNECT; checks its reason and that the socket closes."""
    for _ in range(100):
        pkt = c.read_packet(timeout_s)
        check(pkt is not None, "connection closed without DISCONNECT 0x%02x" % reason)
        if pkt[0] == h.DISCONNECT:
            got, props = h.parse_disconnect5(pkt[2])
            check(got == reason, "DISCONNECT 0x%02x, want 0x%02x (%r)" % (got, reason, props))
            check(c.wait_closed(), "connection still open after DISCONNECT")
            return props
    raise h.TestFailure("no DISCONNECT")


class Paho:
    """A paho-mqtt MQTT 5 client with its received messages and CONNACK."""

    def __init__(self, port, client_id, clean_start=True, expiry_s=None, keepalive=60):
        self.messages = []
        self.connack = None
        self.client = paho.Client(client_id=client_id, protocol=paho.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        props = Properties(PacketTypes.CONNECT)
        if expiry_s is not None:
            props.SessionExpiryInterval = expiry_s
        self.client.connect("127.0.0.1", port, keepalive=keepalive, clean_start=clean_start,
                            properties=props)
        self.client.loop_start()
        h.wait_until(lambda: self.connack is not None, h.IO_TIMEOUT_S, "paho CONNACK")

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.connack = (flags, rc, props)

    def subscribe(self, topic, qos=1):
        done = []
        self.client.on_subscribe = lambda *a: done.append(a)
        self.client.subscribe(topic, qos)
        h.wait_until(lambda: done, h.IO_TIMEOUT_S, "SUBACK")

    def wait_messages(self, n, timeout_s=h.IO_TIMEOUT_S):
        h.wait_until(lambda: len(self.messages) >= n, timeout_s, "%d messages" % n)
        return self.messages

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


# ---- CONNECT / CONNACK ----

def test_connack_properties_say_what_sol_allows(b):
    p = Paho(b.port, "", expiry_s=30)
    flags, rc, props = p.connack
    check(rc == 0, "CONNACK %s" % rc)
    check(props.ReceiveMaximum == 7, "Receive Maximum %r" % getattr(props, "ReceiveMaximum", None))
    check(props.TopicAliasMaximum == 4, "Topic Alias Maximum")
    check(props.MaximumPacketSize == 65536, "Maximum Packet Size")
    check(props.RetainAvailable == 1 and props.WildcardSubscriptionAvailable == 1, "retain/wild")
    check(props.SubscriptionIdentifierAvailable == 1, "Subscription Identifier Available")
    check(props.SharedSubscriptionAvailable == 1, "Shared Subscription Available")
    assigned = props.AssignedClientIdentifier
    check(assigned.startswith("auto-"), "Assigned Client Identifier %r" % assigned)
    p.close()
    # The assigned id names a session that outlives the connection (expiry 30).
    c, present, _ = h.mqtt5_connect(b.port, assigned, clean=False, props=expiry_props(30))
    check(present == 1, "the assigned id's session is not there")
    c.close()


def test_server_keep_alive_when_max_keepalive_is_lower(b):
    for asked in (120, 0):
        c, _, props = h.mqtt5_connect(b.port, "ka-%d" % asked, keepalive_s=asked)
        check(h.props_get(props, h.P_SERVER_KEEP_ALIVE) == 2,
              "Server Keep Alive %r for keepalive %d" % (props, asked))
        c.send(h.PINGREQ_BYTES)
        c.expect(h.PINGRESP)
        # The broker uses the keepalive it gave: 1.5 x 2 s without a packet.
        expect_disconnect(c, 0x8D, timeout_s=6)
    c, _, props = h.mqtt5_connect(b.port, "ka-ok", keepalive_s=1)
    check(h.props_get(props, h.P_SERVER_KEEP_ALIVE) is None, "Server Keep Alive not asked for")
    c.close()


def test_refusals_carry_mqtt5_reason_codes(b):
    auth = h.props_block(h.prop(h.P_AUTH_METHOD, "SCRAM-SHA-512"))
    c, _, props = h.mqtt5_connect(b.port, "scram", props=auth, expect_reason=0x8C)
    check(h.props_get(props, h.P_REASON_STRING) is not None, "no Reason String")
    check(c.wait_closed(), "refused connection left open")
    will = ("$SYS/will", b"x", 0, False, b"\x00")
    c, _, _ = h.mqtt5_connect(b.port, "sys-will", will=will, expect_reason=0x87)
    check(c.wait_closed(), "refused connection left open")
    bad_utf8 = ("w", b"\xff\xfe", 0, False, h.props_block(h.prop(h.P_PAYLOAD_FORMAT, 1)))
    c, _, _ = h.mqtt5_connect(b.port, "bad-will", will=bad_utf8, expect_reason=0x99)
    check(c.wait_closed(), "refused connection left open")
    # A 3.1.1 client refused for the same will gets 3.1.1's code 5.
    raw = h.Raw.tcp(b.port)
    raw.send(h.connect_packet("sys-will-3", will=("$SYS/will", b"x", 0, False)))
    _, _, body = raw.expect(h.CONNACK)
    check(body[1] == 5, "3.1.1 CONNACK %r" % body)


def test_malformed_connect_gets_connack_with_its_reason(b):
    twice = h.props_block(h.prop(h.P_SESSION_EXPIRY, 1), h.prop(h.P_SESSION_EXPIRY, 2))
    raw = h.Raw.tcp(b.port)
    raw.send(h.connect5_packet("dup", props=twice))
    _, _, body = raw.expect(h.CONNACK)
    check(body[1] == RC_PROTOCOL_ERROR, "CONNACK %r for a property given twice" % body)
    check(raw.wait_closed(), "connection open after a malformed CONNECT")
    raw = h.Raw.tcp(b.port)  # protocol level 6: 3.1.1's "unacceptable protocol version"
    raw.send(h.connect_packet("six", level=6))
    _, _, body = raw.expect(h.CONNACK)
    check(body == b"\x00\x01", "CONNACK %r for level 6" % body)


# ---- session expiry ----

def test_session_expiry_interval_keeps_then_ends_the_session(b):
    sub, present, _ = h.mqtt5_connect(b.port, "exp", clean=True, props=expiry_props(2))
    check(present == 0, "new session present")
    sub.send(h.subscribe5_packet(1, [("exp/t", 1)]))
    sub.expect(h.SUBACK)
    sub.send(h.disconnect5_packet())
    sub.close()
    h.mosquitto_pub(b.port, "exp/t", "while away", qos=1)
    sub, present, _ = h.mqtt5_connect(b.port, "exp", clean=False, props=expiry_props(2))
    check(present == 1, "session gone within its expiry interval")
    m = h.next_publish5(sub)
    check(m is not None and m["payload"] == b"while away", "queued message %r" % m)
    sub.send(h.ack5_packet(h.PUBACK, m["packet_id"]))
    sub.send(h.disconnect5_packet())
    sub.close()
    time.sleep(3.2)  # past the 2 s interval, in whole seconds (timers_deadline())
    sub, present, _ = h.mqtt5_connect(b.port, "exp", clean=False, props=expiry_props(2))
    check(present == 0, "session still there 3 s after a 2 s expiry")
    b.wait_for_log("client exp: session expired")
    sub.close()


def test_session_expiry_zero_ends_at_disconnect_and_clean_start_discards(b):
    c, _, _ = h.mqtt5_connect(b.port, "zero", props=b"\x00")  # no property: 0
    c.send(h.subscribe5_packet(1, [("z", 1)]))
    c.expect(h.SUBACK)
    c.close()
    c, present, _ = h.mqtt5_connect(b.port, "zero", clean=False, props=expiry_props(60))
    check(present == 0, "a session with expiry 0 outlived its connection")
    c.send(h.disconnect5_packet())
    c.close()
    c, present, _ = h.mqtt5_connect(b.port, "zero", clean=True, props=expiry_props(60))
    check(present == 0, "Clean Start 1 resumed a session")
    c.close()


def test_session_expiry_survives_a_restart_and_is_enforced_across_it(b):
    for cid, expiry in (("short", 2), ("long", 3600)):
        c, _, _ = h.mqtt5_connect(b.port, cid, props=expiry_props(expiry))
        c.send(h.disconnect5_packet())
        check(c.wait_closed(), "%s: no close after DISCONNECT" % cid)
        c.close()
    time.sleep(0.2)  # the disconnect time is committed (else: disconnected at the restart)
    b.kill9()
    time.sleep(3.2)  # "short" expires while the broker is down (2 s, in whole seconds)
    b.start()
    c, present, _ = h.mqtt5_connect(b.port, "long", clean=False, props=expiry_props(3600))
    check(present == 1, "the 1 h session did not survive kill -9")
    c.close()
    c, present, _ = h.mqtt5_connect(b.port, "short", clean=False, props=expiry_props(2))
    check(present == 0, "a session that expired during downtime came back")
    c.close()


def test_disconnect_may_change_the_session_expiry(b):
    c, _, _ = h.mqtt5_connect(b.port, "dx", props=expiry_props(3600))
    c.send(h.disconnect5_packet(0, h.props_block(h.prop(h.P_SESSION_EXPIRY, 0))))
    c.close()
    c, present, _ = h.mqtt5_connect(b.port, "dx", clean=False, props=b"\x00")
    check(present == 0, "DISCONNECT with expiry 0 left the session")
    # Expiry 0 at CONNECT may not become non-zero at DISCONNECT [MQTT-3.14.2-2].
    c.send(h.disconnect5_packet(0, h.props_block(h.prop(h.P_SESSION_EXPIRY, 60))))
    expect_disconnect(c, RC_PROTOCOL_ERROR)


# ---- Receive Maximum ----

def test_client_over_receive_maximum_gets_disconnect_0x93(b):
    c, _, props = h.mqtt5_connect(b.port, "greedy")
    check(h.props_get(props, h.P_RECEIVE_MAXIMUM) == 2, "Receive Maximum %r" % props)
    # QoS 2 stays unacknowledged until PUBREL: two are allowed, a third is one too many.
    for pid in (1, 2):
        c.send(h.publish5_packet("rm", b"x", qos=2, packet_id=pid))
        c.expect(h.PUBREC)
    c.send(h.ack5_packet(h.PUBREL, 1))
    c.expect(h.PUBCOMP)
    c.send(h.publish5_packet("rm", b"x", qos=2, packet_id=3))  # 2 unacked again: fine
    c.expect(h.PUBREC)
    c.send(h.publish5_packet("rm", b"x", qos=2, packet_id=2, dup=True))  # a resend is not new
    c.expect(h.PUBREC)
    c.send(h.publish5_packet("rm", b"x", qos=1, packet_id=4))
    expect_disconnect(c, 0x93)


def test_sol_never_sends_more_than_the_clients_receive_maximum(b):
    sub, _, _ = h.mqtt5_connect(b.port, "slow", props=h.props_block(
        h.prop(h.P_RECEIVE_MAXIMUM, 2)))
    sub.send(h.subscribe5_packet(1, [("rx/#", 1)]))
    sub.expect(h.SUBACK)
    pub = h.mqtt_connect(b.port, "fast")
    for i in range(1, 6):
        pub.send(h.publish_packet("rx/t", b"m%d" % i, qos=1, packet_id=i))
        pub.expect(h.PUBACK)
    got = [h.next_publish5(sub, timeout_s=1) for _ in range(3)]
    check(got[0] and got[1] and got[2] is None, "more than 2 unacknowledged: %r" % got)
    sub.send(h.ack5_packet(h.PUBACK, got[0]["packet_id"]))
    m = h.next_publish5(sub)
    check(m is not None and m["payload"] == b"m3", "after one PUBACK: %r" % m)


# ---- Maximum Packet Size ----

def test_publish_over_the_clients_maximum_packet_size_is_dropped(b):
    sub, _, _ = h.mqtt5_connect(b.port, "small", props=h.props_block(
        h.prop(h.P_MAXIMUM_PACKET_SIZE, 64)))
    sub.send(h.subscribe5_packet(1, [("mps/#", 1)]))
    sub.expect(h.SUBACK)
    pub = h.mqtt_connect(b.port, "big")
    pub.send(h.publish_packet("mps/t", b"x" * 100, qos=1, packet_id=1))
    pub.send(h.publish_packet("mps/t", b"small", qos=1, packet_id=2))
    m = h.next_publish5(sub)
    check(m is not None and m["payload"] == b"small", "got %r" % m)
    b.wait_for_log("exceeds its Maximum Packet Size (64): dropped")


def test_packet_over_sols_maximum_packet_size_gets_disconnect_0x95(b):
    c, _, props = h.mqtt5_connect(b.port, "huge")
    check(h.props_get(props, h.P_MAXIMUM_PACKET_SIZE) == 1024, "Maximum Packet Size %r" % props)
    c.send(h.publish5_packet("big", b"x" * 2000, qos=0))
    expect_disconnect(c, 0x95)


# ---- Topic Aliases ----

def test_inbound_topic_aliases(b):
    sub = h.mqtt_connect(b.port, "plain")
    h.subscribe_one(sub, "al/#", 0)
    c, _, _ = h.mqtt5_connect(b.port, "aliaser")
    alias = lambda n: h.props_block(h.prop(h.P_TOPIC_ALIAS, n))  # noqa: E731
    c.send(h.publish5_packet("al/one", b"1", props=alias(3)))
    c.send(h.publish5_packet("", b"2", props=alias(3)))
    c.send(h.publish5_packet("al/two", b"3", props=alias(3)))  # re-mapped
    c.send(h.publish5_packet("", b"4", props=alias(3)))
    got = [h.next_publish(sub)[:2] for _ in range(4)]
    want = [("al/one", b"1"), ("al/one", b"2"), ("al/two", b"3"), ("al/two", b"4")]
    check(got == want, "got %r" % got)
    c.send(h.publish5_packet("", b"5", props=alias(4)))  # never mapped
    expect_disconnect(c, RC_PROTOCOL_ERROR)
    c, _, _ = h.mqtt5_connect(b.port, "aliaser2")
    c.send(h.publish5_packet("al/x", b"6", props=alias(11)))  # above max_topic_alias 10
    expect_disconnect(c, 0x94)


def test_outbound_topic_aliases_for_frequent_topics(b):
    sub, _, _ = h.mqtt5_connect(b.port, "al-sub", props=h.props_block(
        h.prop(h.P_TOPIC_ALIAS_MAXIMUM, 2)))
    sub.send(h.subscribe5_packet(1, [("out/#", 0)]))
    sub.expect(h.SUBACK)
    pub = h.mqtt_connect(b.port, "al-pub")
    for topic in ("out/a", "out/a", "out/a", "out/b", "out/a"):
        pub.send(h.publish_packet(topic, b"x"))
    got = [h.next_publish5(sub) for _ in range(5)]
    seen = [(m["topic"], h.props_get(m["props"], h.P_TOPIC_ALIAS)) for m in got]
    check(seen == [("out/a", None), ("out/a", 1), ("", 1), ("out/b", None), ("", 1)],
          "topics and aliases %r" % seen)
    # A client that allows no aliases never gets one.
    plain, _, _ = h.mqtt5_connect(b.port, "no-alias")
    plain.send(h.subscribe5_packet(1, [("out/#", 0)]))
    plain.expect(h.SUBACK)
    for _ in range(3):
        pub.send(h.publish_packet("out/a", b"y"))
    for _ in range(3):
        m = h.next_publish5(plain)
        check(m["topic"] == "out/a" and not m["props"], "unasked alias %r" % m)


# ---- DISCONNECT from the server ----

def test_takeover_sends_disconnect_0x8e_to_the_old_connection(b):
    old, _, _ = h.mqtt5_connect(b.port, "twin")
    new, _, _ = h.mqtt5_connect(b.port, "twin")
    expect_disconnect(old, 0x8E)
    new.send(h.PINGREQ_BYTES)
    new.expect(h.PINGRESP)


def test_protocol_errors_and_malformed_packets_get_their_reason(b):
    c, _, _ = h.mqtt5_connect(b.port, "twice")
    twice = h.props_block(h.prop(h.P_CONTENT_TYPE, "a"), h.prop(h.P_CONTENT_TYPE, "b"))
    c.send(h.publish5_packet("t", b"x", props=twice))
    expect_disconnect(c, RC_PROTOCOL_ERROR)
    c, _, _ = h.mqtt5_connect(b.port, "subid")
    c.send(h.publish5_packet("t", b"x", props=h.props_block(h.prop(h.P_SUBSCRIPTION_ID, 5))))
    expect_disconnect(c, RC_PROTOCOL_ERROR)
    c, _, _ = h.mqtt5_connect(b.port, "bad-utf8")
    c.send(h.packet(h.PUBLISH, 0, b"\x00\x02\xc3\x28\x00x"))
    expect_disconnect(c, RC_MALFORMED)
    c, _, _ = h.mqtt5_connect(b.port, "auth-pkt")
    c.send(h.packet(h.AUTH, 0, b"\x18\x00"))
    expect_disconnect(c, RC_PROTOCOL_ERROR)


def test_shutdown_sends_disconnect_0x8b(b):
    c, _, _ = h.mqtt5_connect(b.port, "bye")
    b.send_signal(signal.SIGTERM)
    expect_disconnect(c, 0x8B)
    check(b.wait_exit() == 0, "broker did not exit 0")


# ---- DISCONNECT from the client, and the will ----

def test_disconnect_0x04_publishes_the_will_and_0x00_does_not(b):
    watcher = h.mqtt_connect(b.port, "watcher")
    h.subscribe_one(watcher, "wills/#", 0)
    for reason, cid in ((0x04, "with-will"), (0x00, "normal")):
        c, _, _ = h.mqtt5_connect(b.port, cid, will=("wills/" + cid, b"gone", 0, False, b"\x00"))
        c.send(h.disconnect5_packet(reason))
        check(c.wait_closed(), "DISCONNECT did not close")
    m = h.next_publish(watcher, timeout_s=2)
    check(m is not None and m[0] == "wills/with-will", "will after 0x04: %r" % (m,))
    check(h.next_publish(watcher, timeout_s=1) is None, "a will after DISCONNECT 0x00")



def test_wills_of_clients_connected_at_kill_9_are_published_after_restart(b):
    watcher = h.mqtt_connect(b.port, "watcher", clean=False)
    h.subscribe_one(watcher, "wills/#", 1)
    watcher.send(h.DISCONNECT_BYTES)
    watcher.close()
    delayed = h.props_block(h.prop(h.P_WILL_DELAY, 3), h.prop(h.P_USER_PROPERTY, ("k", "v")))
    slow, _, _ = h.mqtt5_connect(b.port, "slow", props=expiry_props(600),
                                 will=("wills/slow", b"slow gone", 1, False, delayed))
    old = h.Raw.tcp(b.port)
    old.send(h.connect_packet("old", will=("wills/old", b"old gone", 1, False)))
    old.expect(h.CONNACK)
    b.kill9()
    b.start()
    t0 = time.monotonic()
    b.kill9()  # a second crash before the delay ends keeps the deadline
    b.start()
    watcher, present = h.connect_session(b.port, "watcher", clean=False)
    check(present == 1, "watcher session gone")
    m = h.next_publish(watcher, ack=True)
    check(m is not None and m[:2] == ("wills/old", b"old gone"), "first will %r" % (m,))
    m = h.next_publish(watcher, timeout_s=10, ack=True)
    check(m is not None and m[:2] == ("wills/slow", b"slow gone"), "delayed will %r" % (m,))
    check(time.monotonic() - t0 >= 2.0, "the delayed will came before its 3 s delay")
    check(h.next_publish(watcher, timeout_s=1) is None, "a will came twice")
    slow.close()
    old.close()

# ---- mixed versions ----

def test_sessions_move_between_mqtt311_and_mqtt5(b):
    # A 3.1.1 persistent session picked up by an MQTT 5 CONNECT ...
    c = h.mqtt_connect(b.port, "mover", clean=False)
    h.subscribe_one(c, "mv/t", 1)
    c.send(h.DISCONNECT_BYTES)
    c.close()
    h.mosquitto_pub(b.port, "mv/t", "for v5", qos=1)
    c, present, _ = h.mqtt5_connect(b.port, "mover", clean=False, props=expiry_props(60))
    check(present == 1, "MQTT 5 CONNECT did not resume the 3.1.1 session")
    m = h.next_publish5(c)
    check(m is not None and m["payload"] == b"for v5", "queued for 3.1.1, got %r" % m)
    c.send(h.ack5_packet(h.PUBACK, m["packet_id"]))
    c.send(h.disconnect5_packet())
    c.close()
    # ... and the MQTT 5 session picked up by a 3.1.1 CONNECT.
    h.mosquitto_pub(b.port, "mv/t", "for 3.1.1", qos=1)
    raw = h.Raw.tcp(b.port)
    raw.send(h.connect_packet("mover", clean=False))
    _, _, body = raw.expect(h.CONNACK)
    check(body == b"\x01\x00", "3.1.1 CONNACK %r" % body)
    m = h.next_publish(raw, ack=True)
    check(m is not None and m[1] == b"for 3.1.1", "queued for v5, got %r" % (m,))


def test_paho_mqtt5_and_mqtt311_clients_interoperate(b):
    sub5 = Paho(b.port, "p5-sub")
    sub5.subscribe("mix/#", 1)
    sub3 = paho.Client(client_id="p3-sub", protocol=paho.MQTTv311)
    got3 = []
    sub3.on_message = lambda c, u, m: got3.append(m.payload)
    sub3.connect("127.0.0.1", b.port)
    sub3.loop_start()
    sub3.subscribe("mix/#", 1)
    time.sleep(0.3)
    pub5 = Paho(b.port, "p5-pub")
    pub5.client.publish("mix/a", b"from v5", qos=1)
    h.mosquitto_pub(b.port, "mix/b", "from 3.1.1", qos=1)
    msgs = sub5.wait_messages(2)
    h.wait_until(lambda: len(got3) >= 2, h.IO_TIMEOUT_S, "3.1.1 subscriber")
    check(sorted(m.payload for m in msgs) == [b"from 3.1.1", b"from v5"], "v5 got %r" % msgs)
    check(sorted(got3) == [b"from 3.1.1", b"from v5"], "3.1.1 got %r" % got3)
    for p in (sub5, pub5):
        p.close()
    sub3.disconnect()
    sub3.loop_stop()


def main():
    r = h.Runner()
    r.run(test_connack_properties_say_what_sol_allows,
          extra_config=["receive_maximum 7", "max_topic_alias 4", "max_packet_size 64k"])
    r.run(test_server_keep_alive_when_max_keepalive_is_lower, extra_config=["max_keepalive 2"])
    r.run(test_refusals_carry_mqtt5_reason_codes)
    r.run(test_malformed_connect_gets_connack_with_its_reason)
    r.run(test_session_expiry_interval_keeps_then_ends_the_session)
    r.run(test_session_expiry_zero_ends_at_disconnect_and_clean_start_discards)
    r.run(test_session_expiry_survives_a_restart_and_is_enforced_across_it)
    r.run(test_disconnect_may_change_the_session_expiry)
    r.run(test_client_over_receive_maximum_gets_disconnect_0x93,
          extra_config=["receive_maximum 2"])
    r.run(test_sol_never_sends_more_than_the_clients_receive_maximum)
    r.run(test_publish_over_the_clients_maximum_packet_size_is_dropped)
    r.run(test_packet_over_sols_maximum_packet_size_gets_disconnect_0x95,
          extra_config=["max_packet_size 1k"])
    r.run(test_inbound_topic_aliases)
    r.run(test_outbound_topic_aliases_for_frequent_topics)
    r.run(test_takeover_sends_disconnect_0x8e_to_the_old_connection)
    r.run(test_protocol_errors_and_malformed_packets_get_their_reason)
    r.run(test_shutdown_sends_disconnect_0x8b)
    r.run(test_disconnect_0x04_publishes_the_will_and_0x00_does_not)
    r.run(test_wills_of_clients_connected_at_kill_9_are_published_after_restart)
    r.run(test_sessions_move_between_mqtt311_and_mqtt5)
    r.run(test_paho_mqtt5_and_mqtt311_clients_interoperate)
    r.finish()


if __name__ == "__main__":
    main()
