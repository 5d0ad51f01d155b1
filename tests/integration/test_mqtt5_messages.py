"""test_mqtt5_messages.py - MQTT 5 messages against the real broker (issue 12):
PUBLISH properties forwarded unchanged (Payload Format Indicator, Content
Type, Response Topic, Correlation Data, User Properties in order) and dropped
toward 3.1.1 subscribers; Message Expiry (the interval left is sent, an
expired queued message is dropped, also across kill -9); PUBACK/PUBREC reason
codes (0x10 no subscribers, 0x87 not authorized, 0x99 payload not UTF-8);
SUBSCRIBE options (No Local, Retain As Published, Retain Handling) and
Subscription Identifiers; SUBACK / UNSUBACK reason codes;
mosquitto_pub / mosquitto_sub -V mqttv5 round trips with user properties and
message expiry; paho-mqtt MQTT 5 clients. Every wait is bounded.
Not for: connections and sessions (test_mqtt5.py).
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

FORWARDED = h.props_block(
    h.prop(h.P_PAYLOAD_FORMAT, 1), h.prop(h.P_CONTENT_TYPE, "text/plain"),
    h.prop(h.P_RESPONSE_TOPIC, "reply/here"), h.prop(h.P_CORRELATION_DATA, b"\x00\x01\xff"),
    h.prop(h.P_USER_PROPERTY, ("k", "first")), h.prop(h.P_USER_PROPERTY, ("k", "second")),
    h.prop(h.P_USER_PROPERTY, ("other", "x")))
FORWARDED_LIST = h.parse_props(FORWARDED)[0]


def expiry(seconds):
    return h.props_block(h.prop(h.P_SESSION_EXPIRY, seconds))


def subscribe5(c, topic_filter, options=1, packet_id=1):
    c.send(h.subscribe5_packet(packet_id, [(topic_filter, options)]))
    _, _, body = c.expect(h.SUBACK)
    return body[-1]


def publish5_acked(c, topic, payload, qos=1, packet_id=1, props=b"\x00"):
    """Publishes and returns the PUBACK/PUBREC (packet id, reason, properties)."""
    c.send(h.publish5_packet(topic, payload, qos=qos, packet_id=packet_id, props=props))
    _, _, body = c.expect(h.PUBACK if qos == 1 else h.PUBREC)
    return h.parse_ack5(body)


def mosquitto_sub5(port, topic, count, extra=(), timeout_s=8):
    return h.MosquittoSub(port, topic, count=count, qos=1, timeout_s=timeout_s,
                          extra=("-V", "mqttv5", *extra))


# ---- properties ----

def test_properties_are_forwarded_unchanged_and_dropped_toward_311(b):
    sub5, _, _ = h.mqtt5_connect(b.port, "sub5")
    check(subscribe5(sub5, "fw/#") == 1, "SUBACK")
    sub3 = h.mqtt_connect(b.port, "sub3")
    check(h.subscribe_one(sub3, "fw/#", 1) == 1, "SUBACK")
    pub, _, _ = h.mqtt5_connect(b.port, "pub5")
    pid, reason, _ = publish5_acked(pub, "fw/t", b"caf\xc3\xa9", props=FORWARDED)
    check(reason == 0, "PUBACK reason 0x%02x" % reason)
    m = h.next_publish5(sub5)
    check(m is not None and m["payload"] == b"caf\xc3\xa9", "v5 delivery %r" % m)
    check(m["props"] == FORWARDED_LIST, "properties %r, want %r" % (m["props"], FORWARDED_LIST))
    m3 = h.next_publish(sub3)  # a 3.1.1 PUBLISH: no property block
    check(m3 is not None and m3[:2] == ("fw/t", b"caf\xc3\xa9"), "3.1.1 delivery %r" % (m3,))


def test_paho_mqtt5_properties_round_trip(b):
    got = []
    sub = paho.Client(client_id="paho-sub", protocol=paho.MQTTv5)
    sub.on_message = lambda c, u, m: got.append(m)
    sub.connect("127.0.0.1", b.port)
    sub.loop_start()
    subscribed = []
    sub.on_subscribe = lambda *a: subscribed.append(1)
    sub.subscribe("paho/#", 1)
    h.wait_until(lambda: subscribed, h.IO_TIMEOUT_S, "SUBACK")
    pub = paho.Client(client_id="paho-pub", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", b.port)
    pub.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.ResponseTopic = "paho/replies"
    props.CorrelationData = b"req-42"
    props.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
    props.MessageExpiryInterval = 600
    pub.publish("paho/t", b'{"x":1}', qos=1, properties=props).wait_for_publish()
    h.wait_until(lambda: got, h.IO_TIMEOUT_S, "the message")
    p = got[0].properties
    check(p.ContentType == "application/json" and p.ResponseTopic == "paho/replies",
          "properties %r" % p)
    check(p.CorrelationData == b"req-42", "correlation data %r" % p.CorrelationData)
    check(p.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")], "user props %r" % p.UserProperty)
    check(590 <= p.MessageExpiryInterval <= 600, "expiry %r" % p.MessageExpiryInterval)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()


def test_mosquitto_clients_v5_round_trip_user_properties_and_expiry(b):
    sub = mosquitto_sub5(b.port, "mq/#", 1, extra=("-F", "%t|%P|%E|%p"))
    # mosquitto_sub says nothing once it has subscribed: publish until it exits.
    for _ in range(25):
        r = h.mosquitto_pub(b.port, "mq/t", "props", qos=1, extra=(
            "-V", "mqttv5", "-D", "PUBLISH", "user-property", "k", "v1",
            "-D", "PUBLISH", "user-property", "k", "v2",
            "-D", "PUBLISH", "message-expiry-interval", "120"))
        check(r.returncode == 0, "mosquitto_pub: %s" % r.stderr)
        try:
            sub.proc.wait(timeout=0.3)
            break
        except subprocess.TimeoutExpired:
            continue
    rc, lines, err = sub.wait()
    check(rc == 0 and lines, "mosquitto_sub: %r %s" % (lines, err))
    topic, user_props, left, payload = lines[0].split("|")
    check(topic == "mq/t" and payload == "props", "line %r" % lines[0])
    check(user_props == "k:v1 k:v2", "user properties %r" % user_props)
    check(118 <= int(left) <= 120, "message expiry %r" % left)


def test_mosquitto_v5_queued_message_expires(b):
    # A persistent MQTT 5 session (-c, -x 3600) that leaves at once.
    r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-V", "mqttv5",
                        "-i", "mqsub", "-c", "-x", "3600", "-q", "1", "-t", "mqe/#", "-E"],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, "mosquitto_sub -E: %s" % r.stderr)
    for payload, left in (("short", "1"), ("long", "600")):
        r = h.mosquitto_pub(b.port, "mqe/t", payload, qos=1, extra=(
            "-V", "mqttv5", "-D", "PUBLISH", "message-expiry-interval", left))
        check(r.returncode == 0, "mosquitto_pub: %s" % r.stderr)
    time.sleep(2.2)
    sub = mosquitto_sub5(b.port, "mqe/#", 2, timeout_s=2,
                         extra=("-i", "mqsub", "-c", "-x", "3600", "-F", "%p|%E"))
    rc, lines, err = sub.wait()
    check(len(lines) == 1 and lines[0].startswith("long|"), "got %r (%s)" % (lines, err))
    check(595 <= int(lines[0].split("|")[1]) <= 598, "expiry left %r" % lines[0])


# ---- Message Expiry ----

def solctl(*args):
    r = subprocess.run([os.path.join(h.BUILD_DIR, "solctl"), *args], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "solctl %s: %s %s" % (args, r.stdout, r.stderr))
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def check_solctl_shows_mqtt5_fields(b):
    """solctl dump shows a queued message's expiry and properties, and the
    session's expiry; solctl check verifies them."""
    sessions = solctl("dump", "sessions", "--json", "--data-dir", b.data_dir)
    late = [s for s in sessions if s["client_id"] == "late"][0]
    check(late["expiry_s"] == 3600 and "expires_at" in late, "session %r" % late)
    msgs = solctl("dump", "messages", "--json", "--data-dir", b.data_dir)
    check([m["topic"] for m in msgs] == ["exp/t", "exp/t", "exp/u"], "messages %r" % msgs)
    check("expires_at" in msgs[0] and "expires_at" in msgs[1], "expiry %r" % msgs)
    check(msgs[2]["properties"] == [{"id": 38, "name": "user_property", "key": "k",
                                     "value": "v"}], "properties %r" % msgs[2])
    subs = solctl("dump", "subscriptions", "--json", "--data-dir", b.data_dir)
    check(subs[0]["subscription_id"] == 5 and subs[0]["retain_as_published"], "subs %r" % subs)
    queue = solctl("dump", "queues", "--json", "--data-dir", b.data_dir)
    check([q["subscription_ids"] for q in queue] == [[5], [5], [5]], "queue %r" % queue)
    check(solctl("check", "--json", "--data-dir", b.data_dir)[-1]["ok"], "solctl check")

