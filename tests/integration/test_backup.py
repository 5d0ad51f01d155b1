"""test_backup.py - `solctl backup` of a live store (issue 13).

A QoS 1 publisher keeps queueing for an offline persistent subscriber while
`solctl backup` copies the store. A second broker started on the copy has a
store that passes `solctl check` and holds every message acknowledged before
the backup began (and its subscriber's session). A backup into a directory
that already holds a store, or of a store too close to storage_max_size, is
refused with one line and exit 2. Every wait bounded.
"""

import os
import struct
import subprocess
import threading
import time

import harness
from harness import (CONNACK, PUBACK, IO_TIMEOUT_S, Broker, Raw, Runner, check, connect_packet,
                     next_publish, publish_packet, subscribe_one, wait_until)

SOLCTL = os.path.join(harness.BUILD_DIR, "solctl")
RUN_TIMEOUT_S = 60


def solctl(*args):
    return subprocess.run([SOLCTL, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def connect(port, client_id, clean=True):
    c = Raw.tcp(port)
    c.send(connect_packet(client_id, clean=clean))
    _, _, body = c.expect(CONNACK)
    check(body[1] == 0, "CONNACK %d" % body[1])
    return c, body


class Publisher(threading.Thread):
    """QoS 1, one at a time, recording (seq, time acked) until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acked = []
        self.error = None

    def run(self):
        try:
            pub, _ = connect(self.port, "pub")
            for seq in range(1, 200000):
                if self.stop.is_set():
                    break
                pub.send(publish_packet("b/t", struct.pack("!I", seq) + b"x" * 500, qos=1,
                                        packet_id=seq % 65535 or 1))
                _, _, _ = pub.expect(PUBACK)
                self.acked.append((seq, time.monotonic()))
            pub.close()
        except Exception as e:  # reported by the test
            self.error = e


def test_backup_under_load_is_consistent_and_complete(broker):
    broker.start()
    keeper, _ = connect(broker.port, "keeper", clean=False)
    check(subscribe_one(keeper, "b/#", 1) == 1, "subscribe refused")
    keeper.close()
    wait_until(lambda: "Client keeper" in broker.log(), IO_TIMEOUT_S, "keeper to leave")
    pub = Publisher(broker.port)
    pub.start()
    wait_until(lambda: len(pub.acked) > 2000, 20, "2000 acknowledged messages")
    dest = os.path.join(broker.tmp, "backup")
    started = time.monotonic()
    r = solctl("backup", "--data-dir", broker.data_dir, dest)
    pub.stop.set()
    pub.join(timeout=10)
    check(r.returncode == 0, "backup failed: %s" % r.stderr)
    check(pub.error is None, "publisher: %r" % (pub.error,))
    before = [seq for seq, t in pub.acked if t < started]
    print("  backed up while publishing: %d acknowledged before it began, %d in all"
          % (len(before), len(pub.acked)))
    r = solctl("check", "--data-dir", dest)
    check(r.returncode == 0, "solctl check on the copy: %s %s" % (r.stdout, r.stderr))

    second = Broker()
    try:
        with open(second.config_path, "a") as f:
            f.write("persistence_location %s\n" % dest)
        second.start()
        keeper, body = connect(second.port, "keeper", clean=False)
        check(body[0] & 1 == 1, "the copy lost the keeper's session")
        got = set()
        for _ in range(len(pub.acked) + 100):
            p = next_publish(keeper, IO_TIMEOUT_S, ack=True)
            if p is None:
                break
            got.add(struct.unpack("!I", p[1][:4])[0])
            if got >= set(before):
                break
        missing = sorted(set(before) - got)
        check(not missing, "%d messages acknowledged before the backup are not in it, e.g. %s"
              % (len(missing), missing[:5]))
        keeper.close()
        check(second.stop() == 0, "the second broker did not stop cleanly")
    finally:
        second.cleanup()


def test_backup_refuses_an_existing_store_and_a_full_one(broker):
    broker.start()
    c, _ = connect(broker.port, "someone", clean=False)
    c.close()
    dest = os.path.join(broker.tmp, "backup")
    r = solctl("backup", "--data-dir", broker.data_dir, dest)
    check(r.returncode == 0, "first backup failed: %s" % r.stderr)
    r = solctl("backup", "--data-dir", broker.data_dir, dest)
    check(r.returncode == 2 and "already holds a store" in r.stderr,
          "second backup into the same directory: %d %r" % (r.returncode, r.stderr))
    r = solctl("backup", "--data-dir", broker.data_dir, "--max-size", "4096",
               os.path.join(broker.tmp, "other"))
    check(r.returncode == 2 and "storage_max_size" in r.stderr,
          "backup of a store over 90%% of its limit: %d %r" % (r.returncode, r.stderr))
    check(not os.path.exists(os.path.join(broker.tmp, "other", "data.mdb")),
          "a refused backup wrote a copy")
    r = solctl("backup", "--data-dir", broker.data_dir, "--compact",
               os.path.join(broker.tmp, "compact"))
    check(r.returncode == 0, "compact backup failed: %s" % r.stderr)
    r = solctl("check", "--data-dir", os.path.join(broker.tmp, "compact"))
    check(r.returncode == 0, "solctl check on the compact copy: %s" % r.stdout)


def main():
    r = Runner()
    # Queue limits off: every acknowledged message stays queued for the keeper.
    r.run(test_backup_under_load_is_consistent_and_complete, start=False,
          extra_config=["max_queued_messages 0", "max_queued_bytes 0"])
    r.run(test_backup_refuses_an_existing_store_and_a_full_one, start=False)
    r.finish()


if __name__ == "__main__":
    main()
