"""What /proc says about a running agent: open descriptors by kind, inotify
watches, memory and CPU time. Used by test_resources.py and bench/bench.py
(Linux only; the caller must be allowed to read /proc/PID/fd, i.e. the same
user or root)."""

import os
import stat

CLK_TCK = os.sysconf("SC_CLK_TCK")


def fd_kinds(pid):
    """{kind: count} over /proc/PID/fd. Kinds: "log" (a file named *.log or a
    rotation of one), "state" (state.db and its -wal/-shm), "file" (any other
    regular file), "stdio" (0-2, whatever they are), "inotify", "epoll",
    "timerfd", "signalfd", "socket", "pipe", "other" (anything else,
    named as the kernel names it in "other:NAME")."""
    kinds = {}
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        fd = int(name)
        try:
            target = os.readlink(os.path.join(d, name))
        except OSError:
            continue  # closed meanwhile
        if fd <= 2:
            kind = "stdio"
        elif target.startswith("/"):
            base = os.path.basename(target.replace(" (deleted)", ""))
            try:
                regular = stat.S_ISREG(os.stat(os.path.join(d, name)).st_mode)
            except OSError:
                regular = False
            if base.startswith("state.db"):
                kind = "state"
            elif regular and (base.endswith(".log") or ".log." in base):
                kind = "log"
            else:
                kind = "file"
        elif target == "anon_inode:inotify":
            kind = "inotify"
        elif target == "anon_inode:[eventpoll]":
            kind = "epoll"
        elif target == "anon_inode:[timerfd]":
            kind = "timerfd"
        elif target == "anon_inode:[signalfd]":
            kind = "signalfd"
        elif target.startswith("socket:"):
            kind = "socket"
        elif target.startswith("pipe:"):
            kind = "pipe"
        else:
            kind = "other:" + target
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def inotify_watches(pid):
    """Watches over all of the process's inotify instances (one "inotify wd:"
    line per watch in /proc/PID/fdinfo/FD)."""
    n = 0
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, name)) != "anon_inode:inotify":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                n += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return n


def status(pid):
    """/proc/PID/status as {key: value}; the kB figures as ints (KiB)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            v = v.strip()
            if v.endswith(" kB"):
                v = int(v[:-3])
            out[k] = v
    return out


def nofile_limit(pid):
    """(soft, hard) RLIMIT_NOFILE of the process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return (int(soft) if soft != "unlimited" else -1,
                        int(hard) if hard != "unlimited" else -1)
    raise ValueError("no open-files limit for %d" % pid)


def cpu_seconds(pid):
    """utime + stime of the whole process (threads included, exited ones too),
    in seconds; the kernel counts it in clock ticks (usually 10 ms)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_ns(pid):
    """Time on a CPU in nanoseconds, summed over the live threads'
    /proc/PID/task/TID/schedstat (exact, unlike the tick counts), or None
    when the kernel has no schedstat."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def context_switches(pid):
    """Voluntary + involuntary context switches of the main thread: an idle
    process switches once per wake-up, so the count is its wake-ups."""
    s = status(pid)
    return int(s["voluntary_ctxt_switches"]) + int(s["nonvoluntary_ctxt_switches"])
