#!/usr/bin/env python3
"""make-session-corpus.py - writes the seed programs of fuzz_session.c into
tests/fuzz/session-corpus/: real sessions (persistent and clean subscribers,
QoS 0-2 publishers, acks, wills, takeovers, failed commits, restarts) so the
fuzzer starts from states a broker meets, not from noise.

An operation is one byte (client slot in (byte >> 4) % 4, operation in
byte % 11, as fuzz_session.c reads it) and its argument bytes.
"""

import os

CONNECT, SUB, UNSUB, PUB, ACK, DISCONNECT, CLOSE, COMMIT, FAIL, RESTART, RAW = range(11)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "session-corpus")


def op(slot, code, *args):
    for b in range(256):
        if b % 11 == code and (b >> 4) % 4 == slot:
            return bytes([b, *args])
    raise ValueError((slot, code))


def connect(slot, client_id, clean, will=False, will_qos=0, will_retain=False):
    b = client_id | (4 if clean else 0) | (8 if will else 0) | (will_qos << 4)
    return op(slot, CONNECT, b | (64 if will_retain else 0))


def sub(slot, filt, qos):  # filters: a/b a/# +/b # c a/+
    return op(slot, SUB, filt | (qos << 4))


def pub(slot, topic, qos, pid=0, retain=False):  # topics: a/b a/c c x/b
    return op(slot, PUB, topic | (qos << 2) | (pid << 4) | (64 if retain else 0))


def ack(slot, index):
    return op(slot, ACK, index)


def commit(fails=False):
    return op(0, FAIL if fails else COMMIT)


SEEDS = {
    "qos2_persistent_flow": [
        connect(1, 1, clean=False), sub(1, 1, 2), commit(),
        connect(0, 0, clean=True), pub(0, 0, 2, 0), pub(0, 1, 2, 1), commit(),
        ack(0, 0), ack(0, 1), commit(), ack(1, 0), ack(1, 1), commit(),
        ack(0, 2), ack(0, 3), commit(), ack(1, 2), ack(1, 3), commit()],
    "offline_queue_restart": [
        connect(1, 1, clean=False), sub(1, 3, 1), commit(), op(1, DISCONNECT), commit(),
        connect(0, 0, clean=True), pub(0, 0, 1, 0), pub(0, 2, 1, 1), pub(0, 3, 2, 2),
        commit(), op(0, RESTART),
        connect(1, 1, clean=False), commit(), ack(1, 0), ack(1, 1), commit()],
    "failed_commits": [
        connect(1, 1, clean=False), sub(1, 0, 2), commit(fails=True),
        connect(1, 1, clean=False), sub(1, 0, 2), commit(),
        connect(0, 2, clean=False), pub(0, 0, 2, 0), commit(fails=True),
        connect(0, 2, clean=False), pub(0, 0, 2, 0), commit(), ack(0, 0), commit(fails=True),
        connect(0, 2, clean=False), ack(0, 0), commit()],
    "retained_and_wills": [
        connect(0, 0, clean=True, will=True, will_qos=1, will_retain=True),
        pub(0, 0, 1, 0, retain=True), commit(),
        connect(1, 1, clean=False), sub(1, 1, 2), commit(), op(0, CLOSE), commit(),
        connect(2, 2, clean=True), sub(2, 3, 1), commit(), ack(2, 0), commit()],
    "takeover_and_clean_discard": [
        connect(0, 3, clean=False), sub(0, 2, 1), commit(),
        connect(1, 3, clean=False), commit(),
        connect(2, 3, clean=True), commit(fails=True),
        connect(3, 0, clean=True), pub(3, 3, 1, 1), commit(), op(0, RESTART),
        connect(0, 3, clean=False), commit(), ack(0, 0), commit()],
    "window_and_unsubscribe": [
        connect(1, 1, clean=False), sub(1, 3, 2), commit(),
        connect(0, 0, clean=True),
        pub(0, 0, 1, 0), pub(0, 1, 2, 1), pub(0, 2, 1, 2), pub(0, 3, 2, 3), commit(),
        ack(1, 0), commit(), ack(1, 1), commit(), op(1, UNSUB, 3), commit(),
        ack(1, 2), ack(1, 3), commit()],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, ops in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b"".join(ops))
    print("%d seeds in %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