def test_message_expiry_is_enforced_across_kill_9(b):
    c, _, _ = h.mqtt5_connect(b.port, "late", props=expiry(3600))
    c.send(h.subscribe5_packet(1, [("exp/#", 1 | 0x08)],
                               props=h.props_block(h.prop(h.P_SUBSCRIPTION_ID, 5))))
    c.expect(h.SUBACK)
    c.send(h.disconnect5_packet())
    c.close()
    pub, _, _ = h.mqtt5_connect(b.port, "pub")
    for i, (payload, left) in enumerate(((b"short", 1), (b"long", 3600))):
        props = h.props_block(h.prop(h.P_MESSAGE_EXPIRY, left))
        _, reason, _ = publish5_acked(pub, "exp/t", payload, packet_id=i + 1, props=props)
        check(reason == 0, "PUBACK 0x%02x" % reason)
    props = h.props_block(h.prop(h.P_USER_PROPERTY, ("k", "v")))
    publish5_acked(pub, "exp/u", b"props", packet_id=3, props=props)
    pub.close()
    b.kill9()
    check_solctl_shows_mqtt5_fields(b)
    time.sleep(2.5)
    b.start()
    c, present, _ = h.mqtt5_connect(b.port, "late", clean=False, props=expiry(3600))
    check(present == 1, "session gone")
    m = h.next_publish5(c)
    check(m is not None and m["payload"] == b"long", "got %r" % m)
    left = h.props_get(m["props"], h.P_MESSAGE_EXPIRY)
    check(left is not None and 3590 <= left <= 3598, "expiry left %r" % left)
    c.send(h.ack5_packet(h.PUBACK, m["packet_id"]))
    m = h.next_publish5(c)
    check(m is not None and m["props"] == [(h.P_SUBSCRIPTION_ID, 5),
                                           (h.P_USER_PROPERTY, (b"k", b"v"))], "got %r" % m)
    c.send(h.ack5_packet(h.PUBACK, m["packet_id"]))
    check(h.next_publish5(c, timeout_s=0.5) is None, "the expired message came")


