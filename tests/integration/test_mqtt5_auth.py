"""test_mqtt5_auth.py - MQTT 5 enhanced authentication with SCRAM-SHA-512
against the real broker, over real sockets.

The password file is made by Debian's mosquitto_passwd (its default hash is
$7$ PBKDF2-HMAC-SHA512, whose output is SCRAM's SaltedPassword; `-H sha512`
writes a $6$ entry, which cannot do SCRAM). The client side is
tests/integration/scram_client.py on a raw socket: paho-mqtt 1.6.1 (Debian's
python3-paho-mqtt) sends a CONNECT with an Authentication Method but has no
handler for the AUTH packet that answers it, so it drives only the unknown
method case and the bystander client here.

Covered: a right password connects (AUTH 0x18, then CONNACK 0 whose
server-final the client verifies) and publishes/subscribes under the ACL of
the SCRAM username; wrong password, unknown user and $6$ user get CONNACK
0x87; an unknown method 0x8C; a client that stalls after server-first is
closed by the connect deadline while a bystander keeps working; a SIGHUP
reload mid-exchange; re-authentication (AUTH 0x19) after CONNACK.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h  # noqa: E402
from harness import check  # noqa: E402
from scram_client import ScramClient  # noqa: E402

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

SCRAM = "SCRAM-SHA-512"
CONTINUE, REAUTH = 0x18, 0x19
TMP = tempfile.mkdtemp(prefix="sol-it-scram-")
PASSWD = os.path.join(TMP, "passwd")
ACL = os.path.join(TMP, "acl")


def make_files():
    """alice and bob with $7$ (mosquitto_passwd's default), dave with $6$."""
    for i, (user, password, hash_args) in enumerate(
            (("alice", "wonderland", []), ("bob", "builder", []),
             ("dave", "legacy pass", ["-H", "sha512"]))):
        create = ["-c"] if i == 0 else []
        r = subprocess.run(["mosquitto_passwd", *hash_args, *create, "-b", PASSWD, user, password],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "mosquitto_passwd: %s" % r.stderr)
    lines = open(PASSWD).read().splitlines()
    check(lines[0].startswith("alice:$7$") and lines[2].startswith("dave:$6$"),
          "mosquitto_passwd wrote %r" % lines)
    with open(ACL, "w") as f:
        f.write("user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n")


CONFIG = ["password_file %s" % PASSWD, "acl_file %s" % ACL, "allow_anonymous false"]


def auth_props(data=None, method=SCRAM):
    encoded = [h.prop(h.P_AUTH_METHOD, method)]
    if data is not None:
        encoded.append(h.prop(h.P_AUTH_DATA, data))
    return h.props_block(*encoded)


def auth_packet(reason, data, method=SCRAM):
    return h.packet(h.AUTH, 0, bytes([reason]) + auth_props(data, method))


def read_auth(c):
    """(reason, properties) of the next packet, which must be AUTH."""
    _, _, body = c.expect(h.AUTH)
    return body[0], h.parse_props(body, 1)[0]


def scram_begin(port, client_id, user, password):
    """CONNECT with the client-first-message; returns (raw, scram client,
    client-final-message) after the broker's AUTH 0x18."""
    c = h.Raw.tcp(port)
    sc = ScramClient(user, password)
    c.send(h.connect5_packet(client_id, props=auth_props(sc.client_first())))
    reason, props = read_auth(c)
    check(reason == CONTINUE, "AUTH reason 0x%02x" % reason)
    check(h.props_get(props, h.P_AUTH_METHOD) == SCRAM.encode(), "AUTH method %r" % props)
    return c, sc, sc.client_final(h.props_get(props, h.P_AUTH_DATA))


def scram_finish(c, final, expect_reason):
    """Sends the client-final-message; returns the CONNACK's properties."""
    c.send(auth_packet(CONTINUE, final))
    _, _, body = c.expect(h.CONNACK)
    check(body[1] == expect_reason, "CONNACK 0x%02x, want 0x%02x" % (body[1], expect_reason))
    return h.parse_props(body, 2)[0]


def scram_connect(port, client_id, user, password):
    c, sc, final = scram_begin(port, client_id, user, password)
    props = scram_finish(c, final, 0)
    check(h.props_get(props, h.P_AUTH_METHOD) == SCRAM.encode(), "CONNACK method %r" % props)
    sc.verify_server_final(h.props_get(props, h.P_AUTH_DATA))  # the broker knows the key
    return c


def suback_code(c, topic_filter, packet_id):
    c.send(h.subscribe5_packet(packet_id, [(topic_filter, 0)]))
    _, _, body = c.expect(h.SUBACK)
    return body[-1]


def test_right_password_connects_and_the_acl_is_the_scram_users(b):
    c = scram_connect(b.port, "alice-1", "alice", "wonderland")
    check(suback_code(c, "alice/t", 1) == 0, "alice/t refused")
    check(suback_code(c, "bob/t", 2) == 0x87, "bob/t allowed to alice")
    c.send(h.publish5_packet("alice/t", b"hello"))
    msg = h.next_publish5(c)
    check(msg is not None and msg["payload"] == b"hello", "own publish not received: %r" % msg)
    # The same $7$ user can still connect with a CONNECT password.
    p = h.Raw.tcp(b.port)
    p.send(h.connect5_packet("alice-2", username="alice", password="wonderland"))
    _, _, body = p.expect(h.CONNACK)
    check(body[1] == 0, "CONNECT password refused: %r" % body)
    c.send(h.disconnect5_packet())
    check(c.wait_closed(), "not closed after DISCONNECT")


def test_failures_get_0x87_and_an_unknown_method_0x8c(b):
    for user, password in (("alice", "wrong"), ("nobody", "wonderland"), ("dave", "legacy pass")):
        c, _, final = scram_begin(b.port, "try-" + user, user, password)
        props = scram_finish(c, final, 0x87)
        check(h.props_get(props, h.P_AUTH_DATA) == b"e=invalid-proof", "%s: %r" % (user, props))
        check(c.wait_closed(), "%s: refused connection left open" % user)
    b.wait_for_log("SCRAM-SHA-512 authentication of user 'dave' failed: the user has a $6$")
    check("wonderland" not in b.log(), "a password in the log")
    # The $6$ user connects with a CONNECT password.
    p = h.Raw.tcp(b.port)
    p.send(h.connect5_packet("dave-1", username="dave", password="legacy pass"))
    _, _, body = p.expect(h.CONNACK)
    check(body[1] == 0, "dave's CONNECT password refused: %r" % body)
    # A method Sol does not know, from paho-mqtt: 0x8C [MQTT-4.12.0-1].
    got = []
    done = threading.Event()
    client = paho.Client(client_id="paho-method", protocol=paho.MQTTv5)

    def on_connect(_c, _u, _f, reason, _p):
        got.append(reason.value if hasattr(reason, "value") else reason)
        done.set()
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.AuthenticationMethod = "GS2-KRB5"
    client.connect("127.0.0.1", b.port, properties=props)
    client.loop_start()
    try:
        check(done.wait(h.IO_TIMEOUT_S), "paho got no CONNACK")
    finally:
        client.loop_stop()
    check(got == [0x8C], "paho CONNACK reason %r, want 0x8C" % got)


def test_stalled_exchange_is_closed_and_others_keep_working(b):
    staller, _, _ = scram_begin(b.port, "staller", "bob", "builder")
    bystander = paho.Client(client_id="bystander", protocol=paho.MQTTv5)
    bystander.username_pw_set("bob", "builder")
    received = []
    subscribed = threading.Event()
    bystander.on_message = lambda _c, _u, m: received.append(m.payload)
    bystander.on_subscribe = lambda *a: subscribed.set()
    bystander.on_connect = lambda c, *a: c.subscribe("bob/t", qos=1)
    bystander.connect("127.0.0.1", b.port)
    bystander.loop_start()
    try:
        check(subscribed.wait(h.IO_TIMEOUT_S), "bystander not subscribed")
        bystander.publish("bob/t", b"still here", qos=1)
        h.wait_until(lambda: received == [b"still here"], h.IO_TIMEOUT_S, "bystander's message")
        # --connect-timeout 1: the exchange is part of the connect deadline.
        check(staller.wait_closed(h.IO_TIMEOUT_S), "stalled exchange not closed")
        b.wait_for_log("authentication (AUTH) not finished within")
        bystander.publish("bob/t", b"after", qos=1)
        h.wait_until(lambda: received == [b"still here", b"after"], h.IO_TIMEOUT_S,
                     "bystander's second message")
    finally:
        bystander.loop_stop()


def test_sighup_mid_exchange_and_reauthentication(b):
    c, _, final = scram_begin(b.port, "reload", "alice", "wonderland")
    b.send_signal(signal.SIGHUP)
    b.wait_for_log("SIGHUP: reloaded the password and ACL files")
    scram_finish(c, final, 0)  # the exchange kept the credentials it started with
    # Re-authentication [4.12.1]: AUTH 0x19, 0x18 back, then AUTH 0x00.
    sc = ScramClient("alice", "wonderland")
    c.send(auth_packet(REAUTH, sc.client_first()))
    reason, props = read_auth(c)
    check(reason == CONTINUE, "re-authentication AUTH 0x%02x" % reason)
    c.send(auth_packet(CONTINUE, sc.client_final(h.props_get(props, h.P_AUTH_DATA))))
    reason, props = read_auth(c)
    check(reason == 0, "re-authentication ended with AUTH 0x%02x" % reason)
    sc.verify_server_final(h.props_get(props, h.P_AUTH_DATA))
    check(suback_code(c, "alice/t", 1) == 0, "not usable after re-authentication")
    # A failed one: DISCONNECT 0x87 [MQTT-4.12.1-2].
    sc = ScramClient("alice", "wrong")
    c.send(auth_packet(REAUTH, sc.client_first()))
    _, props = read_auth(c)
    c.send(auth_packet(CONTINUE, sc.client_final(h.props_get(props, h.P_AUTH_DATA))))
    _, _, body = c.expect(h.DISCONNECT)
    check(body[0] == 0x87, "DISCONNECT %r" % body)
    check(c.wait_closed(), "not closed after a failed re-authentication")


def main():
    make_files()
    r = h.Runner()
    try:
        r.run(test_right_password_connects_and_the_acl_is_the_scram_users, extra_config=CONFIG)
        r.run(test_failures_get_0x87_and_an_unknown_method_0x8c, extra_config=CONFIG)
        r.run(test_stalled_exchange_is_closed_and_others_keep_working, extra_config=CONFIG,
              args=["--connect-timeout", "1"])
        r.run(test_sighup_mid_exchange_and_reauthentication, extra_config=CONFIG)
    finally:
        subprocess.run(["rm", "-rf", TMP], timeout=30)
    r.finish()


if __name__ == "__main__":
    main()
