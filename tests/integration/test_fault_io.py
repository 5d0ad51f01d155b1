"""test_fault_io.py - the real broker on a disk that fills up or fails (issue 10).

The fault-injection shim (tests/fault/solfault.c, build/libsolfault.so) is
preloaded into sol:
- ENOSPC: once the store has written N bytes, its writes fail with ENOSPC
  while a control file exists. The filesystem still reports free space, so
  the broker's reservations let publishes in and it is the commit that
  fails: those publishes get no PUBACK (their connection closes), nothing
  else is lost, the broker keeps serving, and once the control file is gone
  (space returned) it acknowledges again. Every acknowledged message is
  delivered; `solctl check` is clean.
- EIO: the K-th fdatasync of the store fails. The broker logs one line and
  exits 1 at once (fail-stop: a retried fsync could falsely succeed); started
  again without the shim it has every message it acknowledged.
A QoS 1 publisher queues for an offline persistent subscriber throughout.
Raw sockets; every loop bounded in count and time.
"""

import os
import struct
import subprocess

import harness
from harness import (CONNACK, PUBACK, IO_TIMEOUT_S, Raw, Runner, check, connect_packet,
                     next_publish, publish_packet, subscribe_one, wait_until)

SHIM = os.environ.get("SOL_FAULT_LIB", os.path.join(harness.BUILD_DIR, "libsolfault.so"))
SOLCTL = os.path.join(harness.BUILD_DIR, "solctl")
PAYLOAD_BYTES = 2048
MAX_MESSAGES = 5000


asan_runtime = harness.asan_runtime


def preload(broker, **settings):
    asan = asan_runtime()
    broker.env = {"LD_PRELOAD": (asan + ":" if asan else "") + SHIM,
                  **{"SOL_FAULT_" + k: str(v) for k, v in settings.items()}}


def connect(broker, client_id, clean=True):
    c = Raw.tcp(broker.port)
    c.send(connect_packet(client_id, clean=clean))
    _, _, body = c.expect(CONNACK)
    check(body[1] == 0, "CONNACK %d for %s" % (body[1], client_id))
    return c, body


def payload(seq):
    return struct.pack("!I", seq) + b"p" * (PAYLOAD_BYTES - 4)


def add_keeper(broker):
    keeper, _ = connect(broker, "keeper", clean=False)
    check(subscribe_one(keeper, "io/#", 1) == 1, "subscribe refused")
    keeper.close()
    wait_until(lambda: "Client keeper" in broker.log(), IO_TIMEOUT_S, "keeper to leave")


def publish_until_closed(broker, first_seq, acked):
    """QoS 1, one at a time, until the broker closes the connection (or
    MAX_MESSAGES). Appends acknowledged seqs; returns the unacknowledged one."""
    pub, _ = connect(broker, "pub")
    for seq in range(first_seq, first_seq + MAX_MESSAGES):
        try:
            pub.send(publish_packet("io/t", payload(seq), qos=1, packet_id=seq % 65535 or 1))
            pkt = pub.read_packet(IO_TIMEOUT_S)
        except OSError:
            pkt = None
        if pkt is None:
            pub.close()
            return seq
        check(pkt[0] == PUBACK, "expected PUBACK, got %r" % (pkt[:2],))
        acked.append(seq)
    pub.close()
    return None


def drain(broker, acked):
    keeper, body = connect(broker, "keeper", clean=False)
    check(body[0] & 1 == 1, "keeper's session lost")
    got = set()
    for _ in range(len(acked) + 100):
        p = next_publish(keeper, IO_TIMEOUT_S, ack=True)
        if p is None:
            break
        got.add(struct.unpack("!I", p[1][:4])[0])
        if got >= set(acked):
            break
    keeper.close()
    missing = sorted(set(acked) - got)
    check(not missing, "%d acknowledged messages never delivered, e.g. %s"
          % (len(missing), missing[:5]))
    return got


def solctl_check(broker):
    r = subprocess.run([SOLCTL, "check", "--data-dir", broker.data_dir], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "solctl check: %s %s" % (r.stdout, r.stderr))


def test_enospc_refuses_uncommitted_publishes_and_recovers(broker):
    ctl = os.path.join(broker.tmp, "disk-full")
    open(ctl, "w").close()
    preload(broker, ENOSPC_AFTER_BYTES=4 << 20, ENOSPC_FILE=ctl)
    broker.start()
    add_keeper(broker)
    acked = []
    refused = publish_until_closed(broker, 1, acked)
    check(refused is not None, "the disk never filled (%d acked)" % len(acked))
    broker.wait_for_log("store commit failed")
    check(broker.is_running(), "a full disk stopped the broker")
    # Still full: a new publish is not acknowledged either.
    again = publish_until_closed(broker, refused + 1, acked)
    check(again == refused + 1, "acknowledged while the disk was full")
    print("  ENOSPC after 4 MiB: %d x %d B acknowledged, then refused without PUBACK"
          % (len(acked), PAYLOAD_BYTES))
    os.unlink(ctl)  # space returns
    pub, _ = connect(broker, "pub")
    pub.send(publish_packet("io/t", payload(900000), qos=1, packet_id=9))
    pkt = pub.read_packet(IO_TIMEOUT_S)
    check(pkt is not None and pkt[0] == PUBACK, "not acknowledged once space returned: %r"
          % (pkt,))
    pub.close()
    acked.append(900000)
    drain(broker, acked)
    solctl_check(broker)


def test_eio_on_sync_stops_the_broker_and_loses_nothing_acknowledged(broker):
    with open(broker.config_path, "a") as f:
        f.write("storage_sync fsync\n")
    preload(broker, EIO_AT_SYNC=200)
    broker.start()
    add_keeper(broker)
    acked = []
    refused = publish_until_closed(broker, 1, acked)
    check(refused is not None, "no sync failed after %d messages" % len(acked))
    code = broker.wait_exit(IO_TIMEOUT_S)
    check(code == 1, "exit code %r after an I/O error (want 1)" % (code,))
    log = broker.log()
    check("store: commit failed: Input/output error" in log, "no store error line")
    check("stopping now (exit 1)" in log, "no fail-stop line")
    print("  EIO at the 200th sync: %d acknowledged before sol stopped" % len(acked))
    broker.env = None  # the disk works again
    broker.start()
    drain(broker, acked)
    solctl_check(broker)


def main():
    r = Runner()
    if not os.path.exists(SHIM):
        print("SKIP: no %s (build the solfault target)" % SHIM)
        return
    r.run(test_enospc_refuses_uncommitted_publishes_and_recovers, start=False)
    r.run(test_eio_on_sync_stops_the_broker_and_loses_nothing_acknowledged, start=False)
    r.finish()


if __name__ == "__main__":
    main()
