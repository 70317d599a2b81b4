#!/usr/bin/env python3
"""The fault soak (issue 6): steady numbered lines into Docker json-file
containers of two sources -- one `blocking`, one `non-blocking` with a small
buffer -- while the fake endpoint (tests/fake_aws.py, run as a child process)
injects, phase after phase: throttling, 500/503, resets before and after
storing, latency spikes, a full CloudWatch outage, an IMDS outage, and
60 s credential lifetimes throughout. Containers rotate as they grow, and
one of each source at every phase's start. Then the writer stops, faults are
cleared, the agent catches up and is stopped with SIGTERM, and:

- blocking source: every line written was delivered (set equality per
  stream); the events the fake stored with an acknowledged answer hold no
  duplicates, so every duplicate comes from a `reset_after` fault;
- non-blocking source: written - delivered == dropped per the agent's
  counter (`cwlogd_events_dropped_total`) == the sum of the counts in the
  drop marker events shipped, to the event, per container for the markers;
- peak RSS of the agent (VmHWM from /proc/PID/status just before SIGTERM)
  is within total_buffer_limit + RSS_OVERHEAD.

As a module: run_soak(SoakParams(...)) returns a SoakResult (numbers and a
list of failed checks); tests/integration/test_soak.py runs a short one.
As a CLI (what scripts/soak runs):

    python3 tests/integration/soak.py [--minutes M | --duration S] [--outage S]
        [--imds-outage S] [--rate LINES_PER_S] [--containers N] [--seed N]
        [--total-buffer-limit SIZE] [--blocking-buffer SIZE] [--nonblocking-buffer SIZE]
        [--rotate-bytes N] [--keep DIR] [--bin PATH]

prints the schedule as it goes and a summary, and exits 1 when a check fails.
"""

import argparse
import collections
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from harness import Container  # noqa: E402
from fake_aws import FakeAWSProcess  # noqa: E402

MIB = 1024 * 1024
# Peak RSS may exceed total_buffer_limit by this much: the process without
# buffered data (~15 MiB VmRSS, ~11.5 MiB of it shared-library pages), plus
# the uploader's batches, which are charged on the shared budget but pulled
# from the rings up to their own cap (BATCH_MEMORY_CAP, 8 MiB in
# src/uploader.c), plus 1 MiB. Measured (tests/README.md, "The fault soak"):
# 17-21 MiB for 4 to 16 streams. Follow BATCH_MEMORY_CAP when it changes.
RSS_OVERHEAD = 24 * MIB

MARKER = re.compile(r"^cwlogd: dropped (\d+) events \((\d+) bytes\) from (\S+) between ")
LINE = re.compile(r"^([bn]\d+)-(\d{8}) ")
_pad_rng = random.Random(6)
PAD = "".join(_pad_rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(4096))


def parse_size(text):
    m = re.fullmatch(r"(\d+)([kmg]?)", text.strip().lower())
    if not m:
        raise ValueError("bad size %r" % text)
    return int(m.group(1)) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[m.group(2)]


def message(name, seq):
    """Line `seq` of container `name`: numbered, 40..300 bytes, deterministic."""
    n = 40 + (seq * 7919) % 260
    start = (seq * 31) % (len(PAD) - 300)
    return "%s-%08d %s." % (name, seq, PAD[start:start + n])


@dataclasses.dataclass
class SoakParams:
    duration: float = 240.0        # seconds of writing (all phases)
    outage: float = 60.0           # full CloudWatch outage
    imds_outage: float = 35.0      # IMDS outage (over 30 s: see imds_window())
    rate: float = 100.0            # lines/s per container
    containers: int = 3            # per source
    seed: int = 1
    total_buffer_limit: str = "16m"
    blocking_buffer: str = "256k"  # max_buffer_size of the blocking source
    nonblocking_buffer: str = "64k"
    credential_lifetime: float = 60.0
    rotate_bytes: int = 2 * MIB    # rotate a container's file past this size
    catch_up: float = 180.0        # longest wait for the agent after writing stops
    bin: str = ""
    keep: str = ""                 # keep the work tree here (default: a removed temp dir)
    log: object = print


