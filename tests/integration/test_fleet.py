"""A small fleet sharing one account's quotas (fleet.py; the full runs are
scripts/fleet): 12 agents with 4 containers of 100 lines each in 3 shared
log groups, started within one second, against a fake whose CreateLogStream
quota is 4/s (CreateLogGroup and PutRetentionPolicy 1/s, PutLogEvents
100/s), so the 48 streams need 12 s at the least. One run for the class;
each test checks one promise on its result.

Issue 12's targets are sent <= 1.5 x succeeded for every operation and
convergence within 1.5 x ideal + 10 s. What this fleet holds today, and is
asserted: nothing lost or repeated, each stream and group created once,
PutLogEvents unthrottled, CreateLogStream within 2 x (before the pacing:
6.8 x at 40 agents) and convergence within 3 x ideal + 10 s. CreateLogGroup
(3 successes; the agents that find a group missing within the same second
collide) is reported, not asserted."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import main  # noqa: E402
import fleet  # noqa: E402

SMALL = dict(agents=12, containers=4, lines=100, groups=3, window=1.0,
             quotas={"CreateLogStream": 4.0, "CreateLogGroup": 1.0, "PutRetentionPolicy": 1.0,
                     "PutLogEvents": 100.0},
             timeout=90)


class SmallFleet(unittest.TestCase):
    result = None

    @classmethod
    def setUpClass(cls):
        cls.result = fleet.run_fleet(fleet.FleetParams(seed=12, **SMALL))
        print("\n" + cls.result.summary(), file=sys.stderr)

    def test_every_line_delivered_once(self):
        r = self.result
        self.assertEqual([f for f in r.failures if "aborted" in f], [], r.log_tail)
        self.assertEqual((r.lost, r.duplicates, r.stray), (0, 0, 0))
        self.assertEqual(r.exit_statuses, {0: SMALL["agents"]})

    def test_each_stream_and_group_created_once(self):
        ops = self.result.ops
        self.assertEqual(ops["CreateLogStream"]["ok"], 48)
        self.assertEqual(ops["CreateLogGroup"]["ok"], 3)
        self.assertEqual(ops["PutRetentionPolicy"]["ok"], 3)

    def test_puts_are_never_throttled_and_stream_creation_paced_within_2x(self):
        r = self.result
        self.assertEqual(r.ratio("PutLogEvents"), 1.0, r.ops["PutLogEvents"])
        self.assertLessEqual(r.ratio("CreateLogStream"), 2.0, r.ops["CreateLogStream"])

    def test_converges_within_three_times_ideal_plus_10s(self):
        r = self.result
        self.assertIsNotNone(r.converge_s)
        self.assertLessEqual(r.converge_s, 3 * r.ideal_s + 10)


if __name__ == "__main__":
    main()
