"""test_security.py - attacks on the ACL, the will and pre-CONNECT input.

Each test is an attack that worked against main a8fc218 (issue 9), written
first and watched to succeed, then fixed:
- READ is checked on every delivery path: live QoS 0/1/2 to clean and
  persistent sessions, a clean session's waiting queue, a persistent
  session's offline queue, an inflight resend after an ACL reload, retained
  messages on subscribe, and wills.
- A refused CONNECT (ACL, password, identifier, protocol, $SYS will) never
  leaves a will.
- Before CONNACK 0 no packet may be larger than a CONNECT can be, and the
  first byte must be CONNECT's: anything else is closed at once.
- Topics and filters deeper than max_topic_levels are refused.

Raw sockets throughout (exact packets, exact orders); every wait bounded.
"""

import os
import signal
import socket
import subprocess

import harness
from harness import (CONNACK, PUBACK, SUBACK, IO_TIMEOUT_S, Raw, Runner, TestFailure, ack_packet,
                     check, connect_packet, publish_packet, subscribe_one, subscribe_packet,
                     wait_until, BUILD_DIR)

SOLCTL = os.path.join(BUILD_DIR, "solctl")
RUN_TIMEOUT_S = 30
QUIET_S = 0.5  # "nothing more arrives": a bounded wait, not a timing claim

# alice may read and write public/# only; bob and carol anything.
ACL = ("user alice\ntopic readwrite public/#\n"
       "user bob\ntopic readwrite #\n"
       "user carol\ntopic readwrite #\n")
USERS = [("alice", "a"), ("bob", "b"), ("carol", "c")]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def add_user(path, user, password):
    r = subprocess.run([SOLCTL, "passwd", "-b", path, user, password], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT_S)
    check(r.returncode == 0, "solctl passwd failed: %r" % (r.stderr,))


def start_with_acl(broker, extra=(), acl=ACL):
    """Starts the broker with the users above, the ACL and extra config lines."""
    pw = os.path.join(broker.tmp, "passwd")
    for user, password in USERS:
        add_user(pw, user, password)
    acl_path = write(os.path.join(broker.tmp, "acl"), acl)
    with open(broker.config_path, "a") as f:
        f.write("\n".join(["password_file %s" % pw, "acl_file %s" % acl_path,
                           "allow_anonymous false", *extra]) + "\n")
    broker.start()
    return acl_path


def login(broker, user, client_id=None, clean=True, will=None):
    c = Raw.tcp(broker.port)
    password = dict(USERS)[user]
    c.send(connect_packet(client_id or user, clean=clean, will=will, username=user,
                          password=password))
    _, _, body = c.expect(CONNACK)
    check(body[1] == 0, "CONNACK %d for %s" % (body[1], user))
    return c


def connack_code(broker, client_id, user=None, password=None, clean=True, will=None, level=4):
    """The CONNACK return code, or None when the broker closed without one."""
    c = Raw.tcp(broker.port)
    try:
        if user is not None and password is None:
            password = dict(USERS).get(user, "x")
        c.send(connect_packet(client_id, clean=clean, will=will, username=user,
                              password=password, level=level))
        pkt = c.read_packet()
        if pkt is None:
            return None
        check(pkt[0] == CONNACK, "expected CONNACK, got %r" % (pkt,))
        return pkt[2][1]
    finally:
        c.close()


subscribe = subscribe_one


def next_publish(c, timeout_s=IO_TIMEOUT_S, ack=True):
    """harness.next_publish, acknowledging QoS 1 unless told not to."""
    return harness.next_publish(c, timeout_s, ack)


