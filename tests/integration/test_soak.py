"""The fault soak, short: 45 s of steady lines into a blocking and a
non-blocking source while the fake throttles, fails with 500/503, resets
before and after storing, stalls, goes down for 12 s, loses IMDS for 32 s,
and hands out credentials that live 60 s (soak.py has the schedule; the full
version is scripts/soak). One soak runs for the whole class; each test checks
one promise on its result. test_soak_cases.py holds what the soak found,
cut down to a few seconds each."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import main  # noqa: E402
import soak  # noqa: E402

SHORT = dict(duration=45, outage=12, imds_outage=32, rate=80, containers=2,
             total_buffer_limit="512k", rotate_bytes=512 * 1024, catch_up=120)


class FaultSoak(unittest.TestCase):
    result = None

    @classmethod
    def setUpClass(cls):
        cls.result = soak.run_soak(soak.SoakParams(seed=6, log=None, **SHORT))
        print("\n" + cls.result.summary(), file=sys.stderr)

    def failures_about(self, *words):
        return [f for f in self.result.failures if any(w in f for w in words)]

    def test_the_soak_ran_and_injected_its_faults(self):
        self.assertEqual(self.failures_about("aborted", "never hit", "dropped nothing",
                                             "rotated", "exited", "did not exit"), [],
                         self.result.log_tail)
        self.assertEqual(self.result.exit_status, 0)

    def test_blocking_source_loses_nothing(self):
        r = self.result
        self.assertEqual(self.failures_about("blocking source"), [])
        self.assertGreater(r.written["blocking"], 0)
        self.assertEqual(r.delivered["blocking"], r.written["blocking"])

    def test_duplicates_come_only_from_reset_after(self):
        r = self.result
        self.assertEqual(self.failures_about("duplicate", "unacknowledged", "never written"), [])
        self.assertEqual(r.duplicates, r.unacked)
        self.assertEqual(r.unacked, r.reset_after_events)

    def test_non_blocking_drops_equal_counter_and_markers_to_the_event(self):
        r = self.result
        self.assertEqual(self.failures_about("non-blocking", "markers", "blocking source counts"),
                         [])
        missing = r.written["nonblocking"] - r.delivered["nonblocking"]
        self.assertGreater(missing, 0)
        self.assertEqual(missing, r.dropped_counter)
        self.assertEqual(missing, r.dropped_markers)
        self.assertEqual(r.dropped_markers, r.markers_before_stop)

    def test_peak_rss_within_total_buffer_limit_plus_overhead(self):
        r = self.result
        if r.sanitized:
            self.skipTest("sanitizer build: shadow memory and quarantine make RSS meaningless "
                          "(measured %.1f MiB)" % (r.peak_rss / soak.MIB))
        self.assertGreater(r.peak_rss, 0)
        self.assertLessEqual(r.peak_rss, r.total_buffer_limit + r.rss_overhead)

    def test_every_check_held(self):
        self.assertEqual(self.result.failures, [])


if __name__ == "__main__":
    main()
