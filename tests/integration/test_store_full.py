"""test_store_full.py - what an ack means when the store is full (issue 10).

A store capped small (storage_max_size) is filled by a QoS 1 publisher
queueing for an offline persistent subscriber, then:
- a publish the store cannot take gets no PUBACK: the connection closes and
  the broker logs it; every PUBACK the publisher did get is for a message
  that is delivered once the subscriber drains its queue;
- the full store still drains: the subscriber's PUBACKs (deletes) commit;
- once drained, the publisher is acknowledged again;
- traffic that needs no storage (QoS 0, clean sessions) goes on throughout;
- `solctl check` is clean at the end, and after a restart nothing that was
  acknowledged is missing.
Raw sockets; every loop bounded in count and time.
"""

import os
import struct
import subprocess

from harness import (CONNACK, PUBACK, IO_TIMEOUT_S, Raw, Runner, check, connect_packet,
                     next_publish, publish_packet, subscribe_one, BUILD_DIR)

SOLCTL = os.path.join(BUILD_DIR, "solctl")
PAYLOAD_BYTES = 8192
MAX_MESSAGES = 2000  # 16 MB: far more than a 2 MB store takes


def connect(broker, client_id, clean=True):
    c = Raw.tcp(broker.port)
    c.send(connect_packet(client_id, clean=clean))
    _, _, body = c.expect(CONNACK)
    return c, body


def payload(seq):
    return struct.pack("!I", seq) + b"x" * (PAYLOAD_BYTES - 4)


def fill_until_refused(broker):
    """Publishes QoS 1 until the broker closes without a PUBACK. Returns
    (acknowledged sequence numbers, the refused one)."""
    pub, _ = connect(broker, "pub")
    acked = []
    for seq in range(1, MAX_MESSAGES + 1):
        pub.send(publish_packet("fill/t", payload(seq), qos=1, packet_id=seq % 65535 or 1))
        pkt = pub.read_packet(IO_TIMEOUT_S)
        if pkt is None:
            pub.close()
            return acked, seq
        check(pkt[0] == PUBACK, "expected PUBACK, got %r" % (pkt[:2],))
        acked.append(seq)
    raise AssertionError("the store never filled up after %d messages" % MAX_MESSAGES)


def drain(keeper, count):
    """Reads count messages from keeper (acking each); returns their seqs."""
    got = []
    for _ in range(count + 10):
        if len(got) >= count:
            break
        p = next_publish(keeper, IO_TIMEOUT_S, ack=True)
        if p is None:
            break
        got.append(struct.unpack("!I", p[1][:4])[0])
    return got


def solctl_check(broker):
    r = subprocess.run([SOLCTL, "check", "--data-dir", broker.data_dir], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "solctl check: %s %s" % (r.stdout, r.stderr))


def test_full_store_refuses_unacked_drains_and_recovers(broker):
    with open(broker.config_path, "a") as f:
        f.write("storage_max_size 2M\nmax_queued_messages 0\nmax_queued_bytes 0\nsys_interval 1\n")
    broker.start()
    keeper, _ = connect(broker, "keeper", clean=False)
    check(subscribe_one(keeper, "fill/#", 1) == 1, "subscribe refused")
    keeper.close()
    broker.wait_for_log("keeper")

    acked, refused = fill_until_refused(broker)
    check(len(acked) > 20, "only %d messages fit in 2 MB" % len(acked))
    broker.wait_for_log("store full")
    print("  2 MB store: %d x %d B acknowledged, #%d refused without PUBACK"
          % (len(acked), PAYLOAD_BYTES, refused))

    # Counted where monitoring looks.
    sys, _ = connect(broker, "sys-reader")
    check(subscribe_one(sys, "$SYS/broker/messages/refused/store full", 0) == 0, "$SYS refused")
    counts = []
    for _ in range(10):  # the retained value may predate the refusal: wait for a tick
        got = next_publish(sys, IO_TIMEOUT_S)
        check(got is not None, "no $SYS refused count (saw %r)" % counts)
        counts.append(int(got[1]))
        if counts[-1] >= 1:
            break
    check(counts[-1] >= 1, "$SYS refused count: %r" % counts)
    sys.close()

    # Storage-free traffic goes on while the store is full.
    sub, _ = connect(broker, "live-sub")
    check(subscribe_one(sub, "live", 0) == 0, "subscribe refused")
    bystander, _ = connect(broker, "live-pub")
    bystander.send(publish_packet("live", b"still serving"))
    got = next_publish(sub)
    check(got is not None and got[1] == b"still serving", "QoS 0 while full: %r" % (got,))

    # Every acknowledged message is delivered; the deletes drain the store.
    keeper, body = connect(broker, "keeper", clean=False)
    check(body[0] & 1 == 1, "keeper's session lost")
    got = drain(keeper, len(acked))
    missing = sorted(set(acked) - set(got))
    check(not missing, "%d acknowledged messages not delivered, e.g. %s"
          % (len(missing), missing[:5]))
    keeper.close()

    # Room again: the publisher is acknowledged.
    pub, _ = connect(broker, "pub")
    pub.send(publish_packet("fill/t", payload(999999), qos=1, packet_id=7))
    pkt = pub.read_packet(IO_TIMEOUT_S)
    check(pkt is not None and pkt[0] == PUBACK, "not acknowledged after draining: %r" % (pkt,))
    pub.close()
    solctl_check(broker)

    # A restart changes nothing a client can see: that last message waits.
    broker.restart(hard=True)
    keeper, body = connect(broker, "keeper", clean=False)
    p = next_publish(keeper, IO_TIMEOUT_S, ack=True)
    check(p is not None and struct.unpack("!I", p[1][:4])[0] == 999999,
          "after restart: %r" % (p[:2] if p else None,))
    keeper.close()


def main():
    r = Runner()
    r.run(test_full_store_refuses_unacked_drains_and_recovers, start=False)
    r.finish()


if __name__ == "__main__":
    main()
