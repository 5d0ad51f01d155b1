"""test_scram_client.py - the Python SCRAM-SHA-512 client (scram_client.py)
against Sol's server side (src/auth/scram.c), through `build/test_scram
--serve PASSWORD_FILE` (one exchange over stdin/stdout), with a password
file made by `solctl passwd -b` (a $7$ entry): a right password completes
and the client verifies the server's signature; a wrong password, an
unknown user and a tampered nonce are refused. No broker is started here:
test_mqtt5_auth.py drives the same client through the broker's AUTH flow.
"""

import os
import shutil
import subprocess
import tempfile

import harness
from harness import check
from scram_client import ScramClient, ScramError

SERVER = os.path.join(harness.BUILD_DIR, "test_scram")
SOLCTL = os.path.join(harness.BUILD_DIR, "solctl")


def run_exchange(passwd, client, nonce_override=None):
    """(server's verdict line, server_final) of one exchange."""
    p = subprocess.Popen([SERVER, "--serve", passwd], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(client.client_first() + b"\n")
        p.stdin.flush()
        server_first = p.stdout.readline().rstrip(b"\n")
        check(not server_first.startswith(b"INVALID"), "server-first: %r" % server_first)
        p.stdin.write(client.client_final(server_first, nonce_override) + b"\n")
        p.stdin.flush()
        verdict, _, server_final = p.stdout.readline().rstrip(b"\n").partition(b" ")
        p.wait(timeout=10)
        return verdict.decode(), server_final
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)


def test_python_client_against_the_c_server(_):
    tmp = tempfile.mkdtemp(prefix="sol-scram-")
    try:
        passwd = os.path.join(tmp, "passwd")
        for user, pw in (("alice", "correct horse"), ("b,o=b", "p=w,")):
            r = subprocess.run([SOLCTL, "passwd", "-b", passwd, user, pw], capture_output=True,
                               text=True, timeout=30)
            check(r.returncode == 0, "solctl passwd: %s" % r.stderr)
        check(open(passwd).read().count("$7$") == 2, "solctl passwd writes $7$ entries")

        for user, pw in (("alice", "correct horse"), ("b,o=b", "p=w,")):
            c = ScramClient(user, pw)
            verdict, final = run_exchange(passwd, c)
            check(verdict == "OK", "%s: %s %r" % (user, verdict, final))
            c.verify_server_final(final)  # the server knows the key

        verdict, final = run_exchange(passwd, ScramClient("alice", "wrong horse"))
        check(verdict == "DENIED" and final == b"e=invalid-proof", "wrong password: %r" % final)
        verdict, final = run_exchange(passwd, ScramClient("mallory", "x"))
        check(verdict == "DENIED" and final == b"e=invalid-proof", "unknown user: %r" % final)
        c = ScramClient("alice", "correct horse")
        verdict, _ = run_exchange(passwd, c, nonce_override=c.nonce + "tampered")
        check(verdict == "DENIED", "tampered nonce accepted")
        try:
            c.verify_server_final(b"v=" + b"A" * 86 + b"==")
            raise harness.TestFailure("a forged server signature was accepted")
        except ScramError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    r = harness.Runner()
    r.run(test_python_client_against_the_c_server, start=False)
    r.finish()


if __name__ == "__main__":
    main()
