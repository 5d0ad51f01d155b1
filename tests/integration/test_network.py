"""test_network.py - the network layer of the real broker: framing across
reads (partial and coalesced packets), large and slow transfers, malformed
input, the CONNECT deadline, keepalive expiry, IPv6 and unix listeners,
signals and the command line.

Each test gets its own broker (harness.Broker). Not for: MQTT semantics
beyond what is needed to drive the network layer (test_session*.py).
"""

import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

# ---- framing ----


def test_connect_sent_one_byte_at_a_time(b):
    c = h.Raw.tcp(b.port)
    for byte in h.connect_packet("byte-by-byte"):
        c.send(bytes([byte]))
        time.sleep(0.005)
    _, _, body = c.expect(h.CONNACK)
    check(body == b"\x00\x00", "CONNACK %r" % body)
    for byte in h.PINGREQ_BYTES:
        c.send(bytes([byte]))
        time.sleep(0.005)
    c.expect(h.PINGRESP)
    c.close()


def test_publish_split_at_every_offset(b):
    """A PUBLISH cut in two at each offset arrives whole."""
    c = h.mqtt_connect(b.port, "splitter")
    c.send(h.subscribe_packet(1, [("split/t", 0)]))
    c.expect(h.SUBACK)
    pkt = h.publish_packet("split/t", b"0123456789" * 30)
    for cut in range(1, len(pkt)):
        c.send(pkt[:cut])
        time.sleep(0.002)
        c.send(pkt[cut:])
        _, flags, body = c.expect(h.PUBLISH)
        topic, _, payload, _, _, _ = h.parse_publish(flags, body)
        check(topic == "split/t" and payload == b"0123456789" * 30, "cut %d garbled" % cut)
    c.close()


def test_many_packets_coalesced_in_one_write(b):
    """CONNECT, SUBSCRIBE, 600 PUBLISHes (~70 KB, several reads' worth, so
    packets straddle read boundaries) and a PINGREQ in a single sendall."""
    n = 600
    data = h.connect_packet("coalesced") + h.subscribe_packet(7, [("co/#", 0)])
    for i in range(n):
        data += h.publish_packet("co/%d" % i, b"x" * 100 + str(i).encode())
    data += h.PINGREQ_BYTES
    c = h.Raw.tcp(b.port)
    c.send(data)
    c.expect(h.CONNACK)
    c.expect(h.SUBACK)
    for i in range(n):
        _, flags, body = c.expect(h.PUBLISH)
        topic, _, payload, _, _, _ = h.parse_publish(flags, body)
        check(topic == "co/%d" % i, "message %d: topic %s (order or loss)" % (i, topic))
        check(payload == b"x" * 100 + str(i).encode(), "message %d: payload" % i)
    c.expect(h.PINGRESP)
    c.close()


def test_large_publish_round_trip(b):
    """A 3 MB PUBLISH: the input buffer grows for it and the output queue
    carries it across many partial writes."""
    payload = bytes(range(256)) * (3 * 4096)
    c = h.mqtt_connect(b.port, "large")
    c.send(h.subscribe_packet(1, [("big", 0)]))
    c.expect(h.SUBACK)
    c.send(h.publish_packet("big", payload))
    _, flags, body = c.expect(h.PUBLISH, timeout_s=20)
    _, _, got, _, _, _ = h.parse_publish(flags, body)
    check(got == payload, "payload differs (%d bytes vs %d)" % (len(got), len(payload)))
    c.close()


def test_slow_reader_loses_no_bytes(b):
    """A subscriber that stops reading while 16 x 1 MB QoS 1 messages are sent
    (beyond the loopback socket buffers, ~10 MB at most with autotuning:
    EAGAIN, partial writes) gets every byte, in order, once it reads again;
    other clients are served meanwhile. (Shrinking SO_RCVBUF would make the
    test slow instead: TCP zero-window probes back off to seconds.)"""
    n, size = 16, 1 << 20
    sub = h.mqtt_connect(b.port, "slow-sub", clean=False)
    sub.send(h.subscribe_packet(1, [("slow", 1)]))
    sub.expect(h.SUBACK)
    pub = h.mqtt_connect(b.port, "slow-pub")
    for i in range(n):
        pub.send(h.publish_packet("slow", bytes([i]) * size, qos=1, packet_id=i + 1))
        pub.expect(h.PUBACK, timeout_s=20)
    other = h.mqtt_connect(b.port, "bystander")
    other.send(h.PINGREQ_BYTES)
    other.expect(h.PINGRESP)
    time.sleep(0.5)
    for i in range(n):
        _, flags, body = sub.expect(h.PUBLISH, timeout_s=20)
        _, pid, payload, qos, _, _ = h.parse_publish(flags, body)
        check(payload == bytes([i]) * size, "message %d corrupted or out of order" % i)
        sub.send(h.ack_packet(h.PUBACK, pid))
    for c in (sub, pub, other):
        c.close()
    check("slow-sub: socket full" in b.log(), "the broker never hit EAGAIN: test too small")


