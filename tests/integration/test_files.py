"""The running agent (cwlogd --dry-run as a daemon) on changing trees:
rotation by rename, copy-truncate, containers created and removed while it
runs, inode reuse, and files rotated while it was stopped."""

import gzip
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402

T0 = 1732440000_000000000


def msgs(recs):
    return [r["message"] for r in recs]


class RunningAgent(unittest.TestCase):
    def test_rotation_by_rename_while_running_loses_nothing(self):
        env = Env(self)
        c = Container(env.containers)
        env.write_config({"containers": env.docker_source()})
        d = env.start()
        c.write_lines(["r%d" % i for i in range(100)], ts_ns=T0)
        d.wait_count(100)
        c.write_lines(["r%d" % i for i in range(100, 150)], ts_ns=T0)
        c.rotate()
        c.write_lines(["r%d" % i for i in range(150, 200)], ts_ns=T0)
        d.wait_count(200)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(d.messages(), ["r%d" % i for i in range(200)])

    def test_copy_truncate_restarts_at_zero(self):
        env = Env(self)
        p = os.path.join(env.logs, "app.log")
        with open(p, "w") as f:
            f.write("one\ntwo\n")
        env.write_config({"app": {"type": "file", "path": p, "group": "g",
                                  "start_at": "beginning"}})
        d = env.start()
        d.wait_count(2)
        with open(p, "r+") as f:
            f.truncate(0)
        with open(p, "a") as f:
            f.write("three\n")
        d.wait_count(3)
        d.stop()
        self.assertEqual(d.messages(), ["one", "two", "three"])

    def test_container_created_while_running_is_read_from_its_start(self):
        env = Env(self)
        env.write_config({"containers": env.docker_source(start_at="end")})
        d = env.start()
        time.sleep(0.3)
        c = Container(env.containers, name="late")
        c.write_lines(["early bird", "second"], ts_ns=T0)
        d.wait_count(2)
        d.stop()
        self.assertEqual(d.messages(), ["early bird", "second"])
        self.assertEqual(d.records[0]["group"], "/test/late")

    def test_removed_container_is_read_to_its_end(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a", "b"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        d = env.start()
        d.wait_count(2)
        c.write_lines(["last words"], ts_ns=T0)
        c.remove()
        d.wait_count(3)
        d.stop()
        self.assertEqual(d.messages(), ["a", "b", "last words"])

    def test_inode_reuse_is_not_mistaken_for_the_old_file(self):
        env = Env(self)
        p = os.path.join(env.logs, "app.log")
        with open(p, "w") as f:
            f.write("first file line 1\nfirst file line 2\n")
        env.write_config({"app": {"type": "file", "path": p, "group": "g",
                                  "start_at": "beginning"}})
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["first file line 1", "first file line 2"])
        ino = os.stat(p).st_ino
        # Replace the file; try to get the same inode back (ext4/tmpfs reuse freed inodes).
        os.unlink(p)
        with open(p, "w") as f:
            f.write("second file, longer than the offset we had\n")
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["second file, longer than the offset we had"],
                         "inode reused: %s" % (os.stat(p).st_ino == ino))

    def test_inode_reuse_with_same_inode_is_detected_by_fingerprint(self):
        # Force the case: same inode, different content, by rewriting in place.
        env = Env(self)
        p = os.path.join(env.logs, "app.log")
        with open(p, "w") as f:
            f.write("AAAA original content\n")
        env.write_config({"app": {"type": "file", "path": p, "group": "g",
                                  "start_at": "beginning"}})
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["AAAA original content"])
        with open(p, "r+") as f:  # same inode, new first bytes, longer than before
            f.write("BBBB replaced content, and more bytes\n")
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["BBBB replaced content, and more bytes"])

    def test_rotated_while_stopped_is_finished_before_the_new_file(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a1", "a2"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["a1", "a2"])
        c.write_lines(["a3", "a4"], ts_ns=T0)   # unread tail of the old file
        c.rotate()
        c.write_lines(["b1"], ts_ns=T0)
        c.rotate()                               # old file is now .2, b-file .1
        c.write_lines(["c1"], ts_ns=T0)
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["a3", "a4", "b1", "c1"])

    def test_gzipped_rotation_while_stopped_is_read(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a1"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["a1"])
        c.write_lines(["a2", "a3"], ts_ns=T0)
        c.rotate(compress=True)
        c.write_lines(["b1"], ts_ns=T0)
        recs, _ = env.once()
        self.assertEqual(msgs(recs), ["a2", "a3", "b1"])

    def test_rotation_that_is_gone_is_reported_as_a_gap(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a1"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        env.once()
        c.write_lines(["lost"], ts_ns=T0)
        c.rotate()
        os.unlink(c.path + ".1")
        c.write_lines(["b1"], ts_ns=T0)
        recs, err = env.once()
        self.assertEqual(msgs(recs), ["b1"])
        self.assertIn("cannot be found among its rotations", err)


class RestartAndSignals(unittest.TestCase):
    def test_sigkill_then_restart_loses_nothing(self):
        env = Env(self)
        c = Container(env.containers)
        env.write_config({"containers": env.docker_source()})
        seen = []
        n = 0
        for round_ in range(5):
            d = env.start()
            c.write_lines(["m%d" % i for i in range(n, n + 200)], ts_ns=T0)
            n += 200
            d.wait_for(lambda r: r and r[-1]["message"] == "m%d" % (n - 1), what="last line")
            time.sleep(0.05 * round_)
            d.signal(signal.SIGKILL)
            d.kill()
            seen += d.messages()
        d = env.start()
        time.sleep(1)
        d.stop()
        seen += d.messages()
        self.assertEqual(set(seen), {"m%d" % i for i in range(n)})
        dups = len(seen) - n
        # At most what was printed after the last checkpoint of each run.
        self.assertLessEqual(dups, n)
        print("duplicates after 5 SIGKILLs: %d of %d" % (dups, n))

    def test_sigterm_then_restart_repeats_nothing(self):
        env = Env(self)
        c = Container(env.containers)
        env.write_config({"containers": env.docker_source()})
        seen = []
        for round_ in range(3):
            d = env.start()
            c.write_lines(["t%d-%d" % (round_, i) for i in range(50)], ts_ns=T0)
            d.wait_count(50)
            self.assertEqual(d.stop(), 0)
            seen += d.messages()
        self.assertEqual(seen, ["t%d-%d" % (r, i) for r in range(3) for i in range(50)])

    def test_sighup_reload_adds_a_source_without_repeating(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["c1"], ts_ns=T0)
        p = os.path.join(env.logs, "app.log")
        with open(p, "w") as f:
            f.write("f1\n")
        env.write_config({"containers": env.docker_source()})
        d = env.start()
        d.wait_count(1)
        env.write_config({"containers": env.docker_source(),
                          "app": {"type": "file", "path": p, "group": "g",
                                  "start_at": "beginning"}})
        d.signal(signal.SIGHUP)
        d.wait_log("configuration reloaded")
        d.wait_count(2)
        c.write_lines(["c2"], ts_ns=T0)
        d.wait_count(3)
        d.stop()
        self.assertEqual(sorted(d.messages()), ["c1", "c2", "f1"])

    def test_bad_config_on_reload_keeps_running(self):
        env = Env(self)
        c = Container(env.containers)
        env.write_config({"containers": env.docker_source()})
        d = env.start()
        with open(env.conf, "a") as f:
            f.write("[bogus]\n")
        d.signal(signal.SIGHUP)
        d.wait_log("reload failed")
        c.write_lines(["still here"], ts_ns=T0)
        d.wait_count(1)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    main()
