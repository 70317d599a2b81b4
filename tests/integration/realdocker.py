"""Real components for integration tests: a private Docker daemon and a
standalone systemd-journald.

    with realdocker.Dockerd.require(test) as d:     # fails or skips, saying why
        image = d.import_busybox()                   # no registry: a static busybox
        cid = d.run("web", "seq 1 100", image=image,
                    labels={"com.amazonaws.ecs.cluster": "prod"},
                    log_opts={"max-size": "100k", "max-file": "3", "compress": "true"})
        d.wait(cid)
        lines = d.logs(cid)                          # Docker's own reader: the oracle

`Dockerd` runs `/usr/sbin/dockerd` (the `docker.io` package; never whatever
`docker` is first on PATH) as root with the vfs storage driver, no iptables,
no bridge, and its data root, exec root, pid file and socket under one short
temporary directory (unix socket paths are limited to 108 bytes). Containers
run with `--network none`. `stop()` removes the containers, stops the daemon
and its containerd (SIGKILL after a grace period), unmounts whatever is still
mounted under the directory and deletes it; it runs from the test's cleanup,
so a failing test leaves nothing behind.

`Journald.require(test)` makes sure a journald answers on
/run/systemd/journal/socket: the host's if it works, else a standalone
`systemd-journald` (it runs without systemd as PID 1 once
/run/systemd/journal exists), stopped again at cleanup if this module
started it.

Where a component cannot run, `require()` fails the test with the reason.
Only outside CI (`CI` unset) and not as root is that a skip, since such a
machine cannot run them at all.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
JOURNALD_CANDIDATES = ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
JOURNAL_SOCKET = "/run/systemd/journal/socket"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox")
# What the image's /bin holds besides busybox itself.
APPLETS = ("sh", "echo", "seq", "sleep", "cat", "yes", "head", "printf", "true", "dd",
           "tr", "date", "kill", "wc")


class Unavailable(Exception):
    """A real component cannot run here; the message says why."""


def _in_ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require(test, why):
    """A component is missing: fail the test, or skip it outside CI when not root."""
    if not _in_ci() and os.geteuid() != 0:
        raise unittest.SkipTest(why)
    test.fail(why)


def _is_static(path):
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    # A dynamically linked ELF names its interpreter (PT_INTERP) in its first pages.
    return head.startswith(b"\x7fELF") and b"/ld-linux" not in head and b"ld.so" not in head


def busybox_path():
    for p in BUSYBOX_CANDIDATES:
        if os.path.isfile(p) and _is_static(p):
            return p
    return None


def _run(cmd, timeout=60, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd[:4]), p.returncode,
                                                  p.stderr.decode(errors="replace")[-2000:]))
    return p


def _pids_mentioning(text):
    """Processes whose command line mentions text (our private directory)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmd and int(d) != os.getpid():
            out.append(int(d))
    return out


def _unmount_under(path):
    """Unmount everything mounted at or below path, deepest first."""
    mounts = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == path or mp.startswith(path + "/"):
                    mounts.append(mp)
    except OSError:
        return
    for mp in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True, timeout=30)


