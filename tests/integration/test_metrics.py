#!/usr/bin/python3
"""test_metrics.py - the Prometheus endpoint (issue 13): metrics_listener,
GET /metrics scraped with real HTTP clients (urllib, and curl when installed),
the text exposition format, counters that follow real MQTT traffic, 404/405,
start-up errors, and hostile HTTP clients that must not stall MQTT.

Every broker runs on free 127.0.0.1 ports in a fresh temp dir; every wait is
bounded; only PIDs these tests started are signalled.
Not for: the $SYS topics (test_ops.py).
"""

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

from harness import (PUBACK, PUBLISH, SOL, Broker, MosquittoSub, Runner, check, free_port,
                     mqtt_connect, mosquitto_pub, next_publish, publish_packet, subscribe_one,
                     ack_packet, wait_until, IO_TIMEOUT_S)

HTTP_TIMEOUT_S = 5
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
LABEL_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"$')


# ---- scraping and parsing ----

def scrape(port, path="/metrics"):
    """(status, content type, body) of GET path, with urllib."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse(text):
    """Checks the exposition format; returns ({(name, labels): value}, {family: type}).
    Every sample belongs to a family announced by # HELP and # TYPE lines
    before it; names start with sol_; values are numbers."""
    samples, types, helps = {}, {}, set()
    check(text.endswith("\n"), "exposition does not end with a newline")
    for line in text.splitlines():
        check(line.strip() != "", "empty line in the exposition")
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check(NAME_RE.match(name) and name.startswith("sol_"), "bad HELP name %r" % line)
            check(name not in helps, "HELP twice for %s" % name)
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4, "bad TYPE line %r" % line)
            check(parts[3] in ("counter", "gauge", "histogram"), "bad type in %r" % line)
            check(parts[2] in helps, "TYPE before HELP: %r" % line)
            check(parts[2] not in types, "TYPE twice for %s" % parts[2])
            types[parts[2]] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        check(m is not None, "not a sample line: %r" % line)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if family not in types:
            family = name
        check(family in types, "sample %r before its # TYPE" % line)
        check(name.startswith("sol_"), "metric without the sol_ prefix: %r" % line)
        if types[family] == "counter":
            check(name.endswith("_total"), "counter %s without _total" % name)
        for label in filter(None, labels[1:-1].split(",")):
            check(LABEL_RE.match(label), "bad label %r in %r" % (label, line))
        v = float(value)
        check(v == v and v >= 0, "bad value %r" % line)
        check((name, labels) not in samples, "sample twice: %r" % line)
        samples[(name, labels)] = v
    return samples, types


def check_histogram(samples, name):
    buckets = [(k[1], v) for k, v in samples.items() if k[0] == name + "_bucket"]
    check(len(buckets) >= 2, "histogram %s has %d buckets" % (name, len(buckets)))
    bounds = []
    for labels, v in buckets:
        le = re.match(r'^\{le="([^"]+)"\}$', labels).group(1)
        bounds.append((float("inf") if le == "+Inf" else float(le), v))
    check(bounds[-1][0] == float("inf"), "%s: last bucket is not +Inf" % name)
    check([b for b, _ in bounds] == sorted(b for b, _ in bounds), "%s: bounds unsorted" % name)
    counts = [v for _, v in bounds]
    check(counts == sorted(counts), "%s: buckets not cumulative: %r" % (name, counts))
    check(samples[(name + "_count", "")] == counts[-1], "%s: _count != +Inf bucket" % name)
    check((name + "_sum", "") in samples, "%s: no _sum" % name)
    return counts


def get(samples, name, labels=""):
    check((name, labels) in samples, "no sample %s%s" % (name, labels))
    return samples[(name, labels)]


def metrics_test(extra_config=()):
    """Runs fn(broker, metrics_port) with a metrics_listener on a free port."""
    def wrap(fn):
        def run(r):
            port = free_port()

            def body(broker):
                return fn(broker, port)
            body.__name__ = fn.__name__
            r.run(body, extra_config=["metrics_listener %d 127.0.0.1" % port, *extra_config])
        run.__name__ = fn.__name__
        return run
    return wrap


# ---- tests ----

@metrics_test()
def test_scrape_follows_mqtt_traffic_in_exposition_format(broker, mport):
    status, ctype, text = scrape(mport)
    check(status == 200, "status %s" % status)
    check(ctype.startswith("text/plain; version=0.0.4"), "content type %r" % ctype)
    before, types = parse(text)
    for family, kind in (("sol_connections", "gauge"), ("sol_sessions", "gauge"),
                         ("sol_subscriptions", "gauge"), ("sol_retained_messages", "gauge"),
                         ("sol_messages_received_total", "counter"),
                         ("sol_messages_sent_total", "counter"),
                         ("sol_payload_received_bytes_total", "counter"),
                         ("sol_payload_sent_bytes_total", "counter"),
                         ("sol_messages_dropped_total", "counter"),
                         ("sol_inflight_messages", "gauge"), ("sol_queued_messages", "gauge"),
                         ("sol_queued_bytes", "gauge"), ("sol_store_used_bytes", "gauge"),
                         ("sol_store_map_size_bytes", "gauge"),
                         ("sol_store_commits_total", "counter"),
                         ("sol_store_commit_duration_seconds", "histogram")):
        check(types.get(family) == kind, "%s: type %r, want %s" % (family, types.get(family),
                                                                  kind))
    check_histogram(before, "sol_store_commit_duration_seconds")
    # Traffic: a subscriber at QoS 2, then 3 messages at each QoS, one retained.
    sub = MosquittoSub(broker.port, "m/#", count=9, qos=2, timeout_s=10)
    wait_until(lambda: get(parse(scrape(mport)[2])[0], "sol_subscriptions") == 1, IO_TIMEOUT_S,
               "the subscription to show in sol_subscriptions")
    for qos in (0, 1, 2):
        for i in range(3):
            mosquitto_pub(broker.port, "m/q%d" % qos, "x" * (10 + i), qos=qos,
                          extra=["-r"] if (qos, i) == (1, 0) else [])
    rc, lines, err = sub.wait()
    check(rc == 0 and len(lines) == 9, "subscriber got %d lines (rc %s): %s" % (len(lines), rc,
                                                                                err))
    after, _ = parse(scrape(mport)[2])
    for qos in (0, 1, 2):
        label = '{qos="%d"}' % qos
        got = get(after, "sol_messages_received_total", label) - \
            get(before, "sol_messages_received_total", label)
        check(got == 3, "received qos %d: +%d, want +3" % (qos, got))
        got = get(after, "sol_payload_received_bytes_total", label) - \
            get(before, "sol_payload_received_bytes_total", label)
        check(got == 33, "payload bytes qos %d: +%d, want +33" % (qos, got))
    sent = sum(get(after, "sol_messages_sent_total", '{qos="%d"}' % q) for q in range(3))
    check(sent >= 9, "sent %d, want >= 9" % sent)
    check(get(after, "sol_retained_messages") == 1, "retained count")
    for key, v in before.items():
        if key[0].endswith("_total") or key[0].endswith("_bucket") or key[0].endswith("_count"):
            check(after.get(key, -1) >= v, "counter %s%s went down" % key)
    check(get(after, "sol_store_commits_total") > get(before, "sol_store_commits_total"),
          "QoS 1/2 traffic made no commit")
    counts = check_histogram(after, "sol_store_commit_duration_seconds")
    check(counts[-1] == get(after, "sol_store_commits_total"), "histogram count != commits")
    check(get(after, "sol_connections_accepted_total") >= 10, "connections accepted")
    check(get(after, "sol_network_received_bytes_total") > 0, "network bytes")
    if shutil.which("curl"):
        r = subprocess.run(["curl", "-sS", "--max-time", str(HTTP_TIMEOUT_S), "-o", "-", "-w",
                            "\n%{http_code} %{content_type}",
                            "http://127.0.0.1:%d/metrics" % mport],
                           capture_output=True, text=True, timeout=HTTP_TIMEOUT_S + 5)
        body, _, status_line = r.stdout.rpartition("\n")
        check(r.returncode == 0 and status_line.startswith("200 text/plain; version=0.0.4"),
              "curl: rc %s, %r %r" % (r.returncode, status_line, r.stderr))
        curl_samples, curl_types = parse(body)
        check(curl_types == types, "curl saw other families")


@metrics_test()
def test_inflight_queued_and_offline_sessions_are_running_totals(broker, mport):
    c = mqtt_connect(broker.port, "reader", clean=False)
    subscribe_one(c, "q/t", qos=1)
    for i in range(3):
        mosquitto_pub(broker.port, "q/t", "m%d" % i, qos=1)
    pubs = [next_publish(c) for _ in range(3)]  # not acknowledged yet
    check(None not in pubs, "the subscriber got %r" % (pubs,))
    s, _ = parse(scrape(mport)[2])
    check(get(s, "sol_inflight_messages") == 3, "inflight %s, want 3"
          % get(s, "sol_inflight_messages"))
    check(get(s, "sol_sessions", '{state="online"}') == 1, "online sessions")
    for p in pubs:
        c.send(ack_packet(PUBACK, p[3]))
    wait_until(lambda: get(parse(scrape(mport)[2])[0], "sol_inflight_messages") == 0,
               IO_TIMEOUT_S, "inflight to drop to 0 after the PUBACKs")
    c.close()
    wait_until(lambda: get(parse(scrape(mport)[2])[0], "sol_sessions", '{state="offline"}') == 1,
               IO_TIMEOUT_S, "the persistent session to be offline")
    for i in range(4):
        mosquitto_pub(broker.port, "q/t", "abcde", qos=1)
    s, _ = parse(scrape(mport)[2])
    check(get(s, "sol_queued_messages") == 4, "queued %s, want 4" % get(s, "sol_queued_messages"))
    check(get(s, "sol_queued_bytes") == 20, "queued bytes %s" % get(s, "sol_queued_bytes"))
    check(get(s, "sol_sessions", '{state="online"}') == 0, "online sessions after close")
    # Reconnect: the queue moves to the window, then drains with PUBACKs.
    c = mqtt_connect(broker.port, "reader", clean=False)
    for _ in range(4):
        p = next_publish(c)
        check(p is not None, "a queued message did not come after the reconnect")
        c.send(ack_packet(PUBACK, p[3]))
    wait_until(lambda: (lambda m: get(m, "sol_queued_messages") == 0 and
                        get(m, "sol_inflight_messages") == 0)(parse(scrape(mport)[2])[0]),
               IO_TIMEOUT_S, "queue and window to drain")
    c.close()


@metrics_test()
def test_other_paths_are_404_and_other_methods_405(broker, mport):
    for path in ("/", "/metric", "/metrics/", "/metricsx", "/metrics/../x", "/%00"):
        status, _, _ = scrape(mport, path)
        check(status == 404, "%s: status %s, want 404" % (path, status))
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % mport, data=b"x=1",
                                 method="POST")
    try:
        urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S)
        check(False, "POST /metrics succeeded")
    except urllib.error.HTTPError as e:
        check(e.code == 405, "POST: status %s, want 405" % e.code)
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % mport, method="HEAD")
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
        check(r.status == 200 and r.read() == b"", "HEAD /metrics")
    check(scrape(mport)[0] == 200, "GET after the others")


def qos1_round_trip_s(port, conn, topic, i):
    t0 = time.monotonic()
    conn.send(publish_packet(topic, b"p%d" % i, qos=1, packet_id=i % 65535 + 1))
    for _ in range(4):
        pkt = conn.read_packet(timeout_s=IO_TIMEOUT_S)
        check(pkt is not None, "MQTT connection closed")
        if pkt[0] == PUBACK:
            return time.monotonic() - t0
    raise AssertionError("no PUBACK")


@metrics_test()
def test_hostile_http_clients_do_not_stall_mqtt(broker, mport):
    mqtt = mqtt_connect(broker.port, "timed")
    hostile = []
    try:
        # Many connections (past the limit of 8), half sending garbage, half
        # a request trickling a byte at a time, and one with 64 KB of headers.
        for i in range(24):
            s = socket.create_connection(("127.0.0.1", mport), timeout=HTTP_TIMEOUT_S)
            s.setblocking(False)
            hostile.append(s)
        worst = 0.0
        for i in range(60):
            for j, s in enumerate(hostile):
                try:
                    s.send(b"\x16\x03\x01garbage\r\n" if j % 2 else b"GET /metrics HTTP/1.1\r\nX-"[
                        i % 26:i % 26 + 1] or b"a")
                except OSError:
                    pass
            worst = max(worst, qos1_round_trip_s(broker.port, mqtt, "h/t", i))
            time.sleep(0.02)
        big = socket.create_connection(("127.0.0.1", mport), timeout=HTTP_TIMEOUT_S)
        try:
            big.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        except OSError:
            pass  # the endpoint may close it before it is all sent
        big.close()
        for i in range(20):
            worst = max(worst, qos1_round_trip_s(broker.port, mqtt, "h/t", 100 + i))
        check(worst < 0.5, "a QoS 1 round trip took %.3f s while HTTP clients misbehaved" % worst)
    finally:
        for s in hostile:
            s.close()
    # Once they are gone, scraping works again at once: their closes make room
    # (a scrape used to wait for the 5 s idle timeout here, see http.c).
    t0 = time.monotonic()
    check(scrape(mport)[0] == 200, "no scrape after the hostile clients left")
    check(time.monotonic() - t0 < 3, "the scrape after the hostile clients took %.1f s"
          % (time.monotonic() - t0))
    # An idle HTTP connection is closed by the endpoint's timeout.
    idle = socket.create_connection(("127.0.0.1", mport), timeout=10)
    t0 = time.monotonic()
    data = idle.recv(1)
    check(data == b"" and time.monotonic() - t0 < 9, "idle connection not closed by timeout")
    idle.close()
    qos1_round_trip_s(broker.port, mqtt, "h/t", 999)
    mqtt.close()


def test_start_up_errors_name_the_directive(r):
    def body(broker):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            with open(broker.config_path, "a") as f:
                f.write("metrics_listener %d 127.0.0.1\n" % port)
            proc = subprocess.run([SOL, "-c", broker.config_path], capture_output=True,
                                  text=True, timeout=15, cwd=broker.tmp)
            want = "%s:4: metrics_listener: bind 127.0.0.1 port %d: Address already in use" % (
                broker.config_path, port)
            check(proc.returncode == 1 and want in proc.stderr,
                  "rc %s, stderr %r (want %r)" % (proc.returncode, proc.stderr, want))
        finally:
            busy.close()
        with open(broker.config_path, "a") as f:
            f.write("metrics_listener 9100 localhost\n")
        proc = subprocess.run([SOL, "-c", broker.config_path, "--test-config"],
                              capture_output=True, text=True, timeout=15, cwd=broker.tmp)
        check(proc.returncode == 1 and
              "%s:5: metrics_listener: 'localhost' is not a numeric IPv4 or IPv6 address"
              % broker.config_path in proc.stderr, "test-config: %r" % proc.stderr)
    body.__name__ = "test_start_up_errors_name_the_directive"
    r.run(body, start=False)


def test_no_metrics_listener_means_no_endpoint(r):
    def body(broker):
        check("metrics:" not in broker.log(), "metrics mentioned without metrics_listener")
    body.__name__ = "test_no_metrics_listener_means_no_endpoint"
    r.run(body)


@metrics_test(extra_config=["sys_interval 1"])
def test_publish_over_a_v5_clients_maximum_packet_size_is_counted(broker, mport):
    """A PUBLISH dropped for an MQTT 5 client because it would exceed the
    Maximum Packet Size the client set in CONNECT is counted in
    sol_messages_dropped_total{reason="packet_too_large"} and in
    $SYS/broker/messages/dropped/packet too large (and the total)."""
    import harness as h
    watcher = mqtt_connect(broker.port, "sys-watch")
    check(subscribe_one(watcher, "$SYS/broker/messages/dropped/packet too large", 0) == 0,
          "$SYS refused")
    small, _, _ = h.mqtt5_connect(broker.port, "small-mps", props=h.props_block(
        h.prop(h.P_MAXIMUM_PACKET_SIZE, 64)))
    small.send(h.subscribe5_packet(1, [("mps/#", 1)]))
    small.expect(h.SUBACK)
    pub = mqtt_connect(broker.port, "big-pub")
    for pid, payload in ((1, b"x" * 100), (2, b"y" * 200), (3, b"small")):
        pub.send(publish_packet("mps/t", payload, qos=1, packet_id=pid))
        pub.expect(PUBACK)
    m = h.next_publish5(small)
    check(m is not None and m["payload"] == b"small", "the small message: %r" % m)
    samples, _ = parse(scrape(mport)[2])
    got = get(samples, "sol_messages_dropped_total", '{reason="packet_too_large"}')
    check(got == 2, "packet_too_large drops: %s, want 2" % got)
    check(get(samples, "sol_messages_dropped_total", '{reason="output_buffer"}') == 0,
          "a too-large drop counted as output_buffer")
    deadline = time.monotonic() + 10
    seen = None
    for _ in range(100):
        if time.monotonic() > deadline or seen == b"2":
            break
        r = next_publish(watcher, timeout_s=2)
        if r is not None and r[0] == "$SYS/broker/messages/dropped/packet too large":
            seen = r[1]
    check(seen == b"2", "$SYS/broker/messages/dropped/packet too large: %r, want 2" % seen)
    for c in (watcher, small, pub):
        c.close()


def main():
    r = Runner()
    for test in (test_scrape_follows_mqtt_traffic_in_exposition_format,
                 test_inflight_queued_and_offline_sessions_are_running_totals,
                 test_publish_over_a_v5_clients_maximum_packet_size_is_counted,
                 test_other_paths_are_404_and_other_methods_405,
                 test_hostile_http_clients_do_not_stall_mqtt,
                 test_start_up_errors_name_the_directive,
                 test_no_metrics_listener_means_no_endpoint):
        test(r)
    r.finish()


if __name__ == "__main__":
    main()
