#!/usr/bin/python3
"""test_ops.py - operating Sol (issue 5): each configuration directive's
observable effect, every start-up error with FILE:LINE, --test-config, -d with
pid_file, password and ACL files, SIGHUP reload and log reopen, $SYS.

Every broker runs on a free 127.0.0.1 port in a fresh temp dir; every wait is
bounded; only PIDs these tests started are signalled.
Not for: MQTT semantics without configuration (test_broker.py), the network
layer's own limits (test_network.py).
"""

import os
import re
import signal
import socket
import struct
import subprocess
import time

from harness import (CONNACK, PUBACK, UNSUBACK, UNSUBSCRIBE, SOL, BUILD_DIR, Raw, Runner, check,
                     connect_packet, free_port, mqtt_connect, mqtt_string, next_publish, packet,
                     publish_packet, subscribe_one, ack_packet, wait_until, IO_TIMEOUT_S)

SOLCTL = os.path.join(BUILD_DIR, "solctl")
RUN_TIMEOUT_S = 15


# ---- helpers ----

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def run_sol(args, cwd=None):
    """Runs sol to completion (bounded); returns the CompletedProcess."""
    return subprocess.run([SOL, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          cwd=cwd)


def add_user(path, user, password):
    r = subprocess.run([SOLCTL, "passwd", "-b", path, user, password], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT_S)
    check(r.returncode == 0, "solctl passwd failed: %r" % (r.stderr,))


def connack_code(port, client_id, username=None, password=None, keepalive_s=60):
    """The CONNACK return code, or None when the broker closed without one."""
    c = Raw.tcp(port)
    try:
        c.send(connect_packet(client_id, keepalive_s=keepalive_s, username=username,
                              password=password))
        pkt = c.read_packet()
        if pkt is None:
            return None
        check(pkt[0] == CONNACK, "expected CONNACK, got %r" % (pkt,))
        return pkt[2][1]
    finally:
        c.close()


def login(port, client_id, username=None, password=None, clean=True):
    c = Raw.tcp(port)
    c.send(connect_packet(client_id, username=username, password=password, clean=clean))
    _, _, body = c.expect(CONNACK)
    check(body[1] == 0, "CONNACK %d for %s" % (body[1], client_id))
    return c


subscribe = subscribe_one


def restart_with(broker, lines):
    """Stops broker, appends config lines, starts it again."""
    broker.stop()
    with open(broker.config_path, "a") as f:
        f.write("\n".join(lines) + "\n")
    broker.start()


# ---- config errors and --test-config ----

CONFIG_ERRORS = [
    ("listener 1883\nbogus_directive 1\n", 2, "unknown directive 'bogus_directive'"),
    ("max_inflight_messages x\n", 1, "max_inflight_messages: 'x' is not an integer"),
    ("message_size_limit 268435456\n", 1,
     "message_size_limit: '268435456' is out of range 0..268435455"),
    ("max_keepalive -1\n", 1, "max_keepalive: '-1' is out of range 0..65535"),
    ("allow_anonymous maybe\n", 1, "allow_anonymous: 'maybe' is not true or false"),
    ("\ncafile /x\n", 2, "cafile: must follow a listener line"),
    ("listener 1\ntls_version tlsv1\n", 2,
     "tls_version: 'tlsv1' is not tlsv1.2 or tlsv1.3"),
    ("log_dest topic\n", 1, "log_dest: 'topic' is not one of stderr, stdout, syslog, none, file PATH"),
    ("persistent_client_expiration 5\n", 1,
     "persistent_client_expiration: '5' is not a duration (a positive number followed by h, "
     "d, w, m or y)"),
    ("include_dir /nonexistent/sol.d\n", 1,
     "include_dir: cannot read /nonexistent/sol.d: No such file or directory"),
    ("sys_interval\n", 1, "sys_interval: missing value"),
    ("retain_available true false\n", 1, "retain_available: unexpected extra value 'false'"),
    ("listener 1883\nper_listener_settings true\n", 2,
     "per_listener_settings: must come before the first listener"),
    ("per_listener_settings true\npassword_file /x\n", 2,
     "password_file: must follow a listener line (per_listener_settings is true)"),
]


def test_every_config_error_names_file_and_line(broker):
    for i, (text, line, message) in enumerate(CONFIG_ERRORS):
        path = write(os.path.join(broker.tmp, "bad%d.conf" % i), text)
        for extra in ([], ["--test-config"]):
            r = run_sol(["-c", path, *extra], cwd=broker.tmp)
            want = "sol: %s:%d: %s\n" % (path, line, message)
            check(r.returncode == 1, "%s %s: exit %d, want 1" % (text, extra, r.returncode))
            check(r.stderr.endswith(want), "%r %s: stderr %r, want %r" % (text, extra, r.stderr,
                                                                          want))
    check(not os.path.exists(os.path.join(broker.tmp, "sol-data")), "a store was created")


def test_unreadable_config_password_acl_and_tls_files(broker):
    r = run_sol(["-c", os.path.join(broker.tmp, "missing.conf")])
    check(r.returncode == 1 and "missing.conf: cannot read: No such file or directory" in r.stderr,
          "missing config: %r" % (r.stderr,))
    pw = write(os.path.join(broker.tmp, "passwd"), "alice:$7$101$bad\n")
    conf = write(os.path.join(broker.tmp, "a.conf"), "password_file %s\n" % pw)
    r = run_sol(["-c", conf])
    check(r.returncode == 1 and r.stderr.startswith("sol: %s:1: " % pw), "passwd: %r" % r.stderr)
    acl = write(os.path.join(broker.tmp, "acl"), "topic read\nfrobnicate x\n")
    conf = write(os.path.join(broker.tmp, "b.conf"), "acl_file %s\n" % acl)
    r = run_sol(["-c", conf])
    check(r.returncode == 1 and r.stderr.startswith("sol: %s:2: " % acl), "acl: %r" % r.stderr)
    conf = write(os.path.join(broker.tmp, "c.conf"),
                 "listener %d 127.0.0.1\ncertfile /nonexistent/c.pem\nkeyfile /nonexistent/k.pem\n"
                 % free_port())
    r = run_sol(["-c", conf, "--test-config"])
    check(r.returncode == 1 and "%s:1: listener" % conf in r.stderr
          and "certfile /nonexistent/c.pem: No such file or directory" in r.stderr,
          "tls: %r" % r.stderr)
    conf = write(os.path.join(broker.tmp, "d.conf"), "listener 1\ncertfile /etc/hostname\n")
    r = run_sol(["-c", conf])
    check(r.returncode == 1 and "certfile and keyfile must be given together" in r.stderr,
          "cert without key: %r" % r.stderr)


def test_test_config_ok_never_binds(broker):
    pw = os.path.join(broker.tmp, "passwd")
    add_user(pw, "alice", "secret")
    with open(broker.config_path, "a") as f:
        f.write("password_file %s\n" % pw)
    r = run_sol(["-c", broker.config_path, "--test-config"])
    check(r.returncode == 0 and r.stdout == "configuration OK\n", "test-config: %r" % (r,))
    # Nothing listens and no store was made.
    with socket.socket() as s:
        s.bind(("127.0.0.1", broker.port))
    check(not os.path.exists(broker.data_dir), "--test-config created the store")


def test_shipped_sol_conf_passes_test_config(broker):
    src = os.environ.get("SOL_SOURCE_DIR", os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))))
    r = run_sol(["-c", os.path.join(src, "conf", "sol.conf"), "--test-config"])
    check(r.returncode == 0 and r.stdout == "configuration OK\n", "conf/sol.conf: %r" % (r,))


