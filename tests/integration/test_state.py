"""The state database and the command line: a corrupt state.db is moved aside
and the agent keeps shipping; --check-config exit codes and messages."""

import glob
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Container, Env, main  # noqa: E402
import unittest  # noqa: E402

T0 = 1732440000_000000000


class State(unittest.TestCase):
    def test_corrupt_state_db_is_moved_aside_and_shipping_goes_on(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        env.once()
        db = os.path.join(env.state, "dry-run", "state.db")
        with open(db, "r+b") as f:
            f.write(b"this is not a database" * 100)
        c.write_lines(["b"], ts_ns=T0)
        recs, err = env.once()
        # Fresh state: the source starts over from start_at = beginning.
        self.assertEqual([r["message"] for r in recs], ["a", "b"])
        moved = glob.glob(db + ".corrupt-*")
        self.assertTrue(moved, err)
        self.assertIn("corrupt", err.lower())
        recs, _ = env.once()
        self.assertEqual(recs, [])

    def test_offsets_are_stored_per_file_identity(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a", "b"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        env.once()
        db = sqlite3.connect(os.path.join(env.state, "dry-run", "state.db"))
        rows = db.execute("select source, path, dev, ino, offset from files").fetchall()
        st = os.stat(c.path)
        self.assertEqual(rows, [("containers", c.path, st.st_dev, st.st_ino, st.st_size)])
        self.assertEqual(db.execute("pragma journal_mode").fetchone()[0], "wal")


class CheckConfig(unittest.TestCase):
    def test_valid_config_exits_0(self):
        env = Env(self)
        env.write_config({"containers": env.docker_source()})
        p = env.run("--check-config", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"configuration is valid", p.stdout)

    def test_errors_name_file_line_and_key_and_exit_78(self):
        env = Env(self)
        env.write_config({"containers": env.docker_source(mode="fast")})
        os.makedirs(os.path.join(env.root, "conf.d"))
        with open(os.path.join(env.root, "conf.d", "10-x.conf"), "w") as f:
            f.write("[source extra]\ntype = file\ngroup = g\npath = /tmp/x.log\nbogus = 1\n")
        p = env.run("--check-config", check=False)
        self.assertEqual(p.returncode, 78)
        err = p.stderr.decode()
        self.assertRegex(err, r"cwlogd\.conf:\d+: \[source containers\] mode: ")
        self.assertRegex(err, r"10-x\.conf:5: \[source extra\] bogus")

    def test_bad_config_stops_the_agent_with_78(self):
        env = Env(self)
        env.write_config({"containers": env.docker_source(max_buffer_size="lots")})
        p = env.run("--once", "--dry-run", check=False)
        self.assertEqual(p.returncode, 78)
        self.assertIn(b"max_buffer_size", p.stderr)

    def test_shipped_default_config_is_valid(self):
        conf = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "cwlogd.conf")
        env = Env(self)
        env.conf = conf
        p = env.run("--check-config", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_missing_config_file(self):
        env = Env(self)
        p = env.run("--check-config", check=False)
        self.assertEqual(p.returncode, 78)
        self.assertIn(b"cannot open", p.stderr)



class Privileges(unittest.TestCase):
    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                         "needs root and setpriv to drop to another user")
    def test_service_user_with_cap_dac_read_search_reads_root_only_containers(self):
        # As the packaged service runs: its own user, CAP_DAC_READ_SEARCH only.
        env = Env(self)
        os.chmod(env.root, 0o755)
        c = Container(env.containers)
        c.write_lines(["from a root-only directory"], ts_ns=T0)
        for p in (env.containers, c.dir):
            os.chmod(p, 0o700)
        os.chmod(c.path, 0o600)
        os.makedirs(env.state)
        os.chown(env.state, 65534, 65534)
        env.write_config({"containers": env.docker_source()})
        os.chmod(env.conf, 0o644)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
                            BIN, "--config", env.conf, "--once", "--dry-run"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"from a root-only directory", p.stdout, p.stderr.decode())


if __name__ == "__main__":
    main()
