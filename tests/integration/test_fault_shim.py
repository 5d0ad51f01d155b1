"""test_fault_shim.py - smoke test of the fault-injection shim, without the broker.

A small Python child process writes a plain temporary file through the shim
(build/libsolfault.so, LD_PRELOAD) and the test checks what the file holds
after the shim's power cut, and that the injected errors happen:
- a cut reverts unsynced writes (pwrite, writev, pwritev) and never synced ones;
- "none" keeps every write, "sectors" leaves each 512-byte sector old or new
  (never anything else), "torn" tears exactly one write;
- an O_DSYNC write is durable once it returns;
- a file (or directory) whose directory was not fsynced may lose its entry;
- the timer cut lands even when the process is idle;
- ENOSPC after N bytes, lifted by removing the control file and toggled by
  SIGUSR2; EIO on the K-th fdatasync, whose writes stay unsynced.
Bounded: every child runs under a timeout.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import harness
from harness import check

SHIM = os.environ.get("SOL_FAULT_LIB", os.path.join(harness.BUILD_DIR, "libsolfault.so"))
PY = "/usr/bin/python3"
CHILD_TIMEOUT_S = 20

# The child: runs the steps in STEPS (a JSON list) against FILE in DIR.
CHILD = r"""
import json, os, signal, sys, time
d = os.environ["T_DIR"]; path = os.path.join(d, "f.db")
out = {}
def syncdir(p):
    fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.close(fd)
