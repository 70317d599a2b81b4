"""Shared helpers for the integration tests: fixture trees that look like what
Docker (json-file), containerd (CRI) and plain writers leave on disk, a config
writer, and ways to run the built cwlogd binary (--once, or as a daemon whose
stdout is collected)."""

import datetime
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

BIN = os.environ.get("CWLOGD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "cwlogd")


def rfc3339nano(ts_ns):
    """Docker's time format: RFC 3339 with nanoseconds, trailing zeros trimmed."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = ("%09d" % ns).rstrip("0")
    return base + ("." + frac if frac else "") + "Z"


def docker_json(log, stream="stdout", ts_ns=None):
    """One json-file line as Docker's encoder writes it (HTML-safe escapes,
    non-ASCII kept as UTF-8)."""
    if ts_ns is None:
        ts_ns = time.time_ns()
    s = json.dumps({"log": log, "stream": stream, "time": rfc3339nano(ts_ns)},
                   ensure_ascii=False, separators=(",", ":"))
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return s + "\n"


class Container:
    """A container directory under a fake /var/lib/docker/containers."""

    def __init__(self, root, cid=None, name="web", labels=None):
        self.id = cid or "%064x" % random.getrandbits(256)
        self.dir = os.path.join(root, self.id)
        self.path = os.path.join(self.dir, self.id + "-json.log")
        self.name = name
        os.makedirs(self.dir, exist_ok=True)
        cfg = {"ID": self.id, "Name": "/" + name,
               "Config": {"Labels": labels or {}}}
        with open(os.path.join(self.dir, "config.v2.json"), "w") as f:
            json.dump(cfg, f)
        open(self.path, "a").close()

    def write(self, log, stream="stdout", ts_ns=None):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(docker_json(log, stream, ts_ns))

    def write_lines(self, msgs, stream="stdout", ts_ns=None):
        with open(self.path, "a", encoding="utf-8") as f:
            for i, m in enumerate(msgs):
                f.write(docker_json(m + "\n", stream, None if ts_ns is None else ts_ns + i * 1_000_000))

    def write_raw(self, data):
        with open(self.path, "ab") as f:
            f.write(data if isinstance(data, bytes) else data.encode())

    def rotate(self, keep=5, compress=False):
        """Docker's rotation: .N-1 -> .N, ..., current -> .1, new empty current."""
        for i in range(keep - 1, 0, -1):
            for ext in ("", ".gz"):
                src = "%s.%d%s" % (self.path, i, ext)
                if os.path.exists(src):
                    os.rename(src, "%s.%d%s" % (self.path, i + 1, ext))
        os.rename(self.path, self.path + ".1")
        open(self.path, "a").close()
        if compress:
            with open(self.path + ".1", "rb") as src, gzip.open(self.path + ".1.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(self.path + ".1")

    def remove(self):
        shutil.rmtree(self.dir)


def cri_line(msg, stream="stdout", tag="F", ts_ns=None):
    if ts_ns is None:
        ts_ns = time.time_ns()
    return "%s %s %s %s\n" % (rfc3339nano(ts_ns), stream, tag, msg)


class Env:
    """A temporary tree with a state dir, a containers dir and a config."""

    def __init__(self, test):
        self.root = tempfile.mkdtemp(prefix="cwlogd-it-")
        test.addCleanup(shutil.rmtree, self.root, True)
        self.state = os.path.join(self.root, "state")
        self.containers = os.path.join(self.root, "containers")
        self.logs = os.path.join(self.root, "logs")
        os.makedirs(self.containers)
        os.makedirs(self.logs)
        self.conf = os.path.join(self.root, "cwlogd.conf")
        self.procs = []
        self.extra_env = {}
        test.addCleanup(self.kill_all)

    def write_config(self, sources, agent_extra="", cloudwatch_extra="", region="us-east-1"):
        """sources: {name: {key: value}}"""
        text = "[agent]\nstate_dir = %s\nlog_level = debug\n%s\n" % (self.state, agent_extra)
        text += "[cloudwatch]\nregion = %s\n%s\n" % (region, cloudwatch_extra)
        for name, keys in sources.items():
            text += "[source %s]\n" % name
            for k, v in keys.items():
                text += "%s = %s\n" % (k, v)
            text += "\n"
        with open(self.conf, "w") as f:
            f.write(text)

    def docker_source(self, **extra):
        d = {"type": "docker", "path": self.containers, "group": "/test/{container_name}",
             "stream": "{container_id}", "start_at": "beginning"}
        d.update(extra)
        return d

    def agent_env(self):
        """The agent's environment: no AWS settings from the caller's shell."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.extra_env)
        return env

    def cloudwatch_keys(self, fake, extra=""):
        """[cloudwatch] keys pointing the agent at a fake_aws.FakeAWS."""
        text = "endpoint = %s\nimds_endpoint = %s\n" % (fake.endpoint, fake.imds_endpoint)
        if getattr(fake, "ca_file", None):
            text += "ca_file = %s\n" % fake.ca_file
        return text + extra

    def run(self, *args, timeout=60, check=True):
        p = subprocess.run([BIN, "--config", self.conf] + list(args), capture_output=True,
                           timeout=timeout, env=self.agent_env())
        if check and p.returncode != 0:
            raise AssertionError("cwlogd %s exited %d\nstderr:\n%s" % (
                " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
        return p

    def once(self, *extra, timeout=60):
        p = self.run("--once", "--dry-run", *extra, timeout=timeout)
        return parse_records(p.stdout), p.stderr.decode(errors="replace")

    def upload_once(self, *extra, timeout=120):
        """cwlogd --once (real upload); returns stderr."""
        p = self.run("--once", *extra, timeout=timeout)
        return p.stderr.decode(errors="replace")

    def start(self, *extra, dry_run=True, preexec_fn=None):
        """Start the daemon and wait until it has set up (signals are handled from then on).
        preexec_fn runs in the child before exec (e.g. to set its rlimits)."""
        d = Daemon(self, (["--dry-run"] if dry_run else []) + list(extra), preexec_fn)
        self.procs.append(d)
        d.wait_log("started:")
        return d

    def kill_all(self):
        for d in self.procs:
            d.kill()


def wait_until(pred, timeout=20, what="condition"):
    """Poll pred() every 50 ms until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def parse_records(data):
    out = []
    for line in data.decode("utf-8").splitlines():
        if line:
            out.append(json.loads(line))
    return out


class Daemon:
    """cwlogd --dry-run running in the background; its records are collected."""

    def __init__(self, env, extra, preexec_fn=None):
        self.records = []
        self.stderr = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen([BIN, "--config", env.conf] + extra,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env.agent_env(), preexec_fn=preexec_fn)
        self.t_out = threading.Thread(target=self._read_out, daemon=True)
        self.t_err = threading.Thread(target=self._read_err, daemon=True)
        self.t_out.start()
        self.t_err.start()

    def _read_out(self):
        for line in self.p.stdout:
            with self.lock:
                self.records.append(json.loads(line))

    def _read_err(self):
        for line in self.p.stderr:
            with self.lock:
                self.stderr.append(line.decode(errors="replace"))

    def messages(self):
        with self.lock:
            return [r["message"] for r in self.records]

    def wait_for(self, pred, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if pred(self.records):
                    return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; have %d records; stderr:\n%s" % (
            what, len(self.records), "".join(self.stderr[-40:])))

    def wait_count(self, n, timeout=20):
        self.wait_for(lambda r: len(r) >= n, timeout, "%d records" % n)

    def log(self):
        with self.lock:
            return "".join(self.stderr)

    def wait_log(self, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if any(text in l for l in self.stderr):
                    return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for log %r; stderr:\n%s" % (
            text, "".join(self.stderr[-40:])))

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout)
        self._close()
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
        self._close()

    def _close(self):
        self.t_out.join(5)
        self.t_err.join(5)
        for f in (self.p.stdout, self.p.stderr):
            if not f.closed:
                f.close()


def main():
    unittest.main(verbosity=2)