# ---- PUBACK / PUBREC reason codes ----

def puback_reason_codes(b):
    watcher, _, _ = h.mqtt5_connect(b.port, "watcher", props=h.props_block(
        h.prop(h.P_REQUEST_PROBLEM_INFO, 1)))
    check(subscribe5(watcher, "open/#") == 1, "SUBACK")
    c, _, _ = h.mqtt5_connect(b.port, "writer")
    _, reason, _ = publish5_acked(c, "nobody/listens", b"x", packet_id=1)
    check(reason == 0x10, "no subscribers: 0x%02x" % reason)
    _, reason, props = publish5_acked(c, "secret/t", b"x", packet_id=2)
    check(reason == 0x87, "ACL denied: 0x%02x" % reason)
    check(h.props_get(props, h.P_REASON_STRING) == b"not authorized", "reason %r" % props)
    _, reason, _ = publish5_acked(c, "secret/t", b"x", qos=2, packet_id=3)
    check(reason == 0x87, "ACL denied QoS 2: 0x%02x" % reason)
    c.send(h.ack5_packet(h.PUBREL, 3))  # an unknown id still gets PUBCOMP
    c.expect(h.PUBCOMP)
    utf8 = h.props_block(h.prop(h.P_PAYLOAD_FORMAT, 1))
    _, reason, _ = publish5_acked(c, "open/t", b"\xff\xfe", packet_id=4, props=utf8)
    check(reason == 0x99, "payload not UTF-8: 0x%02x" % reason)
    _, reason, _ = publish5_acked(c, "open/t", b"ok", packet_id=5)
    check(reason == 0, "plain: 0x%02x" % reason)
    m = h.next_publish5(watcher)
    check(m["payload"] == b"ok", "the invalid one was routed: %r" % m)
    # 3.1.1 keeps its silent acknowledgement of a denied PUBLISH.
    old = h.mqtt_connect(b.port, "old")
    old.send(h.publish_packet("secret/t", b"x", qos=1, packet_id=9))
    _, _, body = old.expect(h.PUBACK)
    check(body == b"\x00\x09", "3.1.1 PUBACK %r" % body)