def test_many_connections_at_once(b):
    """300 clients connect in a burst (more than one accept batch), each is
    served, and each abrupt close is noticed."""
    clients = [h.Raw.tcp(b.port) for _ in range(300)]
    for i, c in enumerate(clients):
        c.send(h.connect_packet("many-%d" % i) + h.PINGREQ_BYTES)
    for c in clients:
        c.expect(h.CONNACK)
        c.expect(h.PINGRESP)
    for c in clients:
        c.close()
    h.wait_until(lambda: b.log().count("connection closed by peer") >= 300, 10,
                 "300 closes in the log")


# ---- malformed input ----

MALFORMED = [
    # (name, send CONNECT first?, bytes, expected words in the log line)
    ("remaining length with a 5th byte", False, b"\x10\xff\xff\xff\xff\x01", "malformed"),
    ("reserved type 0", True, b"\x00\x00", "malformed"),
    ("reserved type 15", True, b"\xf0\x00", "malformed"),
    ("PINGREQ with flag bits set", True, b"\xc1\x00", "malformed PINGREQ"),
    ("SUBSCRIBE with flags 0", True, b"\x80\x06\x00\x01\x00\x01a\x00", "malformed SUBSCRIBE"),
    ("PUBLISH with QoS 3", True, b"\x36\x05\x00\x01a\x00\x01", "malformed PUBLISH"),
    ("oversize PUBLISH (header only)", True, b"\x30\xd0\x0f", "malformed"),
    ("CONNECT with a bad protocol name", False,
     h.connect_packet("bad-name", name="MQTZ"), "malformed CONNECT"),
    ("PINGREQ before CONNECT", False, h.PINGREQ_BYTES, "closing"),
    ("second CONNECT", True, h.connect_packet("again"), "closing"),
]


def test_malformed_input_closes_only_that_connection(b):
    bystander = h.mqtt_connect(b.port, "bystander")
    for i, (name, connect_first, data, words) in enumerate(MALFORMED):
        cid = "bad-%d" % i
        c = h.mqtt_connect(b.port, cid) if connect_first else h.Raw.tcp(b.port)
        before = b.log().count("closing")
        c.send(data)
        check(c.wait_closed(5), "%s: connection not closed" % name)
        c.close()
        h.wait_until(lambda: b.log().count("closing") > before, 5, "log line for %s" % name)
        line = [l for l in b.log().splitlines() if "closing" in l][-1]
        check(words in line, "%s: log line %r lacks %r" % (name, line, words))
        if connect_first:
            check(cid in line, "%s: log line %r does not name the client" % (name, line))
        fresh = h.mqtt_connect(b.port, "fresh-%d" % i)
        fresh.send(h.PINGREQ_BYTES)
        fresh.expect(h.PINGRESP)
        fresh.close()
    bystander.send(h.PINGREQ_BYTES)
    bystander.expect(h.PINGRESP)
    r = h.mosquitto_pub(b.port, "after/malformed", "still alive")
    check(r.returncode == 0, "mosquitto_pub after malformed input: %s" % r.stderr)


def test_unsupported_protocol_level_gets_connack_1(b):
    """[MQTT-3.1.2-2]: CONNACK 0x01 then close."""
    c = h.Raw.tcp(b.port)
    c.send(h.connect_packet("v6-client", level=6))  # MQTT 5 (level 5) is supported
    _, _, body = c.expect(h.CONNACK)
    check(body == b"\x00\x01", "CONNACK %r, wanted return code 1" % body)
    check(c.wait_closed(5), "not closed after CONNACK 1")


