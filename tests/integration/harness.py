"""harness.py - runs the real `sol` binary for integration tests.

Starts sol on a free 127.0.0.1 port with a fresh data directory and a
generated config, captures its log, stops it by PID (SIGTERM, then SIGKILL
after a bound), kills -9 and restarts it on the same data directory, and
prints the broker log when a test fails. Also: raw-socket helpers (send
bytes, read whole MQTT packets with timeouts), packet builders, and wrappers
around mosquitto_pub/mosquitto_sub with timeouts.

Every wait here is bounded in time and every loop in count.
Not for: assertions about MQTT semantics (the test files make those).
Python 3 stdlib only; run with /usr/bin/python3 (Debian's, where paho-mqtt is).
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SOL_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BUILD_DIR = os.environ.get("SOL_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
SOL = os.path.join(BUILD_DIR, "sol")

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 5.0
POLL_S = 0.02

# Packet types (high nibble of byte 0).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

PINGREQ_BYTES = b"\xc0\x00"
DISCONNECT_BYTES = b"\xe0\x00"

# Log lines that mean a sanitizer or a crash, checked after every test.
BAD_LOG_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


class TestFailure(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def listens_on(pid, port):
    """True when process pid has a TCP socket listening on 127.0.0.1:port
    (matched through /proc/net/tcp and the process's descriptors)."""
    wanted = "0100007F:%04X" % port
    inodes = set()
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == wanted and fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
        if not inodes:
            return False
        fd_dir = "/proc/%d/fd" % pid
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    except OSError:
        return False
    return False


def wait_until(predicate, timeout_s, what):
    """Polls predicate until it is true; raises TestFailure naming `what`."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / POLL_S) + 2):
        if predicate():
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    raise TestFailure("timed out after %.1f s waiting for %s" % (timeout_s, what))


class Broker:
    """One sol process: config, data directory and log in a fresh temp dir.

    extra_config: lines appended to the generated config.
    args: extra command-line flags (e.g. ["--connect-timeout", "0.5"]).
    listeners: extra "listener ..." lines; the TCP 127.0.0.1 one is always there.
    """

    def __init__(self, extra_config=(), args=(), listeners=(), use_config=True):
        self.tmp = tempfile.mkdtemp(prefix="sol-it-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.port = free_port()
        self.config_path = os.path.join(self.tmp, "sol.conf")
        self.log_path = os.path.join(self.tmp, "broker.log")
        self.args = list(args)
        self.use_config = use_config
        self.proc = None
        self.starts = 0
        self.env = None  # extra environment variables for the broker process (dict)
        lines = ["listener %d 127.0.0.1" % self.port, *listeners, "allow_anonymous true",
                 "persistence_location %s" % self.data_dir, *extra_config]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    # ---- process control ----

    def command(self):
        if self.use_config:
            return [SOL, "-c", self.config_path, *self.args]
        return [SOL, *self.args]

    def start(self, wait_port=True, timeout_s=START_TIMEOUT_S):
        check(self.proc is None or self.proc.poll() is not None, "broker already running")
        check(os.access(SOL, os.X_OK), "no sol binary at %s (set SOL_BUILD_DIR)" % SOL)
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write("---- harness: start #%d: %s\n" % (self.starts, " ".join(self.command())))
            log.flush()
            env = None if self.env is None else {**os.environ, **self.env}
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.tmp, env=env)
        if wait_port:
            self.wait_for_port(timeout_s)
        return self

    def wait_for_port(self, timeout_s=START_TIMEOUT_S):
        """Waits until this broker process listens on its port: a port that
        merely accepts may belong to another process that took it since
        free_port() (test files run in parallel)."""
        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("broker exited with %s during start-up" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return False
            return listens_on(self.proc.pid, self.port)  # and it is ours
        wait_until(ready, timeout_s, "port %d to accept connections" % self.port)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, signum):
        if self.is_running():
            os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout_s=STOP_TIMEOUT_S):
        """Returns the exit code, or None if the process outlived timeout_s."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, signum=signal.SIGTERM, timeout_s=STOP_TIMEOUT_S):
        """Stops by PID: signum, then SIGKILL after timeout_s. Returns the exit code
        (negative for a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(signum)
            if self.wait_exit(timeout_s) is None:
                self.log_note("did not exit %.0f s after signal %d: SIGKILL" % (timeout_s, signum))
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self, hard=True):
        """kill -9 (hard) or SIGTERM, then start again on the same data dir and port."""
        if hard:
            self.kill9()
        else:
            self.stop()
        return self.start()

    # ---- log ----

    def log_note(self, text):
        with open(self.log_path, "a") as log:
            log.write("---- harness: %s\n" % text)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text, timeout_s=IO_TIMEOUT_S):
        wait_until(lambda: text in self.log(), timeout_s, "log line containing %r" % text)

    def bad_log_lines(self):
        return [l for l in self.log().splitlines() if any(m in l for m in BAD_LOG_MARKERS)]

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


# ---- MQTT packet builders (raw bytes) ----

def remaining_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def mqtt_string(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def packet(type_, flags, body):
    return bytes([(type_ << 4) | flags]) + remaining_length(len(body)) + body


def connect_packet(client_id, keepalive_s=60, clean=True, level=4, name="MQTT", will=None,
                   username=None, password=None):
    """will: (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean else 0
    payload = mqtt_string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += mqtt_string(topic) + mqtt_string(message)
    if username is not None:
        flags |= 0x80
        payload += mqtt_string(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_string(password)
    body = mqtt_string(name) + bytes([level, flags]) + struct.pack("!H", keepalive_s)
    return packet(CONNECT, 0, body + payload)


def publish_packet(topic, payload, qos=0, packet_id=0, retain=False, dup=False):
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mqtt_string(topic)
    if qos > 0:
        body += struct.pack("!H", packet_id)
    return packet(PUBLISH, flags, body + bytes(payload))


def subscribe_packet(packet_id, filters):
    """filters: [(filter, qos), ...]"""
    body = struct.pack("!H", packet_id)
    for f, qos in filters:
        body += mqtt_string(f) + bytes([qos])
    return packet(SUBSCRIBE, 2, body)


def ack_packet(type_, packet_id):
    return packet(type_, 2 if type_ == PUBREL else 0, struct.pack("!H", packet_id))


def parse_publish(flags, body):
    """(topic, packet_id, payload, qos, dup, retain) of a PUBLISH body."""
    qos = (flags >> 1) & 3
    (tlen,) = struct.unpack("!H", body[:2])
    topic = body[2:2 + tlen].decode()
    rest = body[2 + tlen:]
    pid = 0
    if qos:
        (pid,) = struct.unpack("!H", rest[:2])
        rest = rest[2:]
    return topic, pid, rest, qos, bool(flags & 8), bool(flags & 1)


# ---- raw sockets ----

class Raw:
    """A raw client socket with bounded reads of whole MQTT packets."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def tcp(cls, port, host="127.0.0.1", timeout_s=IO_TIMEOUT_S):
        sock = socket.create_connection((host, port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    @classmethod
    def unix(cls, path, timeout_s=IO_TIMEOUT_S):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        sock.connect(path)
        return cls(sock)

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        """Reads more bytes; returns False on EOF. Raises TestFailure on timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure("timed out reading from the broker")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TestFailure("timed out reading from the broker") from None
        except ConnectionResetError:
            return False
        if not data:
            return False
        self.buf += data
        return True

    def _split(self):
        """One whole packet from self.buf as (type, flags, body), or None."""
        if len(self.buf) < 2:
            return None
        length, mult, i = 0, 1, 1
        while i < len(self.buf) and i <= 4:
            byte = self.buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        else:
            return None
        if len(self.buf) < i + length:
            return None
        first = self.buf[0]
        body = self.buf[i:i + length]
        self.buf = self.buf[i + length:]
        return first >> 4, first & 0x0F, body

    def read_packet(self, timeout_s=IO_TIMEOUT_S):
        """The next packet as (type, flags, body), or None when the broker closed.
        Raises TestFailure after timeout_s."""
        deadline = time.monotonic() + timeout_s
        for _ in range(1_000_000):
            pkt = self._split()
            if pkt is not None:
                return pkt
            if not self._fill(deadline):
                return None
        raise TestFailure("read_packet: too many reads")

    def expect(self, type_, timeout_s=IO_TIMEOUT_S):
        pkt = self.read_packet(timeout_s)
        check(pkt is not None, "expected packet type %d, the broker closed the connection" % type_)
        check(pkt[0] == type_, "expected packet type %d, got %d (%r)" % (type_, pkt[0], pkt))
        return pkt

    def wait_closed(self, timeout_s=IO_TIMEOUT_S):
        """True when the broker closes the connection within timeout_s (packets
        received meanwhile are discarded); False on timeout."""
        deadline = time.monotonic() + timeout_s
        for _ in range(100_000):
            try:
                if not self._fill(deadline):
                    return True
            except TestFailure:
                return False
            except OSError:
                return True
            self.buf = b""
        return False

    def is_open_for(self, seconds):
        """True when the connection stays open (nothing closes it) for `seconds`."""
        return not self.wait_closed(seconds)


def mqtt_connect(port, client_id, keepalive_s=60, clean=True, host="127.0.0.1", raw=None):
    """A raw connection that has completed CONNECT/CONNACK (return code 0)."""
    c = raw or Raw.tcp(port, host)
    c.send(connect_packet(client_id, keepalive_s=keepalive_s, clean=clean))
    _, _, body = c.expect(CONNACK)
    check(len(body) == 2 and body[1] == 0, "CONNACK refused: %r" % body)
    return c


def subscribe_one(c, topic_filter, qos=0, packet_id=1):
    """Subscribes raw connection c to one filter; returns the SUBACK return code."""
    c.send(subscribe_packet(packet_id, [(topic_filter, qos)]))
    _, _, body = c.expect(SUBACK)
    return body[2]


def next_publish(c, timeout_s=IO_TIMEOUT_S, ack=False):
    """(topic, payload, qos, packet id) of the next PUBLISH on raw connection c,
    skipping other packets; None on timeout or close. With ack, a QoS 1
    PUBLISH is acknowledged."""
    deadline = time.monotonic() + timeout_s
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            pkt = c.read_packet(left)
        except TestFailure:
            return None
        if pkt is None:
            return None
        if pkt[0] == PUBLISH:
            topic, pid, payload, qos, _, _ = parse_publish(pkt[1], pkt[2])
            if ack and qos == 1:
                c.send(ack_packet(PUBACK, pid))
            return topic, payload, qos, pid
    return None


def connect_session(port, client_id, clean):
    """A raw connection after CONNACK 0 (short timeouts, for crash loops):
    returns (raw, session present flag)."""
    raw = Raw.tcp(port, timeout_s=2)
    raw.send(connect_packet(client_id, clean=clean, keepalive_s=30))
    _, _, body = raw.expect(CONNACK, timeout_s=3)
    check(body[1] == 0, "CONNACK %r" % body)
    return raw, body[0] & 1


# ---- MQTT 5 (raw bytes) ----

# Property identifiers and their wire types [MQTT 5.0 2.2.2.2].
P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE = 0x01, 0x02, 0x03
P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
P_AUTH_METHOD, P_AUTH_DATA, P_REQUEST_PROBLEM_INFO = 0x15, 0x16, 0x17
P_WILL_DELAY, P_REQUEST_RESPONSE_INFO, P_REASON_STRING = 0x18, 0x19, 0x1F
P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS = 0x21, 0x22, 0x23
P_MAXIMUM_QOS, P_RETAIN_AVAILABLE, P_USER_PROPERTY = 0x24, 0x25, 0x26
P_MAXIMUM_PACKET_SIZE, P_WILDCARD_AVAILABLE, P_SUB_ID_AVAILABLE = 0x27, 0x28, 0x29
P_SHARED_AVAILABLE = 0x2A
AUTH = 15

_PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "vbi",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
    0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}


def prop(pid, value):
    """One encoded property; value by the identifier's type ((name, value) for
    a User Property)."""
    kind = _PROP_TYPES[pid]
    head = bytes([pid])
    if kind == "byte":
        return head + bytes([value])
    if kind == "u16":
        return head + struct.pack("!H", value)
    if kind == "u32":
        return head + struct.pack("!I", value)
    if kind == "vbi":
        return head + remaining_length(value)
    if kind == "pair":
        return head + mqtt_string(value[0]) + mqtt_string(value[1])
    return head + mqtt_string(value)  # str, bin


def props_block(*encoded):
    body = b"".join(encoded)
    return remaining_length(len(body)) + body


def _read_vbi(data, pos):
    value, mult = 0, 1
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * mult
        mult *= 128
        if not byte & 0x80:
            return value, pos
    raise TestFailure("bad variable byte integer")


def parse_props(data, pos=0):
    """(list of (identifier, value) in wire order, position after the block)."""
    length, pos = _read_vbi(data, pos)
    end = pos + length
    out = []
    while pos < end:
        pid = data[pos]
        pos += 1
        kind = _PROP_TYPES.get(pid)
        check(kind is not None, "unknown property 0x%02x" % pid)
        if kind == "byte":
            value, pos = data[pos], pos + 1
        elif kind == "u16":
            value, pos = struct.unpack("!H", data[pos:pos + 2])[0], pos + 2
        elif kind == "u32":
            value, pos = struct.unpack("!I", data[pos:pos + 4])[0], pos + 4
        elif kind == "vbi":
            value, pos = _read_vbi(data, pos)
        else:
            (n,) = struct.unpack("!H", data[pos:pos + 2])
            value, pos = bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n
            if kind == "pair":
                (m,) = struct.unpack("!H", data[pos:pos + 2])
                value, pos = (value, bytes(data[pos + 2:pos + 2 + m])), pos + 2 + m
        out.append((pid, value))
    return out, end


def props_get(props, pid, default=None):
    for k, v in props:
        if k == pid:
            return v
    return default


def connect5_packet(client_id, keepalive_s=60, clean=True, props=b"\x00", will=None,
                    username=None, password=None):
    """will: (topic, payload, qos, retain, will properties block) or None."""
    flags = 0x02 if clean else 0
    payload = mqtt_string(client_id)
    if will is not None:
        topic, message, qos, retain, will_props = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += will_props + mqtt_string(topic) + mqtt_string(message)
    if username is not None:
        flags |= 0x80
        payload += mqtt_string(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_string(password)
    body = mqtt_string("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive_s) + props
    return packet(CONNECT, 0, body + payload)


def publish5_packet(topic, payload, qos=0, packet_id=0, retain=False, dup=False, props=b"\x00"):
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mqtt_string(topic)
    if qos > 0:
        body += struct.pack("!H", packet_id)
    return packet(PUBLISH, flags, body + props + bytes(payload))


def subscribe5_packet(packet_id, filters, props=b"\x00"):
    """filters: [(filter, options byte), ...]"""
    body = struct.pack("!H", packet_id) + props
    for f, options in filters:
        body += mqtt_string(f) + bytes([options])
    return packet(SUBSCRIBE, 2, body)


def unsubscribe5_packet(packet_id, filters, props=b"\x00"):
    body = struct.pack("!H", packet_id) + props
    for f in filters:
        body += mqtt_string(f)
    return packet(UNSUBSCRIBE, 2, body)


def ack5_packet(type_, packet_id, reason=0, props=None):
    body = struct.pack("!H", packet_id)
    if reason or props is not None:
        body += bytes([reason]) + (props if props is not None else b"")
    return packet(type_, 2 if type_ == PUBREL else 0, body)


def disconnect5_packet(reason=0, props=b"\x00"):
    return packet(DISCONNECT, 0, bytes([reason]) + props)


def parse_publish5(flags, body):
    """A PUBLISH body as a dict: topic, packet_id, props, payload, qos, dup, retain."""
    qos = (flags >> 1) & 3
    (tlen,) = struct.unpack("!H", body[:2])
    topic = body[2:2 + tlen].decode()
    pos = 2 + tlen
    pid = 0
    if qos:
        (pid,) = struct.unpack("!H", body[pos:pos + 2])
        pos += 2
    props, pos = parse_props(body, pos)
    return {"topic": topic, "packet_id": pid, "props": props, "payload": bytes(body[pos:]),
            "qos": qos, "dup": bool(flags & 8), "retain": bool(flags & 1)}


def parse_ack5(body):
    """(packet id, reason code, properties) of a PUBACK/PUBREC/PUBREL/PUBCOMP."""
    (pid,) = struct.unpack("!H", body[:2])
    reason = body[2] if len(body) > 2 else 0
    props = parse_props(body, 3)[0] if len(body) > 3 else []
    return pid, reason, props


def parse_disconnect5(body):
    """(reason code, properties) of a DISCONNECT."""
    reason = body[0] if body else 0
    props = parse_props(body, 1)[0] if len(body) > 1 else []
    return reason, props


def mqtt5_connect(port, client_id, keepalive_s=60, clean=True, props=b"\x00", will=None,
                  expect_reason=0, raw=None):
    """A raw MQTT 5 connection after CONNACK: returns (raw, session present,
    CONNACK properties). Checks the reason code is expect_reason."""
    c = raw or Raw.tcp(port)
    c.send(connect5_packet(client_id, keepalive_s=keepalive_s, clean=clean, props=props,
                           will=will))
    _, _, body = c.expect(CONNACK)
    check(body[1] == expect_reason, "CONNACK reason 0x%02x, want 0x%02x (%r)"
          % (body[1], expect_reason, body))
    return c, body[0] & 1, parse_props(body, 2)[0]


def next_publish5(c, timeout_s=IO_TIMEOUT_S):
    """The next PUBLISH on c as parse_publish5()'s dict, skipping other
    packets; None on timeout or close."""
    deadline = time.monotonic() + timeout_s
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            pkt = c.read_packet(left)
        except TestFailure:
            return None
        if pkt is None:
            return None
        if pkt[0] == PUBLISH:
            return parse_publish5(pkt[1], pkt[2])
    return None


def asan_runtime():
    """The libasan the sol binary links (to preload before a shim), or None
    when it is not an ASan build."""
    try:
        out = subprocess.run(["ldd", SOL], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\S*libasan\.so\S*) => (\S+)", out)
    return m.group(2) if m else None


# ---- mosquitto clients ----

def mosquitto_pub(port, topic, message, qos=0, extra=(), timeout_s=10):
    """Runs mosquitto_pub; returns the CompletedProcess (check .returncode).
    message None, or a message source in extra (-n, -f, -l, -s), sends no -m."""
    sources = {"-n", "--null-message", "-f", "--file", "-l", "--stdin-line", "-s",
               "--stdin-file"}
    body = [] if message is None or sources & set(extra) else ["-m", message]
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, *body,
           "-q", str(qos), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)


class MosquittoSub:
    """mosquitto_sub in the background: -C count messages or -W timeout."""

    def __init__(self, port, topic, count=1, qos=0, timeout_s=10, extra=()):
        self.cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q",
                    str(qos), "-C", str(count), "-W", str(int(timeout_s)), "-v", *extra]
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def wait(self):
        """(returncode, stdout lines, stderr), bounded by the -W timeout + 5 s."""
        try:
            out, err = self.proc.communicate(timeout=self.timeout_s + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
        return self.proc.returncode, out.splitlines(), err


def publish_until_received(port, sub, topic, message, qos=0, tries=25, interval_s=0.2):
    """mosquitto_sub says nothing once it has subscribed, so publish until the
    subscriber (started with count=1) exits, at most `tries` times."""
    for _ in range(tries):
        mosquitto_pub(port, topic, message, qos=qos)
        try:
            sub.proc.wait(timeout=interval_s)
            break
        except subprocess.TimeoutExpired:
            continue
    return sub.wait()


# ---- the runner ----

class Runner:
    """Runs test functions, each with its own broker; prints 'N passed, N failed'."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def run(self, fn, start=True, **broker_kwargs):
        name = fn.__name__
        broker = Broker(**broker_kwargs)
        t0 = time.monotonic()
        try:
            if start:
                broker.start()
            result = fn(broker)
            if broker.is_running():
                # Every test ends with a clean shutdown: exit 0, and under
                # ASan the leak check at exit lands in the log.
                rc = broker.stop()
                check(rc == 0, "exit code %s on SIGTERM after the test" % rc)
            bad = broker.bad_log_lines()
            check(not bad, "sanitizer or crash in the broker log: %s" % bad[:3])
            if result == "skip":
                self.skipped += 1
                print("SKIP %s" % name, flush=True)
            else:
                self.passed += 1
                print("ok   %s (%.2f s)" % (name, time.monotonic() - t0), flush=True)
        except Exception:
            self.failed += 1
            print("FAIL %s (%.2f s)" % (name, time.monotonic() - t0), flush=True)
            traceback.print_exc()
            print("---- broker log (%s) ----\n%s---- end of broker log ----"
                  % (broker.log_path, broker.log()), flush=True)
        finally:
            broker.cleanup()

    def finish(self):
        extra = " (%d skipped)" % self.skipped if self.skipped else ""
        print("%d passed, %d failed%s" % (self.passed, self.failed, extra), flush=True)
        sys.exit(1 if self.failed else 0)


# ---- TLS test certificates ----

OPENSSL_TIMEOUT_S = 30


def _openssl(args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=OPENSSL_TIMEOUT_S)
    check(r.returncode == 0, "openssl %s failed: %s" % (args[0], r.stderr.strip()))


def make_tls_ca(directory, name="ca"):
    """A throwaway CA in directory: returns (cert path, key path). EC P-256 keys
    keep generation fast."""
    key, crt = (os.path.join(directory, name + ext) for ext in (".key", ".crt"))
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj",
              "/CN=Sol test CA %s" % name], directory)
    return crt, key


def make_tls_cert(directory, ca, name, cn, server=False):
    """A certificate for cn signed by ca (cert, key); server certificates get
    subjectAltName 127.0.0.1 and localhost. Returns (cert path, key path)."""
    key, csr, crt, ext = (os.path.join(directory, name + e)
                          for e in (".key", ".csr", ".crt", ".ext"))
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn], directory)
    with open(ext, "w") as f:
        if server:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    _openssl(["x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
              "-out", crt, "-days", "2", "-extfile", ext], directory)
    return crt, key
