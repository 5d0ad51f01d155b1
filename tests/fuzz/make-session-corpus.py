#!/usr/bin/env python3
"""make-session-corpus.py - writes the seed programs of fuzz_session.c into
tests/fuzz/session-corpus/: real sessions (persistent and clean subscribers,
QoS 0-2 publishers, acks, wills, takeovers, failed commits, restarts) so the
fuzzer starts from states a broker meets, not from noise.

An operation is one byte (client slot in (byte >> 4) % 4, operation in
byte % 11, as fuzz_session.c reads it) and its argument bytes; an MQTT 5
client's CONNECT, SUBSCRIBE, PUBLISH and DISCONNECT take one more (see
fuzz_session.c: connect_v5, op_subscribe, publish_v5, op_disconnect).
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


# MQTT 5 CONNECT byte: expiry 0/5/60/never (bits 0-1), Receive Maximum
# none/1/2/3 (2-3), Topic Alias Maximum 2 (4), Maximum Packet Size 64 (5),
# Will Delay 5 s (6), Request Problem Information 0 (7).
EXPIRY_0, EXPIRY_5, EXPIRY_60, EXPIRY_NEVER = 0, 1, 2, 3


def rx_max(n):
    return n << 2


ALIASES, SMALL_PACKETS, WILL_DELAY, NO_PROBLEM_INFO = 16, 32, 64, 128


def connect5(slot, client_id, clean, v5, will=False, will_qos=0):
    b = client_id | (4 if clean else 0) | (8 if will else 0) | (will_qos << 4) | 128
    return op(slot, CONNECT, b, v5)


def scram_connect(slot, client_id, clean, v5, wrong_password=False):
    """MQTT 5 CONNECT with Authentication Method SCRAM-SHA-512 (will QoS bits
    "3") for the fuzzer's user; the broker answers AUTH 0x18."""
    b = client_id | (4 if clean else 0) | (3 << 4) | (64 if wrong_password else 0) | 128
    return op(slot, CONNECT, b, v5)


# AUTH (an ACK byte with bit 7): the client-final of the exchange in
# progress, else a re-authentication's client-first; flags below.
AUTH_SWAP_REASON, AUTH_OTHER_METHOD, AUTH_WRONG_PASSWORD = 1, 2, 4


def auth(slot, flags=0):
    return op(slot, ACK, 0x80 | flags)


def sub(slot, filt, qos):  # filters: a/b a/# +/b # c a/+
    return op(slot, SUB, filt | (qos << 4))


def sub5(slot, filt, qos, no_local=False, rap=False, handling=0, sub_id=0):
    v = (1 if no_local else 0) | (2 if rap else 0) | (handling << 2) | (sub_id << 4)
    return op(slot, SUB, filt | (qos << 4), v)


def pub(slot, topic, qos, pid=0, retain=False):  # topics: a/b a/c c x/b
    return op(slot, PUB, topic | (qos << 2) | (pid << 4) | (64 if retain else 0))


# MQTT 5 PUBLISH byte: expiry 4 s (bit 0), alias 1 with topic (1), alias 1
# without (2), a user property (3), payload format UTF-8 (4).
EXPIRES, ALIAS_SET, ALIAS_USE, USER_PROP, UTF8 = 1, 2, 4, 8, 16


def pub5(slot, topic, qos, v5, pid=0, retain=False):
    return pub(slot, topic, qos, pid, retain) + bytes([v5])


def disconnect5(slot, with_will=False, expiry=None):
    b = (1 if with_will else 0) | (0 if expiry is None else 2 | (4 if expiry else 0))
    return op(slot, DISCONNECT, b)


def ack(slot, index):
    return op(slot, ACK, index)


def commit(fails=False):
    return op(0, FAIL if fails else COMMIT)


SEEDS = {
    "v5_scram_auth": [
        scram_connect(0, 0, clean=False, v5=EXPIRY_60), auth(0), commit(),
        sub5(0, 0, 1), commit(), auth(0), auth(0), pub5(0, 0, 1, 0, pid=1), commit(),
        ack(0, 0), commit(),
        scram_connect(1, 1, clean=True, v5=0, wrong_password=True), auth(1), commit(),
        scram_connect(2, 2, clean=True, v5=0), auth(2, AUTH_OTHER_METHOD), commit(),
        scram_connect(3, 3, clean=True, v5=0), op(3, CLOSE), commit(),
        scram_connect(3, 1, clean=True, v5=0), auth(3, AUTH_SWAP_REASON), commit(),
        auth(0, AUTH_WRONG_PASSWORD), auth(0), commit(), op(0, RESTART),
        scram_connect(0, 0, clean=False, v5=EXPIRY_60), commit(), op(0, RESTART)],
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
    "v5_expiry_and_will_delay": [
        connect5(1, 1, clean=False, v5=EXPIRY_60), sub5(1, 1, 1, sub_id=3), commit(),
        connect5(0, 0, clean=True, v5=EXPIRY_5 | WILL_DELAY, will=True, will_qos=1),
        commit(), op(0, CLOSE), commit(), commit(), op(1, CLOSE), commit(),
        connect5(2, 2, clean=False, v5=EXPIRY_NEVER), pub5(2, 0, 1, EXPIRES, pid=1),
        commit(), commit(), op(0, RESTART), connect5(1, 1, clean=False, v5=EXPIRY_60),
        commit(), ack(1, 0), commit()],
    "v5_limits_and_aliases": [
        connect5(1, 1, clean=True, v5=rx_max(1) | ALIASES | SMALL_PACKETS), sub5(1, 3, 2),
        commit(), connect5(0, 0, clean=True, v5=NO_PROBLEM_INFO),
        pub5(0, 0, 1, ALIAS_SET | USER_PROP, pid=1), pub5(0, 0, 2, ALIAS_USE, pid=2),
        pub5(0, 0, 1, ALIAS_USE | UTF8, pid=3), commit(), ack(1, 0), commit(), ack(1, 1),
        commit(), ack(1, 2), commit()],
    "v5_subscribe_options": [
        connect5(0, 0, clean=False, v5=EXPIRY_60), pub5(0, 0, 1, 0, pid=1, retain=True),
        sub5(0, 1, 1, no_local=True, rap=True, handling=1, sub_id=5), sub5(0, 0, 2, sub_id=2),
        commit(), pub5(0, 0, 1, 0, pid=2, retain=True), commit(), ack(0, 0), ack(0, 1),
        sub5(0, 1, 1, handling=1), sub5(0, 3, 1, handling=2), commit(),
        disconnect5(0, with_will=True, expiry=0), commit()],
    "v5_and_311_mixed": [
        connect(1, 1, clean=False), sub(1, 1, 2), commit(), op(1, DISCONNECT), commit(),
        connect5(1, 1, clean=False, v5=EXPIRY_5), commit(), ack(1, 0),
        connect5(0, 0, clean=True, v5=0, will=True, will_qos=2), pub5(0, 0, 2, UTF8, pid=3),
        commit(), ack(0, 0), commit(), disconnect5(1, expiry=60), commit(),
        connect(1, 1, clean=False), commit(), ack(1, 0), commit()],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, ops in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b"".join(ops))
    print("%d seeds in %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
