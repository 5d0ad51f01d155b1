"""test_websockets.py - MQTT over WebSockets (listener + "protocol websockets")
on the real broker:
 - MQTT.js (npm `mqtt`, installed into BUILD/node from tests/js/package-lock.json
   with `npm ci` when missing) over ws:// and wss:// (a throwaway CA made with
   openssl): QoS 0/1/2 round trips, large payloads, interop with
   mosquitto_pub/mosquitto_sub over TCP, a persistent session that survives
   kill -9, password and ACL checks as on TCP, the MQTT keepalive (which
   WebSocket pings do not reset);
 - a real browser: headless Chromium loads a page (served by a python
   http.server from this test) that uses MQTT.js's browser bundle, and posts
   what it received back to that server;
 - raw sockets: packets split across frames and several per frame,
   fragmented messages with a ping inside, close handshake; hostile clients
   (bad upgrades, a trickled handshake, a 2^62-byte frame header, unmasked
   and text frames, an oversized frame) are closed while a second client
   keeps being served.
node and chromium missing is a failure, not a skip (tools/install-deps.sh
installs them).
Not for: MQTT semantics (test_broker.py), TLS details (test_tls.py).
"""

import base64
import fcntl
import hashlib
import http.server
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

JS_DIR = os.path.join(h.SOURCE_DIR, "tests", "js")
NODE_DIR = os.path.join(h.BUILD_DIR, "node")
NODE_MODULES = os.path.join(NODE_DIR, "node_modules")
CLIENT_JS = os.path.join(JS_DIR, "mqtt_client.js")
NPM_TIMEOUT_S = 600
CLIENT_TIMEOUT_S = 20
BROWSER_TIMEOUT_S = 40
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

PKI = {}


# ---- MQTT.js: installed into the build tree, run by node ----

def tool(name):
    path = shutil.which(name)
    check(path is not None, "%s not found: run tools/install-deps.sh" % name)
    return path


def same_file(a, b):
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