# ---- limits ----

def test_message_size_limit_closes_larger_packet(broker):
    restart_with(broker, ["message_size_limit 100"])
    sub = login(broker.port, "sub")
    check(subscribe(sub, "t") == 0, "subscribe refused")
    pub = login(broker.port, "pub")
    pub.send(publish_packet("t", b"x" * 100))
    got = next_publish(sub)
    check(got is not None and got[1] == b"x" * 100, "payload at the limit not delivered")
    # A packet too large for any 100-byte payload (limit + 65544) is refused
    # from its header: the broker closes before the body arrives.
    big = publish_packet("t", b"y" * (100 + 65544))
    pub.send(big[:10])
    check(pub.wait_closed(), "connection not closed after a too large packet header")
    check(sub.is_open_for(0.3), "the subscriber was dropped too")


def test_max_inflight_messages_window(broker):
    restart_with(broker, ["max_inflight_messages 1"])
    sub = login(broker.port, "sub")
    check(subscribe(sub, "q", qos=1) == 1, "subscribe qos 1 refused")
    pub = login(broker.port, "pub")
    for i in range(3):
        pub.send(publish_packet("q", b"m%d" % i, qos=1, packet_id=i + 1))
        pub.expect(PUBACK)
    first = next_publish(sub)
    check(first is not None and first[1] == b"m0", "first message: %r" % (first,))
    check(next_publish(sub, 0.5) is None, "a second message went out before the first PUBACK")
    sub.send(ack_packet(PUBACK, first[3]))
    second = next_publish(sub)
    check(second is not None and second[1] == b"m1", "second message: %r" % (second,))


