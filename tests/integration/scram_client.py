"""scram_client.py - the client side of SCRAM-SHA-512 (RFC 5802 with SHA-512),
Python stdlib only (hashlib, hmac, base64, secrets), for tests that speak
MQTT 5 enhanced authentication over a raw socket:

    c = ScramClient("alice", "correct horse")
    first = c.client_first()              # CONNECT: Authentication Method
                                          # "SCRAM-SHA-512", Authentication Data first
    final = c.client_final(server_first)  # from the server's AUTH (reason 0x18);
                                          # sent back in an AUTH (reason 0x18)
    c.verify_server_final(server_final)   # CONNACK's Authentication Data: raises
                                          # ScramError unless the server proved the key

No channel binding (GS2 header "n,,"), no authzid. Checked against Sol's
server (src/auth/scram.c) by tests/integration/test_scram_client.py, through
build/test_scram --serve.
"""

import base64
import hashlib
import hmac
import secrets


class ScramError(Exception):
    pass


def _escape(name):
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message):
    out = {}
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError("malformed SCRAM message: %r" % message)
        out.setdefault(part[0], part[2:])
    return out


class ScramClient:
    def __init__(self, username, password, nonce=None):
        self.username = username
        self.password = password.encode() if isinstance(password, str) else password
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = None
        self.server_signature = None

    def client_first(self):
        """client-first-message as bytes."""
        self.first_bare = "n=%s,r=%s" % (_escape(self.username), self.nonce)
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first, nonce_override=None):
        """client-final-message (bytes) for server-first-message (bytes or str)."""
        if isinstance(server_first, bytes):
            server_first = server_first.decode()
        if server_first.startswith("e="):
            raise ScramError("server error: %s" % server_first[2:])
        attrs = _attributes(server_first)
        nonce, salt, iterations = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if not nonce or salt is None or iterations is None:
            raise ScramError("server-first-message lacks r, s or i: %r" % server_first)
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise ScramError("the server's nonce does not extend ours")
        iterations = int(iterations)
        if iterations < 1:
            raise ScramError("bad iteration count %d" % iterations)
        salted = hashlib.pbkdf2_hmac("sha512", self.password, base64.b64decode(salt, validate=True),
                                     iterations)
        without_proof = "c=biws,r=%s" % (nonce_override or nonce)
        auth_message = ",".join([self.first_bare, server_first, without_proof]).encode()
        client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
        stored_key = hashlib.sha512(client_key).digest()
        client_sig = hmac.new(stored_key, auth_message, hashlib.sha512).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha512).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha512).digest()
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode())).encode()

    def verify_server_final(self, server_final):
        """Raises ScramError unless server_final is v= with the expected signature."""
        if isinstance(server_final, bytes):
            server_final = server_final.decode()
        attrs = _attributes(server_final)
        if "e" in attrs:
            raise ScramError("server error: %s" % attrs["e"])
        got = base64.b64decode(attrs.get("v", ""), validate=True)
        if self.server_signature is None or not hmac.compare_digest(got, self.server_signature):
            raise ScramError("the server's signature does not match: it does not know the key")