def test_garbage_flood_is_closed(b):
    """Random bytes claiming huge lengths never grow the broker's memory past
    the packet limit: the connection is closed at the length check."""
    c = h.Raw.tcp(b.port)
    c.send(h.connect_packet("flood"))
    c.expect(h.CONNACK)
    try:
        c.send(b"\x30\xff\xff\xff\x7f" + b"\x00" * 65536)
    except OSError:
        pass
    check(c.wait_closed(5), "flood not closed")


# ---- timers ----


def test_connect_deadline_closes_silent_connection(b):
    silent = h.Raw.tcp(b.port)
    partial = h.Raw.tcp(b.port)
    partial.send(h.connect_packet("slowloris")[:5])
    t0 = time.monotonic()
    check(silent.wait_closed(5), "silent connection still open after 5 s")
    check(partial.wait_closed(5), "half-sent CONNECT still open")
    elapsed = time.monotonic() - t0
    check(elapsed > 0.3, "closed too early (%.2f s)" % elapsed)
    b.wait_for_log("no CONNECT within")
    ok = h.mqtt_connect(b.port, "in-time")  # a real client is unaffected
    check(ok.is_open_for(1.0), "a connected client was closed by the CONNECT deadline")


def test_keepalive_expiry_closes_connection(b):
    idle = h.mqtt_connect(b.port, "idle", keepalive_s=1)
    t0 = time.monotonic()
    check(idle.wait_closed(4), "idle client not closed after 1.5 x keepalive")
    elapsed = time.monotonic() - t0
    check(1.2 < elapsed < 3.5, "closed after %.2f s, expected about 1.5 s" % elapsed)
    b.wait_for_log("keepalive expired")


def test_keepalive_kept_by_pings(b):
    busy = h.mqtt_connect(b.port, "pinger", keepalive_s=1)
    for _ in range(6):
        time.sleep(0.5)
        busy.send(h.PINGREQ_BYTES)
        busy.expect(h.PINGRESP)
    busy.close()


def test_keepalive_zero_disables_timer(b):
    c = h.mqtt_connect(b.port, "no-keepalive", keepalive_s=0)
    check(c.is_open_for(1.5), "keepalive 0 connection was closed (connect deadline 0.5 s)")


# ---- listeners ----


def test_ipv6_listener(b):
    c = h.mqtt_connect(b.port6, "v6-client", host="::1")
    c.send(h.PINGREQ_BYTES)
    c.expect(h.PINGRESP)
    r = h.mosquitto_pub(b.port6, "v6/t", "hi", extra=["-h", "::1"])
    check(r.returncode == 0, "mosquitto_pub over IPv6: %s" % r.stderr)


def test_unix_socket_listener(b):
    c = h.mqtt_connect(0, "unix-client", raw=h.Raw.unix(b.unix_path))
    c.send(h.PINGREQ_BYTES)
    c.expect(h.PINGRESP)
    c.close()
    r = h.mosquitto_pub(0, "unix/t", "hi", extra=["--unix", b.unix_path])
    check(r.returncode == 0, "mosquitto_pub over the unix socket: %s" % r.stderr)
    check(b.stop() == 0, "exit code")
    check(not os.path.exists(b.unix_path), "unix socket file left behind")


def test_mosquitto_clients_round_trip(b):
    sub = h.MosquittoSub(b.port, "rt/#", count=1)
    rc, lines, err = h.publish_until_received(b.port, sub, "rt/x", "hello sol")
    check(rc == 0 and lines and lines[0] == "rt/x hello sol", "sub got %r %r" % (lines, err))


# ---- signals and the command line ----


def test_sigterm_exits_0_with_clients_connected(b):
    clients = [h.mqtt_connect(b.port, "c%d" % i) for i in range(5)]
    half = h.Raw.tcp(b.port)
    half.send(b"\x30\x10\x00")
    time.sleep(0.1)
    check(b.stop(signal.SIGTERM) == 0, "SIGTERM exit code %s" % b.proc.returncode)
    check("received SIGTERM" in b.log(), "no shutdown line in the log")
    for c in clients:
        check(c.wait_closed(2), "client not closed at shutdown")


def test_sigint_exits_0(b):
    check(b.stop(signal.SIGINT) == 0, "SIGINT exit code %s" % b.proc.returncode)