def test_max_queued_messages_drops_beyond_limit(broker):
    restart_with(broker, ["max_queued_messages 2", "max_inflight_messages 1"])
    sub = login(broker.port, "offline", clean=False)
    check(subscribe(sub, "q", qos=1) == 1, "subscribe refused")
    sub.send(b"\xe0\x00")
    sub.close()
    time.sleep(0.2)
    pub = login(broker.port, "pub")
    for i in range(6):
        pub.send(publish_packet("q", b"m%d" % i, qos=1, packet_id=i + 1))
        pub.expect(PUBACK)
    sub = login(broker.port, "offline", clean=False)
    got = []
    for _ in range(10):
        p = next_publish(sub, 1.0)
        if p is None:
            break
        got.append(p[1])
        sub.send(ack_packet(PUBACK, p[3]))
    check(1 <= len(got) <= 3 and got[0] == b"m0", "queued delivery beyond the limit: %r" % got)
    broker.wait_for_log("queue full")


def test_max_keepalive(broker):
    restart_with(broker, ["max_keepalive 30"])
    check(connack_code(broker.port, "ok", keepalive_s=30) == 0, "keepalive 30 refused")
    code = connack_code(broker.port, "big", keepalive_s=31)
    check(code != 0, "keepalive 31 accepted with max_keepalive 30")
    code = connack_code(broker.port, "zero", keepalive_s=0)
    check(code != 0, "keepalive 0 accepted with max_keepalive 30")


def test_max_connections_refuses_the_extra_one(broker):
    restart_with(broker, ["max_connections 2"])
    a = login(broker.port, "a")
    b = login(broker.port, "b")
    c = Raw.tcp(broker.port)
    check(c.wait_closed(), "a third connection stayed open with max_connections 2")
    check(a.is_open_for(0.2) and b.is_open_for(0.1), "the first two were dropped")
    a.close()
    time.sleep(0.2)
    login(broker.port, "d").close()  # room again


def test_max_output_buffer_bytes_drops_qos0_to_a_stalled_reader(broker):
    restart_with(broker, ["max_output_buffer_bytes 64k"])
    stalled = login(broker.port, "stalled")
    check(subscribe(stalled, "out/#") == 0, "subscribe refused")
    pub = login(broker.port, "flood")
    for _ in range(400):  # 6.4 MB: past the socket buffers and the 64 KB limit
        pub.send(publish_packet("out/t", b"y" * 16384))
    broker.wait_for_log("client stalled: output buffer full, dropping QoS 0 messages")
    pub.send(b"\xc0\x00")  # PINGREQ: the broker still serves others
    check(pub.read_packet()[0] == 13, "no PINGRESP")


def test_retain_available_false_closes_retained_publish(broker):
    restart_with(broker, ["retain_available false"])
    c = login(broker.port, "r")
    c.send(publish_packet("t", b"x", retain=True))
    check(c.wait_closed(), "retained publish accepted with retain_available false")
    c = login(broker.port, "r2")
    c.send(publish_packet("t", b"x"))
    check(c.is_open_for(0.3), "a plain publish closed the connection")


