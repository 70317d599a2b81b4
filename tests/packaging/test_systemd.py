#!/usr/bin/env python3
"""The .deb under a real systemd: install, run, reload, watchdog, upgrade, purge.

A Debian 12 root (systemd_box.py: debootstrap once, cached under the build
directory) boots as /sbin/init in a container of a private dockerd
(tests/integration/realdocker.py) with the host's network, so the agent in it
reaches tests/fake_aws.py on the host's 127.0.0.1. The .deb is built from
this tree (scripts/package deb) while the box boots; a second one with a
higher version, the same files repacked, is the upgrade. The test points the
agent at the fake with a drop-in in /etc/cwlogd/conf.d/ (endpoints,
flush_interval = 1s, a journald source for one test unit); the unit is the
shipped one, with no drop-in of its own (the watchdog is its 30 s).

Each check prints `ok: ...` or `FAIL: ...` with what it saw; a failed check
does not stop the later ones unless they cannot run without it. Exit 0 when
all passed, 1 otherwise, 77 when a prerequisite is missing outside CI (in CI,
`CI` set, that is a failure with the reason).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

SRC = os.environ.get("CWLOGD_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path[:0] = [os.path.join(SRC, "tests", "integration"), os.path.join(SRC, "tests"),
                os.path.join(SRC, "tests", "packaging")]

import fake_aws  # noqa: E402
import realdocker  # noqa: E402
import systemd_box  # noqa: E402
from harness import docker_json  # noqa: E402

BUILD_DIR = os.environ.get("CWLOGD_BUILD_DIR") or (
    os.path.dirname(os.environ["CWLOGD_BIN"]) if os.environ.get("CWLOGD_BIN")
    else os.path.join(SRC, "build"))
CACHE_DIR = os.path.join(BUILD_DIR, "packaging-cache")

CID = "c0ffee" * 10 + "c0de"
CDIR = "/var/lib/docker/containers/" + CID
CLOG = "%s/%s-json.log" % (CDIR, CID)
LABELS = {"com.amazonaws.ecs.cluster": "prod",
          "com.amazonaws.ecs.task-definition-family": "shop",
          "com.amazonaws.ecs.container-name": "web",
          "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd"}
CGROUP, CSTREAM = "/ecs/prod/shop", "web/0123abcd"
JGROUP, JUNIT = "/cwtest/journal", "cwtest-logger.service"
XGROUP = "/cwtest/extra"
# What the agent's own log must never say under the sandbox.
DENIALS = re.compile(r"Operation not permitted|Permission denied|Read-only file system|"
                     r"Bad system call|SIGSYS|status=31/SYS|seccomp|audit", re.I)


def in_ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(why):
    """A prerequisite is missing: a failure in CI, a skip (77) elsewhere."""
    if in_ci():
        print("FAIL: %s (CI is set, so this is not a skip)" % why)
        sys.exit(1)
    print("SKIP: %s" % why)
    sys.exit(77)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %d s" % (what, timeout))
        time.sleep(0.3)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []
        self.on_failure = None

    def run(self, title, fn, fatal=False):
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 — every failure is reported, then the next check
            self.failed.append(title)
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            print("FAIL: %s (%.1f s)\n  %s" % (title, time.monotonic() - t0,
                                               detail[-3000:].replace("\n", "\n  ")))
            if self.on_failure:
                try:
                    print("  the agent's journal, last lines:\n    " +
                          self.on_failure()[-2500:].replace("\n", "\n    "))
                except Exception:  # noqa: BLE001
                    pass
            sys.stdout.flush()
            if fatal:
                raise SystemExit(1)
            return False
        self.passed += 1
        print("ok: %s (%.1f s)" % (title, time.monotonic() - t0))
        sys.stdout.flush()
        return True


class Test:
    def __init__(self, box, fake, debs):
        self.box = box
        self.ctl = fake.control
        self.fake = fake
        self.old_deb, self.new_deb = debs
        self.written = {}  # group -> [messages], in order

    # ---- helpers ----

    def sh(self, script, **kw):
        return self.box.sh(script, **kw)

    def show(self, *props):
        out = self.sh("systemctl show cwlogd -p " + ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self):
        return int(self.show("MainPID")["MainPID"])

    def journal(self, n=40):
        return self.sh("journalctl --no-pager -o short-monotonic -n %d -u cwlogd" % n,
                       check=False).stdout

    def write_container(self, tag, first, last):
        msgs = ["%s %d" % (tag, i) for i in range(first, last + 1)]
        self.box.append(CLOG, "".join(docker_json(m + "\n") for m in msgs))
        self.written.setdefault(CGROUP, []).extend(msgs)
        return msgs

    def delivered(self, group, prefix=None):
        msgs = [e["message"] for e in self.ctl.events(group=group)]
        return [m for m in msgs if prefix is None or m.startswith(prefix + " ")]

    def wait_delivered(self, group, msgs, timeout=30, exactly_once=False):
        want = set(msgs)
        prefix = msgs[0].split(" ")[0]

        def done():
            got = self.delivered(group, prefix)
            return set(got) >= want and got

        try:
            got = wait_for(done, timeout, "delivery")
        except AssertionError:
            got = self.delivered(group, prefix)
            missing = sorted(want - set(got), key=lambda m: int(m.split()[-1]))
            raise AssertionError("%d of %d lines %s... reached %s; missing: %s" % (
                len(want) - len(missing), len(want), prefix, group, missing[:10])) from None
        if exactly_once:
            dups = len(got) - len(set(got))
            assert dups == 0, "%d duplicate(s) of %s... in %s" % (dups, prefix, group)
        return got

    def metric(self, name, source):
        out = self.sh("cwlogd metrics").stdout
        m = re.search(r'^%s\{[^}]*source="%s"[^}]*\} (\d+)' % (name, re.escape(source)), out,
                      re.M)
        return int(m.group(1)) if m else 0

    def read_by_agent(self, before, n):
        """Wait until the docker source has read n more events than before."""
        wait_for(lambda: self.metric("cwlogd_events_read_total", "containers") >= before + n,
                 20, "the agent reading %d new lines" % n)

    # ---- the checks ----

    def boot_state(self):
        assert self.box.state == "running", (
            "systemctl is-system-running says %s; failed units:\n%s"
            % (self.box.state, self.box.failed_units))

    def prepare(self):
        """Before installing: root-only container logs and the test's drop-in."""
        self.sh("install -d -m 0700 /var/lib/docker /var/lib/docker/containers %s && "
                "install -d -m 0755 /etc/cwlogd /etc/cwlogd/conf.d /var/log/cwtest && "
                "touch %s && chmod 0640 %s" % (CDIR, CLOG, CLOG))
        cfg = {"ID": CID, "Name": "/web", "Config": {"Labels": LABELS}}
        self.box.put(CDIR + "/config.v2.json", json.dumps(cfg), 0o600)
        info = self.fake.info
        self.box.put("/etc/cwlogd/conf.d/10-test.conf",
                     "[cloudwatch]\nendpoint = %s\nimds_endpoint = %s\nflush_interval = 1s\n\n"
                     "[source testjournal]\ntype = journald\nunits = %s\ngroup = %s\n"
                     % (info["endpoint"], info["imds_endpoint"], JUNIT, JGROUP))

    def install(self):
        t0 = time.monotonic()
        p = self.sh("DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/%s"
                    % os.path.basename(self.old_deb), check=False, timeout=120)
        took = time.monotonic() - t0
        assert p.returncode == 0, "dpkg -i failed:\n%s%s" % (p.stdout, p.stderr)
        assert self.sh("getent passwd cwlogd", check=False).returncode == 0, "no user cwlogd"
        en = self.sh("systemctl is-enabled cwlogd", check=False).stdout.strip()
        act = self.sh("systemctl is-active cwlogd", check=False).stdout.strip()
        assert (en, act) == ("enabled", "active"), "cwlogd.service is %s and %s" % (en, act)
        print("  dpkg -i took %.1f s (the service's start included)" % took)

    def runs_confined(self):
        shipped = open(os.path.join(SRC, "systemd", "cwlogd.service")).read()
        installed = self.sh("cat /lib/systemd/system/cwlogd.service").stdout
        assert installed == shipped, "the installed unit differs from systemd/cwlogd.service"
        s = self.show("DropInPaths", "FragmentPath")
        assert not s["DropInPaths"], "the unit has drop-ins: %s" % s["DropInPaths"]
        pid = self.main_pid()
        st = dict(line.split(":", 1) for line in
                  self.sh("cat /proc/%d/status" % pid).stdout.splitlines() if ":" in line)
        st = {k: v.split() for k, v in st.items()}
        uid = self.sh("id -u cwlogd").stdout.strip()
        jgid = self.sh("getent group systemd-journal | cut -d: -f3").stdout.strip()
        problems = []
        if st["Uid"] != [uid] * 4:
            problems.append("Uid %s, cwlogd is %s" % (st["Uid"], uid))
        for cap in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
            if st[cap][0] != "0000000000000004":
                problems.append("%s %s (want 4: CAP_DAC_READ_SEARCH only)" % (cap, st[cap][0]))
        if st["CapInh"][0] not in ("0000000000000000", "0000000000000004"):
            problems.append("CapInh %s" % st["CapInh"][0])
        if st["NoNewPrivs"] != ["1"]:
            problems.append("NoNewPrivs %s" % st["NoNewPrivs"])
        if st["Seccomp"] != ["2"]:
            problems.append("Seccomp %s (2 = a filter)" % st["Seccomp"])
        if jgid not in st["Groups"]:
            problems.append("groups %s lack systemd-journal (%s)" % (st["Groups"], jgid))
        assert not problems, "; ".join(problems)
        # The files it reads are root's alone: the user without the capability cannot.
        p = self.sh("setpriv --reuid=cwlogd --regid=cwlogd --clear-groups cat %s" % CLOG,
                    check=False)
        assert p.returncode != 0 and "Permission denied" in p.stderr, (
            "the container log is readable without CAP_DAC_READ_SEARCH: %r" % p.stderr)

    def ready_and_status(self):
        s = self.show("Type", "ActiveState", "SubState", "StatusText")
        assert (s["Type"], s["ActiveState"], s["SubState"]) == ("notify", "active", "running"), s
        assert re.match(r"\d+ source\(s\), \d+ file\(s\); ", s["StatusText"]), (
            "StatusText: %r" % s["StatusText"])
        out = self.sh("SYSTEMD_COLORS=0 systemctl status --no-pager cwlogd", check=False).stdout
        assert re.search(r'^\s+Status: "\d+ source\(s\)', out, re.M), out
        assert "Started cwlogd.service" in self.journal(200), \
            "no `Started` (READY=1) in the journal"

    def container_lines(self):
        msgs = self.write_container("ctr-a", 1, 50)
        self.wait_delivered(CGROUP, msgs, exactly_once=True)
        got = {e["stream"] for e in self.ctl.events(group=CGROUP)}
        assert got == {CSTREAM}, "streams %s, expected %s" % (got, CSTREAM)

    def control_as_root(self):
        st = self.sh("cwlogd status")
        assert "containers" in st.stdout and CID[:12] in st.stdout, st.stdout[-1500:]
        m = self.sh("cwlogd metrics")
        assert re.search(r'^cwlogd_events_sent_total\{source="containers"\} [1-9]', m.stdout,
                         re.M), m.stdout[-1500:]

    def control_refused(self):
        for cmd in ("status", "metrics"):
            for user in ("nobody", "daemon"):
                p = self.sh("cwlogd " + cmd, check=False, user=user)
                assert p.returncode != 0 and "ermission denied" in p.stderr + p.stdout, (
                    "cwlogd %s as %s: exit %d, %r" % (cmd, user, p.returncode,
                                                      (p.stdout + p.stderr)[-500:]))

    def journal_lines(self):
        msgs = ["jrn-a %d" % i for i in range(1, 41)]
        self.sh("systemd-run --quiet --wait --unit=%s sh -c 'for i in $(seq 1 40); do "
                "echo \"jrn-a $i\"; done'" % JUNIT.replace(".service", ""), timeout=60)
        self.wait_delivered(JGROUP, msgs, exactly_once=True)
        streams = {e["stream"] for e in self.ctl.events(group=JGROUP)}
        assert streams == {JUNIT}, streams

    def reload_broken(self):
        pid = self.main_pid()
        self.box.put("/etc/cwlogd/conf.d/60-reload.conf", "[source extra]\ntype = nonsense\n")
        p = self.sh("systemctl reload cwlogd", check=False, timeout=60)
        assert p.returncode != 0, "systemctl reload accepted a broken drop-in"
        s = self.show("ActiveState", "MainPID")
        assert s["ActiveState"] == "active" and int(s["MainPID"]) == pid, (
            "after the refused reload: %s (MainPID was %d)" % (s, pid))
        assert "60-reload.conf" in self.journal(60), "the journal does not name the bad file"
        assert "extra" not in self.sh("cwlogd status").stdout, "the broken source appeared"
        self.wait_delivered(CGROUP, self.write_container("ctr-b", 1, 30), exactly_once=True)

    def reload_good(self):
        pid = self.main_pid()
        self.box.put("/var/log/cwtest/app.log", "".join("ext-a %d\n" % i for i in range(1, 21)))
        self.box.put("/etc/cwlogd/conf.d/60-reload.conf",
                     "[source extra]\ntype = file\npath = /var/log/cwtest/*.log\ngroup = %s\n"
                     "start_at = beginning\n" % XGROUP)
        self.sh("systemctl reload cwlogd", timeout=60)
        assert self.main_pid() == pid, "the reload restarted the agent"
        self.wait_delivered(XGROUP, ["ext-a %d" % i for i in range(1, 21)], exactly_once=True)
        assert "extra" in self.sh("cwlogd status").stdout

    def watchdog(self):
        pid = self.main_pid()
        restarts = int(self.show("NRestarts")["NRestarts"])
        self.sh("kill -STOP %d" % pid)
        t0 = time.monotonic()
        msgs = self.write_container("ctr-c", 1, 100)
        # WatchdogSec=30s, then SIGABRT, RestartSec=5s.
        wait_for(lambda: self.main_pid() not in (0, pid) and
                 self.show("ActiveState")["ActiveState"] == "active", 75,
                 "a new agent after the watchdog")
        print("  restarted %.0f s after SIGSTOP" % (time.monotonic() - t0))
        j = self.sh("journalctl --no-pager -u cwlogd -n 200").stdout
        assert re.search(r"[Ww]atchdog timeout", j), "no watchdog timeout in the journal"
        n = int(self.show("NRestarts")["NRestarts"])
        assert n == restarts + 1, "NRestarts %d -> %d" % (restarts, n)
        msgs += self.write_container("ctr-c", 101, 150)
        self.wait_delivered(CGROUP, msgs)

    def buffered_then(self, verb, tag):
        """Lines read but held by an outage are delivered by `systemctl VERB`."""
        self.ctl.set_faults([{"op": "logs", "kind": "outage", "seconds": 4}])
        before = self.metric("cwlogd_events_read_total", "containers")
        msgs = self.write_container(tag, 1, 100)
        self.read_by_agent(before, 100)
        assert not self.delivered(CGROUP, tag), "delivered during the outage"
        pid = self.main_pid()
        self.sh("systemctl %s cwlogd" % verb, timeout=90)
        got = self.delivered(CGROUP, tag)
        missing = set(msgs) - set(got)
        assert not missing, "%d of 100 buffered lines not delivered when `systemctl %s` " \
            "returned" % (len(missing), verb)
        j = self.sh("journalctl --no-pager -u cwlogd _PID=%d" % pid, check=False).stdout
        assert not re.search(r"not delivered|giving up|undelivered", j, re.I), j[-1500:]
        if verb == "restart":
            assert self.main_pid() not in (0, pid)
            self.write_container(tag, 101, 110)
            self.wait_delivered(CGROUP, msgs + ["%s %d" % (tag, i) for i in range(101, 111)],
                                exactly_once=True)
        else:
            assert self.show("ActiveState")["ActiveState"] == "inactive"
            assert len(got) == len(set(got)), "duplicates"

    def upgrade(self):
        # Stopped (by the previous check): lines written now must be read from
        # the stored offset by the upgraded agent.
        assert self.show("ActiveState")["ActiveState"] == "inactive"
        st_before = self.sh("stat -c '%i %s' /var/lib/cwlogd/state.db").stdout.strip()
        self.sh("sed -i 's/^retention_days = 30$/retention_days = 7/; "
                "1i # edited by an operator' /etc/cwlogd/cwlogd.conf && "
                "cwlogd --check-config >/dev/null")
        counts = {m: 1 for m in self.delivered(CGROUP)}
        msgs = self.write_container("ctr-f", 1, 60)
        new_version = subprocess.run(["dpkg-deb", "-f", self.new_deb, "Version"],
                                     capture_output=True, text=True, check=True).stdout.strip()
        p = self.sh("DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/%s"
                    % os.path.basename(self.new_deb), check=False, timeout=120)
        assert p.returncode == 0, "dpkg -i of the newer build failed:\n%s%s" % (p.stdout,
                                                                               p.stderr)
        v = self.sh("dpkg-query -W -f '${Version}' cwlogd").stdout
        assert v == new_version, "installed %s, expected %s" % (v, new_version)
        conf = self.sh("cat /etc/cwlogd/cwlogd.conf").stdout
        assert "retention_days = 7" in conf and "# edited by an operator" in conf, \
            "the edit of cwlogd.conf was lost"
        left = self.sh("ls /etc/cwlogd/", check=False).stdout.split()
        assert not [f for f in left if "dpkg" in f], "dpkg left %s" % left
        st_after = self.sh("stat -c '%i %s' /var/lib/cwlogd/state.db").stdout.strip()
        assert st_after.split()[0] == st_before.split()[0], (
            "state.db was replaced (inode, size %s -> %s)" % (st_before, st_after))
        assert self.show("ActiveState")["ActiveState"] == "active", "not started by the upgrade"
        self.wait_delivered(CGROUP, msgs, exactly_once=True)
        time.sleep(2)
        again = [m for m in self.delivered(CGROUP) if m in counts]
        assert len(again) == len(counts), "%d earlier lines were sent again after the upgrade" % (
            len(again) - len(counts))

    def no_denials(self):
        j = self.sh("journalctl --no-pager -o cat _COMM=cwlogd + _SYSTEMD_UNIT=cwlogd.service"
                    " + UNIT=cwlogd.service", check=False).stdout
        bad = [line for line in j.splitlines() if DENIALS.search(line)]
        assert not bad, "denials in the journal:\n" + "\n".join(bad[:20])
        assert j.count("\n") > 10, "the journal of cwlogd is nearly empty:\n" + j

    def purge(self):
        self.sh("rm -f /etc/cwlogd/conf.d/*.conf")
        p = self.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q cwlogd", check=False,
                    timeout=120)
        assert p.returncode == 0, "apt-get purge failed:\n%s%s" % (p.stdout, p.stderr)
        left = self.sh("for f in /usr/bin/cwlogd /etc/cwlogd /var/lib/cwlogd /run/cwlogd "
                       "/lib/systemd/system/cwlogd.service "
                       "/etc/systemd/system/multi-user.target.wants/cwlogd.service; do "
                       "[ -e $f ] || [ -L $f ] && echo $f; done; true").stdout.split()
        assert not left, "still there after purge: %s" % left
        assert self.sh("pgrep -x cwlogd", check=False).returncode != 0, "cwlogd still runs"
        # Debian leaves system users in place on purge: files they owned may remain.
        assert self.sh("getent passwd cwlogd", check=False).returncode == 0, \
            "the user cwlogd was removed"


