"""The journald source on real journal files made by systemd-journal-remote
from Journal Export Format text: timestamps and messages, matches, units and
priority, binary messages, Docker's journald driver (partials joined,
container names), resuming by cursor without repeats, a vacuumed journal
(gap counted and logged), and entries appended while the agent runs."""

import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, main  # noqa: E402
import unittest  # noqa: E402

BOOT = "0123456789abcdef0123456789abcdef"
REMOTE = next((p for p in ("/lib/systemd/systemd-journal-remote",
                           "/usr/lib/systemd/systemd-journal-remote") if os.path.exists(p)), None)
T0_US = (int(time.time()) - 3600) * 1_000_000
_mono = [1000]


def entry(fields, n):
    """One export-format entry; fields is a list of (name, str|bytes)."""
    _mono[0] += 1000
    out = b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n" % (
        T0_US + n * 1000, _mono[0], BOOT.encode())
    for name, value in fields:
        v = value.encode() if isinstance(value, str) else value
        if b"\n" in v or isinstance(value, bytes):
            out += name.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
        else:
            out += name.encode() + b"=" + v + b"\n"
    return out + b"\n"


def write_journal(path, entries):
    p = subprocess.run([REMOTE, "--output=" + path, "-"], input=b"".join(entries),
                       capture_output=True)
    if p.returncode != 0 or b"writing %d entries" % len(entries) not in p.stderr:
        raise AssertionError("systemd-journal-remote: %r" % p.stderr)


def unit_entry(n, unit, msg, prio=6):
    return entry([("MESSAGE", msg), ("_SYSTEMD_UNIT", unit), ("PRIORITY", str(prio))], n)