def test_include_dir_applies_its_files(broker):
    d = os.path.join(broker.tmp, "conf.d")
    os.mkdir(d)
    write(os.path.join(d, "10-keepalive.conf"), "max_keepalive 20\n")
    write(os.path.join(d, "20-later.conf"), "max_keepalive 40\n")
    write(os.path.join(d, "ignored.txt"), "max_keepalive 1\n")
    restart_with(broker, ["include_dir %s" % d])
    check(connack_code(broker.port, "a", keepalive_s=40) == 0, "keepalive 40 refused")
    check(connack_code(broker.port, "b", keepalive_s=41) != 0, "keepalive 41 accepted")


# ---- authentication and ACL ----

def auth_broker(broker, users, acl_text=None):
    pw = os.path.join(broker.tmp, "passwd")
    for user, password in users:
        add_user(pw, user, password)
    lines = ["password_file %s" % pw]
    if acl_text is not None:
        lines.append("acl_file %s" % write(os.path.join(broker.tmp, "acl"), acl_text))
    # A listener is configured by the harness, so anonymous must be turned off
    # explicitly here (the harness turns it on).
    lines.append("allow_anonymous false")
    restart_with(broker, lines)
    return pw


def test_per_listener_settings_give_each_listener_its_auth(broker):
    pw = os.path.join(broker.tmp, "passwd")
    add_user(pw, "alice", "secret")
    second = free_port()
    broker.stop()
    write(broker.config_path, "\n".join([
        "per_listener_settings true",
        "listener %d 127.0.0.1" % broker.port, "allow_anonymous true",
        "listener %d 127.0.0.1" % second, "allow_anonymous false", "password_file %s" % pw,
        "persistence_location %s" % broker.data_dir]) + "\n")
    broker.start()
    broker.wait_for_log("listening on 127.0.0.1:%d" % second)
    check(connack_code(broker.port, "anon1") == 0, "first listener: anonymous refused")
    check(connack_code(broker.port, "any", "alice", "wrong") == 0,
          "first listener has no password file: any username goes")
    check(connack_code(second, "anon2") == 5, "second listener: anonymous accepted")
    check(connack_code(second, "a", "alice", "secret") == 0, "second listener: alice refused")
    check(connack_code(second, "b", "alice", "wrong") == 4, "second listener: wrong password")
    add_user(pw, "bob", "hunter2")  # SIGHUP reloads the listener's own file too
    check(connack_code(second, "c", "bob", "hunter2") == 4, "bob known before the reload")
    broker.send_signal(signal.SIGHUP)
    broker.wait_for_log("SIGHUP: reloaded")
    check(connack_code(second, "d", "bob", "hunter2") == 0, "bob refused after the reload")


def test_allow_anonymous_false_refuses_with_5(broker):
    restart_with(broker, ["allow_anonymous false"])
    check(connack_code(broker.port, "anon") == 5, "anonymous client not refused with 5")


def test_listener_without_allow_anonymous_refuses_anonymous(broker):
    broker.stop()
    conf = write(broker.config_path, "listener %d 127.0.0.1\npersistence_location %s\n"
                 % (broker.port, broker.data_dir))
    broker.start()
    check(connack_code(broker.port, "anon") == 5, "anonymous allowed by default with a listener")


def test_password_file_right_and_wrong(broker):
    auth_broker(broker, [("alice", "secret"), ("bob", "hunter2")])
    check(connack_code(broker.port, "a", "alice", "secret") == 0, "alice refused")
    check(connack_code(broker.port, "b", "bob", "hunter2") == 0, "bob refused")
    check(connack_code(broker.port, "c", "alice", "wrong") in (4, 5), "wrong password accepted")
    check(connack_code(broker.port, "d", "mallory", "secret") in (4, 5), "unknown user accepted")
    check(connack_code(broker.port, "e") == 5, "no username accepted")
    wait_until(lambda: any("refused" in l and "127.0.0.1" in l
                           for l in broker.log().splitlines()), IO_TIMEOUT_S,
               "a refusal log line with the peer address")


