#!/usr/bin/env python3
"""A fleet sharing one account's CloudWatch quotas (issue 12): N agents on
this machine, each with its own state directory, containers (Docker
json-file, written before they start, `start_at = beginning`) and control
socket, started at random moments within a window, all against one fake
endpoint (tests/fake_aws.py, a child process) whose quotas are account-wide
token buckets per operation. Each agent has C containers of L lines; the
containers are spread over G log groups that every agent shares, so groups
are created once for the fleet and each container is a stream of its own.

It measures:
- time to converge: from the first agent's start to the moment the fake
  stored the last line for the first time (its ingestion time), against the
  quota's ideal: the most requests any operation needs at the least (a
  stream per container, a group per group, a put per stream) over its rate;
- per operation: requests sent, succeeded (2xx), throttled, other answers,
  and sent per succeeded;
- throttles per second over the convergence;
- exact loss and duplicates: every line written is looked up in what the
  fake stored.

As a module: run_fleet(FleetParams(...)) returns a FleetResult (figures and
a list of failed checks); tests/integration/test_fleet.py runs a small one.
As a CLI (what scripts/fleet runs):

    python3 tests/integration/fleet.py [--agents N] [--containers C] [--lines L]
        [--groups G] [--window S] [--quota OP=RATE]... [--max-ratio R]
        [--timeout S] [--seed N] [--keep DIR] [--bin PATH] [--json]

prints the summary and exits 1 when a check fails.
"""

import argparse
import collections
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from harness import Container  # noqa: E402
from fake_aws import FakeAWSProcess  # noqa: E402
from soak import default_bin  # noqa: E402

# AWS's quotas in the large regions divided by 5, as in issue 12.
DEFAULT_QUOTAS = {"CreateLogStream": 10.0, "CreateLogGroup": 1.0, "PutRetentionPolicy": 1.0,
                  "PutLogEvents": 100.0}
OPS = ("CreateLogGroup", "PutRetentionPolicy", "CreateLogStream", "PutLogEvents")


@dataclasses.dataclass
class FleetParams:
    agents: int = 40
    containers: int = 5          # per agent: one stream each
    lines: int = 300             # per container
    groups: int = 3              # shared by every agent
    window: float = 1.0          # agents start at random moments within it (s)
    quotas: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    retention_days: int = 14     # so PutRetentionPolicy is used by the groups' creators
    flush_interval: str = "1s"
    max_ratio: float = 1.5       # requests sent per request succeeded, every op
    slack: float = 10.0          # converge within 1.5 x ideal + slack
    timeout: float = 300.0       # longest wait for convergence after the last start
    seed: int = 12
    bin: str = ""
    keep: str = ""
    log: object = None


@dataclasses.dataclass
class FleetResult:
    agents: int = 0
    lines: int = 0
    streams: int = 0
    groups: int = 0
    ideal_s: float = 0.0
    converge_s: float = None     # None: not every line arrived in time
    ops: dict = dataclasses.field(default_factory=dict)  # op -> {sent, ok, throttled, other}
    throttles_per_s: float = 0.0
    lost: int = 0
    duplicates: int = 0
    stray: int = 0
    exit_statuses: dict = dataclasses.field(default_factory=dict)  # status -> agents
    wall_s: float = 0.0
    failures: list = dataclasses.field(default_factory=list)
    log_tail: str = ""

    def ratio(self, op):
        o = self.ops.get(op)
        return o["sent"] / o["ok"] if o and o["ok"] else None

    def summary(self):
        conv = "%.1f s" % self.converge_s if self.converge_s is not None else "never"
        out = ["fleet: %d agents, %d streams in %d groups, %d lines; %.0f s wall" % (
            self.agents, self.streams, self.groups, self.lines, self.wall_s),
            "  converged    %s (ideal %.1f s, target %.1f s)" % (
                conv, self.ideal_s, 1.5 * self.ideal_s + FleetParams.slack),
            "  %-19s %7s %7s %9s %6s %9s" % ("op", "sent", "2xx", "throttled", "other",
                                            "sent/2xx")]
        for op in OPS:
            o = self.ops.get(op)
            if not o or not o["sent"]:
                continue
            r = self.ratio(op)
            out.append("  %-19s %7d %7d %9d %6d %9s" % (
                op, o["sent"], o["ok"], o["throttled"], o["other"],
                "%.2f" % r if r is not None else "-"))
        out.append("  throttles/s  %.1f over the convergence" % self.throttles_per_s)
        out.append("  lost %d, duplicates %d, stray %d; agents' exit statuses %s" % (
            self.lost, self.duplicates, self.stray, self.exit_statuses))
        out.append("  result       " + ("OK" if not self.failures else
                                       "FAILED:\n    - " + "\n    - ".join(self.failures)))
        return "\n".join(out)

    def to_json(self):
        return dataclasses.asdict(self)


