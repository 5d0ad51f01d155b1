"""test_retained_store.py - retained messages live in the store, not in RAM (issue 11).

20,000 retained messages of 2 KiB (40 MiB of payload) are published, then the
broker restarts: its anonymous RSS stays far below the payload total (the
start-up reads a count, no body), an exact SUBSCRIBE gets its one message, a
'+' SUBSCRIBE gets every match exactly once, and a SIGTERM/kill -9 in between
loses none of them. Every wait bounded.
"""

import os
import time

from harness import (PUBACK, Raw, Runner, check, connect_packet, mqtt_connect, next_publish,
                     publish_packet, subscribe_one, CONNACK)

COUNT = 20000
PAYLOAD_LEN = 2048
READ_TIMEOUT_S = 60


def payload_of(i):
    head = b"dev-%05d:" % i
    return head + b"x" * (PAYLOAD_LEN - len(head))


def publish_all(port):
    """QoS 0 retained publishes pipelined on one connection, then a QoS 1
    one: its PUBACK leaves after the commit that holds everything before it."""
    c = mqtt_connect(port, "retainer")
    batch = []
    for i in range(COUNT):
        batch.append(publish_packet("dev/%d/state" % i, payload_of(i), retain=True))
        if len(batch) == 500:
            c.send(b"".join(batch))
            batch = []
    c.send(b"".join(batch))
    c.send(publish_packet("dev/done/state", b"done", qos=1, packet_id=1, retain=True))
    c.expect(PUBACK, timeout_s=READ_TIMEOUT_S)
    c.close()


def rss_anon_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon for pid %d" % pid)


def test_restart_reads_no_payload_and_subscribes_read_the_store(broker):
    publish_all(broker.port)
    loaded_kb = rss_anon_kb(broker.proc.pid)
    broker.restart(hard=False)
    c = mqtt_connect(broker.port, "probe")  # the broker has finished its start-up
    started_kb = rss_anon_kb(broker.proc.pid)
    payload_kb = COUNT * PAYLOAD_LEN // 1024
    broker.log_note("RssAnon after publishing %d kB, after restart %d kB; payloads %d kB"
                    % (loaded_kb, started_kb, payload_kb))
    check(started_kb < payload_kb // 4,
          "RssAnon after restart %d kB: payloads (%d kB) were loaded" % (started_kb, payload_kb))
    check("recovered 0 persistent sessions, 0 subscriptions, %d retained" % (COUNT + 1)
          in broker.log(), "the start-up line counts the retained messages")

    check(subscribe_one(c, "dev/12345/state") == 0, "SUBACK")
    got = next_publish(c)
    check(got is not None and got[0] == "dev/12345/state" and got[1] == payload_of(12345),
          "exact filter: %r" % (got and got[:1]))
    check(next_publish(c, timeout_s=0.3) is None, "exact filter: one message")
    c.close()


def test_wildcard_subscribe_gets_every_match_once_after_kill9(broker):
    publish_all(broker.port)
    broker.restart(hard=True)
    c = mqtt_connect(broker.port, "wild")
    check(subscribe_one(c, "dev/+/state") == 0, "SUBACK")
    seen = set()
    deadline = time.monotonic() + READ_TIMEOUT_S
    for _ in range(COUNT + 10):
        got = next_publish(c, timeout_s=max(0.1, deadline - time.monotonic()))
        if got is None:
            break
        topic, payload = got[0], got[1]
        check(topic not in seen, "%s delivered twice" % topic)
        seen.add(topic)
        if topic != "dev/done/state":
            i = int(topic.split("/")[1])
            check(payload == payload_of(i), "payload of %s" % topic)
        if len(seen) == COUNT + 1:
            break
    check(len(seen) == COUNT + 1, "%d of %d retained messages delivered" % (len(seen), COUNT + 1))
    check(subscribe_one(c, "dev/7/+", packet_id=2) == 0, "SUBACK")
    got = next_publish(c)
    check(got is not None and got[0] == "dev/7/state", "'+' on the last level: %r" % (got and got[:1]))
    check(next_publish(c, timeout_s=0.3) is None, "'+' on the last level: one message")
    c.close()


if __name__ == "__main__":
    r = Runner()
    r.run(test_restart_reads_no_payload_and_subscribes_read_the_store)
    r.run(test_wildcard_subscribe_gets_every_match_once_after_kill9)
    r.finish()
