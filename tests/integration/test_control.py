"""The control socket: `cwlogd status` and `cwlogd metrics` against a running
agent that uploads to the fake endpoint; the socket is owner-only."""

import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Container, Env, main  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402


class Control(unittest.TestCase):
    def test_status_and_metrics_from_a_running_agent(self):
        fake = FakeAWS(seed=3)
        fake.start()
        self.addCleanup(fake.stop)
        env = Env(self)
        sock = os.path.join(env.root, "control.sock")
        c = Container(env.containers, name="web")
        c.write_lines(["a", "b", "c"])
        env.write_config({"containers": env.docker_source(group="/g", stream="{container_name}")},
                         agent_extra="control_socket = %s\n" % sock,
                         cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        d = env.start(dry_run=False)
        fake.wait_events(3, timeout=20)
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)

        deadline = time.time() + 20
        while True:  # the fake stores before the agent has read its answer
            st = subprocess.run([BIN, "--config", env.conf, "status"], capture_output=True,
                                text=True, timeout=10)
            self.assertEqual(st.returncode, 0, st.stderr)
            out = st.stdout
            if "sent 3," in out or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertIn("source containers (docker, blocking)", out)
        self.assertRegex(out, r"sent 3, dropped 0")
        self.assertIn(c.path + " -> /g / web", out)
        self.assertRegex(out, r"idle\s+0\s+3\s+0\s+/g / web")

        m = subprocess.run([BIN, "metrics", "--socket", sock], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(m.returncode, 0, m.stderr)
        text = m.stdout
        self.assertIn('cwlogd_events_sent_total{source="containers"} 3', text)
        self.assertIn('cwlogd_stream_events_sent_total{group="/g",stream="web"} 3', text)
        self.assertRegex(text, r'cwlogd_file_lag_bytes\{source="containers",file="[^"]+",'
                               r'group="/g",stream="web"\} 0')
        # The 3 events' acknowledgement was committed (at least the start and it).
        commits = re.search(r'^cwlogd_checkpoint_commits_total (\d+)$', text, re.M)
        self.assertIsNotNone(commits, text)
        self.assertGreaterEqual(int(commits.group(1)), 2)
        # Every non-comment line is "name{labels} value" or "name value" (gauges
        # such as cwlogd_pace_rate have decimals).
        for line in text.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r'^[a-z_]+(\{[^}]*\})? \d+(\.\d+)?$')
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.exists(sock))

    def test_status_without_an_agent_says_so(self):
        env = Env(self)
        p = subprocess.run([BIN, "status", "--socket", os.path.join(env.root, "none.sock")],
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("is cwlogd running?", p.stderr)


if __name__ == "__main__":
    main()
