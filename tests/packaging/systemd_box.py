"""A Debian 12 container booted under its own systemd, for the packaging tests.

    root = systemd_box.cached_root(cache_dir)          # debootstrap once, then reused
    with realdocker.Dockerd() as d:                     # tests/integration/realdocker.py
        box = systemd_box.Box(d, systemd_box.import_root(d, root))
        box.start()                                     # /sbin/init; waits for `running`
        box.sh("systemctl status cwlogd")              # a CompletedProcess (text)
        box.stop()                                      # halts systemd, removes the container

The root file system is made with `debootstrap --variant=minbase` from the
Debian mirror the host's apt uses (`CWLOGD_DEBIAN_MIRROR` overrides it), with
systemd, dbus and the libraries cwlogd's .deb depends on, so installing the
package needs no network. It is kept as a tar under the cache directory, named
after a hash of the recipe: built once (about 3 minutes on a 2-core VM with a
near mirror), reused by every later run, rebuilt when the recipe changes.

The container runs `/sbin/init` with `--network host` (the private dockerd has
no bridge; the agent reaches fake_aws.py on the host's 127.0.0.1),
`--cap-add SYS_ADMIN`, tmpfs on /run and /run/lock and the host's
/sys/fs/cgroup mounted read-write, which is what systemd 252 needs to boot
inside Docker on a host with either cgroup layout; and `--cap-add
DAC_READ_SEARCH`, which Docker leaves out of a container's bounding set while
a host's systemd has it, so a unit's `AmbientCapabilities=CAP_DAC_READ_SEARCH`
works as it does on a host (without it the agent cannot read root-only
files, its own configuration in a 0700 directory included).
"""

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# systemd as PID 1 and what cwlogd's .deb depends on (its Depends, resolved by
# dpkg-shlibdeps): dpkg -i in the box must find them already there.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "procps", "util-linux",
    "libcurl4", "libsystemd0", "libsqlite3-0", "libinih1", "libjansson4", "libssl3", "zlib1g",
)
# Bump when the steps below change, so cached roots are made again.
RECIPE = 1


class Unavailable(Exception):
    """The box cannot be made here; the message says why."""


def debian_mirror():
    """The Debian archive the host's apt uses for the main suite."""
    env = os.environ.get("CWLOGD_DEBIAN_MIRROR")
    if env:
        return env
    uris = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with contextlib.suppress(OSError), open(path) as f:
            for stanza in f.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        k, _, v = line.partition(":")
                        fields[k.strip().lower()] = v.split()
                if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []):
                    uris += fields.get("uris", [])
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        with contextlib.suppress(OSError), open(path) as f:
            for line in f:
                w = [x for x in line.split() if not x.startswith("[")]
                if len(w) >= 3 and w[0] == "deb" and w[2] == SUITE:
                    uris.append(w[1])
    for u in uris:
        if "security" not in u:
            return u.rstrip("/")
    return DEFAULT_MIRROR


def cached_root(cache_dir, log=print):
    """The path of the root file system tar, made with debootstrap if not cached."""
    mirror = debian_mirror()
    key = hashlib.sha256(repr((RECIPE, SUITE, mirror, PACKAGES)).encode()).hexdigest()[:12]
    os.makedirs(cache_dir, exist_ok=True)
    tar = os.path.join(cache_dir, "debian12-systemd-%s.tar" % key)
    with open(os.path.join(cache_dir, "debian12-systemd.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two builds at once wait for one debootstrap
        if os.path.exists(tar):
            return tar
        if not shutil.which("debootstrap"):
            raise Unavailable("debootstrap is not installed (scripts/deps installs it)")
        for old in glob.glob(os.path.join(cache_dir, "debian12-systemd-*.tar")):
            os.unlink(old)
        log("making the Debian 12 root with debootstrap from %s (once; cached as %s)"
            % (mirror, tar))
        work = tempfile.mkdtemp(prefix="root.", dir=cache_dir)
        try:
            root = os.path.join(work, "root")
            p = subprocess.run(["debootstrap", "--variant=minbase",
                                "--include=" + ",".join(PACKAGES), SUITE, root, mirror],
                               capture_output=True, text=True, timeout=1200)
            if p.returncode != 0:
                out = (p.stdout + p.stderr)[-3000:]
                with contextlib.suppress(OSError):
                    with open(os.path.join(root, "debootstrap", "debootstrap.log")) as f:
                        out += "\n" + f.read()[-3000:]
                raise Unavailable("debootstrap from %s failed (exit %d; is the archive "
                                  "reachable?):\n%s" % (mirror, p.returncode, out))
            _prepare(root, mirror)
            part = tar + ".part"
            subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", part, "."],
                           check=True, capture_output=True, timeout=300)
            os.rename(part, tar)
        finally:
            subprocess.run(["rm", "-rf", "--one-file-system", work], timeout=300)
        return tar


def _prepare(root, mirror):
    """What a booted container needs beyond debootstrap's result."""
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in glob.glob(os.path.join(root, d, "*")):
            if os.path.isfile(f):
                os.unlink(f)
    with open(os.path.join(root, "etc/apt/sources.list"), "w") as f:
        f.write("deb %s %s main\n" % (mirror, SUITE))
    # A fresh machine id at each boot; no getty on a console that is not there.
    open(os.path.join(root, "etc/machine-id"), "w").close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, "etc/systemd/system/getty.target.wants/getty@tty1.service"))