def test_acl_denies_publish_and_subscribe(broker):
    acl = ("user alice\ntopic read public/#\ntopic write public/alice\n"
           "user bob\ntopic readwrite public/#\n")
    auth_broker(broker, [("alice", "a"), ("bob", "b")], acl)
    alice = login(broker.port, "alice", "alice", "a")
    bob = login(broker.port, "bob", "bob", "b")
    check(subscribe(alice, "secret/#") == 0x80, "denied subscribe not 0x80")
    check(subscribe(alice, "public/#") == 0, "allowed subscribe refused")
    check(subscribe(bob, "public/#") == 0, "bob's subscribe refused")
    alice.send(publish_packet("public/bob", b"forged"))  # not alice's to write
    alice.send(publish_packet("public/alice", b"hello"))
    got = next_publish(bob)
    check(got is not None and got[0] == "public/alice" and got[1] == b"hello",
          "bob got %r, want alice's allowed message first" % (got,))
    check(next_publish(bob, 0.3) is None, "more arrived (the denied publish?)")


def test_sighup_reloads_password_file_keeps_clients(broker):
    pw = auth_broker(broker, [("alice", "a")])
    alice = login(broker.port, "alice", "alice", "a")
    check(subscribe(alice, "t") == 0, "subscribe refused")
    check(connack_code(broker.port, "c", "carol", "c") in (4, 5), "carol in before reload")
    add_user(pw, "carol", "c")
    broker.send_signal(signal.SIGHUP)
    broker.wait_for_log("SIGHUP: reloaded")
    carol = login(broker.port, "carol", "carol", "c")
    carol.send(publish_packet("t", b"after reload"))
    got = next_publish(alice)
    check(got is not None and got[1] == b"after reload", "alice dropped or missed: %r" % (got,))
    # A broken file on SIGHUP: logged, the old users stay.
    write(pw, "garbage line\n")
    broker.send_signal(signal.SIGHUP)
    broker.wait_for_log("keeping the previous password and ACL files")
    check(connack_code(broker.port, "c2", "carol", "c") == 0, "carol lost after a bad reload")


# ---- logging ----

def test_log_dest_file_and_sighup_reopen(broker):
    log = os.path.join(broker.tmp, "sol.log")
    restart_with(broker, ["log_dest file %s" % log])
    wait_until(lambda: os.path.exists(log) and "listening on" in open(log).read(), IO_TIMEOUT_S,
               "the log file")
    os.rename(log, log + ".1")  # what logrotate does
    broker.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(log), IO_TIMEOUT_S, "the log file to be reopened")
    mqtt_connect(broker.port, "after-rotate").close()
    wait_until(lambda: "after-rotate" in open(log).read(), IO_TIMEOUT_S,
               "a line in the new log file")
    check("after-rotate" not in open(log + ".1").read(), "the old file still written")


def test_log_type_error_only_hides_notices(broker):
    log = os.path.join(broker.tmp, "sol.log")
    restart_with(broker, ["log_dest file %s" % log, "log_type error"])
    mqtt_connect(broker.port, "quiet").close()
    time.sleep(0.3)
    check(os.path.getsize(log) == 0, "lines other than errors: %r" % open(log).read()[:300])


def test_log_type_subscribe_and_unsubscribe(broker):
    # Off by default (notices on), Mosquitto's "CLIENT QOS FILTER" / "CLIENT FILTER" when asked,
    # whatever else log_type says.
    c = mqtt_connect(broker.port, "plain")
    check(subscribe(c, "quiet/#", 1) == 1, "subscribe refused")
    c.close()
    time.sleep(0.3)
    check("plain 1 quiet/#" not in broker.log(), "subscribe logged without log_type subscribe")
    check(re.search(r"recovered 0 persistent sessions, 0 subscriptions, 0 retained messages and "
                    r"0 queued messages in \d+ ms", broker.log()), "no recovery line with its time")
    restart_with(broker, ["log_type error", "log_type subscribe", "log_type unsubscribe"])
    c = mqtt_connect(broker.port, "watcher")
    check(subscribe(c, "logged/+", 1) == 1, "subscribe refused")
    broker.wait_for_log("watcher 1 logged/+")
    c.send(packet(UNSUBSCRIBE, 2, struct.pack("!H", 2) + mqtt_string("logged/+")))
    c.expect(UNSUBACK)
    broker.wait_for_log("watcher logged/+")
    check("New client connected" not in broker.log().split("start #2")[-1],
          "notices written with log_type error")