def ensure_mqtt_js():
    """npm ci of tests/js into BUILD/node unless the same lock is installed."""
    tool("node")
    lock = os.path.join(JS_DIR, "package-lock.json")
    marker = os.path.join(NODE_MODULES, "mqtt", "package.json")
    os.makedirs(NODE_DIR, exist_ok=True)
    with open(os.path.join(NODE_DIR, ".install-lock"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if os.path.exists(marker) and same_file(lock, os.path.join(NODE_DIR, "package-lock.json")):
            return
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(JS_DIR, name), os.path.join(NODE_DIR, name))
        r = subprocess.run([tool("npm"), "ci", "--no-audit", "--no-fund", "--prefix", NODE_DIR],
                           capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        check(r.returncode == 0, "npm ci into %s failed: %s" % (NODE_DIR, r.stderr[-2000:]))
        check(os.path.exists(marker), "npm ci did not install mqtt")


class Node:
    """One MQTT.js client (tests/js/mqtt_client.js) in its own process group;
    its JSON lines are read by a thread into a queue."""

    def __init__(self, spec):
        env = {**os.environ, "NODE_PATH": NODE_MODULES}
        self.proc = subprocess.Popen([tool("node"), CLIENT_JS, json.dumps(spec)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, start_new_session=True)
        self.events = []
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "garbage", "line": line.decode(errors="replace")})
        self.lines.put(None)

    def wait_event(self, name, timeout_s=CLIENT_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        for _ in range(100_000):
            left = deadline - time.monotonic()
            check(left > 0, "MQTT.js: no %r event within %.0f s: %s" % (name, timeout_s,
                                                                      self.events))
            try:
                ev = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            check(ev is not None, "MQTT.js exited before %r: %s %s"
                  % (name, self.events, self.stderr()))
            self.events.append(ev)
            check(ev["event"] != "error", "MQTT.js: %s" % ev.get("message"))
            if ev["event"] == name:
                return ev
        raise h.TestFailure("MQTT.js: too many events")

    def finish(self, timeout_s=CLIENT_TIMEOUT_S):
        """Waits for "done"; returns every event."""
        try:
            self.wait_event("done", timeout_s)
            self.proc.wait(timeout=timeout_s)
        finally:
            self.kill()
        return self.events

    def messages(self):
        return [e for e in self.events if e["event"] == "message"]

    def stderr(self):
        return self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() \
            is not None else ""

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=CLIENT_TIMEOUT_S)


def mqtt_js(url, client_id, subscribe=(), publish=(), expect=0, tls=False, **options):
    """Runs one MQTT.js client to its end; returns its events."""
    opts = {"clientId": client_id, **options}
    if tls:
        opts["ca"] = PKI["ca"][0]
    spec = {"url": url, "options": opts, "subscribe": list(subscribe), "publish": list(publish),
            "expect": expect, "timeout_ms": CLIENT_TIMEOUT_S * 1000}
    return Node(spec).finish()


def messages_of(events):
    return [e for e in events if e["event"] == "message"]


def sha1(data):
    return hashlib.sha1(data).hexdigest()


# ---- raw WebSocket clients ----

def ws_frame(opcode, payload, fin=True, mask=True, rsv=0, length=None):
    """A client frame; length overrides the announced payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def upgrade_request(key, path="/mqtt", protocol="mqtt", version="13", method="GET", extra=""):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    if protocol is not None:
        lines.append("Sec-WebSocket-Protocol: %s" % protocol)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


class WsRaw(h.Raw):
    """A raw WebSocket client: send() wraps bytes in a masked binary frame,
    and the harness's MQTT reads see the payload of the server's frames.
    Control frames the server sends are kept in self.controls."""

    def __init__(self, sock):
        super().__init__(sock)
        self.wire = b""
        self.controls = []

    @classmethod
    def open(cls, port, tls=False, protocol="mqtt", timeout_s=h.IO_TIMEOUT_S):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        if tls:
            ctx = ssl.create_default_context(cafile=PKI["ca"][0])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        c = cls(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        c.sock.sendall(upgrade_request(key, protocol=protocol))
        head = c.read_http_head(time.monotonic() + timeout_s)
        check(head.startswith(b"HTTP/1.1 101 "), "no 101: %r" % head[:200])
        check(("Sec-WebSocket-Accept: %s" % accept_of(key)).encode() in head,
              "wrong Sec-WebSocket-Accept: %r" % head)
        if protocol:
            check(b"Sec-WebSocket-Protocol: mqtt\r\n" in head, "no mqtt subprotocol: %r" % head)
        return c

    def read_http_head(self, deadline):
        for _ in range(1000):
            end = self.wire.find(b"\r\n\r\n")
            if end >= 0:
                head, self.wire = self.wire[:end + 4], self.wire[end + 4:]
                return head
            check(self._read_wire(deadline), "closed before the HTTP response: %r" % self.wire)
        raise h.TestFailure("HTTP response too long")

    def _read_wire(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise h.TestFailure("timed out reading from the broker")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise h.TestFailure("timed out reading from the broker") from None
        except (ConnectionResetError, ssl.SSLError):
            return False
        self.wire += data
        return bool(data)

    def next_frame(self, deadline):
        """(fin, opcode, payload) of the server's next frame; None on EOF."""
        for _ in range(100_000):
            frame = self._split_frame()
            if frame is not None:
                return frame
            if not self._read_wire(deadline):
                return None
        raise h.TestFailure("next_frame: too many reads")

    def _split_frame(self):
        w = self.wire
        if len(w) < 2:
            return None
        check(not w[1] & 0x80, "the server masked a frame")
        n, off = w[1] & 0x7F, 2
        if n == 126:
            if len(w) < 4:
                return None
            n, off = struct.unpack("!H", w[2:4])[0], 4
        elif n == 127:
            if len(w) < 10:
                return None
            n, off = struct.unpack("!Q", w[2:10])[0], 10
        if len(w) < off + n:
            return None
        self.wire = w[off + n:]
        return bool(w[0] & 0x80), w[0] & 0x0F, w[off:off + n]

    def _fill(self, deadline):
        frame = self.next_frame(deadline)
        if frame is None:
            return False
        fin, opcode, payload = frame
        if opcode in (OP_BINARY, OP_CONT):
            self.buf += payload
            return True
        check(opcode != OP_TEXT, "the server sent a text frame")
        self.controls.append((opcode, payload))
        return opcode != OP_CLOSE

    def send(self, data):
        self.sock.sendall(ws_frame(OP_BINARY, data))

    def send_frame(self, *args, **kwargs):
        self.sock.sendall(ws_frame(*args, **kwargs))

    def close_code(self, timeout_s=h.IO_TIMEOUT_S):
        """The status code of the server's close frame (reading up to it), or
        None when the connection ended without one."""
        deadline = time.monotonic() + timeout_s
        for _ in range(10_000):
            for opcode, payload in self.controls:
                if opcode == OP_CLOSE:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
            try:
                if not self._fill(deadline):
                    if not any(op == OP_CLOSE for op, _ in self.controls):
                        return None
            except OSError:
                return None
        return None

    def is_eof(self, timeout_s=h.IO_TIMEOUT_S):
        """True when the server closes the TCP connection within timeout_s."""
        deadline = time.monotonic() + timeout_s
        for _ in range(10_000):
            try:
                if not self._read_wire(deadline):
                    return True
            except h.TestFailure:
                return False
            except OSError:
                return True
            self.wire = b""
        return False


def ws_mqtt_client(port, client_id, tls=False):
    """A raw WebSocket client after CONNECT/CONNACK 0."""
    return h.mqtt_connect(port, client_id, raw=WsRaw.open(port, tls=tls))


def ping_ok(c):
    c.send(h.PINGREQ_BYTES)
    c.expect(h.PINGRESP)


def http_exchange(port, request, timeout_s=h.IO_TIMEOUT_S):
    """Sends request bytes; returns everything the broker answers until it closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.sendall(request)
    out = b""
    deadline = time.monotonic() + timeout_s
    for _ in range(1000):
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise h.TestFailure("the broker kept the connection open: %r" % out[:200]) from None
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    sock.close()
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise h.TestFailure("no VmRSS for pid %d" % pid)


def wait_connectable(port):
    def ok():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    h.wait_until(ok, h.START_TIMEOUT_S, "port %d to accept connections" % port)


# ---- MQTT.js ----

def test_mqtt_js_qos_0_1_2_round_trip_over_ws(b):
    events = mqtt_js(b.ws_url, "js-qos", subscribe=[("q/#", 2)],
                     publish=[("q/0", "zero", 0), ("q/1", "one", 1), ("q/2", "two", 2)], expect=3)
    got = {(m["topic"], m["text"], m["qos"]) for m in messages_of(events)}
    check(got == {("q/0", "zero", 0), ("q/1", "one", 1), ("q/2", "two", 2)}, "got %s" % got)


def test_mqtt_js_large_payloads_over_ws(b):
    # 1 MiB and 300 KB payloads span many frames and partial writes both ways.
    events = mqtt_js(b.ws_url, "js-big", subscribe=[("big/#", 1)],
                     publish=[("big/a", {"size": 1 << 20, "byte": 7}, 1),
                              ("big/b", {"size": 300_000, "byte": 9}, 2)], expect=2)
    got = {(m["topic"], m["len"], m["sha1"]) for m in messages_of(events)}
    want = {("big/a", 1 << 20, sha1(bytes([7]) * (1 << 20))),
            ("big/b", 300_000, sha1(bytes([9]) * 300_000))}
    check(got == want, "got %s" % got)


def test_mqtt_js_over_wss_with_the_test_ca(b):
    events = mqtt_js(b.wss_url, "js-tls", subscribe=[("s/#", 1)],
                     publish=[("s/x", "secure", 1), ("s/big", {"size": 200_000, "byte": 3}, 1)],
                     expect=2, tls=True)
    got = {(m["topic"], m["len"]) for m in messages_of(events)}
    check(got == {("s/x", 6), ("s/big", 200_000)}, "got %s" % got)
    # And with rejectUnauthorized false, as a self-signed setup would use.
    events = mqtt_js(b.wss_url, "js-tls2", subscribe=[("t/#", 0)], publish=[("t/x", "y", 0)],
                     expect=1, rejectUnauthorized=False)
    check(len(messages_of(events)) == 1, "no message over wss with rejectUnauthorized false")


def test_ws_client_and_tcp_mosquitto_clients_exchange_messages(b):
    node = Node({"url": b.ws_url, "options": {"clientId": "js-x"},
                 "subscribe": [["x/from-tcp", 1]], "publish": [], "expect": 1,
                 "timeout_ms": CLIENT_TIMEOUT_S * 1000})
    node.wait_event("subscribed")
    h.mosquitto_pub(b.port, "x/from-tcp", "hello-ws", qos=1)
    node.finish()
    got = [(m["topic"], m["text"]) for m in node.messages()]
    check(got == [("x/from-tcp", "hello-ws")], "MQTT.js got %s" % got)
    # Retained, so mosquitto_sub gets it whenever its SUBSCRIBE lands.
    mqtt_js(b.ws_url, "js-pub", publish=[("x/from-ws", "hello-tcp", 1, True)])
    rc, lines, err = h.MosquittoSub(b.port, "x/from-ws", count=1, qos=1).wait()
    check(rc == 0 and lines == ["x/from-ws hello-tcp"], "mosquitto_sub: %s %s %s"
          % (rc, lines, err))


def test_persistent_session_over_ws_survives_kill_9(b):
    events = mqtt_js(b.ws_url, "js-durable", subscribe=[("d/#", 1)], clean=False)
    check(events[0] == {"event": "connect", "sessionPresent": False}, "first CONNACK %s" % events)
    for i in range(3):
        h.mosquitto_pub(b.port, "d/%d" % i, "queued-%d" % i, qos=1)
    b.restart()  # kill -9
    wait_connectable(b.ws_port)
    events = mqtt_js(b.ws_url, "js-durable", clean=False, expect=3)
    check(events[0] == {"event": "connect", "sessionPresent": True},
          "the session was not present after kill -9: %s" % events[0])
    got = [(m["topic"], m["text"]) for m in messages_of(events)]
    check(got == [("d/%d" % i, "queued-%d" % i) for i in range(3)], "got %s" % got)


def test_password_and_acl_apply_over_ws(b):
    node = Node({"url": b.ws_url, "options": {"clientId": "js-anon"}, "timeout_ms": 10000})
    ev = node.lines.get(timeout=CLIENT_TIMEOUT_S)
    node.kill()
    check(ev is not None and ev["event"] == "error" and "authorized" in ev["message"].lower(),
          "an anonymous client was not refused: %s" % ev)
    events = mqtt_js(b.ws_url, "js-alice", subscribe=[("#", 1)],
                     publish=[("denied/x", "no", 1), ("allowed/x", "yes", 1)], expect=1,
                     username="alice", password="secret")
    got = [(m["topic"], m["text"]) for m in messages_of(events)]
    check(got == [("allowed/x", "yes")], "the ACL was not applied over WebSockets: %s" % got)


# ---- a browser ----

BROWSER_PAGE = """<!doctype html>
<html><body><pre id="out">waiting</pre>
<script src="mqtt.min.js"></script>
<script>
const out = document.getElementById('out');
const want = 2;
const got = [];
function post(path, body) { return fetch(path, {method: 'POST', body: body}); }
function report(obj) { out.textContent = JSON.stringify(obj); post('/result', out.textContent); }
const port = new URLSearchParams(location.search).get('port');
const client = mqtt.connect('ws://127.0.0.1:' + port + '/mqtt',
                            {clientId: 'chromium-1', reconnectPeriod: 0});
client.on('connect', () => {
  client.subscribe('browser/#', {qos: 1}, (err) => {
    if (err) return report({error: 'subscribe: ' + err.message});
    // Retained: mosquitto_sub gets it whenever its SUBSCRIBE lands.
    client.publish('browser/from-page', 'hello from chromium', {qos: 1, retain: true});
    post('/subscribed', 'yes');
  });
});
client.on('message', (topic, message) => {
  got.push([topic, message.toString()]);
  if (got.length === want) { report({messages: got}); client.end(); }
});
client.on('error', (err) => report({error: err.message}));
</script></body></html>
"""


class PageServer:
    """A python http.server on a free 127.0.0.1 port serving the page and
    MQTT.js's browser bundle, collecting what the page posts back."""

    def __init__(self, directory):
        self.posts = queue.Queue()
        posts = self.posts

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=directory, **kwargs)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                posts.put((self.path, self.rfile.read(min(n, 65536)).decode(errors="replace")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_post(self, path, timeout_s):
        deadline = time.monotonic() + timeout_s
        for _ in range(1000):
            left = deadline - time.monotonic()
            check(left > 0, "the page posted nothing to %s within %.0f s" % (path, timeout_s))
            try:
                got_path, body = self.posts.get(timeout=left)
            except queue.Empty:
                continue
            if got_path == path:
                return body
        raise h.TestFailure("too many posts")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def start_chromium(url, profile_dir):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    check(os.access(chromium, os.X_OK), "chromium not found: run tools/install-deps.sh")
    args = [chromium, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
            "--user-data-dir=%s" % profile_dir, url]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop_process_group(proc):
    """Kills the process group we started (chromium and its helpers) by its id."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=BROWSER_TIMEOUT_S)


def test_headless_chromium_page_publishes_and_receives_through_sol(b):
    site = tempfile.mkdtemp(prefix="sol-ws-page-")
    server = browser = None
    try:
        shutil.copy(os.path.join(NODE_MODULES, "mqtt", "dist", "mqtt.min.js"), site)
        with open(os.path.join(site, "index.html"), "w") as f:
            f.write(BROWSER_PAGE)
        server = PageServer(site)
        sub = h.MosquittoSub(b.port, "browser/from-page", count=1, qos=1, timeout_s=BROWSER_TIMEOUT_S)
        browser = start_chromium("http://127.0.0.1:%d/index.html?port=%d" % (server.port, b.ws_port),
                                 os.path.join(site, "profile"))
        server.wait_post("/subscribed", BROWSER_TIMEOUT_S)
        h.mosquitto_pub(b.port, "browser/from-tcp", "hello from mosquitto_pub", qos=1)
        result = json.loads(server.wait_post("/result", BROWSER_TIMEOUT_S))
        check("error" not in result, "the page reported %s" % result)
        check(sorted(map(tuple, result["messages"])) ==
              [("browser/from-page", "hello from chromium"),
               ("browser/from-tcp", "hello from mosquitto_pub")],
              "the page received %s" % result)
        rc, lines, err = sub.wait()
        check(rc == 0 and lines == ["browser/from-page hello from chromium"],
              "mosquitto_sub: %s %s %s" % (rc, lines, err))
    finally:
        if browser is not None:
            stop_process_group(browser)
        if server is not None:
            server.close()
        shutil.rmtree(site, ignore_errors=True)


# ---- raw frames ----

def test_packets_span_frames_and_share_frames(b):
    c = WsRaw.open(b.ws_port)
    connect = h.connect_packet("raw-frames")
    # CONNECT in a fragmented message (binary + 2 continuations), with a ping
    # between the fragments (control frames may interleave, RFC 6455 5.4).
    c.send_frame(OP_BINARY, connect[:5], fin=False)
    c.send_frame(OP_CONT, connect[5:8], fin=False)
    c.send_frame(OP_PING, b"are you there")
    c.send_frame(OP_CONT, connect[8:], fin=True)
    _, _, body = c.expect(h.CONNACK)
    check(body == b"\x00\x00", "CONNACK %r" % body)
    check((OP_PONG, b"are you there") in c.controls, "no pong echoing the ping: %s" % c.controls)
    # SUBSCRIBE and a PUBLISH to it in one frame; a PINGREQ split over two.
    c.send(h.subscribe_packet(1, [("f/#", 0)]) + h.publish_packet("f/x", b"one frame"))
    c.expect(h.SUBACK)
    got = h.next_publish(c)
    check(got is not None and got[:2] == ("f/x", b"one frame"), "publish %r" % (got,))
    c.send(h.PINGREQ_BYTES[:1])
    c.send(h.PINGREQ_BYTES[1:])
    c.expect(h.PINGRESP)
    # The client closes: the broker answers with a close frame and hangs up.
    c.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    check(c.close_code() == 1000, "close answered with %s" % c.controls)
    check(c.is_eof(), "the broker kept the connection open after the close handshake")


def test_mqtt_keepalive_applies_and_websocket_pings_do_not_reset_it(b):
    c = WsRaw.open(b.ws_port)
    c.send(h.connect_packet("sleepy", keepalive_s=1))
    c.expect(h.CONNACK)
    closed = False
    for _ in range(40):  # WebSocket pings every 0.2 s for up to 8 s: no MQTT packet
        try:
            c.send_frame(OP_PING, b"still here")
            closed = c.wait_closed(0.2)
        except OSError:
            closed = True
        if closed:
            break
    check(closed, "a client sending only WebSocket pings outlived its 1 s MQTT keepalive")
    b.wait_for_log("client sleepy: closing: keepalive expired")


def test_bad_upgrades_get_400_and_are_closed(b):
    other = ws_mqtt_client(b.ws_port, "bystander")
    key = base64.b64encode(os.urandom(16)).decode()
    cases = [
        ("no key", upgrade_request(None)),
        ("version 8", upgrade_request(key, version="8")),
        ("POST", upgrade_request(key, method="POST")),
        ("no mqtt subprotocol", upgrade_request(key, protocol="chat, superchat")),
        ("short key", upgrade_request("c2hvcnQ=")),
        ("not HTTP", b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"),
        ("9 KiB of headers", upgrade_request(key, extra="X-Pad: %s\r\n" % ("a" * 9000))),
        ("a body", upgrade_request(key, extra="Content-Length: 5\r\n") + b"hello"),
    ]
    for name, request in cases:
        answer = http_exchange(b.ws_port, request)
        check(answer.startswith(b"HTTP/1.1 400 "), "%s: answered %r" % (name, answer[:120]))
        ping_ok(other)
    check(b"Sec-WebSocket-Version: 13" in http_exchange(b.ws_port, cases[1][1]),
          "a 400 for a wrong version does not name version 13")
    b.wait_for_log("WebSocket handshake failed: bad upgrade request")
    # A plain HTTP GET without upgrade headers is refused the same way.
    answer = http_exchange(b.ws_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(answer.startswith(b"HTTP/1.1 400 "), "plain GET answered %r" % answer[:120])
    ping_ok(other)


def test_trickled_handshake_is_closed_at_the_deadline(b):
    other = ws_mqtt_client(b.ws_port, "bystander")
    sock = socket.create_connection(("127.0.0.1", b.ws_port), timeout=h.IO_TIMEOUT_S)
    request = upgrade_request(base64.b64encode(os.urandom(16)).decode())
    t0 = time.monotonic()
    closed = False
    for i in range(len(request)):  # one byte every 0.1 s: 20+ s for the whole request
        try:
            sock.sendall(request[i:i + 1])
        except OSError:
            closed = True
            break
        sock.settimeout(0.1)
        try:
            if sock.recv(1024) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
        if time.monotonic() - t0 > 10:
            break
    sock.close()
    check(closed, "a handshake trickled for %.1f s was not closed" % (time.monotonic() - t0))
    b.wait_for_log("WebSocket handshake not finished within")
    ping_ok(other)


def test_hostile_frames_are_closed_without_harm(b):
    other = ws_mqtt_client(b.ws_port, "bystander")
    before = rss_kib(b.proc.pid)
    # A frame header announcing 2^62 bytes: refused from its header (1009).
    c = WsRaw.open(b.ws_port)
    c.send_frame(OP_BINARY, b"\x10" * 16, length=1 << 62)
    check(c.close_code() == 1009, "2^62-byte frame: close %s" % c.controls)
    check(c.is_eof(), "2^62-byte frame: still open")
    ping_ok(other)
    # Past max_packet_size (configured 64 KiB here): 1009 as well.
    c = ws_mqtt_client(b.ws_port, "too-big")
    c.send_frame(OP_BINARY, b"\x30" * 16, length=70_000)
    check(c.close_code() == 1009, "70000-byte frame: close %s" % c.controls)
    ping_ok(other)
    # An unmasked client frame (RFC 6455 5.1): 1002.
    c = WsRaw.open(b.ws_port)
    c.send_frame(OP_BINARY, h.connect_packet("unmasked"), mask=False)
    check(c.close_code() == 1002, "unmasked frame: close %s" % c.controls)
    check(c.is_eof(), "unmasked frame: still open")
    ping_ok(other)
    # A text frame: MQTT needs binary frames (1003).
    c = ws_mqtt_client(b.ws_port, "texter")
    c.send_frame(OP_TEXT, b"hello")
    check(c.close_code() == 1003, "text frame: close %s" % c.controls)
    check(c.is_eof(), "text frame: still open")
    ping_ok(other)
    # Reserved bits and a continuation out of nowhere: 1002.
    for name, frame in (("rsv1", ws_frame(OP_BINARY, b"\x10", rsv=4)),
                        ("continuation", ws_frame(OP_CONT, b"\x10"))):
        c = WsRaw.open(b.ws_port)
        c.sock.sendall(frame)
        check(c.close_code() == 1002, "%s: close %s" % (name, c.controls))
        ping_ok(other)
    after = rss_kib(b.proc.pid)
    check(after - before < 8 * 1024, "RSS grew from %d to %d KiB" % (before, after))
    b.wait_for_log("WebSocket: unmasked frame (close 1002)")


# ---- running ----

def run_ws(r, fn, extra=(), args=()):
    """fn gets a broker with a ws:// and a wss:// listener."""
    ws_port, wss_port = h.free_port(), h.free_port()
    listeners = ["listener %d 127.0.0.1" % ws_port, "protocol websockets",
                 "listener %d 127.0.0.1" % wss_port, "protocol websockets",
                 "certfile %s" % PKI["server"][0], "keyfile %s" % PKI["server"][1]]

    def with_ws(b):
        b.ws_port, b.wss_port = ws_port, wss_port
        b.ws_url = "ws://127.0.0.1:%d/mqtt" % ws_port
        b.wss_url = "wss://localhost:%d/mqtt" % wss_port
        b.wait_for_log("listening on 127.0.0.1:%d (WebSockets over TLS)" % wss_port,
                       h.START_TIMEOUT_S)
        return fn(b)
    with_ws.__name__ = fn.__name__
    r.run(with_ws, listeners=listeners, extra_config=list(extra), args=list(args))


def main():
    r = h.Runner()
    pki_dir = tempfile.mkdtemp(prefix="sol-ws-")
    try:
        ensure_mqtt_js()
        PKI["ca"] = h.make_tls_ca(pki_dir, "ca")
        PKI["server"] = h.make_tls_cert(pki_dir, PKI["ca"], "server", "localhost", server=True)
        passwd = os.path.join(pki_dir, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "alice", "secret"], check=True,
                       capture_output=True, timeout=30)
        acl = os.path.join(pki_dir, "acl")
        with open(acl, "w") as f:
            f.write("user alice\ntopic readwrite allowed/#\n")
        run_ws(r, test_mqtt_js_qos_0_1_2_round_trip_over_ws)
        run_ws(r, test_mqtt_js_large_payloads_over_ws)
        run_ws(r, test_mqtt_js_over_wss_with_the_test_ca)
        run_ws(r, test_ws_client_and_tcp_mosquitto_clients_exchange_messages)
        run_ws(r, test_persistent_session_over_ws_survives_kill_9)
        run_ws(r, test_password_and_acl_apply_over_ws,
               extra=["allow_anonymous false", "password_file %s" % passwd, "acl_file %s" % acl])
        run_ws(r, test_headless_chromium_page_publishes_and_receives_through_sol)
        run_ws(r, test_packets_span_frames_and_share_frames)
        run_ws(r, test_mqtt_keepalive_applies_and_websocket_pings_do_not_reset_it)
        run_ws(r, test_bad_upgrades_get_400_and_are_closed)
        run_ws(r, test_trickled_handshake_is_closed_at_the_deadline, args=["--connect-timeout", "1"])
        run_ws(r, test_hostile_frames_are_closed_without_harm, extra=["max_packet_size 65536"])
    finally:
        shutil.rmtree(pki_dir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
