"""What a crash may cost, held exactly, for files and for the journal:

- killed at a quiet moment (everything acknowledged, then 100 ms): the next
  run sends 0 duplicates;
- killed within the first second of a first run, with data written while it
  is down: 0 lost (the journald source stores where it starts before it reads,
  also when no entry matches its filter yet, or the journal is empty);
- killed during uploads with answers held back: every duplicate is an event
  of a request in flight at a kill (journal here; files in test_crash.py);
- positions are committed with the answer (the obsolete checkpoint_interval
  is accepted, with a warning, and does not delay them).

"""

import collections
import os
import random
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main, wait_until  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402
from test_journald import REMOTE, unit_entry, write_journal  # noqa: E402
from test_crash import check_duplicates_were_in_flight, committed_requests  # noqa: E402


class Case(unittest.TestCase):
    def setUp(self):
        self.fake = FakeAWS(seed=11, store_events=True)
        self.fake.start()
        self.addCleanup(self.fake.stop)
        self.env = Env(self)

    def config(self, sources, agent_extra=""):
        self.env.write_config(sources, agent_extra=agent_extra,
                              cloudwatch_extra=self.env.cloudwatch_keys(
                                  self.fake, "flush_interval = 200ms\n"))

    def delivered(self):
        return collections.Counter(e["message"] for e in self.fake.events())

    def wait_delivered(self, want, timeout=30):
        wait_until(lambda: not (want - self.delivered()), timeout,
                   "%d events at the fake" % sum(want.values()))

    def assert_exactly_once(self, want):
        got = self.delivered()
        lost = want - got
        dups = got - want
        self.assertEqual(sum(lost.values()), 0, "lost, e.g. %s" % sorted(lost)[:5])
        self.assertEqual(sum(dups.values()), 0, "duplicates, e.g. %s" % sorted(dups)[:5])

    def kill(self, d):
        d.signal(signal.SIGKILL)
        d.kill()


class Files(Case):
    def setUp(self):
        super().setUp()
        self.cs = [Container(self.env.containers, name="c%d" % i) for i in range(3)]

    def write(self, first, n):
        lines = []
        for c in self.cs:
            batch = ["%s-%05d" % (c.name, i) for i in range(first, first + n)]
            c.write_lines(batch, ts_ns=time.time_ns())
            lines += batch
        return lines

    def test_killed_at_a_quiet_moment_the_next_run_sends_no_duplicates(self):
        self.config({"c": self.env.docker_source(group="g", stream="{container_name}")})
        want = collections.Counter(self.write(0, 2000))
        d = self.env.start(dry_run=False)
        self.wait_delivered(want)
        time.sleep(0.1)
        self.kill(d)
        want.update(self.write(2000, 500))
        self.env.upload_once()
        self.assert_exactly_once(want)

    def test_killed_in_the_first_second_of_a_first_run_loses_nothing(self):
        self.config({"c": self.env.docker_source(group="g", stream="{container_name}",
                                                 start_at="end")})
        self.write(0, 100)  # before the first run: start_at = end skips these
        d = self.env.start(dry_run=False)
        self.kill(d)
        want = collections.Counter(self.write(100, 300))
        self.env.upload_once()
        self.assert_exactly_once(want)