def main():
    if os.geteuid() != 0:
        unavailable("booting systemd in a container needs root")
    why = realdocker.Dockerd.unavailable()
    if why:
        unavailable("real dockerd: " + why)
    for t in ("dpkg-buildpackage", "dh", "dpkg-deb"):
        if not shutil.which(t):
            unavailable("%s is not installed (scripts/deps installs it)" % t)
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="cwlogd-systemd-test.")
    build_log = open(os.path.join(tmp, "package.log"), "w")
    # The package builds while the root is made or loaded and the box boots.
    build = subprocess.Popen(["nice", os.path.join(SRC, "scripts", "package"), "deb",
                              "--outdir", os.path.join(tmp, "out")],
                             stdout=build_log, stderr=subprocess.STDOUT)
    checks = Checks()
    dockerd = fake = box = None
    try:
        try:
            root = systemd_box.cached_root(CACHE_DIR)
        except systemd_box.Unavailable as e:
            unavailable(str(e))
        print("root file system: %s (%.0f s)" % (root, time.monotonic() - t_start))
        fake = fake_aws.FakeAWSProcess(["--host", "127.0.0.1"]).start()
        dockerd = realdocker.Dockerd()
        try:
            dockerd.start()
        except Exception as e:  # noqa: BLE001
            unavailable("real dockerd did not start: %s\n%s" % (e, dockerd.log_tail()))
        box = systemd_box.Box(dockerd, systemd_box.import_root(dockerd, root))
        try:
            box.start()
        except systemd_box.Unavailable as e:
            print("FAIL: %s" % e)
            return 1
        print("booted (%.0f s)" % (time.monotonic() - t_start))
        try:
            rc = build.wait(timeout=600)
        except subprocess.TimeoutExpired:
            build.kill()
            rc = "timeout"
        if rc != 0:
            build_log.flush()
            print("FAIL: scripts/package deb: %s\n%s" % (
                rc, open(build_log.name).read()[-3000:]))
            return 1
        old = [f for f in os.listdir(os.path.join(tmp, "out"))
               if f.endswith(".deb") and "dbgsym" not in f]
        assert len(old) == 1, old
        old_deb = os.path.join(tmp, "out", old[0])
        new_deb = repack_with_higher_version(old_deb, tmp)
        print("packages built (%.0f s)" % (time.monotonic() - t_start))
        for deb in (old_deb, new_deb):
            box.copy_in(deb, "/tmp/")

        t = Test(box, fake, (old_deb, new_deb))
        checks.on_failure = t.journal
        run = checks.run
        run("systemd boots in the container: is-system-running says running", t.boot_state)
        run("set-up: root-only container directories and the test's drop-in", t.prepare,
            fatal=True)
        run("dpkg -i creates the user, enables and starts the service", t.install, fatal=True)
        run("the service runs the shipped unit as user cwlogd with only CAP_DAC_READ_SEARCH, "
            "no new privileges, a seccomp filter, the systemd-journal group", t.runs_confined)
        run("systemctl status: Type=notify active (READY=1) with the agent's STATUS= line",
            t.ready_and_status)
        run("lines appended to a root-only container log reach CloudWatch (the fake) once",
            t.container_lines)
        run("cwlogd status and cwlogd metrics work as root over the control socket",
            t.control_as_root)
        run("cwlogd status and cwlogd metrics are refused to other users", t.control_refused)
        run("lines a unit writes to the journal reach CloudWatch once", t.journal_lines)
        run("systemctl reload with a broken drop-in fails; the agent keeps running with "
            "the old configuration", t.reload_broken)
        run("systemctl reload with a good drop-in starts the new source in the same process",
            t.reload_good)
        run("a hung agent (SIGSTOP) is restarted by the watchdog; nothing is lost", t.watchdog)
        run("systemctl restart delivers what is buffered; nothing repeats after it",
            lambda: t.buffered_then("restart", "ctr-d"))
        run("systemctl stop delivers what is buffered", lambda: t.buffered_then("stop", "ctr-e"))
        run("upgrade to a newer build keeps cwlogd.conf edits and state.db; lines written "
            "while stopped are delivered once, nothing earlier again", t.upgrade)
        run("no seccomp or sandbox denial in the journal during all of it", t.no_denials)
        run("apt purge removes the files, configuration and state; the user cwlogd stays",
            t.purge)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        build_log.close()
        if box:
            box.stop()
        if dockerd:
            dockerd.stop()
        if fake:
            fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed (%.0f s)" % (checks.passed, len(checks.failed),
                                            time.monotonic() - t_start))
    return 1 if checks.failed else 0


def repack_with_higher_version(deb, tmp):
    """The same package with version V+upgradetest1: what dpkg sees as a newer build."""
    tree = os.path.join(tmp, "repack")
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True, timeout=120)
    control = os.path.join(tree, "DEBIAN", "control")
    text = open(control).read()
    version = re.search(r"^Version: (\S+)$", text, re.M).group(1)
    with open(control, "w") as f:
        f.write(re.sub(r"^Version: \S+$", "Version: %s+upgradetest1" % version, text,
                       flags=re.M))
    out = os.path.join(tmp, "cwlogd_%s+upgradetest1.deb" % version)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, out], check=True,
                   capture_output=True, timeout=120)
    shutil.rmtree(tree)
    return out


if __name__ == "__main__":
    sys.exit(main())