@unittest.skipUnless(REMOTE, "systemd-journal-remote is not installed (scripts/deps installs it)")
class Journald(unittest.TestCase):
    def setup_env(self, **src):
        env = Env(self)
        jdir = os.path.join(env.root, "journal")
        os.makedirs(jdir)
        keys = {"type": "journald", "path": jdir, "group": "/ec2/journal",
                "stream": "{journal:_SYSTEMD_UNIT}", "start_at": "beginning"}
        keys.update(src)
        env.write_config({"journal": keys})
        return env, jdir

    def test_entries_with_timestamps_units_and_priority(self):
        env, jdir = self.setup_env(units="docker ecs.service", priority="warning")
        write_journal(os.path.join(jdir, "a.journal"), [
            unit_entry(1, "docker.service", "docker warn", 4),
            unit_entry(2, "docker.service", "docker info", 6),
            unit_entry(3, "ecs.service", "ecs error", 3),
            unit_entry(4, "sshd.service", "sshd error", 3),
        ])
        recs, err = env.once()
        self.assertEqual([(r["stream"], r["message"]) for r in recs],
                         [("docker.service", "docker warn"), ("ecs.service", "ecs error")])
        self.assertEqual(recs[0]["timestamp"], (T0_US + 1000) // 1000)

    def test_matches_same_field_or_different_fields_and(self):
        env, jdir = self.setup_env(match="_SYSTEMD_UNIT=a.service\nmatch = _SYSTEMD_UNIT=b.service"
                                         "\nmatch = PRIORITY=3")
        write_journal(os.path.join(jdir, "a.journal"), [
            unit_entry(1, "a.service", "a3", 3), unit_entry(2, "a.service", "a6", 6),
            unit_entry(3, "b.service", "b3", 3), unit_entry(4, "c.service", "c3", 3)])
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["a3", "b3"])

    def test_binary_message_is_shipped_with_replacements(self):
        env, jdir = self.setup_env(stream="bin")
        write_journal(os.path.join(jdir, "a.journal"), [
            entry([("MESSAGE", b"ok \xff\xfe bytes\x00nul")], 1)])
        recs, _ = env.once()
        self.assertEqual(recs[0]["message"], "ok \ufffd\ufffd bytes\x00nul")

    def test_docker_journald_driver_partials_and_names(self):
        env, jdir = self.setup_env(stream="{container_name}/{container_id_short}",
                                   group="/ecs/{ecs_cluster}")
        cid = "f" * 64
        common = [("CONTAINER_ID", cid[:12]), ("CONTAINER_ID_FULL", cid),
                  ("CONTAINER_NAME", "web"), ("CONTAINER_TAG", "web"),
                  ("COM_AMAZONAWS_ECS_CLUSTER", "prod")]
        write_journal(os.path.join(jdir, "a.journal"), [
            entry([("MESSAGE", "part one, ")] + common + [("CONTAINER_PARTIAL_MESSAGE", "true")], 1),
            entry([("MESSAGE", "part two")] + common, 2),
            entry([("MESSAGE", "whole")] + common, 3),
        ])
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["part one, part two", "whole"])
        self.assertEqual({(r["group"], r["stream"]) for r in recs}, {("/ecs/prod", "web/" + cid[:12])})

    def test_resume_by_cursor_and_vacuum_gap(self):
        env, jdir = self.setup_env(stream="s")
        write_journal(os.path.join(jdir, "a.journal"),
                      [unit_entry(i, "x.service", "a%d" % i) for i in range(1, 4)])
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["a1", "a2", "a3"])
        write_journal(os.path.join(jdir, "a.journal"),
                      [unit_entry(i, "x.service", "a%d" % i) for i in range(4, 6)])
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["a4", "a5"])  # no repeats
        # Vacuum: the file holding the cursor goes; newer entries are in another file.
        write_journal(os.path.join(jdir, "b.journal"),
                      [unit_entry(i, "x.service", "b%d" % i) for i in range(10, 12)])
        os.unlink(os.path.join(jdir, "a.journal"))
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["b10", "b11"])
        self.assertIn("journal entry of the checkpoint is gone", err)

    def test_first_run_starts_at_the_end_by_default(self):
        env, jdir = self.setup_env(stream="s", start_at="end")
        write_journal(os.path.join(jdir, "a.journal"), [unit_entry(1, "x.service", "old")])
        recs, _ = env.once()
        self.assertEqual(recs, [])
        write_journal(os.path.join(jdir, "a.journal"), [unit_entry(2, "x.service", "new")])
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["new"])

    def test_entries_appended_while_running_arrive_and_restart_repeats_nothing(self):
        env, jdir = self.setup_env(stream="s")
        path = os.path.join(jdir, "a.journal")
        write_journal(path, [unit_entry(1, "x.service", "first")])
        d = env.start()
        d.wait_count(1)
        write_journal(path, [unit_entry(2, "x.service", "second"),
                             unit_entry(3, "x.service", "third")])
        d.wait_count(3, timeout=20)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(d.messages(), ["first", "second", "third"])
        write_journal(path, [unit_entry(4, "x.service", "fourth")])
        d = env.start()
        d.wait_count(1)
        time.sleep(0.5)
        d.stop()
        self.assertEqual(d.messages(), ["fourth"])


    def test_channels_of_containers_that_stopped_logging_are_forgotten(self):
        # Per-container channels (one per group/stream) that stay idle are
        # freed, so container churn does not pile them up; a container that
        # logs again gets a new channel and loses and repeats nothing.
        env, jdir = self.setup_env(stream="{container_name}")
        env.extra_env["CWLOGD_IDLE_FORGET_MS"] = "300"
        path = os.path.join(jdir, "a.journal")
        write_journal(path, [entry([("MESSAGE", "c%d first" % k), ("CONTAINER_NAME", "c%d" % k)], k)
                             for k in range(1, 21)])
        d = env.start()
        d.wait_count(20)
        time.sleep(0.8)
        write_journal(path, [entry([("MESSAGE", "new one"), ("CONTAINER_NAME", "c99")], 30),
                             entry([("MESSAGE", "c1 again"), ("CONTAINER_NAME", "c1")], 31)])
        d.wait_count(22, timeout=20)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(d.messages(), ["c%d first" % k for k in range(1, 21)] +
                         ["new one", "c1 again"])
        self.assertEqual(d.log().count("forgetting idle channel"), 20, d.log())
        d = env.start()
        time.sleep(0.5)
        d.stop()
        self.assertEqual(d.messages(), [])


if __name__ == "__main__":
    main()