class Dockerd:
    """A private Docker daemon; see the module's docstring."""

    def __init__(self, root=None, extra_args=()):
        # /tmp/cwrdXXXXXXXX: short, so the sockets under it stay far below 108 bytes.
        self.root = root or tempfile.mkdtemp(prefix="cwrd", dir="/tmp")
        self.data_root = os.path.join(self.root, "d")
        self.exec_root = os.path.join(self.root, "x")
        self.pidfile = os.path.join(self.root, "pid")
        self.sock = os.path.join(self.root, "s.sock")
        self.host = "unix://" + self.sock
        self.daemon_log = os.path.join(self.root, "dockerd.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self._image = None

    # ---- availability ----

    @staticmethod
    def unavailable():
        """Why a private dockerd cannot run here, or None."""
        if os.geteuid() != 0:
            return "dockerd needs root (the tests run it privately, as CI does)"
        for p in (DOCKERD, DOCKER):
            if not os.access(p, os.X_OK):
                return "%s is missing: install docker.io (scripts/deps)" % p
        if not busybox_path():
            return "no static busybox (%s): install busybox-static (scripts/deps)" % (
                ", ".join(BUSYBOX_CANDIDATES))
        return None

    @classmethod
    def require(cls, test, **kw):
        """A started daemon, stopped at the test's cleanup; fails (or skips) saying why."""
        why = cls.unavailable()
        if why:
            require(test, "real dockerd: " + why)
        d = cls(**kw)
        test.addCleanup(d.stop)
        try:
            d.start()
        except Exception as e:  # noqa: BLE001 — the reason is what the test must show
            require(test, "real dockerd did not start: %s\n%s" % (e, d.log_tail()))
        return d

    # ---- the daemon ----

    def start(self, timeout=60):
        os.makedirs(self.root, exist_ok=True)
        args = [DOCKERD, "--storage-driver=vfs", "--iptables=false", "--ip-masq=false",
                "--ip-forward=false", "--bridge=none", "--data-root", self.data_root,
                "--exec-root", self.exec_root, "--pidfile", self.pidfile, "-H", self.host,
                "--userland-proxy=false"] + self.extra_args
        log = open(self.daemon_log, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable("dockerd exited with %d" % self.proc.returncode)
            p = self.docker("version", "--format", "{{.Server.Version}}", check=False,
                            timeout=10)
            if p.returncode == 0:
                self.version = p.stdout.decode().strip()
                return self
            time.sleep(0.2)
        raise Unavailable("dockerd did not answer within %d s" % timeout)

    def restart_daemon(self, timeout=60):
        """Stop dockerd (SIGTERM: its containers are stopped too) and start it again."""
        self._stop_daemon()
        self.start(timeout)

    def _stop_daemon(self, grace=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # Its containerd and the shims name our directory in their arguments.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = _pids_mentioning(self.root)
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM if time.monotonic() < deadline - 5
                            else signal.SIGKILL)
            time.sleep(0.3)

    def stop(self):
        """Remove containers, stop the daemon and its children, unmount, delete the tree."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", check=False, timeout=20).stdout.split()
                if ids:
                    self.docker("rm", "-f", *[i.decode() for i in ids], check=False,
                                timeout=60)
        self._stop_daemon()
        for pid in _pids_mentioning(self.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.daemon_log, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start() if not self.proc else self

    def __exit__(self, *exc):
        self.stop()

    # ---- the client ----

    def docker(self, *args, timeout=60, check=True, input=None):
        """Run /usr/bin/docker against this daemon; a CompletedProcess (bytes)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = os.path.join(self.root, "cli")
        return _run([DOCKER] + list(args), timeout=timeout, check=check, env=env,
                    input=input)

    def import_busybox(self, tag="cwlogd-busybox:1"):
        """An image of a static busybox with the usual applets as symlinks in /bin."""
        if self._image:
            return self._image
        tree = os.path.join(self.root, "img")
        os.makedirs(os.path.join(tree, "bin"), exist_ok=True)
        os.makedirs(os.path.join(tree, "tmp"), exist_ok=True)
        shutil.copy(busybox_path(), os.path.join(tree, "bin", "busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(tree, "bin", a))
        tar = os.path.join(self.root, "img.tar")
        _run(["tar", "-C", tree, "-cf", tar, "."])
        self.docker("import", "--change", "ENV PATH=/bin", tar, tag, timeout=120)
        shutil.rmtree(tree, ignore_errors=True)
        os.unlink(tar)
        self._image = tag
        return tag

    def run(self, name, script, image=None, labels=None, log_driver="json-file",
            log_opts=None, detach=True, extra=()):
        """Start a container running `sh -c script`; returns its full id."""
        args = ["run", "--name", name, "--network", "none", "--log-driver", log_driver]
        if detach:
            args.append("-d")
        for k, v in (labels or {}).items():
            args += ["--label", "%s=%s" % (k, v)]
        for k, v in (log_opts or {}).items():
            args += ["--log-opt", "%s=%s" % (k, v)]
        args += list(extra) + [image or self.import_busybox(), "sh", "-c", script]
        return self.docker(*args, timeout=120).stdout.decode().strip()

    def wait(self, cid, timeout=120):
        """Wait for the container to exit; its exit code."""
        return int(self.docker("wait", cid, timeout=timeout).stdout.decode().strip() or -1)

    def inspect(self, cid):
        return json.loads(self.docker("inspect", cid).stdout)[0]

    def log_path(self, cid):
        """The container's json-file log (`-json.log`)."""
        return os.path.join(self.containers_dir(), cid, cid + "-json.log")

    def containers_dir(self):
        return os.path.join(self.data_root, "containers")

    def logs(self, cid, timeout=120):
        """What Docker's own reader returns (`docker logs --timestamps`, rotated and
        compressed files included): a list of (stream, timestamp, text) per line."""
        p = self.docker("logs", "--timestamps", cid, timeout=timeout)
        out = []
        for stream, data in (("stdout", p.stdout), ("stderr", p.stderr)):
            for line in data.decode("utf-8", errors="replace").split("\n"):
                if not line:
                    continue
                ts, _, text = line.partition(" ")
                out.append((stream, ts, text))
        return out


def journal_works():
    """Does something accept datagrams on the journal's socket?"""
    if not os.path.exists(JOURNAL_SOCKET):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(JOURNAL_SOCKET)
        s.send(b"MESSAGE=cwlogd test probe\nPRIORITY=7\nSYSLOG_IDENTIFIER=cwlogd-test-probe\n")
        return True
    except OSError:
        return False
    finally:
        s.close()


class Journald:
    """The local journal: the host's journald, or a standalone one started here."""

    def __init__(self):
        self.proc = None

    @staticmethod
    def binary():
        for p in JOURNALD_CANDIDATES:
            if os.access(p, os.X_OK):
                return p
        return None

    @classmethod
    def require(cls, test):
        j = cls()
        if journal_works():
            return j
        if os.geteuid() != 0:
            require(test, "journald: %s does not answer and starting one needs root"
                    % JOURNAL_SOCKET)
        if not cls.binary():
            require(test, "journald: none answers on %s and systemd-journald is missing "
                    "(package systemd)" % JOURNAL_SOCKET)
        test.addCleanup(j.stop)
        try:
            j.start()
        except Exception as e:  # noqa: BLE001
            require(test, "journald: a standalone systemd-journald did not start: %s" % e)
        return j

    def start(self, timeout=20):
        os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
        self.proc = subprocess.Popen([self.binary()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable("systemd-journald exited with %d" % self.proc.returncode)
            if journal_works():
                return self
            time.sleep(0.1)
        raise Unavailable("systemd-journald did not open %s within %d s"
                          % (JOURNAL_SOCKET, timeout))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @staticmethod
    def journalctl(*args, timeout=60):
        """journalctl's JSON entries (`-o json`), one dict each."""
        p = _run(["journalctl", "--no-pager", "-o", "json"] + list(args), timeout=timeout,
                 check=False)
        out = []
        for line in p.stdout.decode("utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    @staticmethod
    def ctl(*args, timeout=60):
        """journalctl with other options (--rotate, --vacuum-files=...)."""
        return _run(["journalctl"] + list(args), timeout=timeout)


_SEQ = re.compile(r"^(\S+) (\d+)")


def numbered(texts):
    """(name, seq) of each text that starts with 'NAME SEQ': what a test's containers print."""
    out = []
    for t in texts:
        m = _SEQ.match(t)
        if m:
            out.append((m.group(1), int(m.group(2))))
    return out