def import_root(dockerd, tar, tag="cwlogd-debian12-systemd:1"):
    """Import the root tar into the private dockerd as an image; its tag."""
    dockerd.docker("import", "--change", 'CMD ["/sbin/init"]', tar, tag, timeout=300)
    return tag


class Box:
    """One booted container."""

    def __init__(self, dockerd, image, name="cwlogd-systemd"):
        self.d = dockerd
        self.image = image
        self.name = name
        self.started = False

    def start(self, timeout=90):
        """Run /sbin/init and wait until `systemctl is-system-running` says running
        (or degraded: the failed units are then in self.failed_units)."""
        self.d.docker("run", "-d", "--name", self.name, "--network", "host",
                      "--cap-add", "SYS_ADMIN", "--cap-add", "DAC_READ_SEARCH",
                      "--tmpfs", "/run", "--tmpfs", "/run/lock",
                      "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--stop-timeout", "20",
                      self.image, "/sbin/init", timeout=120)
        self.started = True
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            p = self.sh("systemctl is-system-running", check=False, timeout=20)
            state = p.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise Unavailable("systemd in the container did not finish booting in %d s (%s):\n%s"
                              % (timeout, state or "no answer", self.d.docker(
                                  "logs", "--tail", "40", self.name, check=False).stdout[-3000:]))
        self.state = state
        self.failed_units = self.sh("systemctl --failed --no-legend --plain", check=False
                                    ).stdout.strip()
        return state

    def sh(self, script, check=True, timeout=60, input=None, user=None):
        """Run `sh -c script` in the box (as user if given); a CompletedProcess, text."""
        args = ["exec", "-i"] if input is not None else ["exec"]
        if user:
            args += ["-u", user]
        p = self.d.docker(*args, self.name, "sh", "-c", script, timeout=timeout, check=False,
                          input=input.encode() if isinstance(input, str) else input)
        res = subprocess.CompletedProcess(p.args, p.returncode,
                                          p.stdout.decode(errors="replace"),
                                          p.stderr.decode(errors="replace"))
        if check and res.returncode != 0:
            raise AssertionError("in the box, `%s` exited %d:\n%s%s" % (
                script, res.returncode, res.stdout[-2000:], res.stderr[-2000:]))
        return res

    def put(self, path, data, mode=0o644):
        """Write data (bytes or text) to path in the box, as root."""
        self.sh("umask 077; cat > '%s' && chmod %o '%s'" % (path, mode, path), input=data)

    def append(self, path, data):
        self.sh("cat >> '%s'" % path, input=data)

    def copy_in(self, src, dst):
        self.d.docker("cp", src, "%s:%s" % (self.name, dst), timeout=120)

    def stop(self):
        """Halt the box's systemd (SIGRTMIN+3), then remove the container."""
        if not self.started:
            return
        self.d.docker("kill", "--signal", "SIGRTMIN+3", self.name, check=False, timeout=20)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.d.docker("wait", self.name, check=False, timeout=30)
        self.d.docker("rm", "-f", self.name, check=False, timeout=60)
        self.started = False
