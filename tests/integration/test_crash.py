"""Crash safety against the fake endpoint: a writer appends to container logs
(with rotations) while cwlogd is killed with SIGKILL at seeded random moments
and restarted; at the end every line written is in CloudWatch, and the
duplicates (batches in flight at a kill) are counted and bounded. With SIGTERM
instead: nothing lost and nothing repeated."""

import collections
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402

KILLS = int(os.environ.get("CWLOGD_CRASH_KILLS", "20"))


class Writer(threading.Thread):
    """Appends numbered lines to a few containers, rotating now and then."""

    def __init__(self, containers, seed):
        super().__init__(daemon=True)
        self.containers = containers
        self.rng = random.Random(seed)
        self.stop_flag = threading.Event()
        self.written = []

    def run(self):
        n = 0
        while not self.stop_flag.is_set():
            c = self.rng.choice(self.containers)
            lines = ["%s-%06d" % (c.name, n + i) for i in range(20)]
            c.write_lines(lines, ts_ns=time.time_ns())
            self.written += lines
            n += 20
            if self.rng.random() < 0.03:
                c.rotate(keep=100)  # retention never runs out here: losses would be the agent's
            time.sleep(0.01)


class Crash(unittest.TestCase):
    def setUp(self):
        self.fake = FakeAWS(seed=5, store_events=True)
        self.fake.start()
        self.addCleanup(self.fake.stop)
        self.env = Env(self)
        self.cs = [Container(self.env.containers, name="c%d" % i) for i in range(3)]
        self.env.write_config({"containers": self.env.docker_source(group="g",
                                                                    stream="{container_name}")},
                              agent_extra="checkpoint_interval = 200ms\n",
                              cloudwatch_extra=self.env.cloudwatch_keys(
                                  self.fake, "flush_interval = 300ms\n"))

    def drain_and_check(self, writer):
        d = self.env.start(dry_run=False)
        want = collections.Counter(writer.written)
        deadline = time.time() + 60
        while time.time() < deadline:
            got = collections.Counter(e["message"] for e in self.fake.events())
            if not (want - got):
                break
            time.sleep(0.3)
        self.assertEqual(d.stop(), 0)
        got = collections.Counter(e["message"] for e in self.fake.events())
        lost = want - got
        self.assertFalse(lost, "%d line(s) lost, e.g. %s" % (len(lost), list(lost)[:5]))
        extra = set(got) - set(want)
        self.assertFalse(extra, "lines never written arrived: %s" % list(extra)[:5])
        return sum(got.values()) - sum(want.values())

    def test_sigkill_at_random_moments_loses_nothing(self):
        rng = random.Random(1234)
        writer = Writer(self.cs, 99)
        writer.start()
        for _ in range(KILLS):
            d = self.env.start(dry_run=False)
            time.sleep(rng.uniform(0.1, 0.8))
            d.signal(signal.SIGKILL)
            d.kill()
        writer.stop_flag.set()
        writer.join()
        dups = self.drain_and_check(writer)
        caused = self.fake.requests()["reset_after"]["events"]
        print("\n%d lines, %d SIGKILLs: %d duplicate(s) (batches in flight at a kill)" % (
            len(writer.written), KILLS, dups))
        self.assertEqual(caused, 0)
        # At most what can be in flight or unacknowledged at each kill.
        self.assertLessEqual(dups, KILLS * 10000)

    def test_sigterm_loses_nothing_and_repeats_nothing(self):
        rng = random.Random(4321)
        writer = Writer(self.cs, 77)
        writer.start()
        for _ in range(5):
            d = self.env.start(dry_run=False)
            time.sleep(rng.uniform(0.3, 1.0))
            self.assertEqual(d.stop(), 0)
        writer.stop_flag.set()
        writer.join()
        dups = self.drain_and_check(writer)
        self.assertEqual(dups, 0)


if __name__ == "__main__":
    main()