@dataclasses.dataclass
class SoakResult:
    written: dict = dataclasses.field(default_factory=dict)        # source -> lines
    delivered: dict = dataclasses.field(default_factory=dict)      # source -> unique lines
    stored: int = 0                   # events the fake stored (markers, duplicates included)
    duplicates: int = 0               # stored more than once
    unacked: int = 0                  # stored by a request whose answer reset_after discarded
    reset_after_events: int = 0       # per the fake's counters
    dropped_counter: int = 0          # cwlogd_events_dropped_total of the non-blocking source
    dropped_blocking_counter: int = 0
    dropped_markers: int = 0          # sum of the counts in shipped markers
    markers: int = 0
    markers_before_stop: int = 0      # the same sum, seen before SIGTERM
    rotations: int = 0
    faults_fired: dict = dataclasses.field(default_factory=dict)
    peak_rss: int = 0                 # bytes (VmHWM)
    total_buffer_limit: int = 0
    rss_overhead: int = RSS_OVERHEAD
    sanitized: bool = False
    exit_status: int = None
    catch_up_s: float = 0.0
    wall_s: float = 0.0
    failures: list = dataclasses.field(default_factory=list)
    log_tail: str = ""

    def summary(self):
        nb_written = self.written.get("nonblocking", 0)
        nb_delivered = self.delivered.get("nonblocking", 0)
        lines = [
            "soak: %.0f s wall, agent exit status %s, catch-up %.1f s after writing stopped" % (
                self.wall_s, self.exit_status, self.catch_up_s),
            "  written      blocking %d, non-blocking %d (%d rotations)" % (
                self.written.get("blocking", 0), nb_written, self.rotations),
            "  delivered    blocking %d, non-blocking %d (unique lines)" % (
                self.delivered.get("blocking", 0), nb_delivered),
            "  stored       %d events, %d duplicate(s); %d stored unacknowledged "
            "(reset_after: %d per the fake)" % (
                self.stored, self.duplicates, self.unacked, self.reset_after_events),
            "  dropped      written - delivered %d; counter %d; markers %d (in %d marker "
            "event(s), %d of them before SIGTERM); blocking source counter %d" % (
                nb_written - nb_delivered, self.dropped_counter, self.dropped_markers,
                self.markers, self.markers_before_stop, self.dropped_blocking_counter),
            "  peak RSS     %.1f MiB (VmHWM); total_buffer_limit %.1f MiB + overhead %.1f MiB "
            "= bound %.1f MiB%s" % (
                self.peak_rss / MIB, self.total_buffer_limit / MIB, self.rss_overhead / MIB,
                (self.total_buffer_limit + self.rss_overhead) / MIB,
                " (sanitizer build: not held to the bound)" if self.sanitized else ""),
            "  faults fired %s" % json.dumps(self.faults_fired, sort_keys=True),
        ]
        lines.append("  result       " + ("OK" if not self.failures else
                                          "FAILED:\n    - " + "\n    - ".join(self.failures)))
        return "\n".join(lines)


def schedule(p):
    """[(label, seconds, rules)] covering p.duration: the outage phase lasts
    as long as the outage, the others share the rest. The IMDS outage is laid
    over the phases (imds_window())."""
    mixed = [
        {"op": "logs", "kind": "throttle", "probability": 0.05},
        {"op": "logs", "kind": "500", "probability": 0.04},
        {"op": "logs", "kind": "503", "probability": 0.04},
        {"op": "logs", "kind": "reset_before", "probability": 0.04},
        {"op": "logs", "kind": "reset_after", "probability": 0.05},
        {"op": "logs", "kind": "latency", "seconds": 2, "probability": 0.05},
    ]
    phases = [
        ("warm-up, no faults", None, []),
        ("throttling", None, [{"op": "logs", "kind": "throttle", "probability": 0.4}]),
        ("500 and 503", None, [{"op": "logs", "kind": "500", "probability": 0.2},
                               {"op": "logs", "kind": "503", "probability": 0.2}]),
        ("resets before and after storing", None, [
            {"op": "logs", "kind": "reset_before", "probability": 0.15},
            {"op": "logs", "kind": "reset_after", "probability": 0.15},
            {"op": "logs", "kind": "close", "probability": 0.05}]),
        ("latency spikes", None, [
            {"op": "logs", "kind": "latency", "seconds": 4, "probability": 0.25},
            {"op": "logs", "kind": "latency", "seconds": 0.5, "probability": 0.5}]),
        ("full CloudWatch outage", p.outage,
         [{"op": "logs", "kind": "outage", "seconds": p.outage}]),
        ("recovery, no faults", None, []),
        ("everything at a low rate", None, mixed),
    ]
    fixed = sum(s for _, s, _ in phases if s is not None)
    n_free = sum(1 for _, s, _ in phases if s is None)
    unit = max(1.0, (p.duration - fixed) / n_free)
    return [(label, s if s is not None else unit, rules) for label, s, rules in phases]


