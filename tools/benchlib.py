"""benchlib.py - what tools/bench-retained.py and tools/bench-scale.py share.

A broker process (Sol or Debian's mosquitto) on a free 127.0.0.1 port with its
own data directory, started and restarted on the same store with the time to
its first CONNACK, stopped by PID (SIGTERM, then SIGKILL after a bound); its
RssAnon from /proc; raw MQTT 3.1.1 over plain sockets (no paho: a million
messages must not cost a Python callback each): pipelined QoS 1 publishing
inside a window, timed SUBSCRIBEs, a counted bulk receive; and the table both
scripts print (the columns of tools/bench-vs-mosquitto.sh).

Every wait is bounded in time, every loop in count; only processes started
here are signalled. Python 3 standard library only.
Not for: correctness tests (tests/integration/harness.py does that).
"""

import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOL = os.environ.get("SOL", os.path.join(REPO, "build", "sol"))
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
IO_TIMEOUT_S = 60.0  # one socket read or write; generous for a loaded machine
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux 4.2+

PUBLISH, PUBACK, SUBACK, UNSUBACK, CONNACK = 3, 4, 9, 11, 2


class BenchError(RuntimeError):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(need):
    """Raises RLIMIT_NOFILE (inherited by the brokers started later) to need, or as far as the
    hard limit allows; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError):
            need = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need


# --- packets -----------------------------------------------------------------------------------

def remaining(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    return bytes([first]) + remaining(len(body)) + body


def connect_packet(client_id, clean=True, keepalive_s=0):
    flags = 0x02 if clean else 0x00
    return packet(0x10, mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
                  + mqtt_string(client_id))


def subscribe_packet(pid, filters, qos):
    body = struct.pack("!H", pid) + b"".join(mqtt_string(f) + bytes([qos]) for f in filters)
    return packet(0x82, body)


def unsubscribe_packet(pid, filters):
    return packet(0xA2, struct.pack("!H", pid) + b"".join(mqtt_string(f) for f in filters))


def publish_packet(topic, payload, qos=0, retain=False, pid=0):
    body = mqtt_string(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body)


def publish_size(topic_len, payload_len, qos):
    """Bytes of one PUBLISH on the wire."""
    rl = 2 + topic_len + (2 if qos else 0) + payload_len
    return 1 + len(remaining(rl)) + rl


DISCONNECT = b"\xe0\x00"


class Reader:
    """Whole MQTT packets from a blocking socket, each recv bounded by the socket's timeout."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise BenchError("the broker closed the connection")
        if self.pos > 1 << 16:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def packet(self):
        """Returns (first byte, body bytes)."""
        while True:
            buf, pos = self.buf, self.pos
            if len(buf) - pos >= 2:
                length, mult, i = 0, 1, pos + 1
                while i < len(buf) and i < pos + 5:
                    length += (buf[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not buf[i - 1] & 0x80:
                        if len(buf) - i >= length:
                            self.pos = i + length
                            return buf[pos], bytes(buf[i:i + length])
                        break
            self._fill()

    def until(self, ptype):
        """Skips packets up to and including the first of type ptype; returns its body."""
        for _ in range(1 << 24):
            first, body = self.packet()
            if first >> 4 == ptype:
                return body
        raise BenchError("no packet of type %d" % ptype)


def open_socket(port, source=None, timeout=IO_TIMEOUT_S):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def connect(port, client_id, clean=True, timeout=IO_TIMEOUT_S):
    """A connected client: (socket, Reader, session_present)."""
    s = open_socket(port, timeout=timeout)
    s.sendall(connect_packet(client_id, clean))
    r = Reader(s)
    body = r.until(CONNACK)
    if len(body) != 2 or body[1] != 0:
        s.close()
        raise BenchError("CONNACK refused: %r" % body)
    return s, r, bool(body[0] & 1)


def close_client(sock):
    try:
        sock.sendall(DISCONNECT)
    except OSError:
        pass
    sock.close()


# --- broker process ----------------------------------------------------------------------------

def read_status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def dir_bytes(path):
    """Bytes the files under path occupy on disk (LMDB maps are sparse)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Broker:
    """One broker kind ("sol" or "mosquitto") with its config and data directory in tmp.

    directives: extra config lines for this kind (both get the listener and
    allow_anonymous; mosquitto gets persistence true in its directory).
    """

    def __init__(self, kind, tmp, directives=()):
        self.kind = kind
        self.port = free_port()
        self.dir = os.path.join(tmp, kind)
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.conf = os.path.join(self.dir, kind + ".conf")
        self.log = os.path.join(self.dir, kind + ".log")
        self.proc = None
        lines = ["listener %d 127.0.0.1" % self.port, "allow_anonymous true"]
        if kind == "sol":
            lines.append("persistence_location %s" % self.data)
        else:
            lines += ["user %s" % os.environ.get("USER", "root"), "persistence true",
                      "persistence_location %s/" % self.data]
        lines += list(directives)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout_s=300.0):
        """Starts the broker; returns seconds from exec to its first CONNACK (a probe client
        retries every 2 ms until one arrives)."""
        binary = SOL if self.kind == "sol" else MOSQUITTO
        logf = open(self.log, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([binary, "-c", self.conf], stdout=logf, stderr=logf)
        logf.close()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s at start-up; see %s"
                                 % (self.kind, self.proc.returncode, self.log))
            try:
                s = open_socket(self.port, timeout=max(1.0, deadline - time.monotonic()))
            except OSError:
                time.sleep(0.002)
                continue
            try:
                s.sendall(connect_packet("startup-probe", clean=True))
                body = Reader(s).until(CONNACK)
                elapsed = time.monotonic() - t0
                close_client(s)
                if body[1:2] != b"\x00":
                    raise BenchError("start-up probe refused: %r" % body)
                return elapsed
            except (OSError, BenchError):
                s.close()
                time.sleep(0.002)
        self.kill()
        raise BenchError("%s did not answer a CONNECT within %.0f s" % (self.kind, timeout_s))

    def stop(self, timeout_s=600.0):
        """SIGTERM (mosquitto saves its db then; Sol commits and closes); returns the seconds
        until it exited. SIGKILL after timeout_s."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError("%s did not exit within %.0f s of SIGTERM" % (self.kind, timeout_s))
        self.proc = None
        return time.monotonic() - t0

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def rss_anon_kb(self):
        return read_status_kb(self.pid, "RssAnon")

    def store_bytes(self):
        return dir_bytes(self.data)


# --- workloads ---------------------------------------------------------------------------------

def publish_many(port, count, topic_of, payload, retain=False, window=1000, connections=4,
                 client_id="filler", deadline_s=3600.0):
    """Publishes count QoS 1 messages (topic_of(i) -> bytes; connection k of connections sends
    i = k, k + connections, ...) pipelined, at most window per connection awaiting their
    PUBACK, and returns once every one is acknowledged: the seconds it took. Both brokers
    acknowledge a QoS 1 PUBLISH once it is stored (Sol: after its commit, which covers what
    it read from every connection in that loop turn: hence several connections)."""
    errors = []
    t0 = time.monotonic()

    def one(k):
        try:
            _publish_part(port, range(k, count, connections), topic_of, payload, retain, window,
                          "%s-%d" % (client_id, k), t0 + deadline_s)
        except (OSError, BenchError) as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(min(connections, count))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError("publishing: %s" % errors[0])
    return time.monotonic() - t0


def _publish_part(port, indexes, topic_of, payload, retain, window, client_id, deadline):
    s, _r, _sp = connect(port, client_id)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    count = len(indexes)
    sent = acked = 0
    pid = 0
    tail = b""
    first = 0x32 | (1 if retain else 0)
    pack_h = struct.Struct("!H").pack
    while acked < count:
        if time.monotonic() > deadline:
            raise BenchError("%s: %d of %d acknowledged at the deadline" % (client_id, acked,
                                                                         count))
        batch = []
        while sent < count and sent - acked < window:
            topic = topic_of(indexes[sent])
            pid = pid % 65535 + 1
            body = pack_h(len(topic)) + topic + pack_h(pid) + payload
            batch.append(bytes([first]) + remaining(len(body)) + body)
            sent += 1
        if batch:
            s.sendall(b"".join(batch))
        data = s.recv(1 << 16)
        if not data:
            raise BenchError("the broker closed the publishing connection")
        data = tail + data
        whole = len(data) - len(data) % 4
        # Nothing but PUBACKs (40 02 id id) comes back on this connection.
        if data[0:whole:4] != b"\x40" * (whole // 4) or data[1:whole:4] != b"\x02" * (whole // 4):
            raise BenchError("unexpected packet while publishing: %r" % data[:16])
        acked += whole // 4
        tail = data[whole:]
    close_client(s)


def time_subscribe(sock, reader, topic_filter, qos, pid, want_publish):
    """Sends one SUBSCRIBE; returns the seconds until its SUBACK (and, if want_publish, the
    retained PUBLISH it matches) arrived, and the SUBACK return codes."""
    t0 = time.monotonic()
    sock.sendall(subscribe_packet(pid, [topic_filter], qos))
    got_suback = got_publish = False
    codes = b""
    for _ in range(1 << 20):
        first, body = reader.packet()
        if first >> 4 == SUBACK:
            got_suback, codes = True, body[2:]
        elif first >> 4 == PUBLISH:
            got_publish = True
        if got_suback and (got_publish or not want_publish):
            return time.monotonic() - t0, codes
    raise BenchError("no SUBACK for %s" % topic_filter)


def unsubscribe(sock, reader, topic_filter, pid):
    sock.sendall(unsubscribe_packet(pid, [topic_filter]))
    reader.until(UNSUBACK)


def receive_bytes(sock, total, timeout_s):
    """Receives until total bytes have arrived or timeout_s passed; returns (bytearray of what
    arrived, seconds until the last byte)."""
    buf = bytearray(total)
    view = memoryview(buf)
    got = 0
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    t_last = t0
    while got < total:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(min(left, IO_TIMEOUT_S))
        try:
            n = sock.recv_into(view[got:])
        except socket.timeout:
            break
        if n == 0:
            break
        got += n
        t_last = time.monotonic()
    return buf[:got], t_last - t0


def count_publishes(data):
    """Number of whole PUBLISH packets in data, and of other packets."""
    pos, publishes, others, n = 0, 0, 0, len(data)
    while pos + 2 <= n:
        first = data[pos]
        length, mult, i = 0, 1, pos + 1
        while i < n:
            b = data[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if i + length > n:
            break
        if first >> 4 == PUBLISH:
            publishes += 1
        else:
            others += 1
        pos = i + length
    return publishes, others


def source_addresses(count, per_source):
    """127.0.0.2, 127.0.0.3, ...: enough loopback source addresses for count connections."""
    k = max(1, (count + per_source - 1) // per_source)
    if k > 250:
        raise BenchError("more than 250 source addresses needed")
    return ["127.0.0.%d" % (2 + i) for i in range(k)]


class _FleetConn:
    __slots__ = ("sock", "index", "stage", "buf", "t0")


def subscribe_fleet(port, clients, filters_of, qos, concurrency=256, per_source=20000,
                    id_prefix="fleet-", timeout_s=3600.0, conn_timeout_s=120.0):
    """For each client i < clients: connect with clean session 0 (a persistent session), one
    SUBSCRIBE with filters_of(i), wait for CONNACK and SUBACK, send DISCONNECT and wait for the
    broker to close (so TIME_WAIT stays on its side). concurrency handshakes at once, spread
    over loopback source addresses. Returns (seconds, errors, refused filters)."""
    sources = source_addresses(clients, per_source)  # no port is used twice in a run
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    started = finished = errors = refused = 0
    active = {}

    def finish(c, ok):
        nonlocal finished, errors
        sel.unregister(c.sock)
        c.sock.close()
        del active[c.index]
        finished += 1
        errors += 0 if ok else 1

    def start(i):
        c = _FleetConn()
        c.index, c.stage, c.buf, c.t0 = i, 0, b"", time.monotonic()
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.setblocking(False)
        c.sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        c.sock.bind((sources[i % len(sources)], 0))
        c.sock.connect_ex(("127.0.0.1", port))
        active[i] = c
        sel.register(c.sock, selectors.EVENT_WRITE, c)

    def on_event(c):
        nonlocal refused
        if c.stage == 0:  # connected (or failed)
            if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                return finish(c, False)
            c.sock.send(connect_packet("%s%d" % (id_prefix, c.index), clean=False)
                        + subscribe_packet(1, filters_of(c.index), qos))
            c.stage = 1
            sel.modify(c.sock, selectors.EVENT_READ, c)
            return None
        try:
            data = c.sock.recv(4096)
        except BlockingIOError:
            return None
        except OSError:
            return finish(c, False)
        if not data:  # the broker closed: after our DISCONNECT, that is the end
            return finish(c, c.stage == 2)
        c.buf += data
        if c.stage == 1 and len(c.buf) >= 4 + 4 + len(filters_of(c.index)):
            # CONNACK (20 02 sp rc) then SUBACK (90 len 00 01 codes...)
            codes = c.buf[8:]
            if c.buf[0] != 0x20 or c.buf[3] != 0 or c.buf[4] != 0x90:
                return finish(c, False)
            refused += codes.count(0x80)
            c.sock.send(DISCONNECT)
            c.stage = 2
        return None

    while finished < clients:
        while started < clients and len(active) < concurrency:
            start(started)
            started += 1
        now = time.monotonic()
        if now > deadline:
            raise BenchError("fleet: %d of %d clients done after %.0f s" % (finished, clients,
                                                                           timeout_s))
        for key, _mask in sel.select(timeout=1.0):
            on_event(key.data)
        for c in [c for c in active.values() if now - c.t0 > conn_timeout_s]:
            finish(c, False)
    sel.close()
    return time.monotonic() - t0, errors, refused


# --- output ------------------------------------------------------------------------------------

def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return "%.0f" % v if abs(v) >= 100 else "%.3g" % v


def ratio(s, m):
    if isinstance(s, (int, float)) and isinstance(m, (int, float)) and m:
        return "%.2f" % (s / m)
    return "n/a"


def print_table(rows):
    """rows: (scenario, metric, mosquitto value, sol value); the columns of
    tools/bench-vs-mosquitto.sh (scenario, metric, mosquitto, sol, sol/mosq)."""
    hdr = ("scenario", "metric", "mosquitto", "sol", "sol/mosq")
    cells = []
    last = None
    for scen, metric, m, s in rows:
        cells.append((scen if scen != last else "", metric, fmt(m), fmt(s), ratio(s, m)))
        last = scen
    widths = [max(len(r[i]) for r in cells + [hdr]) for i in range(len(hdr))]
    line = "  ".join("%-*s" % (widths[i], hdr[i]) for i in range(len(hdr)))
    print(line)
    print("-" * len(line))
    for r in cells:
        print("  ".join(("%-*s" if i < 2 else "%*s") % (widths[i], r[i]) for i in range(len(hdr))))
