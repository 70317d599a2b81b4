"""Issue 14: what a container or an unprivileged local user can place where
cwlogd looks (it reads with CAP_DAC_READ_SEARCH) must not become a leak, a
loop or unbounded memory. Each test reproduces one point of the issue against
the built binary. The tests run as root: they chown fixtures to uid 65534 and
run the agent as that user with `setpriv` where the case needs it; they skip,
saying why, when they cannot."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Container, Daemon, Env, main  # noqa: E402
import procinfo  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402
from test_journald import REMOTE, entry, write_journal  # noqa: E402

NOBODY = 65534
T0 = 1732440000_000000000
SECRET = "root-only-secret-0123456789"


def needs_root(test):
    if os.geteuid() != 0:
        test.skipTest("needs root to give fixtures to another user")


def msgs(recs):
    return [r["message"] for r in recs]


def write(path, text, uid=None):
    with open(path, "w") as f:
        f.write(text)
    if uid is not None:
        os.chown(path, uid, uid)


def symlink(target, path, uid):
    os.symlink(target, path)
    os.lchown(path, uid, uid)


def file_source(env, pattern, **extra):
    d = {"type": "file", "path": pattern, "group": "g", "stream": "{file_name}",
         "start_at": "beginning"}
    d.update(extra)
    return d


class Symlinks(unittest.TestCase):
    """Point 1: a link is followed only when root owns it or its owner owns
    the target; files on pseudo file systems are never read."""

    def test_links_are_followed_only_from_root_or_the_targets_owner(self):
        needs_root(self)
        env = Env(self)
        private = os.path.join(env.root, "private")
        os.makedirs(private)
        os.chmod(private, 0o700)
        secret = os.path.join(private, "shadow")
        write(secret, SECRET + "\n")
        os.chmod(secret, 0o600)
        mine = os.path.join(env.root, "mine.txt")
        write(mine, "nobody's own line\n", uid=NOBODY)
        root_log = os.path.join(private, "root.txt")
        write(root_log, "root's line\n")
        os.chown(env.logs, NOBODY, NOBODY)  # a directory a container may write
        symlink(secret, os.path.join(env.logs, "x.log"), NOBODY)        # refused
        symlink(mine, os.path.join(env.logs, "own.log"), NOBODY)        # followed
        symlink(root_log, os.path.join(env.logs, "root.log"), 0)        # followed
        # A link in a directory component, and a root link to a user's link.
        symlink(private, os.path.join(env.logs, "sub"), NOBODY)         # refused
        os.symlink(os.path.join(env.logs, "x.log"), os.path.join(env.root, "hop.log"))
        env.write_config({"app": file_source(env, "%s/*.log %s/sub/*.txt %s/hop.log" % (
            env.logs, env.logs, env.root))})
        recs, err = env.once(timeout=30)
        self.assertEqual(sorted(msgs(recs)), ["nobody's own line", "root's line"])
        self.assertNotIn(SECRET, "".join(msgs(recs)) + err)
        self.assertIn("not reading %s/x.log: %s/x.log is a symlink owned by uid 65534 to a "
                      "file owned by uid 0 (only links owned by root or by their target's "
                      "owner are followed)" % (env.logs, env.logs), err)
        self.assertIn("%s/sub is a symlink owned by uid 65534" % env.logs, err)
        self.assertIn("not reading %s/hop.log: %s/x.log is a symlink owned by uid 65534"
                      % (env.root, env.logs), err)

    def test_kubelet_links_in_var_log_containers_keep_working(self):
        """kubelet (root) links /var/log/containers/*.log to the pods' files."""
        needs_root(self)
        env = Env(self)
        pods = os.path.join(env.root, "pods", "ns_pod_uid", "app")
        os.makedirs(pods)
        write(os.path.join(pods, "0.log"),
              "2024-11-24T09:20:00.5Z stdout F from the pod\n")
        links = os.path.join(env.root, "containers-links")
        os.makedirs(links)
        os.symlink(os.path.join(pods, "0.log"),
                   os.path.join(links, "pod_ns_app-%s.log" % ("a" * 64)))
        env.write_config({"k8s": {"type": "cri", "path": links + "/*.log", "group": "g",
                                  "start_at": "beginning"}})
        recs, err = env.once(timeout=30)
        self.assertEqual(msgs(recs), ["from the pod"])
        self.assertNotIn("not reading", err)

    def test_proc_files_are_refused_and_sigterm_is_obeyed(self):
        """Point 2: a root-owned link to /proc/self/status passes the owner rule;
        the file system check refuses it. Before, it was read again and again
        (size 0, data returned): millions of duplicates, SIGTERM not obeyed."""
        env = Env(self)
        os.symlink("/proc/self/status", os.path.join(env.logs, "status.log"))
        os.symlink("/sys/kernel/mm/transparent_hugepage/enabled",
                   os.path.join(env.logs, "thp.log"))
        write(os.path.join(env.logs, "real.log"), "a real line\n")
        env.write_config({"app": file_source(env, env.logs + "/*.log")},
                         agent_extra="rescan_interval = 200ms\n")
        d = env.start()
        d.wait_count(1)
        time.sleep(1.5)  # several rescans
        t = time.monotonic()
        self.assertEqual(d.stop(timeout=10), 0)
        self.assertLess(time.monotonic() - t, 5)
        self.assertEqual(d.messages(), ["a real line"])
        log = d.log()
        self.assertIn("not reading %s/status.log: it is on procfs, a pseudo file system "
                      "(/proc, /sys and the like are never read)" % env.logs, log)
        if os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"):
            self.assertIn("status.log", log)
            self.assertIn("thp.log: it is on sysfs", log)
        self.assertLess(len(log.splitlines()), 200)  # rate-limited, not a flood
        self.assertNotIn("was truncated", log)


class RotatedNames(unittest.TestCase):
    """Point 4: a rotated file's name is matched as a name, never as a glob."""

    def test_brackets_in_a_name_rotated_while_stopped_are_found(self):
        env = Env(self)
        p = os.path.join(env.logs, "br[1].log")
        write(p, "a1\n")
        env.write_config({"app": file_source(env, env.logs + "/*.log")})
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["a1"])
        with open(p, "a") as f:
            f.write("a2\n")
        os.rename(p, p + ".1")
        write(p, "b1\n")
        recs, err = env.once()
        self.assertEqual(msgs(recs), ["a2", "b1"])
        self.assertNotIn("cannot be found among its rotations", err)

    def test_a_star_in_a_name_does_not_take_other_files_rotations(self):
        env = Env(self)
        star, other = os.path.join(env.logs, "a*.log"), os.path.join(env.logs, "ab.log")
        write(star, "x1\n")
        write(other, "y1\n")
        env.write_config({"app": file_source(env, env.logs + "/*.log")})
        recs, _ = env.once()
        self.assertEqual(sorted(msgs(recs)), ["x1", "y1"])
        with open(star, "a") as f:
            f.write("x2\n")
        os.rename(star, star + ".1")
        write(star, "x3\n")
        time.sleep(0.05)  # ab.log.1 is newer than a*.log.1
        with open(other, "a") as f:
            f.write("y2\n")
        os.rename(other, other + ".1")
        write(other, "y3\n")
        recs, err = env.once()
        self.assertEqual(sorted(msgs(recs)), ["x2", "x3", "y2", "y3"])


class ShownNames(unittest.TestCase):
    """Point 7: a file name with an escape sequence and a newline forged a row
    of `cwlogd status` and a line of the agent's log."""

    def test_control_bytes_in_names_are_escaped_in_log_status_and_metrics(self):
        fake = FakeAWS(seed=14)
        fake.start()
        self.addCleanup(fake.stop)
        env = Env(self)
        name = "evil\x1b[31m\nFORGED row.log"
        write(os.path.join(env.logs, name), "line\n")
        sock = os.path.join(env.root, "control.sock")
        env.write_config({"app": file_source(env, env.logs + "/*.log", stream="s")},
                         agent_extra="control_socket = %s\n" % sock,
                         cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        d = env.start(dry_run=False)
        fake.wait_events(1, timeout=20)
        shown = "evil\\x1b[31m\\x0aFORGED row.log"
        st = subprocess.run([BIN, "--config", env.conf, "status"], capture_output=True, timeout=10)
        me = subprocess.run([BIN, "--config", env.conf, "metrics"], capture_output=True,
                            timeout=10)
        d.stop()
        for out in (st.stdout.decode(), me.stdout.decode(), d.log()):
            self.assertNotIn("\x1b", out)
            self.assertFalse([l for l in out.splitlines() if l.startswith("FORGED")], out)
        self.assertIn(shown, st.stdout.decode(), st.stderr.decode())
        self.assertIn(shown, d.log())
        self.assertIn(shown.replace("\\", "\\\\"), me.stdout.decode())


class Containers(unittest.TestCase):
    def test_excluded_containers_are_forgotten_when_they_are_gone(self):
        """Point 3: every ECS task's pause container is excluded; its cache
        entry, labels and all, stayed after it was removed (RSS grew by the
        labels of every container ever seen)."""
        env = Env(self)
        # An ASan build keeps 256 MiB of freed memory resident by default,
        # which would measure ASan, not the agent.
        env.extra_env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                         ":quarantine_size_mb=8")
        env.write_config({"containers": env.docker_source()},
                         agent_extra="rescan_interval = 200ms\n")
        d = env.start()
        labels = {"big": "l" * 24000}
        n, rss = 600, []
        for rnd in range(3):
            cs = [Container(env.containers, name="ecs-x-internalecspause-%d-%d" % (rnd, i),
                            labels=labels) for i in range(n)]
            deadline = time.monotonic() + 60
            while d.log().count("matches exclude_containers") < n * (rnd + 1):
                self.assertLess(time.monotonic(), deadline, "containers not all seen")
                time.sleep(0.1)
            for c in cs:
                c.remove()
            time.sleep(1.0)  # rescans see them gone
            rss.append(procinfo.status(d.p.pid)["VmRSS"])
        d.stop()
        # 600 containers hold 14 MiB of labels: kept, RSS grew by that each round.
        print("RSS (KiB) by round: %s" % rss)
        self.assertLess(rss[2] - rss[0], 6 * 1024, "RSS (KiB) by round: %s" % rss)

    def test_a_containers_own_max_buffer_size_is_clamped(self):
        """Point 8: one task definition's max-buffer-size took all of
        total_buffer_limit."""
        import json
        env = Env(self)
        big = Container(env.containers, name="greedy")
        with open(os.path.join(big.dir, "hostconfig.json"), "w") as f:
            json.dump({"LogConfig": {"Type": "json-file",
                                     "Config": {"mode": "non-blocking",
                                                "max-buffer-size": "1g"}}}, f)
        big.write_lines(["one"], ts_ns=T0)
        env.write_config({"containers": env.docker_source(max_buffer_size="64k")})
        recs, err = env.once()
        self.assertEqual(msgs(recs), ["one"])
        self.assertIn("container %s asks for max-buffer-size 1073741824; clamped to 65536 "
                      "(container_max_buffer_size)" % big.id[:12], err)
        self.assertIn("mode non-blocking, max-buffer-size 65536", err)
        env.write_config({"containers": env.docker_source(max_buffer_size="64k",
                                                          container_max_buffer_size="8m")})
        os.unlink(os.path.join(env.state, "dry-run", "state.db"))
        recs, err = env.once()
        self.assertIn("clamped to 8388608", err)
        self.assertIn("mode non-blocking, max-buffer-size 8388608", err)


class Process(unittest.TestCase):
    """Point 11: no core dump, no ptrace by the service user's other processes."""

    def test_the_agent_is_not_dumpable(self):
        needs_root(self)
        if not shutil.which("setpriv"):
            self.skipTest("needs setpriv to run the agent as another user")
        env = Env(self)
        env.write_config({"app": file_source(env, env.logs + "/*.log")})
        os.chmod(env.root, 0o755)
        os.chmod(env.conf, 0o644)
        os.makedirs(env.state)
        os.chown(env.state, NOBODY, NOBODY)
        p = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                              "--clear-groups", BIN, "--config", env.conf, "--dry-run"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=env.agent_env())
        try:
            lines = []
            deadline = time.monotonic() + 20
            for line in p.stderr:
                lines.append(line.decode(errors="replace"))
                if "started:" in lines[-1] or time.monotonic() > deadline:
                    break
            self.assertIn("started:", "".join(lines))
            # /proc/PID of a process that is not dumpable belongs to root.
            st = os.stat("/proc/%d/environ" % p.pid)
            self.assertEqual(procinfo.status(p.pid)["Uid"].split()[0], str(NOBODY))
            self.assertEqual(st.st_uid, 0)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(20)
            p.stderr.close()


@unittest.skipUnless(REMOTE, "systemd-journal-remote is not installed (scripts/deps installs it)")
class JournalNames(unittest.TestCase):
    """Point 9: CONTAINER_NAME and COM_AMAZONAWS_ECS_* come from any local
    writer (`logger --journald`)."""

    def test_streams_a_source_names_are_capped_and_check_config_warns(self):
        env = Env(self)
        jdir = os.path.join(env.root, "journal")
        os.makedirs(jdir)
        env.write_config({"journal": {"type": "journald", "path": jdir, "group": "/j",
                                      "stream": "{container_name}", "start_at": "beginning",
                                      "max_streams": "3"}})
        p = env.run("--check-config")
        self.assertIn("[source journal] stream: warning: names use journal fields that any "
                      "local process can set", p.stderr.decode())
        write_journal(os.path.join(jdir, "a.journal"),
                      [entry([("MESSAGE", "m%d" % k), ("CONTAINER_NAME", "c%d" % k)], k)
                       for k in range(10)])
        recs, err = env.once()
        self.assertEqual(msgs(recs), ["m0", "m1", "m2"])
        self.assertEqual(sorted({r["stream"] for r in recs}), ["c0", "c1", "c2"])
        self.assertIn("max_streams (3) reached: an entry for /j / c3 is not shipped (1 so far)",
                      err)
        self.assertIn("(7 so far)", err)
        env.write_config({"journal": {"type": "journald", "path": jdir, "group": "/j",
                                      "stream": "{container_name}", "units": "docker"}})
        self.assertNotIn("warning", env.run("--check-config").stderr.decode())


if __name__ == "__main__":
    main()
