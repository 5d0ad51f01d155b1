#!/usr/bin/env python3
"""bench-retained.py - the cost of a SUBSCRIBE against many retained messages,
Sol and Debian's mosquitto side by side in the same run (issue 11).

For each broker: start it on a free 127.0.0.1 port with a fresh data
directory, publish N retained messages "dev/<i>/state" (QoS 0, pipelined,
then a round trip to know they have landed), then time, ROUNDS times each,
from sending a SUBSCRIBE to receiving the retained message it matches:
  exact   "dev/<k>/state"     (one match)
  plus    "dev/<k>/+"         (one match)
and print the medians and the Sol / mosquitto ratio. Only PIDs it started are
signalled; every wait is bounded.

Usage: tools/bench-retained.py [N=100000] [ROUNDS=50]
Environment: SOL [build/sol], MOSQUITTO [/usr/sbin/mosquitto].
"""

import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOL = os.environ.get("SOL", os.path.join(REPO, "build", "sol"))
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
TIMEOUT_S = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mqtt_string(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def remaining(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + remaining(len(body)) + body


def connect(port, cid):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(packet(0x10, mqtt_string("MQTT") + bytes([4, 2]) + struct.pack("!H", 60)
                     + mqtt_string(cid)))
    read_packet(s)
    return s


def read_exact(s, n, buf):
    while len(buf[0]) < n:
        data = s.recv(65536)
        if not data:
            raise RuntimeError("closed")
        buf[0] += data


def read_packet(s, buf=None):
    buf = buf if buf is not None else [b""]
    read_exact(s, 2, buf)
    mult, length, i = 1, 0, 1
    while True:
        read_exact(s, i + 1, buf)
        b = buf[0][i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    read_exact(s, i + length, buf)
    pkt = buf[0][:i + length]
    buf[0] = buf[0][i + length:]
    return pkt


def start(kind, tmp):
    port = free_port()
    data = os.path.join(tmp, kind)
    os.makedirs(data)
    conf = os.path.join(tmp, kind + ".conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
        if kind == "sol":
            f.write("persistence_location %s\nstorage_sync nosync\n" % data)
        else:
            f.write("user %s\n" % os.environ.get("USER", "root"))
    cmd = [SOL, "-c", conf] if kind == "sol" else [MOSQUITTO, "-c", conf]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("%s did not start" % kind)


def fill(port, n):
    s = connect(port, "filler")
    batch = []
    for i in range(n):
        batch.append(packet(0x31, mqtt_string("dev/%d/state" % i) + b"on"))
        if len(batch) == 1000:
            s.sendall(b"".join(batch))
            batch = []
    s.sendall(b"".join(batch))
    s.sendall(packet(0xC0, b""))  # PINGREQ: answered after every PUBLISH before it
    buf = [b""]
    while read_packet(s, buf)[0] >> 4 != 13:
        pass
    s.close()


def time_subscribe(port, filt, rounds):
    s = connect(port, "timer")
    times = []
    for r in range(rounds):
        pid = r + 1
        t0 = time.perf_counter()
        s.sendall(packet(0x82, struct.pack("!H", pid) + mqtt_string(filt) + b"\x00"))
        buf = [b""]
        got_suback = got_publish = False
        while not (got_suback and got_publish):
            p = read_packet(s, buf)
            got_suback |= p[0] >> 4 == 9
            got_publish |= p[0] >> 4 == 3
        times.append(time.perf_counter() - t0)
        s.sendall(packet(0xA2, struct.pack("!H", pid) + mqtt_string(filt)))
        while read_packet(s, buf)[0] >> 4 != 11:
            pass
    s.close()
    return statistics.median(times) * 1000


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    tmp = tempfile.mkdtemp(prefix="bench-retained-")
    results = {}
    try:
        for kind in ("mosquitto", "sol"):
            proc, port = start(kind, tmp)
            try:
                fill(port, n)
                k = n // 2
                results[kind] = (time_subscribe(port, "dev/%d/state" % k, rounds),
                                 time_subscribe(port, "dev/%d/+" % k, rounds))
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d retained messages, SUBSCRIBE until its retained message arrives, median of %d"
          % (n, rounds))
    print("%-28s %12s %12s %8s" % ("filter", "mosquitto ms", "sol ms", "ratio"))
    for i, name in enumerate(("exact dev/K/state", "plus dev/K/+")):
        m, s = results["mosquitto"][i], results["sol"][i]
        print("%-28s %12.3f %12.3f %8.3f" % (name, m, s, s / m if m else float("nan")))


if __name__ == "__main__":
    main()