@unittest.skipUnless(REMOTE, "systemd-journal-remote is not installed (scripts/deps installs it)")
class Journal(Case):
    """Journal files in a directory (as journalctl -D), written by
    systemd-journal-remote; the source follows one unit."""

    def setUp(self):
        super().setUp()
        self.jdir = os.path.join(self.env.root, "journal")
        os.makedirs(self.jdir)
        self.files = 0
        self.n = 0

    def source(self, start_at):
        self.config({"j": {"type": "journald", "path": self.jdir, "units": "app",
                           "group": "g", "stream": "{journal:_SYSTEMD_UNIT}",
                           "start_at": start_at}})

    def append(self, unit, count, prefix):
        """A new journal file with count entries of unit, later than all before."""
        self.files += 1
        entries, msgs = [], []
        for _ in range(count):
            self.n += 1
            msgs.append("%s-%05d" % (prefix, self.n))
            entries.append(unit_entry(self.n, unit, msgs[-1]))
        write_journal(os.path.join(self.jdir, "f%03d.journal" % self.files), entries)
        return msgs

    def test_killed_at_a_quiet_moment_the_next_run_sends_no_duplicates(self):
        self.source("beginning")
        want = collections.Counter(self.append("app.service", 1500, "a"))
        d = self.env.start(dry_run=False)
        self.wait_delivered(want)
        time.sleep(0.1)
        self.kill(d)
        want.update(self.append("app.service", 300, "b"))
        self.env.upload_once()
        self.assert_exactly_once(want)

    def test_killed_in_the_first_second_of_a_first_run_before_any_entry_matches(self):
        # The journal has entries, none of them the source's: nothing to take a
        # cursor from. The first run must still store where it starts.
        self.append("other.service", 50, "other")
        self.source("end")
        d = self.env.start(dry_run=False)
        self.kill(d)
        want = collections.Counter(self.append("app.service", 400, "a"))
        self.append("other.service", 10, "other")
        want.update(self.append("app.service", 100, "b"))
        err = self.env.upload_once()
        self.assertIn("resuming the journal where the first run started", err)
        self.assert_exactly_once(want)

    def test_killed_in_the_first_second_of_a_first_run_on_an_empty_journal(self):
        self.source("end")
        d = self.env.start(dry_run=False)
        self.kill(d)
        want = collections.Counter(self.append("app.service", 200, "a"))
        self.env.upload_once()
        self.assert_exactly_once(want)

    def test_killed_during_uploads_repeats_only_what_was_in_flight(self):
        self.source("beginning")
        want = collections.Counter()
        for _ in range(8):
            want.update(self.append("app.service", 400, "a"))
        # A clean first run creates the stream (paced, as on a fresh host).
        d = self.env.start(dry_run=False)
        wait_until(lambda: self.fake.events(), timeout=60, what="the first events")
        self.assertEqual(d.stop(), 0)
        self.fake.set_faults([{"op": "PutLogEvents", "kind": "answer_latency",
                               "seconds": 0.4, "probability": 0.5}], seed=4)
        rng = random.Random(7)
        kills = []
        for i in range(int(os.environ.get("CWLOGD_CRASH_KILLS", "20")) // 2):
            t0 = time.monotonic()
            d = self.env.start(dry_run=False)
            time.sleep(rng.uniform(0.1, 0.6))
            self.kill(d)
            kills.append((t0, time.monotonic(), committed_requests(d.log())))
            want.update(self.append("app.service", 200, "k%d" % i))
        self.fake.set_faults([])
        self.env.upload_once()
        got = self.delivered()
        self.assertEqual(sum((want - got).values()), 0, "lost")
        check_duplicates_were_in_flight(self, self.fake, kills, sum((got - want).values()),
                                        sum(want.values()))
        puts = self.fake.put_requests()
        self.assertGreater(sum(1 for t0, t1, _ in kills for p in puts.values()
                               if t0 <= p["stored"] <= t1), 0, "no request was sent in any run")

    def test_first_run_at_the_end_skips_what_matched_before_and_only_that(self):
        self.append("app.service", 20, "old")
        self.source("end")
        d = self.env.start(dry_run=False)
        self.kill(d)
        want = collections.Counter(self.append("app.service", 30, "new"))
        self.env.upload_once()
        self.assert_exactly_once(want)


class Settings(Case):
    def test_positions_are_committed_with_the_answer_not_by_checkpoint_interval(self):
        c = Container(self.env.containers, name="s")
        c.write_lines(["x%d" % i for i in range(10)], ts_ns=time.time_ns())
        self.config({"c": self.env.docker_source(group="g", stream="{container_name}")},
                    agent_extra="state_sync = full\ncheckpoint_interval = 5s\n")
        d = self.env.start(dry_run=False)
        self.wait_delivered(collections.Counter("x%d" % i for i in range(10)))
        d.wait_log("checkpoint_interval is obsolete and ignored")
        # The position is committed with the answer, not 5 s later.
        db = os.path.join(self.env.state, "state.db")
        size = os.path.getsize(c.path)

        def committed():
            with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as con:
                rows = con.execute("SELECT \"offset\" FROM files WHERE path = ?",
                                   (c.path,)).fetchall()
            return rows and rows[0][0] == size
        wait_until(committed, timeout=2, what="the position committed with the answer")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    main()