def ideal_seconds(p):
    """The quota's ideal: each op's fewest successful requests over its rate."""
    need = {"CreateLogStream": p.agents * p.containers, "CreateLogGroup": p.groups,
            "PutRetentionPolicy": p.groups if p.retention_days else 0,
            "PutLogEvents": p.agents * p.containers}
    return max(n / p.quotas[op] for op, n in need.items() if op in p.quotas and p.quotas[op])


def line(agent, container, seq):
    return "a%03d-c%02d-%06d fleet line" % (agent, container, seq)


def write_config(path, root, sock, fake, p):
    text = """[agent]
state_dir = {root}/state
log_level = info
control_socket = {sock}

[cloudwatch]
region = us-east-1
endpoint = {endpoint}
imds_endpoint = {imds}
flush_interval = {flush}
retention_days = {retention}

[source containers]
type = docker
path = {root}/containers
group = {{label:group}}
stream = {{container_name}}
start_at = beginning
""".format(root=root, sock=sock, endpoint=fake.info["endpoint"], imds=fake.info["imds_endpoint"],
           flush=p.flush_interval, retention=p.retention_days)
    with open(path, "w") as f:
        f.write(text)


def run_fleet(p):
    """Run one fleet; returns a FleetResult (failures empty when every check held)."""
    log = p.log or (lambda *a: None)
    binary = p.bin or default_bin()
    res = FleetResult(agents=p.agents, streams=p.agents * p.containers, groups=p.groups,
                      lines=p.agents * p.containers * p.lines, ideal_s=ideal_seconds(p))
    t0 = time.monotonic()
    root = p.keep or tempfile.mkdtemp(prefix="cwlogd-fleet-")
    os.makedirs(root, exist_ok=True)
    fake = None
    procs = []
    logs = []
    try:
        args = ["--seed", str(p.seed)]
        for op, rate in p.quotas.items():
            args += ["--quota", "%s=%g" % (op, rate)]
        fake = FakeAWSProcess(args).start()
        ctl = fake.control
        rng = random.Random(p.seed)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        want = set()
        confs = []
        for i in range(p.agents):
            aroot = os.path.join(root, "agent%03d" % i)
            os.makedirs(os.path.join(aroot, "containers"), exist_ok=True)
            for j in range(p.containers):
                c = Container(os.path.join(aroot, "containers"),
                              cid="%064x" % rng.getrandbits(256), name="a%03d-c%02d" % (i, j),
                              labels={"group": "/fleet/g%d" % ((i * p.containers + j) % p.groups)})
                msgs = [line(i, j, s) for s in range(p.lines)]
                c.write_lines(msgs, ts_ns=time.time_ns() - 60 * 10**9)
                want.update(msgs)
            conf = os.path.join(aroot, "cwlogd.conf")
            write_config(conf, aroot, os.path.join(aroot, "control.sock"), fake, p)
            confs.append((aroot, conf))
        log("fleet: %d agents x %d containers x %d lines in %d groups; quotas %s; ideal %.1f s" % (
            p.agents, p.containers, p.lines, p.groups, json.dumps(p.quotas), res.ideal_s))

        starts = sorted((rng.uniform(0, p.window), i) for i in range(p.agents))
        wall0 = time.time()
        mono0 = time.monotonic()
        for at, i in starts:
            delay = at - (time.monotonic() - mono0)
            if delay > 0:
                time.sleep(delay)
            aroot, conf = confs[i]
            lf = open(os.path.join(aroot, "agent.log"), "wb")
            logs.append(lf)
            procs.append(subprocess.Popen([binary, "--config", conf], stdout=subprocess.DEVNULL,
                                          stderr=lf, env=env))
        log("fleet: %d agents started within %.2f s" % (p.agents, time.monotonic() - mono0))

        deadline = time.monotonic() + p.timeout
        next_note = time.monotonic() + 10
        while True:
            stored = ctl.state()["events"]
            if stored >= len(want):
                evs = ctl.events()
                got = {e["message"] for e in evs}
                if want <= got:
                    break
            if time.monotonic() > deadline:
                break
            dead = [pr.returncode for pr in procs if pr.poll() is not None]
            if dead:
                raise RuntimeError("%d agent(s) exited during the run: %s" % (len(dead), dead[:5]))
            if time.monotonic() >= next_note:
                next_note = time.monotonic() + 10
                log("fleet: %5.0f s  %d of %d lines stored" % (
                    time.monotonic() - mono0, stored, len(want)))
            time.sleep(0.5)

        for pr in procs:
            pr.send_signal(signal.SIGTERM)
        for pr in procs:
            try:
                rc = pr.wait(60)
            except subprocess.TimeoutExpired:
                pr.kill()
                rc = pr.wait()
            res.exit_statuses[rc] = res.exit_statuses.get(rc, 0) + 1

        evs = ctl.events()
        counts = collections.Counter(e["message"] for e in evs)
        first = {}
        for e in evs:
            first.setdefault(e["message"], e["ingestion_time"])
        res.lost = sum(1 for m in want if m not in counts)
        res.duplicates = sum(n - 1 for m, n in counts.items() if m in want and n > 1)
        res.stray = sum(n for m, n in counts.items() if m not in want)
        if not res.lost:
            res.converge_s = max(first[m] for m in want) / 1000.0 - wall0
        reqs = ctl.requests()["ops"]
        throttled = 0
        for op in OPS:
            o = reqs.get(op, {"total": 0, "status": {}, "errors": {}})
            ok = sum(n for s, n in o["status"].items() if s.startswith("2"))
            th = o["errors"].get("ThrottlingException", 0)
            res.ops[op] = {"sent": o["total"], "ok": ok, "throttled": th,
                           "other": o["total"] - ok - th,
                           "errors": {k: v for k, v in o["errors"].items()
                                      if k != "ThrottlingException"}}
            throttled += th
        span = res.converge_s or (time.time() - wall0)
        res.throttles_per_s = throttled / span if span > 0 else 0.0
        check(res, p)
    except Exception as e:  # a fleet that could not run is a failed fleet
        res.failures.append("fleet aborted: %s: %s" % (type(e).__name__, e))
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        for lf in logs:
            lf.close()
        if logs:
            with open(logs[0].name, "rb") as f:
                res.log_tail = f.read()[-4000:].decode(errors="replace")
        if fake is not None:
            fake.stop()
        if not p.keep:
            shutil.rmtree(root, ignore_errors=True)
        res.wall_s = time.monotonic() - t0
    return res