def test_connection_messages_like_mosquitto_and_switchable(broker):
    mqtt_connect(broker.port, "chatty").send(b"\xe0\x00")  # DISCONNECT
    broker.wait_for_log("as chatty (p2, c1, k60).")
    broker.wait_for_log("Client chatty disconnected.")
    check("New client connected from 127.0.0.1:" in broker.log(), "Mosquitto's connect line")
    log = os.path.join(broker.tmp, "sol.log")
    restart_with(broker, ["log_dest file %s" % log, "connection_messages false"])
    mqtt_connect(broker.port, "silent").close()
    time.sleep(0.3)
    text = open(log).read()
    check("as silent" not in text and "Client silent" not in text,
          "connection_messages false still logs: %r" % text[-300:])


# ---- $SYS ----

def test_sys_interval_publishes_uptime(broker):
    restart_with(broker, ["sys_interval 1"])
    c = login(broker.port, "sys")
    check(subscribe(c, "$SYS/broker/#") == 0, "subscribe to $SYS refused")
    seen = {}
    deadline = time.monotonic() + 5
    wanted = ("$SYS/broker/uptime", "$SYS/broker/store/commit latency/average us")
    while time.monotonic() < deadline and not all(w in seen for w in wanted):
        p = next_publish(c, 3)
        if p is not None:
            seen[p[0]] = p[1]
    check(seen.get("$SYS/broker/uptime", b"").endswith(b" seconds"), "uptime: %r" % seen)
    check(seen.get(wanted[1], b"x").isdigit(), "commit latency: %r" % seen)
    c2 = login(broker.port, "late")  # retained: a late subscriber gets it at once
    check(subscribe(c2, "$SYS/broker/version") == 0, "subscribe refused")
    p = next_publish(c2, 2)
    check(p is not None and p[1].startswith(b"sol version"), "version: %r" % (p,))


# ---- daemon ----

def test_daemon_with_pid_file_then_stop_by_pid(broker):
    pid_path = os.path.join(broker.tmp, "sol.pid")
    log = os.path.join(broker.tmp, "daemon.log")
    with open(broker.config_path, "a") as f:
        f.write("pid_file %s\nlog_dest file %s\n" % (pid_path, log))
    r = run_sol(["-c", broker.config_path, "-d"], cwd=broker.tmp)
    check(r.returncode == 0, "sol -d exited %d: %r" % (r.returncode, r.stderr))
    pid = int(open(pid_path).read())
    try:
        mqtt_connect(broker.port, "to-daemon").close()  # listening when -d returned
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(pid_path), 10, "the pid file to be removed")
        wait_until(lambda: "sol stopped" in open(log).read(), 10, "the daemon to stop")
    finally:
        try:
            os.kill(pid, 0)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # A start-up error in the daemon comes back to the caller.
    with socket.socket() as s:
        s.bind(("127.0.0.1", broker.port))
        s.listen(1)
        r = run_sol(["-c", broker.config_path, "-d"], cwd=broker.tmp)
    check(r.returncode == 1 and "sol: " in r.stderr, "-d with the port taken: %r" % (r,))


def main():
    runner = Runner()
    for fn in (test_every_config_error_names_file_and_line,
               test_unreadable_config_password_acl_and_tls_files,
               test_test_config_ok_never_binds, test_shipped_sol_conf_passes_test_config,
               test_daemon_with_pid_file_then_stop_by_pid):
        runner.run(fn, start=False)
    for fn in (test_message_size_limit_closes_larger_packet, test_max_inflight_messages_window,
               test_max_queued_messages_drops_beyond_limit, test_max_keepalive,
               test_max_connections_refuses_the_extra_one,
               test_retain_available_false_closes_retained_publish,
               test_max_output_buffer_bytes_drops_qos0_to_a_stalled_reader,
               test_include_dir_applies_its_files, test_allow_anonymous_false_refuses_with_5,
               test_per_listener_settings_give_each_listener_its_auth,
               test_listener_without_allow_anonymous_refuses_anonymous,
               test_password_file_right_and_wrong, test_acl_denies_publish_and_subscribe,
               test_sighup_reloads_password_file_keeps_clients,
               test_log_dest_file_and_sighup_reopen, test_log_type_error_only_hides_notices,
               test_log_type_subscribe_and_unsubscribe,
               test_connection_messages_like_mosquitto_and_switchable,
               test_sys_interval_publishes_uptime):
        runner.run(fn)
    runner.finish()


if __name__ == "__main__":
    main()