def test_restart_after_kill9_on_same_data_dir(b):
    h.mqtt_connect(b.port, "before")
    b.restart(hard=True)
    c = h.mqtt_connect(b.port, "after")
    c.send(h.PINGREQ_BYTES)
    c.expect(h.PINGRESP)
    check(b.stop() == 0, "exit code after restart")


def test_flag_p_without_config_uses_defaults(b):
    b.args = ["-p", str(b.port)]
    b.start()
    check(os.path.isdir(os.path.join(b.tmp, "sol-data")), "./sol-data not created")
    b.wait_for_log("listening on 127.0.0.1:%d" % b.port)  # written just after listen()
    head = "\n".join(b.log().splitlines()[:8])
    for words in ("listening on 127.0.0.1:%d" % b.port, "sol-data", "stderr"):
        check(words in head, "first log lines lack %r:\n%s" % (words, head))


def test_startup_error_port_in_use(b):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", b.port))
        s.listen(1)
        b.start(wait_port=False)
        rc = b.wait_exit(10)
    check(rc not in (None, 0), "exit code %s with the port taken" % rc)
    check("127.0.0.1:%d" % b.port in b.log() and "bind" in b.log(), "message: %s" % b.log())


def test_startup_error_bad_config_line(b):
    with open(b.config_path, "a") as f:
        f.write("no_such_directive 1\n")
    b.start(wait_port=False)
    rc = b.wait_exit(10)
    check(rc not in (None, 0), "exit code %s with a bad config line" % rc)
    check("sol.conf:" in b.log(), "no FILE:LINE in %r" % b.log())


def test_help_and_version(b):
    for flag in ("-h", "--version"):
        r = subprocess.run([h.SOL, flag], capture_output=True, text=True, timeout=10)
        check(r.returncode == 0 and r.stdout, "%s: %s %r" % (flag, r.returncode, r.stderr))
    r = subprocess.run([h.SOL, "--bogus"], capture_output=True, text=True, timeout=10)
    check(r.returncode != 0, "--bogus accepted")


def main():
    r = h.Runner()
    quick = ["--connect-timeout", "0.5", "--max-packet-size", "1024"]
    r.run(test_connect_sent_one_byte_at_a_time)
    r.run(test_publish_split_at_every_offset)
    r.run(test_many_packets_coalesced_in_one_write)
    r.run(test_large_publish_round_trip)
    r.run(test_slow_reader_loses_no_bytes, args=["-v"])
    r.run(test_many_connections_at_once)
    r.run(test_malformed_input_closes_only_that_connection, args=quick)
    r.run(test_unsupported_protocol_level_gets_connack_1)
    r.run(test_garbage_flood_is_closed, args=quick)
    r.run(test_connect_deadline_closes_silent_connection, args=quick)
    r.run(test_keepalive_expiry_closes_connection)
    r.run(test_keepalive_kept_by_pings)
    r.run(test_keepalive_zero_disables_timer, args=quick)
    if h.ipv6_available():
        port6 = h.free_port(socket.AF_INET6, "::1")

        def ipv6(b):
            b.port6 = port6
            return test_ipv6_listener(b)
        ipv6.__name__ = "test_ipv6_listener"
        r.run(ipv6, listeners=["listener %d ::1" % port6])
    else:
        print("SKIP test_ipv6_listener (no IPv6 loopback)")
    unix_dir = h.tempfile.mkdtemp(prefix="sol-unix-")
    unix_path = os.path.join(unix_dir, "sol.sock")

    def unix(b):
        b.unix_path = unix_path
        return test_unix_socket_listener(b)
    unix.__name__ = "test_unix_socket_listener"
    r.run(unix, listeners=["listener 0 %s" % unix_path])
    h.shutil.rmtree(unix_dir, ignore_errors=True)
    r.run(test_mosquitto_clients_round_trip)
    r.run(test_sigterm_exits_0_with_clients_connected)
    r.run(test_sigint_exits_0)
    r.run(test_restart_after_kill9_on_same_data_dir)
    r.run(test_flag_p_without_config_uses_defaults, start=False, use_config=False)
    r.run(test_startup_error_port_in_use, start=False)
    r.run(test_startup_error_bad_config_line, start=False)
    r.run(test_help_and_version, start=False)
    r.finish()


if __name__ == "__main__":
    main()
