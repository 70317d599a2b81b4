"""Bad input of issue 6 that needs the whole binary: state.db on a full or
read-only file system or not writable by the service user, unreadable log
directories, a log file replaced by a directory or a FIFO, plain-file lines of
1 byte to 100 MiB, IMDS answering garbage, an empty role list, HTML or nothing
for 30 s, CloudWatch answering non-JSON, an unexpected 200 or a response that
never ends, and the wall clock jumping back and forward. Each test states what
the agent does and checks that nothing is lost that could be kept."""

import glob
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Container, Daemon, Env, main  # noqa: E402
import unittest  # noqa: E402
from test_upload import UploadCase, fixture_lines  # noqa: E402

NOW_NS = time.time_ns()
NOBODY = 65534
MIB = 1024 * 1024
MAX_EVENT = 1048550  # the default max_event_size: 1 MiB - 26


def wait_until(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def messages(fake, stream=None):
    return [e["message"] for e in fake.events(stream=stream)]


def mount_tmpfs(test, path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        test.skipTest("cannot mount a tmpfs here (%s): the full and read-only file system "
                      "cases need one" % p.stderr.strip())
    test.addCleanup(subprocess.run, ["umount", "-l", path], capture_output=True)


def remount(path, mode):
    subprocess.run(["mount", "-o", "remount,%s" % mode, path], check=True)


def fill(directory):
    """Fill the file system of `directory`; returns the filler's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)
    return path


def committed_offset(db, path):
    """The offset state.db holds for path, read as another process would."""
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        row = conn.execute('select "offset" from files where path = ?', (path,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def metrics(sock):
    p = subprocess.run([BIN, "metrics", "--socket", sock], capture_output=True, text=True,
                       timeout=10)
    if p.returncode != 0:
        return {}
    out = {}
    for line in p.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value) if "." in value else int(value)  # gauges: cwlogd_pace_rate
    return out


def as_service_user(env):
    """Let uid 65534 read the tree and own the state directory."""
    os.chmod(env.root, 0o755)
    os.makedirs(env.state, exist_ok=True)
    for d, _, files in os.walk(env.state):
        os.chown(d, NOBODY, NOBODY)
        for f in files:
            os.chown(os.path.join(d, f), NOBODY, NOBODY)
    os.chmod(env.conf, 0o644)


class UserDaemon(Daemon):
    """Daemon, run as uid 65534 with no capabilities (root would pass every
    permission check these tests are about)."""

    def __init__(self, env, extra):
        self.records = []
        self.stderr = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                                   "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                                   BIN, "--config", env.conf] + extra,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env.agent_env())
        self.t_out = threading.Thread(target=self._read_out, daemon=True)
        self.t_err = threading.Thread(target=self._read_err, daemon=True)
        self.t_out.start()
        self.t_err.start()
        env.procs.append(self)


def needs_setpriv(test):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        test.skipTest("needs root and setpriv to run the agent as another user")


class Case(UploadCase):
    def env_with(self, fake, agent_extra="", cw_extra="flush_interval = 200ms\n", **docker):
        env = Env(self)
        src = env.docker_source(group="/bad", stream="{container_name}")
        src.update(docker)
        env.write_config({"containers": src}, agent_extra=agent_extra,
                         cloudwatch_extra=env.cloudwatch_keys(fake, cw_extra))
        return env


class StateDb(Case):
    def start_waiting(self, env):
        """The daemon, without waiting for it to start its sources."""
        d = Daemon(env, [])
        env.procs.append(d)
        return d

    def test_disk_full_while_running_commit_error_once_shipping_goes_on_positions_land_later(self):
        fake = self.fake()
        env = self.env_with(fake)
        mount_tmpfs(self, env.state, "1m")
        db = os.path.join(env.state, "state.db")
        c = Container(env.containers, name="full")
        c.write_lines(fixture_lines(50, "a"), ts_ns=NOW_NS)
        d = env.start(dry_run=False)
        fake.wait_events(50, timeout=20)
        size_a = os.path.getsize(c.path)
        wait_until(lambda: committed_offset(db, c.path) == size_a, what="the first positions")

        filler = fill(env.state)
        c.write_lines(fixture_lines(100, "b"), ts_ns=NOW_NS)
        self.assertEqual(len(fake.wait_events(150, timeout=20)), 150)  # shipping goes on
        d.wait_log("checkpoint: cannot commit to %s: database or disk is full; positions are "
                   "kept in memory and retried with the next commit" % db)
        c.write_lines(fixture_lines(20, "c"), ts_ns=NOW_NS)
        self.assertEqual(len(fake.wait_events(170, timeout=20)), 170)
        time.sleep(1)  # five more commits, failing for the same cause
        self.assertEqual(committed_offset(db, c.path), size_a)
        self.assertEqual(d.log().count("cannot commit"), 1, "logged once per cause")

        os.unlink(filler)
        d.wait_log("checkpoint: commits to %s work again" % db)
        size_c = os.path.getsize(c.path)
        wait_until(lambda: committed_offset(db, c.path) == size_c, what="positions written")
        self.assertEqual(d.stop(), 0)

        c.write_lines(["after the restart"], ts_ns=NOW_NS)
        d2 = env.start(dry_run=False)
        fake.wait_events(171, timeout=20)
        self.assertEqual(d2.stop(), 0)
        self.assertEqual(messages(fake), fixture_lines(50, "a") + fixture_lines(100, "b") +
                         fixture_lines(20, "c") + ["after the restart"])

    def test_state_fs_read_only_or_full_at_start_sources_wait_for_it_and_resume_exactly(self):
        # start_at = end: a source started without its position would skip
        # what was written while the agent was stopped.
        fake = self.fake()
        env = self.env_with(fake, start_at="end")
        mount_tmpfs(self, env.state, "1m")
        c = Container(env.containers, name="wait")
        env.upload_once()
        c.write_lines(fixture_lines(10, "a"), ts_ns=NOW_NS)
        env.upload_once()
        self.assertEqual(messages(fake), fixture_lines(10, "a"))

        c.write_lines(fixture_lines(10, "b"), ts_ns=NOW_NS)
        remount(env.state, "ro")
        d = self.start_waiting(env)
        d.wait_log("checkpoint: cannot use state directory %s: Read-only file system" % env.state)
        d.wait_log("state directory %s is unusable (Read-only file system): no source is read "
                   "until it can be opened" % env.state)
        self.assertNotIn("started:", d.log())
        self.assertEqual(len(fake.events()), 10)
        remount(env.state, "rw")
        d.wait_log("state directory %s is usable again: starting the sources" % env.state)
        d.wait_log("started:")
        fake.wait_events(20, timeout=20)
        self.assertEqual(d.stop(), 0)

        c.write_lines(fixture_lines(10, "c"), ts_ns=NOW_NS)
        filler = fill(env.state)
        d = self.start_waiting(env)
        d.wait_log("state directory %s is unusable (No space left on device)" % env.state)
        self.assertEqual(len(fake.events()), 20)
        os.unlink(filler)
        d.wait_log("state directory %s is usable again" % env.state)
        fake.wait_events(30, timeout=20)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(messages(fake), fixture_lines(10, "a") + fixture_lines(10, "b") +
                         fixture_lines(10, "c"))

    def test_once_with_an_unusable_state_dir_exits_1_and_ships_nothing(self):
        fake = self.fake()
        env = self.env_with(fake)
        mount_tmpfs(self, env.state, "1m")
        remount(env.state, "ro")
        c = Container(env.containers, name="once")
        c.write_lines(["x"], ts_ns=NOW_NS)
        p = env.run("--once", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("state directory %s is unusable (Read-only file system): --once needs it "
                      "to know where each source resumes" % env.state, p.stderr.decode())
        self.assertEqual(fake.events(), [])
        # A preview has its own positions: it runs without them.
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["x"])
        self.assertIn("previewing without checkpoints", err)

    def test_state_db_the_service_user_cannot_write_sources_wait_until_it_can(self):
        needs_setpriv(self)
        env = Env(self)
        c = Container(env.containers, name="ro")
        c.write_lines(fixture_lines(5, "a"), ts_ns=NOW_NS)
        os.chmod(c.path, 0o644)
        env.write_config({"containers": env.docker_source()})
        env.once()
        as_service_user(env)
        db = os.path.join(env.state, "dry-run", "state.db")
        os.chmod(db, 0o444)
        c.write_lines(fixture_lines(5, "b"), ts_ns=NOW_NS)
        d = UserDaemon(env, ["--dry-run"])
        d.wait_log("checkpoint: cannot use %s: Permission denied" % db)
        d.wait_log("is unusable (Permission denied): no source is read until it can be opened")
        os.chmod(db, 0o644)
        d.wait_log("is usable again: starting the sources")
        d.wait_count(5)
        c.write_lines(fixture_lines(5, "c"), ts_ns=NOW_NS)
        d.wait_count(10)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(d.messages(), fixture_lines(5, "b") + fixture_lines(5, "c"))
        self.assertEqual(committed_offset(db, c.path), os.path.getsize(c.path))


class Files(unittest.TestCase):
    def test_unreadable_log_directories_are_named_the_rest_ships_and_they_are_read_once_fixed(
            self):
        needs_setpriv(self)
        env = Env(self)
        a = Container(env.containers, name="a")
        b = Container(env.containers, name="b")
        a.write_lines(["a1"], ts_ns=NOW_NS)
        b.write_lines(["b1"], ts_ns=NOW_NS)
        sub = os.path.join(env.logs, "sub")
        os.makedirs(sub)
        with open(os.path.join(sub, "app.log"), "w") as f:
            f.write("p1\n")
        with open(os.path.join(env.logs, "top.log"), "w") as f:
            f.write("t1\n")
        for p in glob.glob(env.root + "/**", recursive=True):
            os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
        os.chmod(b.dir, 0)
        os.chmod(sub, 0)
        env.write_config({"containers": env.docker_source(),
                          "plain": {"type": "file", "path": env.logs + "/*.log, " +
                                    env.logs + "/*/*.log",
                                    "group": "g", "stream": "{file_name}",
                                    "start_at": "beginning"}},
                         agent_extra="rescan_interval = 1s\n")
        as_service_user(env)
        d = UserDaemon(env, ["--dry-run"])
        d.wait_for(lambda r: {x["message"] for x in r} == {"a1", "t1"}, what="a1 and t1")
        d.wait_log("source containers: cannot read %s: Permission denied; trying again at each "
                   "rescan" % b.path)
        d.wait_log("source plain: cannot read the directory %s: Permission denied; trying "
                   "again at each rescan" % sub)
        os.chmod(b.dir, 0o755)
        os.chmod(sub, 0o755)
        d.wait_count(4)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(sorted(d.messages()), ["a1", "b1", "p1", "t1"])

    def test_log_file_replaced_by_a_directory_or_a_fifo_is_skipped_without_hanging(self):
        env = Env(self)
        a = Container(env.containers, name="a")
        b = Container(env.containers, name="b")
        c = Container(env.containers, name="c")
        fifo_at_start = Container(env.containers, name="f")
        os.unlink(fifo_at_start.path)
        os.mkfifo(fifo_at_start.path)
        os.mkfifo(os.path.join(env.logs, "pipe.log"))
        os.mkdir(os.path.join(env.logs, "dir.log"))
        with open(os.path.join(env.logs, "app.log"), "w") as f:
            f.write("p1\n")
        for x in (a, b, c):
            x.write_lines([x.name + "1"], ts_ns=NOW_NS)
        env.write_config({"containers": env.docker_source(),
                          "plain": {"type": "file", "path": env.logs + "/*.log", "group": "g",
                                    "stream": "{file_name}", "start_at": "beginning"}},
                         agent_extra="rescan_interval = 1s\n")
        # --once must not wait for a writer on the FIFOs.
        recs, err = env.once(timeout=20)
        self.assertEqual(sorted(r["message"] for r in recs), ["a1", "b1", "c1", "p1"])
        self.assertIn("%s is a FIFO, not a regular file; not reading it" % fifo_at_start.path,
                      err)
        self.assertIn("source plain: %s/pipe.log is a FIFO, not a regular file" % env.logs, err)

        d = env.start()
        a.write_lines(["a2"], ts_ns=NOW_NS)
        b.write_lines(["b2"], ts_ns=NOW_NS)
        d.wait_count(2)
        # Replaced under the agent: what was written before is read through
        # the open descriptor; the new thing is not read.
        os.unlink(a.path)
        os.mkfifo(a.path)
        os.unlink(b.path)
        os.mkdir(b.path)
        writer = os.open(a.path, os.O_RDWR | os.O_NONBLOCK)  # a FIFO with a writer
        self.addCleanup(os.close, writer)
        os.write(writer, (a.path + " via the fifo\n").encode())
        d.wait_log("%s is a FIFO, not a regular file; not reading it" % a.path)
        d.wait_log("%s is a directory, not a regular file; not reading it" % b.path)
        c.write_lines(["c2"], ts_ns=NOW_NS)  # the others keep flowing
        d.wait_count(3)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(sorted(d.messages()), ["a2", "b2", "c2"])

    def plain_env(self, extra=""):
        env = Env(self)
        env.write_config({"plain": {"type": "file", "path": env.logs + "/*.log", "group": "g",
                                    "stream": "s", "start_at": "beginning"}},
                         agent_extra=extra)
        return env

    def test_plain_lines_of_1_byte_16k_and_1m_are_shipped_whole_or_split_at_max_event_size(
            self):
        env = self.plain_env()
        k16 = "".join(chr(ord("a") + i % 26) for i in range(16 * 1024))
        m1 = "".join(chr(ord("A") + i % 26) for i in range(MIB))
        with open(os.path.join(env.logs, "app.log"), "w") as f:
            f.write("x\n" + k16 + "\n" + m1 + "\nlast\n")
        recs, _ = env.once()
        msgs = [r["message"] for r in recs]
        self.assertEqual(msgs, ["x", k16, m1[:MAX_EVENT], m1[MAX_EVENT:], "last"])
        recs, _ = env.once()
        self.assertEqual(recs, [])

    def test_a_100_mib_line_is_shipped_in_pieces_with_flat_memory(self):
        env = self.plain_env()
        # An ASan build keeps 256 MiB of freed memory resident by default,
        # which would measure ASan, not the agent.
        env.extra_env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                         ":quarantine_size_mb=8")
        path = os.path.join(env.logs, "big.log")
        open(path, "w").close()
        d = env.start()
        pid = d.p.pid
        chunk = 4 * MIB
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for k in range(100 * MIB // chunk):
                block = (b"%08d" % k) * (chunk // 8)
                h.update(block)
                f.write(block)
            f.write(b"\nnext\n")
        pieces = 100 * MIB // MAX_EVENT + 1
        d.wait_count(pieces + 1, timeout=60)
        with open("/proc/%d/status" % pid) as st:
            hwm_kib = int(next(l for l in st if l.startswith("VmHWM:")).split()[1])
        self.assertEqual(d.stop(), 0)
        msgs = d.messages()
        self.assertEqual(msgs[-1], "next")
        self.assertEqual(len(msgs), pieces + 1)
        self.assertTrue(all(len(m) == MAX_EVENT for m in msgs[:-2]))
        self.assertEqual(hashlib.sha256("".join(msgs[:-1]).encode()).hexdigest(), h.hexdigest())
        # Read and shipped a piece at a time: the agent's peak (18 MiB here,
        # 37 MiB under ASan) is a fraction of the line.
        self.assertLess(hwm_kib, 48 * 1024, "peak RSS %d KiB" % hwm_kib)


IMDS_FAULTS = [
    ({"op": "imds:credentials", "kind": "garbage"},
     "credentials of role cwlogd-test-role: answer is not a JSON object"),
    ({"op": "imds:credentials", "kind": "html", "status": 200},
     "credentials of role cwlogd-test-role: answer is not a JSON object"),
    ({"op": "imds:roles", "kind": "empty"}, "no instance role attached (empty role list)"),
    ({"op": "imds:roles", "kind": "html", "status": 200},
     "instance role list is not a role name (124 bytes)"),
    ({"op": "imds:roles", "kind": "html", "status": 500}, "instance role list: failed (HTTP 500)"),
    ({"op": "imds:token", "kind": "garbage"}, "instance role list: unexpected answer"),
]


class Imds(Case):
    def test_garbage_empty_role_list_and_html_are_named_retried_and_nothing_is_lost(self):
        for rule, text in IMDS_FAULTS:
            with self.subTest(rule=rule):
                fake = self.fake()
                fake.set_faults([dict(rule, count=1)])
                env = self.env_with(fake)
                c = Container(env.containers, name="imds")
                c.write_lines(fixture_lines(20), ts_ns=NOW_NS)
                d = env.start(dry_run=False)
                fake.wait_events(20, timeout=20)
                self.assertEqual(d.stop(), 0)
                self.assertEqual(messages(fake), fixture_lines(20))
                self.assertRegex(d.log(), r"error: credentials: %s: %s; retrying in \d+ ms" % (
                    re.escape("imds (%s)" % fake.imds_endpoint), re.escape(text)))

    def test_imds_stalling_30s_times_out_in_3s_and_reading_goes_on(self):
        fake = self.fake()
        fake.set_faults([{"op": "imds:credentials", "kind": "latency", "seconds": 30,
                          "count": 2}])
        env = Env(self)
        sock = os.path.join(env.root, "control.sock")
        env.write_config({"containers": env.docker_source(group="/bad", stream="s")},
                         agent_extra="control_socket = %s\n" % sock,
                         cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        c = Container(env.containers, name="stall")
        c.write_lines(fixture_lines(100), ts_ns=NOW_NS)
        t0 = time.monotonic()
        d = env.start(dry_run=False)
        # While the credentials request hangs, the files are read all the same.
        read = 'cwlogd_events_read_total{source="containers"}'
        wait_until(lambda: metrics(sock).get(read) == 100, timeout=10, what="100 events read")
        self.assertEqual(fake.events(), [])
        d.wait_log("credentials of role cwlogd-test-role: timed out; retrying in", timeout=10)
        self.assertLess(time.monotonic() - t0, 8, "IMDS requests give up after 3 s")
        self.assertEqual(fake.events(), [])  # the second request is stalling
        fake.wait_events(100, timeout=30)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(messages(fake), fixture_lines(100))
        self.assertEqual(fake.requests()["faults"]["imds:credentials"], {"latency": 2})


class CloudWatch(Case):
    def test_answers_that_are_not_json_are_logged_at_most_3_a_minute(self):
        # A proxy that mangles every answer must not flood the log.
        fake = self.fake()
        fake.set_faults([{"op": "PutLogEvents", "count": 6, "kind": "garbage", "perform": True}])
        env = self.env_with(fake)
        c = Container(env.containers, name="cw")
        d = env.start(dry_run=False)
        for k in range(6):
            c.write_lines(fixture_lines(10, "r%d-" % k), ts_ns=NOW_NS)
            fake.wait_events(10 * (k + 1), timeout=20)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(fake.requests()["faults"]["PutLogEvents"], {"garbage": 6})
        self.assertEqual(d.log().count("with a body that is not the expected JSON"), 3)

    def test_non_json_answers_200_taken_as_accepted_errors_retried_nothing_lost_or_repeated(
            self):
        fake = self.fake()
        put = {"op": "PutLogEvents", "count": 1}
        fake.set_faults([
            dict(put, kind="garbage", perform=True),
            dict(put, kind="empty", perform=True),
            dict(put, kind="html", status=200, perform=True),
            # 200 with a JSON body that is not PutLogEvents' answer
            dict(put, kind="error", status=200, type="Unexpected", message="?", perform=True),
            dict(put, kind="html", status=502),  # a proxy's page, nothing stored
        ])
        env = self.env_with(fake)
        c = Container(env.containers, name="cw")
        d = env.start(dry_run=False)
        for k in range(6):
            c.write_lines(fixture_lines(10, "g%d-" % k), ts_ns=NOW_NS)
            fake.wait_events(10 * (k + 1), timeout=20)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(messages(fake), sum((fixture_lines(10, "g%d-" % k)
                                              for k in range(6)), []))
        log = d.log()
        self.assertEqual(log.count("cloudwatch: PutLogEvents to /bad / cw answered 200 with a "
                                   "body that is not the expected JSON; taking it as accepted"),
                         3)
        self.assertIn("cloudwatch: PutLogEvents /bad / cw failed: temporary failure, retry later "
                      "(HTTP 502); retrying", log)

    def test_never_ending_response_times_out_at_30s_is_retried_and_other_streams_flow(self):
        fake = self.fake()
        fake.set_faults([{"op": "PutLogEvents", "kind": "endless", "count": 1}])
        env = self.env_with(fake)
        a = Container(env.containers, name="a")
        b = Container(env.containers, name="b")
        a.write_lines(fixture_lines(30, "a"), ts_ns=NOW_NS)
        d = env.start(dry_run=False)
        wait_until(lambda: fake.requests()["status"].get("endless") == 1, what="the endless "
                   "response")
        t0 = time.monotonic()
        b.write_lines(fixture_lines(30, "b"), ts_ns=NOW_NS)
        fake.wait_events(30, stream="b", timeout=20)
        self.assertEqual(messages(fake, "a"), [])  # still waiting for its answer
        fake.wait_events(30, stream="a", timeout=45)
        waited = time.monotonic() - t0
        self.assertEqual(d.stop(), 0)
        self.assertGreater(waited, 25)
        self.assertLess(waited, 40)
        self.assertEqual(messages(fake, "a"), fixture_lines(30, "a"))
        self.assertEqual(messages(fake, "b"), fixture_lines(30, "b"))
        self.assertRegex(d.log(), r"cloudwatch: PutLogEvents /bad / a failed: temporary failure, "
                                  r"retry later: Operation timed out after 300\d\d milliseconds")


def libfaketime():
    for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
              "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
              "/usr/lib64/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"):
        if os.path.exists(p):
            return p
    return None


class Clock(Case):
    def set_clock(self, offset):
        tmp = self.clock + ".tmp"
        with open(tmp, "w") as f:
            f.write(offset + "\n")
        os.replace(tmp, self.clock)  # libfaketime must never read a half-written file

    def test_wall_clock_jumps_back_and_forward(self):
        lib = libfaketime()
        if not lib:
            self.skipTest("libfaketime not installed (scripts/deps installs faketime)")
        fake = self.fake()
        env = Env(self)
        sock = os.path.join(env.root, "control.sock")
        self.clock = os.path.join(env.root, "clock")
        self.set_clock("+0")
        env.write_config(
            {"containers": env.docker_source(group="/clk", stream="{container_name}"),
             "plain": {"type": "file", "path": env.logs + "/*.log", "group": "/clk",
                       "stream": "plain", "start_at": "beginning"}},
            agent_extra="control_socket = %s\n" % sock,
            cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 3s\n"))
        # Only the wall clock moves: timers run on CLOCK_MONOTONIC.
        env.extra_env.update({
            "LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": self.clock, "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1",
            # An ASan build wants its runtime first; libfaketime comes first here.
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"})
        c = Container(env.containers, name="docker")
        plain = os.path.join(env.logs, "app.log")
        read = 'cwlogd_events_read_total{source="plain"}'

        def write_plain(line, total):
            with open(plain, "a") as f:
                f.write(line + "\n")
            wait_until(lambda: metrics(sock).get(read) == total, what="%s read" % line)

        d = env.start(dry_run=False)
        wait_until(lambda: os.path.exists(sock), what="the control socket")

        # Back an hour: one batch gets a line read before and one read after
        # the jump, out of time order; signing fails until the clock is back.
        write_plain("p-before", 1)
        c.write_lines(["d-before"], ts_ns=NOW_NS)
        self.set_clock("-1h")
        c.write_lines(["d-back"], ts_ns=NOW_NS + 10**6)
        write_plain("p-back", 2)
        d.wait_log("Signature expired")
        self.assertIn("is this host's clock right?", d.log())
        self.assertEqual(fake.events(), [])
        self.set_clock("+0")
        fake.wait_events(4, timeout=30)

        # Forward an hour: the same, the other way.
        self.set_clock("+1h")
        c.write_lines(["d-fwd"], ts_ns=NOW_NS + 2 * 10**6)
        write_plain("p-fwd", 3)
        d.wait_log("Signature not yet current")
        self.assertEqual(len(fake.events()), 4)
        self.set_clock("+0")
        fake.wait_events(6, timeout=30)

        # Back 25 hours: a batch may not span more than 24 hours.
        self.set_clock("-25h")
        write_plain("p-25h", 4)
        self.set_clock("+0")
        write_plain("p-now", 5)
        fake.wait_events(8, timeout=30)
        self.assertEqual(d.stop(), 0)

        ev = {e["message"]: e for e in fake.events()}
        self.assertEqual(len(ev), 8, "each line once")
        # Docker's own times, whatever the agent's clock said.
        self.assertEqual(ev["d-before"]["timestamp"], NOW_NS // 10**6)
        self.assertEqual(ev["d-back"]["timestamp"], NOW_NS // 10**6 + 1)
        self.assertEqual(ev["d-fwd"]["timestamp"], NOW_NS // 10**6 + 2)
        # Plain lines carry the time they were read, the jumped clock's.
        now = ev["p-before"]["timestamp"]
        hour = 3600 * 1000
        self.assertAlmostEqual(ev["p-back"]["timestamp"], now - hour, delta=60 * 1000)
        self.assertAlmostEqual(ev["p-fwd"]["timestamp"], now + hour, delta=60 * 1000)
        self.assertAlmostEqual(ev["p-25h"]["timestamp"], now - 25 * hour, delta=60 * 1000)
        # Sorted within the request that carried both (the service refuses
        # a batch out of order or spanning more than 24 h).
        self.assertEqual(messages(fake, "plain"), ["p-back", "p-before", "p-fwd", "p-25h",
                                                   "p-now"])
        self.assertEqual(ev["p-back"]["request_id"], ev["p-before"]["request_id"])
        self.assertNotEqual(ev["p-25h"]["request_id"], ev["p-now"]["request_id"])
        self.assertNotIn("refused for good", d.log())
        self.assertNotIn("splitting it", d.log())
        self.assertNotIn("InvalidParameterException", d.log())


if __name__ == "__main__":
    main()
