#!/usr/bin/python3
"""test_install.py - `cmake --install` (issue 13, operations): with DESTDIR
set to a temp dir and the default prefix, the binaries, man pages, sol.conf
and the systemd unit land where Debian expects them; each man page renders
without a warning (man -l and groff -ww); the unit starts the installed sol;
a second install keeps an edited sol.conf.

Not for: the broker's behaviour (every other test).
"""

import os
import shutil
import subprocess
import tempfile

from harness import BUILD_DIR, check

PREFIX = "/usr/local"
TIMEOUT_S = 60
EXPECTED = {
    "usr/local/sbin/sol": True,  # executable?
    "usr/local/bin/solctl": True,
    "usr/local/share/man/man8/sol.8": False,
    "usr/local/share/man/man5/sol.conf.5": False,
    "usr/local/share/man/man1/solctl.1": False,
    "usr/local/lib/systemd/system/sol.service": False,
    "etc/sol/sol.conf": False,
}


def run(cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, **(env or {})})


def install(root):
    r = run(["cmake", "--install", BUILD_DIR, "--prefix", PREFIX], env={"DESTDIR": root})
    check(r.returncode == 0, "cmake --install failed: %s%s" % (r.stdout, r.stderr))
    return r.stdout


def check_files(root):
    for rel, is_exec in EXPECTED.items():
        path = os.path.join(root, rel)
        check(os.path.isfile(path), "not installed: /%s" % rel)
        if is_exec:
            check(os.access(path, os.X_OK), "not executable: /%s" % rel)
    stray = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
             if os.path.relpath(os.path.join(d, f), root) not in EXPECTED]
    check(not stray, "unexpected files installed: %s" % stray)


def check_man_pages(root):
    env = {"MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    for rel in EXPECTED:
        if "/man/" not in rel:
            continue
        page = os.path.join(root, rel)
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", page], env=env)
        check(r.returncode == 0 and r.stderr == "", "groff warns on %s: %s" % (rel, r.stderr))
        if shutil.which("man"):
            r = run(["man", "--warnings", "-l", page], env=env)
            check(r.returncode == 0 and r.stderr == "",
                  "man -l warns on %s: %s" % (rel, r.stderr))
            name = os.path.basename(rel).rsplit(".", 1)[0]
            check("NAME" in r.stdout and name in r.stdout and "SEE ALSO" in r.stdout,
                  "%s renders without NAME/SEE ALSO" % rel)


def check_unit_and_binaries(root):
    with open(os.path.join(root, "usr/local/lib/systemd/system/sol.service")) as f:
        unit = f.read()
    check("ExecStart=/usr/local/sbin/sol -c /etc/sol/sol.conf\n" in unit,
          "the unit does not start the installed sol: %s" %
          [l for l in unit.splitlines() if l.startswith("ExecStart")])
    sol = os.path.join(root, "usr/local/sbin/sol")
    r = run([sol, "--version"])
    check(r.returncode == 0 and r.stdout.startswith("sol "), "installed sol --version: %r" %
          (r.stdout + r.stderr))
    r = run([sol, "-c", os.path.join(root, "etc/sol/sol.conf"), "--test-config"])
    check(r.returncode == 0 and "configuration OK" in r.stdout,
          "the installed sol.conf does not pass --test-config: %r" % (r.stdout + r.stderr))
    r = run([os.path.join(root, "usr/local/bin/solctl"), "--help"])
    check("usage: solctl" in r.stdout + r.stderr, "installed solctl --help")


def check_reinstall_keeps_config(root):
    conf = os.path.join(root, "etc/sol/sol.conf")
    with open(conf, "a") as f:
        f.write("sys_interval 5\n")
    out = install(root)
    with open(conf) as f:
        check(f.read().endswith("sys_interval 5\n"), "a reinstall overwrote sol.conf")
    check(os.path.isfile(conf + ".dist"), "no sol.conf.dist next to the kept sol.conf: %s" % out)


def main():
    root = tempfile.mkdtemp(prefix="sol-install-")
    try:
        install(root)
        check_files(root)
        check_man_pages(root)
        check_unit_and_binaries(root)
        check_reinstall_keeps_config(root)
        print("ok   test_install (%s)" % ", ".join(sorted(EXPECTED)), flush=True)
        print("1 passed, 0 failed", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