def imds_window(p, phases):
    """(start, end) of the IMDS outage, in seconds from the first phase: from
    the end of the warm-up on, so it covers the agent's first refresh of its
    60 s credentials (at 30 s); later refreshes come every 15 or 30 s, so an
    outage over 30 s always covers one."""
    start = phases[0][1]
    return start, start + p.imds_outage


class Writer(threading.Thread):
    """Appends numbered lines to every container at `rate` lines/s each,
    rotating a container's file when it passes rotate_bytes."""

    def __init__(self, containers, rate, rotate_bytes, seed):
        super().__init__(daemon=True, name="soak-writer")
        self.containers = containers
        self.rate = rate
        self.rotate_bytes = rotate_bytes
        self.rng = random.Random(seed)
        self.count = {c.name: 0 for c in containers}
        self.rotations = 0
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.error = None

    def rotate(self, c):
        with self.lock:
            c.rotate(keep=500)  # retention never runs out: a loss is the agent's
            self.rotations += 1

    def run(self):
        try:
            start = time.monotonic()
            while not self.stop_flag.is_set():
                due = int((time.monotonic() - start) * self.rate)
                with self.lock:
                    for c in self.containers:
                        n = self.count[c.name]
                        if due > n:
                            ts = time.time_ns()
                            c.write_lines([message(c.name, s) for s in range(n, due)], ts_ns=ts)
                            self.count[c.name] = due
                        if os.path.getsize(c.path) > self.rotate_bytes:
                            c.rotate(keep=500)
                            self.rotations += 1
                time.sleep(0.02 + self.rng.random() * 0.03)
        except Exception as e:  # reported by the soak, not lost in a thread
            self.error = e


def sanitized(binary):
    """Is the binary built with AddressSanitizer? (RSS is then not comparable.)"""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM for pid %d" % pid)