def publish_acked(c, topic, payload, qos=1, packet_id=1, retain=False):
    """Publishes and waits for the PUBACK (QoS 1) or PUBREC (QoS 2)."""
    c.send(publish_packet(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
    c.expect(PUBACK if qos == 1 else 5)


def expect_only(c, topic, what):
    """The next PUBLISH c gets is on topic (nothing denied before it), and nothing follows."""
    got = next_publish(c)
    check(got is not None and got[0] == topic, "%s: got %r before/instead of %s"
          % (what, got, topic))
    more = next_publish(c, QUIET_S)
    check(more is None, "%s: more arrived: %r" % (what, more))


# ---- READ on every delivery path ----

def test_read_denied_live_to_clean_session_at_qos_1_and_2(broker):
    start_with_acl(broker)
    for qos in (1, 2):
        alice = login(broker, "alice")
        check(subscribe(alice, "#", qos) == qos, "subscribe # at QoS %d refused" % qos)
        bob = login(broker, "bob", "bob%d" % qos)
        publish_acked(bob, "secret/x", b"for bob only", qos=1, packet_id=1)
        publish_acked(bob, "secret/y", b"for bob only", qos=2, packet_id=2)
        publish_acked(bob, "public/marker", b"ok", qos=1, packet_id=3)
        expect_only(alice, "public/marker", "clean session, subscribed at QoS %d" % qos)
        alice.close()
        bob.close()


def test_read_denied_live_to_persistent_session(broker):
    start_with_acl(broker)
    alice = login(broker, "alice", clean=False)
    check(subscribe(alice, "#", 1) == 1, "subscribe refused")
    bob = login(broker, "bob")
    publish_acked(bob, "secret/x", b"no", qos=1)
    publish_acked(bob, "public/marker", b"ok", qos=1, packet_id=2)
    expect_only(alice, "public/marker", "persistent session, live")


def test_read_denied_in_clean_sessions_waiting_queue(broker):
    # A window of one: the second and third messages wait in the clean
    # session's in-memory queue and are sent when the first is acked.
    start_with_acl(broker, ["max_inflight_messages 1"])
    alice = login(broker, "alice")
    check(subscribe(alice, "#", 1) == 1, "subscribe refused")
    bob = login(broker, "bob")
    publish_acked(bob, "public/1", b"1", qos=1, packet_id=1)
    first = next_publish(alice, ack=False)
    check(first is not None and first[0] == "public/1", "first: %r" % (first,))
    publish_acked(bob, "secret/x", b"no", qos=1, packet_id=2)
    publish_acked(bob, "public/2", b"2", qos=1, packet_id=3)
    alice.send(ack_packet(PUBACK, 1))
    expect_only(alice, "public/2", "clean session's waiting queue")


def test_read_denied_in_offline_queue(broker):
    start_with_acl(broker)
    alice = login(broker, "alice", clean=False)
    check(subscribe(alice, "#", 1) == 1, "subscribe refused")
    alice.close()
    wait_until(lambda: "alice" in broker.log() and "closing" in broker.log(), IO_TIMEOUT_S,
               "alice to be gone")
    bob = login(broker, "bob")
    publish_acked(bob, "secret/x", b"no", qos=1)
    publish_acked(bob, "public/marker", b"ok", qos=1, packet_id=2)
    alice = login(broker, "alice", clean=False)
    expect_only(alice, "public/marker", "offline queue")


def test_read_denied_for_inflight_resend_after_acl_reload(broker):
    # alice may read secret/# at first, gets secret/x and leaves without
    # acking it; the ACL then takes secret/# away (SIGHUP). Her reconnect must
    # not resend secret/x (with DUP) from the inflight window.
    acl_path = start_with_acl(broker, acl=ACL.replace("topic readwrite public/#",
                                                       "topic readwrite #", 1))
    alice = login(broker, "alice", clean=False)
    check(subscribe(alice, "#", 1) == 1, "subscribe refused")
    bob = login(broker, "bob")
    publish_acked(bob, "secret/x", b"once allowed", qos=1)
    got = next_publish(alice, ack=False)
    check(got is not None and got[0] == "secret/x", "before the reload: %r" % (got,))
    alice.close()
    write(acl_path, ACL)
    broker.send_signal(signal.SIGHUP)
    broker.wait_for_log("SIGHUP: reloaded")
    publish_acked(bob, "public/marker", b"ok", qos=1, packet_id=2)
    alice = login(broker, "alice", clean=False)
    expect_only(alice, "public/marker", "inflight resend after the ACL changed")


def test_read_denied_for_retained_on_subscribe(broker):
    start_with_acl(broker)
    bob = login(broker, "bob")
    publish_acked(bob, "secret/r", b"retained secret", qos=1, retain=True)
    publish_acked(bob, "public/r", b"retained public", qos=1, packet_id=2, retain=True)
    for qos in (0, 1, 2):
        alice = login(broker, "alice", "alice%d" % qos)
        check(subscribe(alice, "#", qos) == qos, "subscribe refused")
        expect_only(alice, "public/r", "retained on subscribe at QoS %d" % qos)
        alice.close()


def test_read_denied_for_wills(broker):
    start_with_acl(broker)
    alice = login(broker, "alice")
    check(subscribe(alice, "#", 1) == 1, "subscribe refused")
    carol = login(broker, "carol", will=("secret/w", b"carol's will", 1, False))
    carol.sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the will fires
    carol.close()
    broker.wait_for_log("publishing will")
    bob = login(broker, "bob")
    publish_acked(bob, "public/marker", b"ok", qos=1)
    expect_only(alice, "public/marker", "will")


# ---- no will from a refused CONNECT ----

def test_refused_connect_never_leaves_a_will(broker):
    start_with_acl(broker)
    bob = login(broker, "bob")
    check(subscribe(bob, "#", 1) == 1, "subscribe refused")
    will = ("secret/w", b"will of a refused client", 1, True)
    public_will = ("public/w", b"will of a refused client", 1, True)
    refusals = [
        ("ACL denies the will topic", dict(client_id="a1", user="alice", will=will), 5),
        ("bad password", dict(client_id="a2", user="alice", password="wrong",
                              will=public_will), 4),
        ("$SYS will topic", dict(client_id="b1", user="bob",
                                 will=("$SYS/broker/uptime", b"forged", 0, True)), 5),
        ("empty id without clean session", dict(client_id="", user="bob", clean=False,
                                                 will=public_will), 2),
        ("unsupported protocol level", dict(client_id="b2", user="bob", level=9,
                                            will=public_will), 1),
    ]
    for what, kwargs, want in refusals:
        code = connack_code(broker, **kwargs)
        check(code == want, "%s: CONNACK %r, want %d" % (what, code, want))
    publish_acked(login(broker, "bob", "bob-marker"), "public/marker", b"ok", qos=1)
    expect_only(bob, "public/marker", "refused clients' wills")
    # Nor was any of them retained.
    late = login(broker, "bob", "late")
    check(subscribe(late, "#", 1) == 1, "subscribe refused")
    more = next_publish(late, QUIET_S)
    check(more is None, "a refused client's will was retained: %r" % (more,))


def test_will_to_its_own_persistent_session_does_not_crash(broker):
    # A persistent client whose QoS 2 will matches its own subscription: the
    # will was queued for the closing connection itself and sent after it was
    # freed (a use-after-free found by tests/fuzz/fuzz_session.c).
    broker.start()
    c = Raw.tcp(broker.port)
    c.send(connect_packet("selfwill", clean=False, will=("w/x", b"bye", 2, True)))
    c.expect(CONNACK)
    check(subscribe_one(c, "w/#", 2) == 2, "subscribe refused")
    c.sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the will fires
    c.close()
    broker.wait_for_log("publishing will")
    back = Raw.tcp(broker.port)
    back.send(connect_packet("selfwill", clean=False))
    _, _, body = back.expect(CONNACK)
    check(body[0] & 1 == 1, "session lost")
    got = next_publish(back)
    check(got is not None and got[0] == "w/x" and got[1] == b"bye", "own will: %r" % (got,))


# ---- input before CONNECT ----

def closed_quickly(c, what, bound_s=2.0):
    """The broker closes c within bound_s (a correctness bound: the CONNECT
    deadline in these tests is 30 s)."""
    check(c.wait_closed(bound_s), "%s: still open after %.1f s" % (what, bound_s))


def test_first_byte_must_be_connect(broker):
    broker.args += ["--connect-timeout", "30"]
    broker.start()
    attacks = [
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n"),
        ("a TLS ClientHello on the plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ("a PUBLISH announcing 256 MB", b"\x30\xff\xff\xff\x7f" + b"x" * 1000),
        ("a SUBSCRIBE first", subscribe_packet(1, [("#", 0)])[:3]),
        ("CONNECT with reserved flags [MQTT-2.2.2-2]", b"\x11\x10"),
    ]
    for what, data in attacks:
        c = Raw.tcp(broker.port)
        c.send(data)
        closed_quickly(c, what)
        c.close()
    # A real client still gets in.
    c = Raw.tcp(broker.port)
    c.send(connect_packet("fine"))
    c.expect(CONNACK)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise TestFailure("no VmRSS for %d" % pid)


def send_until_closed(sock, data, bound_s):
    """Sends data until done or the broker closes; True when closed."""
    sock.settimeout(bound_s)
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return True
    except OSError:
        return True
    return False


def test_pre_connect_packet_larger_than_a_connect_is_closed(broker):
    # 40 unauthenticated sockets announcing a 256 MB CONNECT, 4 MB sent each:
    # 168 MB of broker memory before the fix. A CONNECT is at most ~320 KB.
    broker.args += ["--connect-timeout", "30"]
    broker.start()
    before = rss_bytes(broker.proc.pid)
    socks = []
    chunk = b"\x10\xff\xff\xff\x7f" + b"\x00" * (4 << 20)
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=IO_TIMEOUT_S)
        send_until_closed(s, chunk, 2.0)
        socks.append(s)
    grown = rss_bytes(broker.proc.pid) - before
    for i, s in enumerate(socks):
        closed_quickly(Raw(s), "oversized CONNECT #%d" % i)
        s.close()
    print("  40 oversized pre-CONNECT sockets: broker RSS grew by %.1f MB" % (grown / 2**20))
    check(grown < 32 << 20, "broker RSS grew by %d MB" % (grown >> 20))
    # The largest legitimate CONNECT still gets in: 64 KB strings everywhere.
    big = "x" * 65000
    c = Raw.tcp(broker.port)
    c.send(connect_packet(big[:200], will=("w/" + big[:60000], big.encode(), 0, False),
                          username=big, password=big))
    _, _, body = c.expect(CONNACK)
    check(body[1] == 0, "large legitimate CONNECT refused: %d" % body[1])


# ---- topic depth ----

def levels(n, word="a"):
    return "/".join([word] * n)


def test_topic_and_filter_depth_limited_to_200_by_default(broker):
    broker.start()
    c = Raw.tcp(broker.port)
    c.send(connect_packet("deep"))
    c.expect(CONNACK)
    check(subscribe(c, levels(200), 1) == 1, "200 levels refused")
    check(subscribe(c, levels(201), 1, packet_id=2) == 0x80, "201 levels granted")
    check(subscribe(c, levels(30000), 1, packet_id=3) == 0x80, "30,000 levels granted")
    c.send(publish_packet(levels(200), b"deep enough", qos=1, packet_id=4))
    got = next_publish(c)  # the delivery may come before the PUBACK; next_publish skips it
    check(got is not None and got[1] == b"deep enough", "200-level publish: %r" % (got,))
    c.send(publish_packet(levels(201), b"too deep", qos=1, packet_id=5))
    closed_quickly(c, "a 201-level PUBLISH")
    # A will topic is a topic too.
    w = Raw.tcp(broker.port)
    w.send(connect_packet("deep-will", will=(levels(201), b"w", 0, False)))
    pkt = w.read_packet()
    check(pkt is None or (pkt[0] == CONNACK and pkt[2][1] != 0),
          "a 201-level will accepted: %r" % (pkt,))


def test_max_topic_levels_directive(broker):
    with open(broker.config_path, "a") as f:
        f.write("max_topic_levels 3\n")
    broker.start()
    c = Raw.tcp(broker.port)
    c.send(connect_packet("shallow"))
    c.expect(CONNACK)
    check(subscribe(c, "a/b/c", 0) == 0, "3 levels refused")
    check(subscribe(c, "a/+/#", 0, packet_id=2) == 0, "3-level wildcard refused")
    check(subscribe(c, "a/b/c/d", 0, packet_id=3) == 0x80, "4 levels granted")


def test_deep_filters_cannot_exhaust_memory(broker):
    # 200 clients each subscribing to one 30,000-level filter (60 KB): 912 MB
    # of broker memory before the fix.
    broker.start()
    before = rss_bytes(broker.proc.pid)
    deep = levels(30000, "x")
    clients = []
    for i in range(200):
        c = Raw.tcp(broker.port)
        c.send(connect_packet("deep%d" % i))
        c.expect(CONNACK)
        c.send(subscribe_packet(1, [(deep, 0)]))
        clients.append(c)
    for i, c in enumerate(clients):
        _, _, body = c.expect(SUBACK)
        check(body[2] == 0x80, "client %d: deep filter granted" % i)
        c.close()
    grown = rss_bytes(broker.proc.pid) - before
    print("  200 clients x one 30,000-level filter: broker RSS grew by %.1f MB" % (grown / 2**20))
    check(grown < 64 << 20, "broker RSS grew by %d MB" % (grown >> 20))


def main():
    r = Runner()
    for fn in (test_read_denied_live_to_clean_session_at_qos_1_and_2,
               test_read_denied_live_to_persistent_session,
               test_read_denied_in_clean_sessions_waiting_queue,
               test_read_denied_in_offline_queue,
               test_read_denied_for_inflight_resend_after_acl_reload,
               test_read_denied_for_retained_on_subscribe,
               test_read_denied_for_wills,
               test_refused_connect_never_leaves_a_will):
        r.run(fn, start=False)
    for fn in (test_will_to_its_own_persistent_session_does_not_crash,
               test_first_byte_must_be_connect,
               test_pre_connect_packet_larger_than_a_connect_is_closed,
               test_topic_and_filter_depth_limited_to_200_by_default,
               test_max_topic_levels_directive,
               test_deep_filters_cannot_exhaust_memory):
        r.run(fn, start=False)
    r.finish()


if __name__ == "__main__":
    main()
