#!/usr/bin/env python3
"""Throughput, CPU and memory of `cwlogd --once --dry-run` on generated
json-file logs, next to `openssl dgst -sha256` over the same bytes as a floor.

    bench/bench.py [--lines 1000000] [--containers 10] [--bin build/cwlogd] [--upload]

With --upload the agent ships to the fake CloudWatch Logs endpoint in
tests/fake_aws.py (on loopback, events counted, not stored) instead of
printing; the fake runs in this process on the other core.

Figures are from one run on a shared machine: compare the ratios printed in
the same run, not absolute numbers across runs."""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
CLASSES = ["c.e.OrderService", "c.e.PaymentGateway", "c.e.http.RequestLogger",
           "c.e.CartController", "c.e.InventoryClient"]


def line_for(i, ts_ns, rng):
    sec, ns = divmod(ts_ns, 1_000_000_000)
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%09dZ" % ns
    msg = "%s.%03d %-5s [main-%d] %s - processed order %d in %dms\n" % (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)), ns // 1_000_000,
        rng.choice(LEVELS), rng.randrange(8), rng.choice(CLASSES), i, rng.randrange(1, 500))
    return json.dumps({"log": msg, "stream": "stdout", "time": t}, separators=(",", ":")) + "\n"


def generate(root, lines, containers, seed=1):
    rng = random.Random(seed)
    os.makedirs(root)
    files = []
    for c in range(containers):
        cid = "%064x" % rng.getrandbits(256)
        d = os.path.join(root, cid)
        os.makedirs(d)
        with open(os.path.join(d, "config.v2.json"), "w") as f:
            json.dump({"ID": cid, "Name": "/app-%d" % c, "Config": {"Labels": {
                "com.amazonaws.ecs.cluster": "bench",
                "com.amazonaws.ecs.task-definition-family": "app",
                "com.amazonaws.ecs.container-name": "app-%d" % c,
                "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:1:task/bench/%032x" % c}}}, f)
        files.append(open(os.path.join(d, cid + "-json.log"), "w"))
    ts = time.time_ns() - lines * 1000  # recent: CloudWatch refuses events over 14 days old
    total = 0
    for i in range(lines):
        s = line_for(i, ts + i * 1000, rng)
        files[i % containers].write(s)
        total += len(s)
    for f in files:
        f.close()
    return total


def run_measured(argv, stdout=subprocess.DEVNULL, stdin=None, env=None):
    """Run argv; return (wall s, user+sys CPU s, peak RSS KiB).

    The peak RSS comes from GNU time, which forks from a small image: a child
    forked from this Python process would count Python's own pages as its
    peak (the high-water mark survives exec)."""
    t0 = time.monotonic()
    fd, rss_file = tempfile.mkstemp()
    os.close(fd)
    wrapped = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv if os.path.exists(
        "/usr/bin/time") else argv
    p = subprocess.Popen(wrapped, stdout=stdout, stderr=subprocess.PIPE, stdin=stdin, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit("%s failed (%d):\n%s" % (argv[0], p.returncode, err[-2000:]))
    rss = ru.ru_maxrss
    try:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    os.unlink(rss_file)
    return wall, ru.ru_utime + ru.ru_stime, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "cwlogd"))
    ap.add_argument("--keep", action="store_true", help="keep the generated tree")
    ap.add_argument("--upload", action="store_true",
                    help="upload to the fake CloudWatch endpoint instead of --dry-run")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="cwlogd-bench-")
    try:
        root = os.path.join(tmp, "containers")
        nbytes = generate(root, args.lines, args.containers)
        conf = os.path.join(tmp, "cwlogd.conf")
        fake = None
        env = None
        cw = ""
        if args.upload:
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
            from fake_aws import FakeAWS
            fake = FakeAWS(seed=1, store_events=False, static_credentials=[("AKIDBENCH", "bench-secret")])
            fake.start()
            cw = "[cloudwatch]\nregion = us-east-1\nendpoint = %s\nflush_interval = 1s\n\n" % fake.endpoint
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(AWS_ACCESS_KEY_ID="AKIDBENCH", AWS_SECRET_ACCESS_KEY="bench-secret")
        with open(conf, "w") as f:
            f.write("[agent]\nstate_dir = %s/state\nlog_level = warning\n\n" % tmp + cw +
                    "[source containers]\ntype = docker\npath = %s\nstart_at = beginning\n"
                    "group = /ecs/{ecs_cluster}/{ecs_task_family}\n"
                    "stream = {ecs_container_name}/{ecs_task_id}\n" % root)
        logs = [os.path.join(dp, n) for dp, _, ns in os.walk(root) for n in ns if n.endswith(".log")]
        # The floor: hashing the same bytes once (reading them included).
        cat = subprocess.Popen(["cat"] + logs, stdout=subprocess.PIPE)
        h_wall, h_cpu, _ = run_measured(["openssl", "dgst", "-sha256"], stdin=cat.stdout)
        cat.wait()
        argv = [args.bin, "--config", conf, "--once"] + ([] if args.upload else ["--dry-run"])
        a_wall, a_cpu, a_rss = run_measured(argv, env=env)
        mb = nbytes / 1e6
        print("input: %d lines, %d containers, %.1f MB (%.0f bytes/line)" % (
            args.lines, args.containers, mb, nbytes / args.lines))
        if fake:
            put = fake.requests()["ops"].get("PutLogEvents", {})
            print("cwlogd --once uploading to the fake endpoint: %d PutLogEvents requests, "
                  "statuses %s" % (put.get("total", 0), put.get("status")))
            fake.stop()
        else:
            print("cwlogd --once --dry-run > /dev/null:")
        print("  wall %.3f s, CPU %.3f s (user+sys), peak RSS %.1f MiB" % (a_wall, a_cpu, a_rss / 1024))
        print("  %.0f lines/s, %.0f MB/s of input per CPU-second" % (
            args.lines / a_cpu if a_cpu else 0, mb / a_cpu if a_cpu else 0))
        print("openssl dgst -sha256 over the same bytes: CPU %.3f s" % h_cpu)
        print("ratio cwlogd CPU / sha256 CPU: %.2f" % (a_cpu / h_cpu if h_cpu else float("nan")))
        if args.lines == 1_000_000:
            cpu_t, rss_t = (0.8, 24) if args.upload else (0.5, 20)
            print("target (1M lines): < %.1f CPU-s and < %d MiB RSS -> %s" % (
                cpu_t, rss_t, "met" if a_cpu < cpu_t and a_rss / 1024 < rss_t else "NOT met"))
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
