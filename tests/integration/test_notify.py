"""sd_notify for real: a datagram socket given as NOTIFY_SOCKET sees READY=1,
STATUS=, WATCHDOG=1, RELOADING=1 then READY=1 on SIGHUP, and STOPPING=1 on
SIGTERM, in that order."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402


class Notify(unittest.TestCase):
    def test_notify_messages_at_the_right_moments(self):
        env = Env(self)
        Container(env.containers).write_lines(["x"])
        env.write_config({"containers": env.docker_source()})
        path = os.path.join(env.root, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        self.addCleanup(sock.close)
        env.extra_env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
        msgs = []

        def collect(until, timeout=10):
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    msgs.extend(sock.recv(4096).decode().split("\n"))
                except socket.timeout:
                    pass
                if until(msgs):
                    return
            self.fail("notify: timed out; got %r" % msgs)

        d = env.start()
        collect(lambda m: "READY=1" in m and sum(x == "WATCHDOG=1" for x in m) >= 2)
        self.assertTrue(any(x.startswith("STATUS=") and "source(s)" in x for x in msgs), msgs)
        n = len(msgs)
        d.signal(signal.SIGHUP)
        collect(lambda m: "RELOADING=1" in m[n:] and "READY=1" in m[m.index("RELOADING=1", n):])
        d.signal(signal.SIGTERM)
        collect(lambda m: "STOPPING=1" in m)
        self.assertEqual(d.stop(), 0)
        self.assertLess(msgs.index("READY=1"), msgs.index("RELOADING=1"))
        self.assertLess(msgs.index("RELOADING=1"), msgs.index("STOPPING=1"))

    def test_log_has_priority_prefixes_under_journald_and_repeats_are_rate_limited(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_raw(b"not json\n" * 100)
        c.write_lines(["ok"])
        env.write_config({"containers": env.docker_source()})
        env.extra_env = {"JOURNAL_STREAM": "8:12345"}
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["ok"])
        lines = err.splitlines()
        self.assertTrue(lines and all(l.startswith("<") and l[1] in "34567" for l in lines), lines[:3])
        self.assertTrue(any(l.startswith("<4>") for l in lines))  # warnings as warning
        corrupt = [l for l in lines if "corrupt json-file line" in l]
        self.assertLessEqual(len(corrupt), 10)  # 100 bad lines, at most 10 messages
        self.assertTrue(any("not logged" in l for l in corrupt[-1:]) or len(corrupt) == 10)
        env.extra_env = {}
        c.write_raw(b"not json\n")
        _, err = env.once()
        self.assertTrue(err.startswith("cwlogd: "), err[:40])


if __name__ == "__main__":
    main()
