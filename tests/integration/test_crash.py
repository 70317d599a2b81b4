"""Crash safety against the fake endpoint: a writer appends to container logs
(with rotations) while cwlogd is killed with SIGKILL at seeded random moments
and restarted; at the end every line written is in CloudWatch exactly once,
except the events of requests that were in flight at a kill. The fake holds
half the answers back (answer_latency) so that kills find requests in flight.
A request was in flight at a kill when the fake stored it during that run and
the agent's log (debug) does not show its answer handled and then a commit:
every duplicate must be an event of such a request, and the test prints them
per kill. With SIGTERM instead: nothing lost and nothing repeated."""

import collections
import os
import random
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402

KILLS = int(os.environ.get("CWLOGD_CRASH_KILLS", "20"))
ACCEPTED = re.compile(r"cloudwatch: .* request (\S+) accepted \d+ event")
COMMITTED = "checkpoint: commit "


def committed_requests(log):
    """Request ids whose answer the agent handled and then committed."""
    pending, done = set(), set()
    for line in log.splitlines():
        m = ACCEPTED.search(line)
        if m:
            pending.add(m.group(1))
        elif COMMITTED in line:
            done |= pending
            pending = set()
    return done


def check_duplicates_were_in_flight(test, fake, kills, dups, lines, next_start=None,
                                    known_unexplained=0):
    """Every duplicate is an event of a request in flight at a kill: received
    by the fake during that run or after it died, before the next run started
    (kills: (started, dead, requests handled and committed) per run, times
    from time.monotonic(); next_start: when the run after the last kill
    started), its answer not handled and committed. A request the fake
    receives while no agent runs was sent by the one that died: the fake may
    read, verify and store a megabyte body after its sender was killed.
    Prints duplicates / events in flight per kill. known_unexplained: how many
    duplicates that were not in flight a test tolerates for a known, open bug
    (printed either way; 0 holds DESIGN.md's bound)."""
    test.assertEqual(fake.requests()["reset_after"]["events"], 0)
    puts = fake.put_requests()
    ends = [k[0] for k in kills[1:]]
    if kills:
        ends.append(kills[-1][1] if next_start is None else next_start)
    in_flight = [{rid for rid, p in puts.items()
                  if t0 <= p["received"] and (p["received"] <= t1 or p["received"] < end)
                  and rid not in done}
                 for (t0, t1, done), end in zip(kills, ends)]
    copies = collections.defaultdict(list)
    for e in fake.events():
        copies[e["message"]].append((e["seq"], e["request_id"]))
    per_kill = [0] * len(kills)
    unexplained = []
    for msg, cs in copies.items():
        for _, rid in sorted(cs)[:-1]:  # every copy but the last was sent again
            k = next((i for i, ids in enumerate(in_flight) if rid in ids), None)
            if k is None:
                unexplained.append(msg)
            else:
                per_kill[k] += 1
    bound = [sum(puts[r]["events"] for r in ids) for ids in in_flight]
    print("\n%d lines, %d SIGKILLs: %d duplicate(s)" % (lines, len(kills), dups))
    print("per kill, duplicates / events in flight: %s" % ", ".join(
        "%d/%d" % (d, b) for d, b in zip(per_kill, bound)))
    if unexplained:
        print("%d duplicate(s) not in flight at any kill, e.g. %s" % (
            len(unexplained), sorted(unexplained)[:3]))
    test.assertLessEqual(len(unexplained), known_unexplained,
                         "duplicate(s) of events that were not in flight at any kill, e.g. %s"
                         % sorted(unexplained)[:5])
    if known_unexplained:
        # With a known bug that re-sends pieces of lines, counting copies by
        # text and counting duplicates by line may differ by those pieces.
        print("duplicates by line %d, by copy %d" % (dups, sum(per_kill) + len(unexplained)))
    else:
        test.assertEqual(sum(per_kill) + len(unexplained), dups)
    for k, (d, b) in enumerate(zip(per_kill, bound)):
        test.assertLessEqual(d, b, "kill %d" % k)


class Writer(threading.Thread):
    """Appends numbered lines to a few containers, rotating now and then."""

    def __init__(self, containers, seed, rotate=0.03):
        super().__init__(daemon=True)
        self.containers = containers
        self.rotate = rotate
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
            if self.rng.random() < self.rotate:
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
        if os.environ.get("CWLOGD_CRASH_DUMP"):
            with open(os.environ["CWLOGD_CRASH_DUMP"] + ".final", "w") as f:
                f.write(d.log())
        got = collections.Counter(e["message"] for e in self.fake.events())
        lost = want - got
        self.assertFalse(lost, "%d line(s) lost, e.g. %s" % (len(lost), list(lost)[:5]))
        extra = set(got) - set(want)
        self.assertFalse(extra, "lines never written arrived: %s" % list(extra)[:5])
        return sum(got.values()) - sum(want.values())

    def kill_repeatedly(self, writer):
        """KILLS runs of the agent, each SIGKILLed at a random moment while
        half the answers are held back 0.4 s after their events are stored.
        Returns per run (started, dead, requests handled and committed)."""
        self.fake.set_faults([{"op": "PutLogEvents", "kind": "answer_latency",
                               "seconds": 0.4, "probability": 0.5}], seed=3)
        rng = random.Random(1234)
        writer.start()
        # The streams are created first (paced, as on a fresh host) by a run
        # that stops cleanly; the kills then land while batches are sent.
        d = self.env.start(dry_run=False)
        deadline = time.time() + 60
        while time.time() < deadline and \
                len({e["stream"] for e in self.fake.events()}) < len(self.cs):
            time.sleep(0.1)
        self.assertEqual(d.stop(), 0)
        kills = []
        for _ in range(KILLS):
            t0 = time.monotonic()
            d = self.env.start(dry_run=False)
            time.sleep(rng.uniform(0.1, 0.8))
            d.signal(signal.SIGKILL)
            d.kill()
            kills.append((t0, time.monotonic(), committed_requests(d.log())))
        writer.stop_flag.set()
        writer.join()
        return kills

    def check_duplicates_were_in_flight(self, writer, kills, dups):
        check_duplicates_were_in_flight(self, self.fake, kills, dups, len(writer.written))
        # Not a test that cannot fail: kills must have found requests in flight.
        puts = self.fake.put_requests()
        self.assertGreater(sum(1 for t0, t1, _ in kills for p in puts.values()
                               if t0 <= p["stored"] <= t1), 0, "no request was sent in any run")

    def test_sigkill_while_files_grow_repeats_only_what_was_in_flight(self):
        writer = Writer(self.cs, 98, rotate=0)
        kills = self.kill_repeatedly(writer)
        self.check_duplicates_were_in_flight(writer, kills, self.drain_and_check(writer))

    def test_sigkill_while_files_rotate_repeats_only_what_was_in_flight(self):
        writer = Writer(self.cs, 99)
        kills = self.kill_repeatedly(writer)
        self.check_duplicates_were_in_flight(writer, kills, self.drain_and_check(writer))

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