def metrics(binary, sock):
    p = subprocess.run([binary, "metrics", "--socket", sock], capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise RuntimeError("cwlogd metrics failed: %s" % p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r'^(\w+)\{source="([^"]*)"\} (\d+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


class Events:
    """What the fake stored, fetched incrementally (since=seq)."""

    def __init__(self, control):
        self.control = control
        self.all = []
        self.last = 0

    def poll(self):
        new = self.control.events(since=self.last)
        self.all += new
        if new:
            self.last = new[-1]["seq"]
        return self.all


def tally(events):
    """Per source: unique delivered lines, markers; duplicates overall."""
    seen = collections.Counter()
    acked_seen = collections.Counter()
    delivered = {"blocking": set(), "nonblocking": set()}
    marker_sum = collections.Counter()  # per stream, from acknowledged markers only
    markers = 0
    unacked = 0
    stray = []
    for e in events:
        key = (e["group"], e["stream"], e["message"])
        seen[key] += 1
        if not e["acked"]:
            unacked += 1
            continue
        acked_seen[key] += 1
        m = MARKER.match(e["message"])
        if m:
            marker_sum[e["stream"]] += int(m.group(1))
            markers += 1
            continue
        src = "blocking" if e["group"] == "/soak/blocking" else "nonblocking"
        lm = LINE.match(e["message"])
        if not lm or lm.group(1) != e["stream"] or e["group"] not in (
                "/soak/blocking", "/soak/nonblocking"):
            stray.append(e["message"][:80])
            continue
        delivered[src].add((lm.group(1), int(lm.group(2))))
    return {
        "delivered": delivered,
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "acked_duplicates": sum(n - 1 for n in acked_seen.values() if n > 1),
        "acked_dup_examples": [k[2][:60] for k, n in acked_seen.items() if n > 1][:5],
        "marker_sum": marker_sum,
        "markers": markers,
        "unacked": unacked,
        "stray": stray,
    }


def written_set(counts, prefix):
    return {(name, i) for name, n in counts.items() if name.startswith(prefix) for i in range(n)}


def write_config(path, root, sock, fake, p):
    text = """[agent]
state_dir = {root}/state
log_level = info
control_socket = {sock}
total_buffer_limit = {tbl}

[cloudwatch]
region = us-east-1
endpoint = {endpoint}
imds_endpoint = {imds}
flush_interval = 500ms

[source blocking]
type = docker
path = {root}/blocking
group = /soak/blocking
stream = {{container_name}}
start_at = beginning
mode = blocking
max_buffer_size = {bbuf}

[source nonblocking]
type = docker
path = {root}/nonblocking
group = /soak/nonblocking
stream = {{container_name}}
start_at = beginning
mode = non-blocking
drop = oldest
max_buffer_size = {nbuf}
""".format(root=root, sock=sock, tbl=p.total_buffer_limit, endpoint=fake.info["endpoint"],
           imds=fake.info["imds_endpoint"], bbuf=p.blocking_buffer, nbuf=p.nonblocking_buffer)
    with open(path, "w") as f:
        f.write(text)


def default_bin():
    return os.environ.get("CWLOGD_BIN") or os.path.join(HERE, "..", "..", "build", "cwlogd")


def run_soak(p):
    """Run one soak; returns a SoakResult (failures empty when every check held)."""
    log = p.log or (lambda *a: None)
    binary = p.bin or default_bin()
    res = SoakResult(total_buffer_limit=parse_size(p.total_buffer_limit),
                     sanitized=sanitized(binary))
    t0 = time.monotonic()
    root = p.keep or tempfile.mkdtemp(prefix="cwlogd-soak-")
    os.makedirs(root, exist_ok=True)
    fake = agent = writer = agent_log = None
    try:
        fake = FakeAWSProcess(["--seed", str(p.seed), "--credential-lifetime",
                               str(p.credential_lifetime)]).start()
        ctl = fake.control
        rng = random.Random(p.seed)
        conts = []
        for kind, prefix in (("blocking", "b"), ("nonblocking", "n")):
            os.makedirs(os.path.join(root, kind), exist_ok=True)
            for i in range(p.containers):
                cid = "%064x" % rng.getrandbits(256)
                conts.append(Container(os.path.join(root, kind), cid=cid,
                                       name="%s%d" % (prefix, i)))
        sock = os.path.join(root, "control.sock")
        conf = os.path.join(root, "cwlogd.conf")
        write_config(conf, root, sock, fake, p)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        agent_log_path = os.path.join(root, "agent.log")
        agent_log = open(agent_log_path, "wb")
        agent = subprocess.Popen([binary, "--config", conf], stdout=subprocess.DEVNULL,
                                 stderr=agent_log, env=env)
        deadline = time.monotonic() + 60
        while True:
            with open(agent_log_path, "rb") as f:
                if b"started:" in f.read():
                    break
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cwlogd did not start (status %s)" % agent.poll())
            time.sleep(0.05)

        writer = Writer(conts, p.rate, p.rotate_bytes, p.seed)
        writer.start()
        phases = schedule(p)
        imds_from, imds_to = imds_window(p, phases)
        start = time.monotonic()
        at = 0.0
        for i, (label, secs, rules) in enumerate(phases):
            now = time.monotonic() - start
            if imds_from <= now < imds_to:  # carried over into this phase's rules
                rules = rules + [{"op": "imds", "kind": "outage", "seconds": imds_to - now}]
                label += " + IMDS outage"
            ctl.set_faults(rules, seed=p.seed * 100 + i)
            for c in (conts[i % p.containers], conts[p.containers + i % p.containers]):
                writer.rotate(c)  # one container of each source at every phase's start
            log("soak: %5.0f s  %-52s %5.0f s  %s" % (
                now, label, secs,
                ", ".join("%s %s" % (r["op"], r["kind"]) for r in rules) or "-"))
            at += secs
            while time.monotonic() - start < at:
                if agent.poll() is not None:
                    raise RuntimeError("cwlogd exited during the soak (status %s)" % agent.poll())
                time.sleep(min(1.0, max(0.0, at - (time.monotonic() - start))))
        writer.stop_flag.set()
        writer.join()
        if writer.error:
            raise writer.error
        ctl.set_faults([])
        stopped_writing = time.monotonic()
        res.written = {"blocking": sum(n for k, n in writer.count.items() if k[0] == "b"),
                       "nonblocking": sum(n for k, n in writer.count.items() if k[0] == "n")}
        res.rotations = writer.rotations
        want_b = written_set(writer.count, "b")
        want_n = written_set(writer.count, "n")
        log("soak: writing stopped: %d + %d lines, %d rotations; waiting for the agent" % (
            len(want_b), len(want_n), writer.rotations))

        # Catch up: the blocking lines all there, the non-blocking ones either
        # delivered or counted as dropped, and the drops announced.
        events = Events(ctl)
        deadline = time.monotonic() + p.catch_up
        next_note = time.monotonic() + 5
        while True:
            t = tally(events.poll())
            m = metrics(binary, sock)
            dropped = m.get(("cwlogd_events_dropped_total", "nonblocking"), 0)
            marked = sum(t["marker_sum"].values())
            done = (want_b <= t["delivered"]["blocking"]
                    and len(t["delivered"]["nonblocking"]) + dropped == len(want_n)
                    and marked == dropped)
            if done or time.monotonic() > deadline or agent.poll() is not None:
                break
            if time.monotonic() >= next_note:
                next_note = time.monotonic() + 5
                log("soak: catching up: blocking %d line(s) missing; non-blocking %d delivered "
                    "+ %d dropped of %d; markers say %d" % (
                        len(want_b - t["delivered"]["blocking"]),
                        len(t["delivered"]["nonblocking"]), dropped, len(want_n), marked))
            time.sleep(0.5)
        res.catch_up_s = time.monotonic() - stopped_writing
        res.markers_before_stop = marked
        res.dropped_counter = dropped
        res.dropped_blocking_counter = m.get(("cwlogd_events_dropped_total", "blocking"), 0)
        if agent.poll() is None:
            res.peak_rss = vm_hwm(agent.pid)
            agent.send_signal(signal.SIGTERM)
        try:
            res.exit_status = agent.wait(60)
        except subprocess.TimeoutExpired:
            res.failures.append("cwlogd did not exit within 60 s of SIGTERM")
            agent.kill()
            res.exit_status = agent.wait()
        # What the agent shipped while stopping counts too (late markers show
        # up as markers_before_stop < dropped_markers).
        t = tally(events.poll())
        reqs = ctl.requests()
        res.reset_after_events = reqs["reset_after"]["events"]
        res.faults_fired = {op: kinds for op, kinds in reqs["faults"].items()}
        res.stored = len(events.all)
        res.duplicates = t["duplicates"]
        res.unacked = t["unacked"]
        res.markers = t["markers"]
        res.dropped_markers = sum(t["marker_sum"].values())
        got_b, got_n = t["delivered"]["blocking"], t["delivered"]["nonblocking"]
        res.delivered = {"blocking": len(got_b), "nonblocking": len(got_n)}
        check(res, p, t, want_b, want_n)
    except Exception as e:  # a soak that could not run is a failed soak
        res.failures.append("soak aborted: %s: %s" % (type(e).__name__, e))
    finally:
        if writer is not None:
            writer.stop_flag.set()
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        if agent_log is not None:
            agent_log.close()
            with open(agent_log.name, "rb") as f:
                res.log_tail = f.read()[-6000:].decode(errors="replace")
        if fake is not None:
            fake.stop()
        if not p.keep:
            shutil.rmtree(root, ignore_errors=True)
        res.wall_s = time.monotonic() - t0
    return res


def check(res, p, t, want_b, want_n):
    f = res.failures
    got_b, got_n = t["delivered"]["blocking"], t["delivered"]["nonblocking"]
    if res.exit_status != 0:
        f.append("cwlogd exited with status %s after SIGTERM" % res.exit_status)
    if t["stray"]:
        f.append("%d event(s) that were never written, e.g. %s" % (len(t["stray"]), t["stray"][:3]))
    lost = want_b - got_b
    if lost:
        f.append("blocking source: %d line(s) lost, e.g. %s" % (len(lost), sorted(lost)[:5]))
    if got_b - want_b or got_n - want_n:
        f.append("lines delivered that were never written: %s" % sorted(
            (got_b - want_b) | (got_n - want_n))[:5])
    if t["acked_duplicates"]:
        f.append("%d duplicate(s) among acknowledged events (not from reset_after), e.g. %s" % (
            t["acked_duplicates"], t["acked_dup_examples"]))
    if res.unacked != res.reset_after_events:
        f.append("%d event(s) stored unacknowledged but the fake counts %d from reset_after" % (
            res.unacked, res.reset_after_events))
    missing_n = len(want_n) - len(got_n)
    if not missing_n == res.dropped_counter == res.dropped_markers:
        f.append("non-blocking source: written - delivered = %d, dropped counter = %d, "
                 "markers say %d" % (missing_n, res.dropped_counter, res.dropped_markers))
    # Per container: the markers in a stream count what that container lost.
    for name in sorted({n for n, _ in want_n}):
        lost_here = sum(1 for k in want_n if k[0] == name) - sum(1 for k in got_n if k[0] == name)
        if lost_here != t["marker_sum"].get(name, 0):
            f.append("non-blocking %s: %d line(s) missing, its markers say %d" % (
                name, lost_here, t["marker_sum"].get(name, 0)))
    if res.dropped_markers != res.markers_before_stop:
        f.append("drop markers for %d event(s) were only shipped at SIGTERM" % (
            res.dropped_markers - res.markers_before_stop))
    # A soak that did not inject what it is about proves nothing.
    fired = res.faults_fired
    if not any(k.get("outage") for op, k in fired.items() if not op.startswith(("imds", "ecs"))):
        f.append("the CloudWatch outage never hit a request")
    if not any(k.get("outage") for op, k in fired.items() if op.startswith("imds")):
        f.append("the IMDS outage never hit a request (no credential refresh during it)")
    if res.dropped_counter == 0:
        f.append("the non-blocking source dropped nothing: the drop accounting went untested")
    if res.rotations == 0:
        f.append("no container was rotated")
    if res.dropped_blocking_counter:
        f.append("the blocking source counts %d dropped event(s)" % res.dropped_blocking_counter)
    if not res.sanitized and res.peak_rss > res.total_buffer_limit + res.rss_overhead:
        f.append("peak RSS %.1f MiB over total_buffer_limit %.1f MiB + %.1f MiB" % (
            res.peak_rss / MIB, res.total_buffer_limit / MIB, res.rss_overhead / MIB))


def main(argv=None):
    ap = argparse.ArgumentParser(description="cwlogd fault soak against the fake endpoint")
    d = SoakParams()
    ap.add_argument("--minutes", type=float, help="writing time in minutes (default 4)")
    ap.add_argument("--duration", type=float, help="writing time in seconds (default 240)")
    ap.add_argument("--outage", type=float, default=d.outage, help="CloudWatch outage, s")
    ap.add_argument("--imds-outage", type=float, default=d.imds_outage, help="IMDS outage, s")
    ap.add_argument("--rate", type=float, default=d.rate, help="lines/s per container")
    ap.add_argument("--containers", type=int, default=d.containers, help="containers per source")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--total-buffer-limit", default=d.total_buffer_limit)
    ap.add_argument("--blocking-buffer", default=d.blocking_buffer,
                    help="max_buffer_size of the blocking source")
    ap.add_argument("--nonblocking-buffer", default=d.nonblocking_buffer,
                    help="max_buffer_size of the non-blocking source")
    ap.add_argument("--rotate-bytes", type=int, default=d.rotate_bytes)
    ap.add_argument("--keep", default="", help="work directory to keep (agent.log, state)")
    ap.add_argument("--bin", default="", help="cwlogd binary (default $CWLOGD_BIN or build/)")
    a = ap.parse_args(argv)
    duration = a.duration if a.duration else (a.minutes * 60 if a.minutes else d.duration)
    p = SoakParams(duration=duration, outage=a.outage, imds_outage=a.imds_outage, rate=a.rate,
                   containers=a.containers, seed=a.seed, total_buffer_limit=a.total_buffer_limit,
                   blocking_buffer=a.blocking_buffer, nonblocking_buffer=a.nonblocking_buffer,
                   rotate_bytes=a.rotate_bytes, bin=a.bin, keep=a.keep,
                   log=lambda s: print(s, flush=True))
    res = run_soak(p)
    if res.failures:
        print("agent log (tail):\n" + res.log_tail)
    print(res.summary())
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
