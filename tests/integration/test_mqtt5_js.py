"""test_mqtt5_js.py - MQTT 5 with MQTT.js (npm mqtt, run by Debian's node).

The same features test_mqtt5.py / test_mqtt5_messages.py check with paho and
raw sockets, from a second real client library: CONNACK properties, PUBLISH
properties forwarded (and dropped toward 3.1.1), Subscription Identifiers,
PUBACK / PUBREC / SUBACK reason codes, No Local, Retain As Published, Retain
Handling, Session Expiry across kill -9 and across versions, Message Expiry,
Will Delay with will properties, topic aliases both ways, and MQTT 5 over
WebSockets. MQTT.js is installed into the build tree by test_websockets.py's
ensure_mqtt_js() (npm ci of tests/js), and driven by tests/js/mqtt_client.js.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402
from test_websockets import CLIENT_TIMEOUT_S, Node, ensure_mqtt_js, wait_connectable  # noqa: E402

V5 = {"protocolVersion": 5}
V4 = {"protocolVersion": 4}


def url(b):
    return "mqtt://127.0.0.1:%d" % b.port


def spec(b, client_id, options=None, subscribe=(), publish=(), expect=0, u=None, **extra):
    opts = {"clientId": client_id, **V5, **(options or {})}
    s = {"url": u or url(b), "options": opts, "subscribe": [list(x) for x in subscribe],
         "publish": [list(x) for x in publish], "expect": expect,
         "timeout_ms": CLIENT_TIMEOUT_S * 1000}
    s.update(extra)
    return s


def run(b, client_id, **kw):
    """One MQTT.js client to its end: its events."""
    return Node(spec(b, client_id, **kw)).finish()


def started(b, client_id, wait="subscribed", **kw):
    """A client left running once it has reached the event wait."""
    node = Node(spec(b, client_id, **kw))
    node.wait_event(wait)
    return node


def event(events, name):
    found = [e for e in events if e["event"] == name]
    check(found, "no %r event in %s" % (name, events))
    return found[0]


def messages(events):
    return [e for e in events if e["event"] == "message"]


def test_connack_properties_assigned_id_and_server_keep_alive(b):
    ev = event(run(b, "", options={"keepalive": 120}), "connect")
    p = ev["properties"] or {}
    check(ev["reasonCode"] == 0, "CONNACK %s" % ev)
    check(p.get("assignedClientIdentifier"), "no Assigned Client Identifier: %s" % p)
    check(p.get("serverKeepAlive") == 30, "Server Keep Alive %s (max_keepalive 30)" % p)
    check(p.get("receiveMaximum") == 100, "Receive Maximum %s" % p)
    check(p.get("topicAliasMaximum") == 10, "Topic Alias Maximum %s" % p)
    check(p.get("wildcardSubscriptionAvailable") is True and
          p.get("subscriptionIdentifiersAvailable") is True and
          p.get("sharedSubscriptionAvailable") is True and p.get("retainAvailable") is True,
          "availability flags %s" % p)


PROPS = {"payloadFormatIndicator": True, "messageExpiryInterval": 300,
         "contentType": "text/plain", "responseTopic": "p/reply", "correlationData": "corr-1",
         "userProperties": {"a": "1", "b": ["2", "3"]}}


def test_properties_forwarded_with_subscription_id_and_dropped_toward_311(b):
    v5 = started(b, "js5-sub", subscribe=[("p/#", 1)], expect=2,
                 subscribe_properties={"subscriptionIdentifier": 42})
    v4 = started(b, "js4-sub", options=V4, subscribe=[("p/#", 1)], expect=2)
    run(b, "js5-pub", publish=[("p/t", "from v5", 1, False, {"properties": PROPS})])
    run(b, "js4-pub", options=V4, publish=[("p/u", "from 3.1.1", 1)])
    got5, got4 = messages(v5.finish()), messages(v4.finish())
    check([(m["topic"], m["text"]) for m in got5] == [("p/t", "from v5"), ("p/u", "from 3.1.1")],
          "v5 subscriber got %s" % got5)
    p = dict(got5[0]["properties"])
    expiry = p.pop("messageExpiryInterval", None)
    check(expiry is not None and 290 <= expiry <= 300, "remaining expiry %s" % expiry)
    want = {k: v for k, v in PROPS.items() if k != "messageExpiryInterval"}
    want["subscriptionIdentifier"] = 42
    check(p == want, "properties %s, want %s" % (p, want))
    # From the 3.1.1 publisher: only the subscription's identifier.
    check(got5[1]["properties"] == {"subscriptionIdentifier": 42},
          "properties of a 3.1.1 publish: %s" % got5[1]["properties"])
    check([(m["topic"], m["text"]) for m in got4] == [("p/t", "from v5"), ("p/u", "from 3.1.1")]
          and all("properties" not in m for m in got4), "3.1.1 subscriber got %s" % got4)


def test_puback_reason_codes_no_subscribers_and_invalid_utf8(b):
    events = run(b, "js-rc", allow_errors=True,
                 publish=[("nobody/here", "x", 1), ("nobody/two", "x", 2),
                          ("bad/utf8", {"size": 4, "byte": 0xff}, 1, False,
                           {"properties": {"payloadFormatIndicator": True}})])
    acks = {(e["cmd"], e["reasonCode"]) for e in events if e["event"] == "ack"}
    check(("puback", 0x10) in acks and ("pubrec", 0x10) in acks,
          "no 0x10 (no matching subscribers): %s" % acks)
    errors = [e["code"] for e in events if e["event"] == "publish_error"]
    check(errors == [0x99], "invalid UTF-8 with Payload Format Indicator 1: %s" % errors)


def test_acl_gives_puback_and_suback_0x87(b):
    events = run(b, "js-alice", options={"username": "alice", "password": "secret"},
                 allow_errors=True, subscribe=[("denied/#", 1), ("allowed/#", 1)],
                 publish=[("denied/x", "no", 1), ("denied/y", "no", 2), ("allowed/x", "yes", 1)],
                 expect=1)
    suback = [e["granted"] for e in events if e["event"] == "ack" and e["cmd"] == "suback"]
    check(suback == [[0x87, 1]], "SUBACK %s" % suback)
    errors = sorted(e["code"] for e in events if e["event"] == "publish_error")
    check(errors == [0x87, 0x87], "publish errors %s" % errors)
    check([m["topic"] for m in messages(events)] == ["allowed/x"], "got %s" % messages(events))


def test_no_local_retain_as_published_and_retain_handling(b):
    # No Local: the client's own publish does not come back; another's does.
    nl = started(b, "js-nl", wait="published", subscribe=[("nl/t", 1, {"nl": True})],
                 publish=[("nl/t", "mine", 1)], expect=1)
    run(b, "js-other", publish=[("nl/t", "theirs", 1)])
    check([m["text"] for m in messages(nl.finish())] == ["theirs"], "No Local not applied")
    # Retain Handling: 0 sends the retained message, 2 does not.
    run(b, "js-ret", publish=[("rh/t", "kept", 1, True)])
    ev0 = run(b, "js-rh0", subscribe=[("rh/t", 1, {"rh": 0})], expect=1)
    check([(m["text"], m["retain"]) for m in messages(ev0)] == [("kept", True)],
          "Retain Handling 0: %s" % messages(ev0))
    rh2 = started(b, "js-rh2", subscribe=[("rh/t", 1, {"rh": 2})], expect=1)
    run(b, "js-live", publish=[("rh/t", "live", 1)])
    check([m["text"] for m in messages(rh2.finish())] == ["live"], "Retain Handling 2 sent it")
    # Retain As Published: a live retained publish keeps RETAIN 1 only there.
    rap = started(b, "js-rap", subscribe=[("rap/t", 1, {"rap": True})], expect=1)
    plain = started(b, "js-norap", subscribe=[("rap/t", 1)], expect=1)
    run(b, "js-rpub", publish=[("rap/t", "r", 1, True)])
    check([m["retain"] for m in messages(rap.finish())] == [True], "RAP lost RETAIN")
    check([m["retain"] for m in messages(plain.finish())] == [False], "RETAIN without RAP")


def test_session_expiry_survives_kill_9_and_moves_between_versions(b):
    keep = {"clean": False, "properties": {"sessionExpiryInterval": 60}}
    first = event(run(b, "js-se", options=keep, subscribe=[("se/#", 1)]), "connect")
    check(first["sessionPresent"] is False, "new session present: %s" % first)
    run(b, "js-se-short", options={"clean": False, "properties": {"sessionExpiryInterval": 2}},
        subscribe=[("se/#", 1)])
    for i in range(2):
        h.mosquitto_pub(b.port, "se/%d" % i, "queued-%d" % i, qos=1)
    b.restart()  # kill -9
    events = run(b, "js-se", options=keep, expect=2)
    check(event(events, "connect")["sessionPresent"] is True, "lost across kill -9: %s" % events)
    check([m["text"] for m in messages(events)] == ["queued-0", "queued-1"], "got %s" % events)
    time.sleep(3.5)  # past the short session's 2 s (and its whole-second rounding)
    ev = event(run(b, "js-se-short", options={"clean": False}), "connect")
    check(ev["sessionPresent"] is False, "a 2 s session outlived 3.5 s: %s" % ev)
    # A 3.1.1 session picked up by an MQTT 5 CONNECT, and back.
    run(b, "js-mix", options={**V4, "clean": False}, subscribe=[("mix/#", 1)])
    h.mosquitto_pub(b.port, "mix/a", "for v5", qos=1)
    events = run(b, "js-mix", options=keep, expect=1)
    check(event(events, "connect")["sessionPresent"] is True and
          [m["text"] for m in messages(events)] == ["for v5"], "3.1.1 -> v5: %s" % events)
    h.mosquitto_pub(b.port, "mix/b", "for 3.1.1", qos=1)
    events = run(b, "js-mix", options={**V4, "clean": False}, expect=1)
    check(event(events, "connect")["sessionPresent"] is True and
          [m["text"] for m in messages(events)] == ["for 3.1.1"], "v5 -> 3.1.1: %s" % events)


def test_message_expiry_drops_a_queued_message(b):
    keep = {"clean": False, "properties": {"sessionExpiryInterval": 60}}
    run(b, "js-me", options=keep, subscribe=[("me/#", 1)])
    run(b, "js-me-pub", publish=[
        ("me/short", "short", 1, False, {"properties": {"messageExpiryInterval": 1}}),
        ("me/long", "long", 1, False, {"properties": {"messageExpiryInterval": 60}})])
    time.sleep(2.5)
    events = run(b, "js-me", options=keep, expect=1)
    got = messages(events)
    check([m["text"] for m in got] == ["long"], "got %s" % got)
    expiry = got[0]["properties"].get("messageExpiryInterval")
    check(expiry is not None and 55 <= expiry <= 58, "remaining expiry %s" % expiry)


def test_will_delay_and_will_properties(b):
    watcher = started(b, "js-watch", subscribe=[("w/#", 1)], expect=1)
    will = {"topic": "w/t", "payload": "gone", "qos": 1, "retain": False,
            "properties": {"willDelayInterval": 2, "contentType": "text/plain",
                           "userProperties": {"why": "test"}}}
    dying = started(b, "js-dying", wait="ready", stay=True,
                    options={"will": will, "properties": {"sessionExpiryInterval": 60}})
    t_kill = time.monotonic()
    dying.kill()  # the socket closes without DISCONNECT
    events = watcher.finish()
    after = time.monotonic() - t_kill
    got = messages(events)
    check([(m["topic"], m["text"]) for m in got] == [("w/t", "gone")], "got %s" % got)
    check(after >= 2, "the will came %.2f s after the close, before its 2 s delay" % after)
    p = got[0]["properties"] or {}
    check(p.get("contentType") == "text/plain" and p.get("userProperties") == {"why": "test"},
          "will properties %s" % p)


def test_topic_aliases_both_ways(b):
    topics = ["alias/a", "alias/b"] * 4
    sub = started(b, "js-alias-sub", subscribe=[("alias/#", 1)], expect=len(topics),
                  options={"properties": {"topicAliasMaximum": 5}})
    # MQTT.js assigns aliases itself (the CONNACK allows 10): Sol resolves them.
    run(b, "js-alias-pub", options={"autoAssignTopicAlias": True},
        publish=[(t, "m%d" % i, 1) for i, t in enumerate(topics)])
    got = messages(sub.finish())
    check([(m["topic"], m["text"]) for m in got] ==
          [(t, "m%d" % i) for i, t in enumerate(topics)], "got %s" % got)
    # Sol gave the subscriber aliases for the repeated topics (MQTT.js resolved them).
    aliased = [m for m in got if (m["properties"] or {}).get("topicAlias")]
    check(len(aliased) >= len(topics) - 2, "Sol used no aliases: %s" % got)


def test_mqtt5_over_websockets(b):
    ws = "ws://127.0.0.1:%d/mqtt" % b.ws_port
    sub = started(b, "js-ws-sub", u=ws, subscribe=[("ws5/#", 1)], expect=1,
                  subscribe_properties={"subscriptionIdentifier": 9})
    run(b, "js-ws-pub", u=ws, publish=[("ws5/t", "over ws", 1, False, {"properties": {
        "userProperties": {"k": "v"}, "contentType": "c"}})])
    got = messages(sub.finish())
    check([(m["text"], m["properties"]) for m in got] ==
          [("over ws", {"userProperties": {"k": "v"}, "contentType": "c",
                        "subscriptionIdentifier": 9})], "got %s" % got)


def main():
    r = h.Runner()
    tmp = tempfile.mkdtemp(prefix="sol-js5-")
    ensure_mqtt_js()
    passwd = os.path.join(tmp, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "alice", "secret"], check=True,
                   capture_output=True, timeout=30)
    acl = os.path.join(tmp, "acl")
    with open(acl, "w") as f:
        f.write("user alice\ntopic readwrite allowed/#\n")
    r.run(test_connack_properties_assigned_id_and_server_keep_alive,
          extra_config=["max_keepalive 30"])
    r.run(test_properties_forwarded_with_subscription_id_and_dropped_toward_311)
    r.run(test_puback_reason_codes_no_subscribers_and_invalid_utf8)
    r.run(test_acl_gives_puback_and_suback_0x87,
          extra_config=["password_file %s" % passwd, "acl_file %s" % acl])
    r.run(test_no_local_retain_as_published_and_retain_handling)
    r.run(test_session_expiry_survives_kill_9_and_moves_between_versions)
    r.run(test_message_expiry_drops_a_queued_message)
    r.run(test_will_delay_and_will_properties)
    r.run(test_topic_aliases_both_ways)
    ws_port = h.free_port()

    def with_ws(b):
        b.ws_port = ws_port
        wait_connectable(ws_port)
        test_mqtt5_over_websockets(b)
    with_ws.__name__ = test_mqtt5_over_websockets.__name__
    r.run(with_ws, listeners=["listener %d 127.0.0.1" % ws_port, "protocol websockets"])
    r.finish()


if __name__ == "__main__":
    main()