def check(res, p):
    f = res.failures
    if res.lost:
        f.append("%d line(s) lost" % res.lost)
    if res.duplicates:
        f.append("%d duplicate(s)" % res.duplicates)
    if res.stray:
        f.append("%d event(s) that were never written" % res.stray)
    bad_exit = {rc: n for rc, n in res.exit_statuses.items() if rc != 0}
    if bad_exit:
        f.append("agents exited with %s after SIGTERM" % bad_exit)
    if res.converge_s is None:
        f.append("not every line arrived within %.0f s" % p.timeout)
    elif res.converge_s > 1.5 * res.ideal_s + p.slack:
        f.append("converged after %.1f s, over 1.5 x %.1f s + %.0f s" % (
            res.converge_s, res.ideal_s, p.slack))
    for op in OPS:
        r = res.ratio(op)
        if r is not None and r > p.max_ratio:
            o = res.ops[op]
            f.append("%s: %d sent for %d succeeded (%.2f > %.2f)" % (
                op, o["sent"], o["ok"], r, p.max_ratio))
    if res.ops.get("CreateLogStream", {}).get("ok", 0) != res.streams:
        f.append("%s streams created for %d containers" % (
            res.ops.get("CreateLogStream", {}).get("ok"), res.streams))


def main(argv=None):
    d = FleetParams()
    ap = argparse.ArgumentParser(description="cwlogd agents sharing one account's quotas")
    ap.add_argument("--agents", type=int, default=d.agents)
    ap.add_argument("--containers", type=int, default=d.containers, help="per agent")
    ap.add_argument("--lines", type=int, default=d.lines, help="per container")
    ap.add_argument("--groups", type=int, default=d.groups, help="log groups shared by all")
    ap.add_argument("--window", type=float, default=d.window, help="agents start within it (s)")
    ap.add_argument("--quota", action="append", default=[], metavar="OP=RATE",
                    help="account-wide requests/s (default: AWS's large-region quotas / 5)")
    ap.add_argument("--retention-days", type=int, default=d.retention_days)
    ap.add_argument("--flush-interval", default=d.flush_interval)
    ap.add_argument("--max-ratio", type=float, default=d.max_ratio)
    ap.add_argument("--timeout", type=float, default=d.timeout)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--keep", default="", help="work directory to keep (agents' logs, state)")
    ap.add_argument("--bin", default="", help="cwlogd binary (default $CWLOGD_BIN or build/)")
    ap.add_argument("--json", action="store_true", help="also print the result as JSON")
    a = ap.parse_args(argv)
    quotas = dict(DEFAULT_QUOTAS)
    for q in a.quota:
        op, _, rate = q.partition("=")
        quotas[op] = float(rate)
    p = FleetParams(agents=a.agents, containers=a.containers, lines=a.lines, groups=a.groups,
                    window=a.window, quotas=quotas, retention_days=a.retention_days,
                    flush_interval=a.flush_interval, max_ratio=a.max_ratio, timeout=a.timeout,
                    seed=a.seed, bin=a.bin, keep=a.keep, log=lambda s: print(s, flush=True))
    res = run_fleet(p)
    if res.failures and res.log_tail:
        print("first agent's log (tail):\n" + res.log_tail)
    print(res.summary())
    if a.json:
        print(json.dumps(res.to_json()))
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
