"""test_solctl.py - solctl against real stores: human and JSON Lines output
for a known store (written by `store-bench sample`), filters, `check` and
`stats`, one-line errors with a non-zero exit, and reading next to a live
writer process.

Not for: the store's own semantics (tests/unit/test_store.c covers those).
Stdlib only; every subprocess has a timeout.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SOL_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BUILD_DIR = os.environ.get("SOL_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
SOLCTL = os.path.join(BUILD_DIR, "solctl")
BENCH = os.path.join(BUILD_DIR, "store-bench")
TIMEOUT_S = 30


def run(*args, check_rc=None):
    p = subprocess.run([SOLCTL, *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError(f"solctl {args}: rc {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def lines(*args):
    return run(*args, check_rc=0).stdout.splitlines()


def jsonl(*args):
    return [json.loads(l) for l in lines("--json", *args)]


def eq(got, want, what=""):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def one_line_error(p, needle):
    eq(p.returncode, 2, "exit code")
    eq(p.stdout, "", "stdout")
    err = p.stderr.splitlines()
    eq(len(err), 1, f"stderr lines {err}")
    if needle not in err[0] or not err[0].startswith("solctl: "):
        raise AssertionError(f"error line {err[0]!r} lacks {needle!r}")


def fingerprint(path):
    with open(os.path.join(path, "data.mdb"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- the known store ---------------------------------------------------------------


def test_human_dump_of_known_store(d):
    eq(lines("dump", "sessions", "--data-dir", d), [
        'session client_id="app" clean_session=0 protocol_level=4 online=0 '
        'last_seen=2023-11-14T22:13:20Z expiry_s=never next_packet_id=1 has_queue=1 last_seq=3 '
        'has_will=0',
        'session client_id="sensor-1" clean_session=0 protocol_level=4 online=0 '
        'last_seen=2023-11-14T22:13:20Z expiry_s=3600 expires_at=2023-11-14T23:13:20Z '
        'next_packet_id=9 has_queue=1 last_seq=1 has_will=1 will_topic="status/sensor-1" '
        'will_qos=1 will_retain=1 will_delay_s=0 will_payload_len=7 will_payload="offline"',
    ], "sessions")
    eq(lines("dump", "subscriptions", "--data-dir", d), [
        'subscription client_id="app" filter="data/+/temp" qos=0 no_local=0 '
        'retain_as_published=0 retain_handling=0',
        'subscription client_id="app" filter="status/#" qos=2 no_local=0 '
        'retain_as_published=0 retain_handling=0',
        'subscription client_id="sensor-1" filter="cmd/sensor-1" qos=1 no_local=0 '
        'retain_as_published=0 retain_handling=0',
    ], "subscriptions")
    eq(lines("dump", "retained", "--data-dir", d), [
        'retained topic="bin/blob" qos=0 stored_at=2023-11-14T22:16:40Z payload_len=4 payload_hex=000102ff',
        'retained topic="status/sensor-1" qos=1 stored_at=2023-11-14T22:15:00Z payload_len=6 payload="online"',
    ], "retained")
    q = lines("dump", "queues", "--data-dir", d)
    eq(len(q), 4, "queue lines")
    if "(truncated; --full shows all)" not in q[1] or "x" * 65 in q[1]:
        raise AssertionError(f"long payload not truncated: {q[1]}")
    full = lines("dump", "queues", "--full", "--data-dir", d)
    if "x" * 200 not in full[1] or "truncated" in full[1]:
        raise AssertionError(f"--full still truncates: {full[1]}")
    # no section: every section in turn
    eq(len(lines("dump", "--data-dir", d)), 2 + 3 + 2 + 4 + 3, "dump all")


def test_json_dump_of_known_store(d):
    s = jsonl("dump", "sessions", "--data-dir", d)
    eq([r["client_id"] for r in s], ["app", "sensor-1"], "session ids")
    eq(s[1]["will_topic"], "status/sensor-1", "will topic")
    eq(s[1]["will_payload"], "offline", "will payload")
    eq(s[0]["last_seq"], 3, "last seq")
    eq(s[0]["has_will"], False, "has_will")
    eq(s[0]["expiry_s"], None, "a 3.1.1 session never expires")
    eq(s[1]["expiry_s"], 3600, "expiry")
    eq(s[1]["online"], False, "online")
    r = jsonl("dump", "retained", "--data-dir", d)
    eq(r[0]["payload_hex"], "000102ff", "binary payload as hex")
    eq(r[1]["payload"], "online", "text payload")
    q = jsonl("dump", "queues", "--data-dir", d)
    eq([(x["client_id"], x["seq"], x["state"], x["packet_id"]) for x in q], [
        ("app", 1, "queued", 0), ("app", 2, "sent", 7), ("app", 3, "pubrec_received", 8),
        ("sensor-1", 1, "queued", 0)], "queue entries")
    eq(q[1]["payload_truncated"], True, "truncated flag")
    eq(q[1]["payload_len"], 200, "payload_len")
    m = jsonl("dump", "messages", "--data-dir", d)
    eq([(x["msg_id"], x["refcount"]) for x in m], [(1, 2), (2, 1), (3, 1)], "refcounts")
    i = jsonl("dump", "inflight", "--data-dir", d)
    eq([x["type"] for x in i], ["inflight", "inflight", "qos2_in"], "inflight types")
    eq(i[2]["packet_id"], 5, "qos2 packet id")
    full = jsonl("dump", "messages", "--full", "--data-dir", d)
    eq(full[1]["payload"], "x" * 200, "--full payload")


def test_filters_client_topic_limit(d):
    eq(len(jsonl("dump", "subscriptions", "--client", "app", "--data-dir", d)), 2, "--client subs")
    eq(len(jsonl("dump", "queues", "--client", "sensor-1", "--data-dir", d)), 1, "--client queues")
    eq(len(jsonl("dump", "sessions", "--client=app", "--data-dir", d)), 1, "--client=")
    eq([x["msg_id"] for x in jsonl("dump", "messages", "--topic", "data/#", "--data-dir", d)],
       [1, 2], "--topic messages")
    eq([x["topic"] for x in jsonl("dump", "retained", "--topic", "status/+", "--data-dir", d)],
       ["status/sensor-1"], "--topic retained")
    eq([x["filter"] for x in jsonl("dump", "subscriptions", "--topic", "status/x", "--data-dir", d)],
       ["status/#"], "--topic subscriptions (filters matching a name)")
    eq(len(jsonl("dump", "queues", "--limit", "1", "--data-dir", d)), 1, "--limit queues")
    eq(len(jsonl("dump", "messages", "--limit", "2", "--data-dir", d)), 2, "--limit messages")


def test_check_and_stats(d):
    eq(lines("check", "--data-dir", d), [f"{d}: ok, no problems found"], "check")
    eq(jsonl("check", "--data-dir", d), [{"type": "check", "problems": 0, "ok": True}], "check json")
    st = jsonl("stats", "--data-dir", d)
    eq(st[0]["type"], "store", "stats first line")
    eq(st[0]["schema_version"], 2, "schema")
    eq(st[0]["upgraded_from"], 0, "never upgraded")
    eq(st[0]["message_id_hwm"], 3, "hwm")
    counts = {x["name"]: x["entries"] for x in st[1:]}
    eq(counts, {"meta": 4, "sessions": 2, "subs": 3, "retained": 2, "messages": 3, "refs": 3,
                "queues": 4, "qos2in": 1, "groupq": 0, "bridge_queues": 0, "bridge_qos2in": 0},
       "entries per db")
    eq(jsonl("dump", "stats", "--data-dir", d), st, "dump stats == stats")
    human = lines("stats", "--data-dir", d)
    if not human[0].startswith(f"store {d}: schema 2"):
        raise AssertionError(human[0])


def test_reading_changes_nothing(d):
    before = fingerprint(d)
    lines("dump", "--data-dir", d)
    lines("check", "--data-dir", d)
    eq(fingerprint(d), before, "data.mdb after reads")


# ---- errors ---------------------------------------------------------------------------


def test_errors_are_one_line_and_non_zero(tmp):
    one_line_error(run("dump", "--data-dir", os.path.join(tmp, "missing")), "no such directory")
    other = os.path.join(tmp, "other")
    os.mkdir(other)
    with open(os.path.join(other, "notes.txt"), "w") as f:
        f.write("hi")
    one_line_error(run("check", "--data-dir", other), "not a Sol store")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    one_line_error(run("stats", "--data-dir", empty), "no data.mdb")
    eq(os.listdir(empty), [], "solctl created nothing")
    corrupt = os.path.join(tmp, "corrupt")
    os.mkdir(corrupt)
    with open(os.path.join(corrupt, "data.mdb"), "wb") as f:
        f.write(bytes(range(256)) * 64)
    one_line_error(run("dump", "--data-dir", corrupt), "not a valid LMDB file")
    one_line_error(run("frobnicate"), "unknown command")
    one_line_error(run(), "no command given")
    one_line_error(run("dump", "--limit", "lots"), "--limit")
    one_line_error(run("dump", "nonsense"), "unexpected argument")
    one_line_error(run("dump", "--bogus"), "unknown or incomplete option")
    eq(run("--help").returncode, 0, "--help")


# ---- next to a live writer ----------------------------------------------------------------


def test_reads_alongside_a_running_writer(tmp):
    d = os.path.join(tmp, "live")
    w = subprocess.Popen([BENCH, "commit", d, "nosync", "4000", "20", "512"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(d, "data.mdb")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        reads = 0
        while w.poll() is None and reads < 40:
            eq(run("check", "--data-dir", d).returncode, 0, "check during writes")
            st = jsonl("stats", "--data-dir", d)
            eq(st[0]["schema_version"], 2, "stats during writes")
            reads += 1
        if reads == 0:
            raise AssertionError("writer finished before any read; make it longer")
        out, err = w.communicate(timeout=120)
        eq(w.returncode, 0, f"writer: {err}")
    finally:
        if w.poll() is None:
            w.kill()
            w.wait(timeout=10)
    eq(run("check", "--data-dir", d).returncode, 0, "check after writes")
    q = jsonl("dump", "queues", "--client", "bench", "--limit", "3", "--data-dir", d)
    eq([x["seq"] for x in q], [1, 2, 3], "queue order")


def main():
    for b in (SOLCTL, BENCH):
        if not os.access(b, os.X_OK):
            print(f"missing {b}; build first", file=sys.stderr)
            return 1
    tmp = tempfile.mkdtemp(prefix="sol-solctl-")
    failed = 0
    try:
        sample = os.path.join(tmp, "sample")
        subprocess.run([BENCH, "sample", sample], check=True, timeout=TIMEOUT_S)
        tests = [(t, sample) for t in (test_human_dump_of_known_store, test_json_dump_of_known_store,
                                       test_filters_client_topic_limit, test_check_and_stats,
                                       test_reading_changes_nothing)]
        tests += [(test_errors_are_one_line_and_non_zero, tmp),
                  (test_reads_alongside_a_running_writer, tmp)]
        for fn, arg in tests:
            try:
                fn(arg)
                print(f"ok   {fn.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}")
                traceback.print_exc()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(tests) - failed}/{len(tests)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
