"""What the fault soak (test_soak.py, scripts/soak) found, cut down to a few
seconds each: drops made while no batch is filling, of a file then rotated
away, must still be announced; and a blocking source that waits for room
during an outage must still read every file its containers rotated through
meanwhile, not only the one that has the name when it gets going again."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Container, Env, main  # noqa: E402
import soak  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402


class DropAnnouncements(unittest.TestCase):
    def test_drops_of_a_file_rotated_away_are_announced(self):
        """A non-blocking source during an outage: a first burst fills the only
        batch (sealed and retried; its overflow dropped and announced), a
        second burst is dropped while no batch is filling, then its file is
        rotated away and nothing more is written. Was: the rotated file was
        released with its drops unannounced, and their marker never came
        (src/source.c, source_finish_files); and the marker of drops made
        while no batch filled waited for SIGTERM: a dropped newest record
        told the output nothing, and the uploader's age timer ran only while
        a batch filled (src/source.c on_drop, src/uploader.c arm_age)."""
        fake = FakeAWS(seed=11)
        fake.start()
        self.addCleanup(fake.stop)
        env = Env(self)
        sock = os.path.join(env.root, "control.sock")
        env.write_config({"nb": env.docker_source(mode="non-blocking", max_buffer_size="16k",
                                                  group="g", stream="s")},
                         agent_extra="total_buffer_limit = 64k\ncontrol_socket = %s\n" % sock,
                         cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 1s\n"))
        c = Container(env.containers, name="nb")
        fake.set_faults([{"op": "logs", "kind": "outage", "seconds": 8}])
        d = env.start(dry_run=False)
        c.write_lines(["m%05d" % i for i in range(1000)], ts_ns=time.time_ns())
        time.sleep(2.5)  # the first batch is sealed and waits for the outage to end
        c.write_lines(["m%05d" % i for i in range(1000, 2000)], ts_ns=time.time_ns())
        time.sleep(0.5)
        c.rotate(keep=5)
        deadline = time.time() + 60
        while True:  # every line delivered or dropped
            m = soak.metrics(BIN, sock)
            sent = m.get(("cwlogd_events_sent_total", "nb"), 0)
            dropped = m.get(("cwlogd_events_dropped_total", "nb"), 0)
            if sent + dropped == 2000 or time.time() > deadline:
                break
            time.sleep(0.2)
        # Drops made while no batch is filling are announced by the uploader's
        # age timer, which runs while drops wait for their marker: they must
        # arrive without a stop to flush them (the retry after the outage may
        # wait up to 30 s).
        def marked_now():
            return sum(int(soak.MARKER.match(e["message"]).group(1)) for e in fake.events()
                       if e["acked"] and e["message"].startswith("cwlogd: dropped "))
        deadline = time.time() + 45
        while marked_now() < dropped and time.time() < deadline:
            time.sleep(0.2)
        marked = marked_now()
        self.assertEqual(d.stop(), 0)
        events = [e for e in fake.events() if e["acked"]]
        delivered = {e["message"] for e in events if not e["message"].startswith("cwlogd:")}
        self.assertGreaterEqual(dropped, 1000, "the scenario did not drop what it is about")
        self.assertEqual(len(delivered) + dropped, 2000)
        self.assertEqual(marked, dropped)


class RotationsWhilePaused(unittest.TestCase):
    def test_every_file_rotated_through_while_a_blocking_source_waits_is_read(self):
        """An outage fills the batches and the 16k ring: the source pauses
        with most of its file unread. The container rotates twice meanwhile;
        the file between the two rotations was never read once the skip of
        files being read came into the rescan (the reader, paused, noticed
        the rotation only at the end of the first file, when the second had
        lost the name too)."""
        fake = FakeAWS(seed=13)
        fake.start()
        self.addCleanup(fake.stop)
        env = Env(self)
        env.write_config({"containers": env.docker_source(max_buffer_size="16k", group="g",
                                                          stream="s")},
                         cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        c = Container(env.containers, name="blk")
        fake.set_faults([{"op": "logs", "kind": "outage", "seconds": 8}])
        d = env.start(dry_run=False)
        first = ["a%05d" % i for i in range(25000)]  # two full batches of 10,000 and more
        c.write_lines(first, ts_ns=time.time_ns())
        time.sleep(2)
        c.rotate(keep=9)
        between = ["b%05d" % i for i in range(100)]
        c.write_lines(between, ts_ns=time.time_ns())
        time.sleep(1)
        c.rotate(keep=9)
        last = ["c%05d" % i for i in range(100)]
        c.write_lines(last, ts_ns=time.time_ns())
        want = set(first + between + last)
        deadline = time.time() + 90
        while time.time() < deadline:
            if want <= {e["message"] for e in fake.events()}:
                break
            time.sleep(0.5)
        self.assertEqual(d.stop(), 0)
        got = {e["message"] for e in fake.events()}
        self.assertEqual(sorted(set(between) - got), [], "the file between the rotations")
        self.assertEqual(len(want - got), 0)
        self.assertEqual(got - want, set())


if __name__ == "__main__":
    main()