# ---- SUBSCRIBE options ----

def test_paho_subscribe_options_and_identifiers(b):
    from paho.mqtt.subscribeoptions import SubscribeOptions
    got = []
    c = paho.Client(client_id="opts", protocol=paho.MQTTv5)
    c.on_message = lambda cl, u, m: got.append(m)
    acks = []
    c.on_subscribe = lambda cl, u, mid, codes, props=None: acks.append(codes)
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    h.mosquitto_pub(b.port, "so/state", "retained", qos=1, extra=("-r",))
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 11
    c.subscribe([("so/#", SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True,
                                          retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE))],
                properties=props)
    h.wait_until(lambda: acks and got, h.IO_TIMEOUT_S, "SUBACK and the retained message")
    check(got[0].retain and got[0].properties.SubscriptionIdentifier == [11],
          "retained on subscribe %r" % got[0].properties)
    c.publish("so/own", b"mine", qos=1).wait_for_publish()  # No Local: not back to us
    h.mosquitto_pub(b.port, "so/live", "theirs", qos=1, extra=("-r",))
    h.wait_until(lambda: len(got) >= 2, h.IO_TIMEOUT_S, "the live message")
    check(got[1].topic == "so/live" and got[1].retain, "Retain As Published: %r" % got[1].retain)
    check(got[1].properties.SubscriptionIdentifier == [11], "identifier %r" % got[1].properties)
    time.sleep(0.3)
    check(len(got) == 2, "the client's own message came back: %r" % [m.topic for m in got])
    # Retain Handling 2: a resubscribe sends nothing.
    c.subscribe([("so/#", SubscribeOptions(
        qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))])
    h.wait_until(lambda: len(acks) >= 2, h.IO_TIMEOUT_S, "second SUBACK")
    time.sleep(0.3)
    check(len(got) == 2, "Retain Handling 2 sent %r" % [m.topic for m in got[2:]])
    c.disconnect()
    c.loop_stop()


def suback_and_unsuback_reason_codes(b):
    c, _, _ = h.mqtt5_connect(b.port, "subs")
    c.send(h.subscribe5_packet(1, [("open/#", 1), ("unlisted/#", 1), ("bad/#/x", 0)]))
    _, _, body = c.expect(h.SUBACK)
    props, pos = h.parse_props(body, 2)
    check(body[pos:] == b"\x01\x87\x8f", "SUBACK codes %r" % body[pos:])
    c.send(h.unsubscribe5_packet(2, ["open/#", "never/subscribed"]))
    _, _, body = c.expect(h.UNSUBACK)
    props, pos = h.parse_props(body, 2)
    check(body[pos:] == b"\x00\x11", "UNSUBACK codes %r" % body[pos:])


def test_reason_codes_with_an_acl(b):
    with open(b.config_path, "a") as f:
        f.write("acl_file %s\n" % os.path.join(b.tmp, "acl"))
    with open(os.path.join(b.tmp, "acl"), "w") as f:
        f.write("topic readwrite open/#\ntopic readwrite nobody/#\ntopic read secret/#\n")
    b.start()
    puback_reason_codes(b)
    suback_and_unsuback_reason_codes(b)


def main():
    r = h.Runner()
    r.run(test_properties_are_forwarded_unchanged_and_dropped_toward_311)
    r.run(test_paho_mqtt5_properties_round_trip)
    r.run(test_mosquitto_clients_v5_round_trip_user_properties_and_expiry)
    r.run(test_mosquitto_v5_queued_message_expires)
    r.run(test_message_expiry_is_enforced_across_kill_9)
    r.run(test_paho_subscribe_options_and_identifiers)
    r.run(test_reason_codes_with_an_acl, start=False)
    r.finish()


if __name__ == "__main__":
    main()