fd = None
for step in json.loads(os.environ["T_STEPS"]):
    op = step[0]
    if op == "mkdir": os.mkdir(d)
    elif op == "create": fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    elif op == "create_dsync": fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DSYNC, 0o600)
    elif op == "syncdir": syncdir(d)
    elif op == "syncparent": syncdir(os.path.dirname(d))
    elif op == "pwrite": os.pwrite(fd, bytes([step[1]]) * step[2], step[3])
    elif op == "writev":
        os.lseek(fd, step[3], os.SEEK_SET)
        os.writev(fd, [bytes([step[1]]) * (step[2] // 2), bytes([step[1]]) * (step[2] - step[2] // 2)])
    elif op == "pwritev": os.pwritev(fd, [bytes([step[1]]) * step[2]], step[3])
    elif op == "fdatasync": os.fdatasync(fd)
    elif op == "try_pwrite":
        try:
            os.pwrite(fd, bytes([step[1]]) * step[2], step[3]); out.setdefault("w", []).append("ok")
        except OSError as e:
            out.setdefault("w", []).append(os.strerror(e.errno))
    elif op == "try_sync":
        try:
            os.fdatasync(fd); out.setdefault("s", []).append("ok")
        except OSError as e:
            out.setdefault("s", []).append(os.strerror(e.errno))
    elif op == "rm": os.unlink(step[1])
    elif op == "usr2": os.kill(os.getpid(), signal.SIGUSR2); time.sleep(0.01)
    elif op == "sleep": time.sleep(step[1])
    if op.startswith("try_"):
        print(json.dumps(out), flush=True)

"""


def run_child(tmp, steps, env_extra):
    env = dict(os.environ)
    env.update({"LD_PRELOAD": SHIM, "SOL_FAULT_MATCH": "f.db", "T_DIR": os.path.join(tmp, "d"),
                "T_STEPS": json.dumps(steps), "SOL_FAULT_REPORT": os.path.join(tmp, "cuts.jsonl")})
    env.update({k: str(v) for k, v in env_extra.items()})
    r = subprocess.run([PY, "-c", CHILD], env=env, capture_output=True, text=True,
                       timeout=CHILD_TIMEOUT_S)
    return r


def file_bytes(tmp):
    try:
        with open(os.path.join(tmp, "d", "f.db"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def last_line(stdout):
    lines = [l for l in stdout.splitlines() if l.strip()]
    check(lines, "the child printed nothing")
    return json.loads(lines[-1])


def cut_reports(tmp):
    try:
        with open(os.path.join(tmp, "cuts.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


SETUP = [["mkdir"], ["syncparent"], ["create"], ["syncdir"]]
A4K = [["pwrite", 0x61, 4096, 0], ["fdatasync"]]  # synced: 4 KiB of 'a'


def expect_killed(r):
    check(r.returncode == -signal.SIGKILL,
          "child exit %s, expected SIGKILL; stderr: %s" % (r.returncode, r.stderr[-2000:]))


def test_cut_all_reverts_unsynced_writes_never_synced_ones(broker):
    tmp = broker.tmp
    steps = SETUP + A4K + [["pwrite", 0x62, 1000, 100], ["writev", 0x63, 3000, 3000],
                           ["pwritev", 0x64, 5000, 8192], ["fdatasync"]]
    # events: 4K pwrite(1) sync(2) pwrite(3) writev(4) pwritev(5) sync(6): cut at the sync
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 6, "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    data = file_bytes(tmp)
    check(data == b"a" * 4096, "after the cut: %r... (%s bytes)" % (data and data[:16],
                                                                  data and len(data)))
    rep = cut_reports(tmp)
    check(len(rep) == 1 and rep[0]["reverted"] == 3 and rep[0]["at"] == "sync", "report %r" % rep)


def test_cut_none_keeps_every_write(broker):
    tmp = broker.tmp
    steps = SETUP + A4K + [["pwrite", 0x62, 1000, 100], ["writev", 0x63, 3000, 3000],
                           ["fdatasync"]]
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 5, "SOL_FAULT_CUT_MODE": "none"})
    expect_killed(r)
    want = bytearray(b"a" * 6000)
    want[100:1100] = b"b" * 1000
    want[3000:6000] = b"c" * 3000
    check(file_bytes(tmp) == bytes(want), "none mode changed the file")


def test_cut_sectors_leaves_each_sector_old_or_new(broker):
    tmp = broker.tmp
    seen = set()
    for seed in range(1, 7):
        shutil.rmtree(os.path.join(tmp, "d"), ignore_errors=True)
        steps = SETUP + [["pwrite", 0x61, 8192, 0], ["fdatasync"], ["pwrite", 0x62, 8192, 0],
                         ["fdatasync"]]
        r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 4, "SOL_FAULT_CUT_MODE": "sectors",
                                   "SOL_FAULT_SECTOR": 512, "SOL_FAULT_SEED": seed})
        expect_killed(r)
        data = file_bytes(tmp)
        check(len(data) == 8192, "size %d" % len(data))
        for s in range(16):
            sector = data[s * 512:(s + 1) * 512]
            check(sector in (b"a" * 512, b"b" * 512), "sector %d is neither old nor new" % s)
            seen.add(sector[:1])
    check(seen == {b"a", b"b"}, "6 seeds never mixed old and new sectors: %s" % seen)


def test_cut_torn_tears_one_write_keeps_the_others(broker):
    tmp = broker.tmp
    steps = SETUP + A4K + [["pwrite", 0x62, 4096, 0], ["pwrite", 0x63, 4096, 4096],
                           ["fdatasync"]]
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 5, "SOL_FAULT_CUT_MODE": "torn",
                               "SOL_FAULT_SECTOR": 512, "SOL_FAULT_SEED": 3})
    expect_killed(r)
    rep = cut_reports(tmp)
    check(len(rep) == 1 and rep[0]["torn"] == 1 and rep[0]["kept"] == 1, "report %r" % rep)
    data = file_bytes(tmp)
    check(len(data) in (4096, 8192), "size %d" % len(data))


def test_dsync_write_is_durable_when_it_returns(broker):
    tmp = broker.tmp
    steps = [["mkdir"], ["syncparent"], ["create_dsync"], ["syncdir"],
             ["pwrite", 0x61, 4096, 0], ["fdatasync"]]
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 2, "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    check(file_bytes(tmp) == b"a" * 4096, "an O_DSYNC write was reverted")


def test_unsynced_directory_entries_are_lost_synced_ones_kept(broker):
    tmp = broker.tmp
    # file created, data synced, directory never fsynced: the entry goes
    steps = [["mkdir"], ["syncparent"], ["create"], ["pwrite", 0x61, 100, 0], ["fdatasync"],
             ["fdatasync"]]
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 3, "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    check(file_bytes(tmp) is None, "the file survived without a directory fsync")
    check(os.path.isdir(os.path.join(tmp, "d")), "the synced directory vanished")
    # the directory itself made without fsyncing its parent: it goes too
    shutil.rmtree(os.path.join(tmp, "d"), ignore_errors=True)
    steps = [["mkdir"], ["create"], ["syncdir"], ["pwrite", 0x61, 100, 0], ["fdatasync"],
             ["fdatasync"]]
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 3, "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    check(not os.path.exists(os.path.join(tmp, "d")), "an unsynced directory survived")
    # both synced: kept
    steps = SETUP + [["pwrite", 0x61, 100, 0], ["fdatasync"], ["fdatasync"]]
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AT": 3, "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    check(file_bytes(tmp) == b"a" * 100, "a synced file was lost")


def test_timer_cut_lands_while_idle(broker):
    tmp = broker.tmp
    steps = SETUP + A4K + [["pwrite", 0x62, 4096, 0], ["sleep", 10]]
    # The writes must be done before the timer fires (they take a few ms; 1.5 s
    # leaves room for a loaded machine), so that the cut lands while idle.
    r = run_child(tmp, steps, {"SOL_FAULT_CUT_AFTER_MS": 1500, "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    check(file_bytes(tmp) == b"a" * 4096, "the timer cut did not revert")
    rep = cut_reports(tmp)
    check(len(rep) == 1 and rep[0]["at"] == "timer", "report %r" % rep)


def test_enospc_after_bytes_until_control_file_removed_and_sigusr2(broker):
    tmp = broker.tmp
    control = os.path.join(tmp, "full")
    open(control, "w").close()
    # Appends need space; an overwrite inside the file does not (as on ext4:
    # LMDB's meta pages are rewritten in place).
    steps = SETUP + [["try_pwrite", 0x61, 1000, 0], ["try_pwrite", 0x61, 1000, 1000],
                     ["try_pwrite", 0x61, 1000, 2000], ["try_pwrite", 0x62, 1000, 0],
                     ["rm", control], ["try_pwrite", 0x61, 1000, 2000]]
    r = run_child(tmp, steps, {"SOL_FAULT_ENOSPC_AFTER_BYTES": 2000,
                               "SOL_FAULT_ENOSPC_FILE": control})
    check(r.returncode == 0, "child failed: %s" % r.stderr[-2000:])
    w = last_line(r.stdout)["w"]
    nospace = os.strerror(28)
    check(w == ["ok", "ok", nospace, "ok", "ok"], "writes: %r" % w)
    shutil.rmtree(os.path.join(tmp, "d"), ignore_errors=True)
    steps = SETUP + [["try_pwrite", 0x61, 1000, 0], ["try_pwrite", 0x61, 1000, 1000], ["usr2"],
                     ["try_pwrite", 0x61, 1000, 1000], ["usr2"], ["try_pwrite", 0x61, 1000, 2000]]
    r = run_child(tmp, steps, {"SOL_FAULT_ENOSPC_AFTER_BYTES": 1000})
    w = last_line(r.stdout)["w"]
    check(w == ["ok", nospace, "ok", nospace], "writes with SIGUSR2: %r" % w)


def test_eio_at_kth_sync_leaves_writes_unsynced(broker):
    tmp = broker.tmp
    steps = SETUP + [["pwrite", 0x61, 4096, 0], ["try_sync"], ["pwrite", 0x62, 4096, 0],
                     ["try_sync"], ["fdatasync"]]
    # events: pwrite(1) sync(2) pwrite(3) sync-EIO(4) sync(5: cut)
    r = run_child(tmp, steps, {"SOL_FAULT_EIO_AT_SYNC": 2, "SOL_FAULT_CUT_AT": 5,
                               "SOL_FAULT_CUT_MODE": "all"})
    expect_killed(r)
    s = last_line(r.stdout)["s"]
    check(s == ["ok", os.strerror(5)], "syncs: %r" % s)
    check(file_bytes(tmp) == b"a" * 4096, "a write whose sync failed was not revertable")


def main():
    if not os.path.exists(SHIM):
        print("SKIP: no shim at %s" % SHIM)
        sys.exit(0)
    r = harness.Runner()
    for t in (test_cut_all_reverts_unsynced_writes_never_synced_ones,
              test_cut_none_keeps_every_write,
              test_cut_sectors_leaves_each_sector_old_or_new,
              test_cut_torn_tears_one_write_keeps_the_others,
              test_dsync_write_is_durable_when_it_returns,
              test_unsynced_directory_entries_are_lost_synced_ones_kept,
              test_timer_cut_lands_while_idle,
              test_enospc_after_bytes_until_control_file_removed_and_sigusr2,
              test_eio_at_kth_sync_leaves_writes_unsynced):
        r.run(t, start=False)
    r.finish()


if __name__ == "__main__":
    main()
