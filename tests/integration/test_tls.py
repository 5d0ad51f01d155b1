"""test_tls.py - TLS listeners of the real broker: round trips with
mosquitto_pub/mosquitto_sub and paho-mqtt, client certificates
(require_certificate, use_identity_as_username with an ACL), a wrong CA, a
plain client on a TLS port, tls_version, large payloads through partial
writes, a stalled handshake, and start-up errors for bad key material.

A throwaway CA, server and client certificates are generated once with the
`openssl` command into a temp dir. Each test gets its own broker with one
plain listener (the harness's) and one TLS listener on another free port.
Not for: MQTT semantics (test_broker.py), the config parser (test_ops.py).
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

import paho.mqtt.client as paho  # noqa: E402

PKI = {}
CLIENT_TIMEOUT_S = 10


def make_pki(directory):
    ca = h.make_tls_ca(directory, "ca")
    other_ca = h.make_tls_ca(directory, "other-ca")
    PKI.update(dir=directory, ca=ca, other_ca=other_ca,
               server=h.make_tls_cert(directory, ca, "server", "localhost", server=True),
               client=h.make_tls_cert(directory, ca, "client", "tls-user"),
               stranger=h.make_tls_cert(directory, other_ca, "stranger", "tls-user"))


def tls_lines(port, *extra):
    return ["listener %d 127.0.0.1" % port, "certfile %s" % PKI["server"][0],
            "keyfile %s" % PKI["server"][1], *extra]


def client_cert_args(which="client"):
    return ["--cert", PKI[which][0], "--key", PKI[which][1]]


def pub(b, topic, message, extra=()):
    return h.mosquitto_pub(b.tls_port, topic, message,
                           extra=["--cafile", PKI["ca"][0], *extra])


# ---- paho ----

class Paho:
    """A paho-mqtt client over TLS with bounded waits for each step."""

    def __init__(self, port, client_id, ca=None, cert=None):
        self.messages = []
        self.subacks = []
        self.connected = threading.Event()
        self.got = threading.Condition()
        self.c = paho.Client(client_id=client_id, protocol=paho.MQTTv311)
        self.c.tls_set(ca_certs=ca or PKI["ca"][0], certfile=cert and cert[0],
                       keyfile=cert and cert[1])
        self.c.on_connect = lambda c, u, f, rc: rc == 0 and self.connected.set()
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        check(self.connected.wait(CLIENT_TIMEOUT_S), "paho: no CONNACK over TLS")

    def _on_message(self, client, userdata, msg):
        with self.got:
            self.messages.append((msg.topic, msg.payload))
            self.got.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted):
        with self.got:
            self.subacks.append(list(granted))
            self.got.notify_all()

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        with self.got:
            while not predicate():
                left = deadline - time.monotonic()
                check(left > 0, "paho: timed out waiting for %s" % what)
                self.got.wait(left)

    def subscribe(self, topic, qos=0):
        count = len(self.subacks)
        self.c.subscribe(topic, qos)
        self.wait_for(lambda: len(self.subacks) > count, "SUBACK for %s" % topic)
        return self.subacks[-1]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


# ---- round trips ----

def test_mosquitto_round_trip_over_tls(b):
    sub = h.MosquittoSub(b.tls_port, "tls/m", extra=["--cafile", PKI["ca"][0]])
    for _ in range(25):
        r = pub(b, "tls/m", "hello over tls")
        check(r.returncode == 0, "mosquitto_pub over TLS failed: %s" % r.stderr)
        try:
            sub.proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    rc, lines, err = sub.wait()
    check(rc == 0 and lines == ["tls/m hello over tls"], "sub got %r (%s)" % (lines, err))


def test_paho_round_trip_over_tls(b):
    c = Paho(b.tls_port, "paho-tls")
    check(c.subscribe("tls/p", 1) == [1], "SUBACK not granted")
    c.c.publish("tls/p", b"paho says hi", qos=1)
    c.wait_for(lambda: c.messages, "the message back")
    check(c.messages == [("tls/p", b"paho says hi")], "got %r" % c.messages)
    c.close()


def test_large_payloads_over_tls_arrive_intact(b):
    """4 MiB and many small messages: partial SSL_writes and SSL_pending drains."""
    c = Paho(b.tls_port, "paho-big")
    c.subscribe("tls/big", 1)
    big = bytes(range(256)) * 16384
    c.c.publish("tls/big", big, qos=1)
    for i in range(300):
        c.c.publish("tls/big", b"small-%d" % i, qos=1)
    c.wait_for(lambda: len(c.messages) == 301, "301 messages")
    check(c.messages[0] == ("tls/big", big), "4 MiB payload garbled")
    check([p for _, p in c.messages[1:]] == [b"small-%d" % i for i in range(300)],
          "small messages out of order or garbled")
    c.close()


# ---- client certificates ----

def test_require_certificate_refuses_a_client_without_one(b):
    r = pub(b, "tls/r", "no cert")
    check(r.returncode != 0, "a client without a certificate got in")
    b.wait_for_log("closing: TLS handshake failed: peer did not return a certificate")
    check("client 127.0.0.1:" in [l for l in b.log().splitlines()
                                   if "TLS handshake failed" in l][0],
          "the handshake failure does not name the peer address")
    r = pub(b, "tls/r", "with cert", extra=client_cert_args())
    check(r.returncode == 0, "a client with a valid certificate failed: %s" % r.stderr)


def test_client_certificate_from_another_ca_is_refused(b):
    r = pub(b, "tls/r", "stranger", extra=client_cert_args("stranger"))
    check(r.returncode != 0, "a certificate from another CA got in")
    b.wait_for_log("certificate verify failed")


def test_use_identity_as_username_applies_the_acl_of_the_cn(b):
    c = Paho(b.tls_port, "cn-client", cert=PKI["client"])
    check(c.subscribe("x/#") == [0], "x/# should be granted to user tls-user")
    check(c.subscribe("y/#") == [128], "y/# should be refused to user tls-user")
    c.c.publish("x/1", b"allowed")
    c.wait_for(lambda: c.messages, "x/1 back")
    check(c.messages == [("x/1", b"allowed")], "got %r" % c.messages)
    c.close()
    b.wait_for_log("u'tls-user'")


def test_server_certificate_from_another_ca_is_refused_by_the_client(b):
    r = h.mosquitto_pub(b.tls_port, "tls/w", "x", extra=["--cafile", PKI["other_ca"][0]])
    check(r.returncode != 0, "the client accepted a server certificate from an unknown CA")
    b.wait_for_log("TLS handshake failed")


# ---- hostile and mismatched clients ----

def test_plain_client_on_tls_port_is_closed_and_others_are_served(b):
    plain = h.Raw.tcp(b.tls_port)
    plain.send(h.connect_packet("plain-on-tls"))
    check(plain.wait_closed(5), "a plain MQTT client on the TLS port was not closed")
    b.wait_for_log("TLS handshake failed")
    c = Paho(b.tls_port, "after-plain")
    c.close()
    ok = h.mqtt_connect(b.port, "plain-port")
    ok.close()


def test_stalled_handshake_is_closed_at_the_connect_deadline(b):
    stalled = h.Raw.tcp(b.tls_port)
    c = Paho(b.tls_port, "while-stalled")
    c.close()
    check(stalled.wait_closed(5), "a client that never finishes the handshake stayed open")
    b.wait_for_log("TLS handshake not finished within")


def test_tls_version_13_refuses_a_tls12_only_client(b):
    base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.tls_port, "-CAfile",
            PKI["ca"][0]]
    r12 = subprocess.run(base + ["-tls1_2"], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=CLIENT_TIMEOUT_S)
    check(r12.returncode != 0, "a TLS 1.2 client completed a handshake: %s" % r12.stdout[-300:])
    b.wait_for_log("TLS handshake failed: unsupported protocol")
    r13 = subprocess.run(base + ["-tls1_3"], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=CLIENT_TIMEOUT_S)
    check(r13.returncode == 0 and "TLSv1.3" in r13.stdout, "TLS 1.3 failed: %s" % r13.stderr)


# ---- start-up errors ----

def start_fails_with(b, text):
    b.start(wait_port=False)
    rc = b.wait_exit(h.START_TIMEOUT_S)
    check(rc is not None and rc != 0, "the broker started (rc %r)" % rc)
    lines = [l for l in b.log().splitlines() if l.startswith("sol: ")]
    check(len(lines) == 1 and text in lines[0], "start-up error %r lacks %r" % (lines, text))


def test_startup_error_key_does_not_match_certificate(b):
    start_fails_with(b, "keyfile %s: key values mismatch" % PKI["client"][1])


def test_startup_error_garbage_certificate(b):
    start_fails_with(b, "certfile %s: no start line" % PKI["bad"])


# ---- certificates reloaded on SIGHUP ----

def served_serial(port):
    """The serial number of the certificate the TLS port presents now."""
    ctx = ssl.create_default_context(cafile=PKI["ca"][0])
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert()["serialNumber"]


def file_serial(cert):
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", cert],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "openssl x509: %s" % r.stderr)
    return r.stdout.strip().split("=", 1)[1].upper()


def test_sighup_reloads_certificates_for_new_connections(b):
    live_cert, live_key = PKI["live"]
    first = file_serial(PKI["server"][0])
    second = file_serial(PKI["server2"][0])
    check(served_serial(b.tls_port) == first, "not serving the first certificate")
    before = Paho(b.tls_port, "before-reload")
    before.subscribe("r/#", 1)
    shutil.copy(PKI["server2"][0], live_cert)
    shutil.copy(PKI["server2"][1], live_key)
    b.send_signal(signal.SIGHUP)
    b.wait_for_log("SIGHUP: reloaded the TLS certificates and keys")
    check(served_serial(b.tls_port) == second, "new connections still get the old certificate")
    check(pub(b, "r/x", "after reload", ["-q", "1"]).returncode == 0, "publish over TLS failed")
    before.wait_for(lambda: ("r/x", b"after reload") in before.messages,
                    "the connection made before the reload to keep working")
    before.close()
    # A broken file: logged, and the certificate in use stays.
    with open(live_cert, "w") as f:
        f.write("not a certificate\n")
    b.send_signal(signal.SIGHUP)
    b.wait_for_log("keeping the previous certificates")
    check(served_serial(b.tls_port) == second, "a failed reload changed the certificate")


# ---- runner ----

def run_tls(r, fn, extra=(), args=()):
    """Runs fn with a TLS listener (b.tls_port) configured with extra lines.
    The harness waits for the plain port only, and the TLS one listens a bit
    later (its certificates load first), so wait for its log line too."""
    port = h.free_port()

    def with_tls(b):
        b.tls_port = port
        b.wait_for_log("listening on 127.0.0.1:%d (TLS)" % port, h.START_TIMEOUT_S)
        return fn(b)
    with_tls.__name__ = fn.__name__
    r.run(with_tls, listeners=tls_lines(port, *extra), args=args)


def main():
    r = h.Runner()
    pki_dir = tempfile.mkdtemp(prefix="sol-tls-")
    try:
        make_pki(pki_dir)
        PKI["bad"] = os.path.join(pki_dir, "garbage.pem")
        with open(PKI["bad"], "w") as f:
            f.write("not a certificate\n")
        acl = os.path.join(pki_dir, "acl")
        with open(acl, "w") as f:
            f.write("user tls-user\ntopic readwrite x/#\n")
        client_ca = ["cafile %s" % PKI["ca"][0], "require_certificate true"]
        run_tls(r, test_mosquitto_round_trip_over_tls)
        run_tls(r, test_paho_round_trip_over_tls)
        run_tls(r, test_large_payloads_over_tls_arrive_intact)
        run_tls(r, test_require_certificate_refuses_a_client_without_one, client_ca)
        run_tls(r, test_client_certificate_from_another_ca_is_refused, client_ca)
        run_tls(r, test_use_identity_as_username_applies_the_acl_of_the_cn,
                client_ca + ["use_identity_as_username true", "acl_file %s" % acl])
        run_tls(r, test_server_certificate_from_another_ca_is_refused_by_the_client)
        run_tls(r, test_plain_client_on_tls_port_is_closed_and_others_are_served)
        run_tls(r, test_stalled_handshake_is_closed_at_the_connect_deadline,
                args=["--connect-timeout", "1"])
        run_tls(r, test_tls_version_13_refuses_a_tls12_only_client, ["tls_version tlsv1.3"])
        PKI["server2"] = h.make_tls_cert(pki_dir, PKI["ca"], "server2", "localhost", server=True)
        PKI["live"] = tuple(os.path.join(pki_dir, n) for n in ("live.crt", "live.key"))
        shutil.copy(PKI["server"][0], PKI["live"][0])
        shutil.copy(PKI["server"][1], PKI["live"][1])
        live_port = h.free_port()

        def with_live(b):
            b.tls_port = live_port
            b.wait_for_log("listening on 127.0.0.1:%d (TLS)" % live_port, h.START_TIMEOUT_S)
            return test_sighup_reloads_certificates_for_new_connections(b)
        with_live.__name__ = "test_sighup_reloads_certificates_for_new_connections"
        r.run(with_live, listeners=["listener %d 127.0.0.1" % live_port,
                                    "certfile %s" % PKI["live"][0],
                                    "keyfile %s" % PKI["live"][1]])
        mismatch = ["listener %d 127.0.0.1" % h.free_port(), "certfile %s" % PKI["server"][0],
                    "keyfile %s" % PKI["client"][1]]
        r.run(test_startup_error_key_does_not_match_certificate, start=False, listeners=mismatch)
        garbage = ["listener %d 127.0.0.1" % h.free_port(), "certfile %s" % PKI["bad"],
                   "keyfile %s" % PKI["server"][1]]
        r.run(test_startup_error_garbage_certificate, start=False, listeners=garbage)
    finally:
        h.shutil.rmtree(pki_dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
