"""cwlogd --once --dry-run on fixture trees: what is printed for docker, CRI
and plain-file sources, partial joins, corrupt lines, and that a second run
prints only what is new."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, cri_line, docker_json, main  # noqa: E402
import unittest  # noqa: E402

T0 = 1732440000_123456789  # 2024-11-24T09:20:00.123456789Z


class OnceDryRun(unittest.TestCase):
    def test_docker_records_carry_names_time_and_exact_messages(self):
        env = Env(self)
        c = Container(env.containers, name="web", labels={
            "com.amazonaws.ecs.cluster": "prod",
            "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d3c",
            "com.amazonaws.ecs.container-name": "app",
            "com.amazonaws.ecs.task-definition-family": "shop"})
        msgs = ["plain ascii", 'quotes " and \\ backslash', "tab\there", "unicode é ü 日本 😀",
                "<html> & stuff", "ctl \x01 char", "trailing spaces   "]
        c.write_lines(msgs, ts_ns=T0)
        c.write("stderr line\n", stream="stderr", ts_ns=T0 + 5_000_000)
        env.write_config({"containers": env.docker_source(
            group="/ecs/{ecs_cluster}/{ecs_task_family}",
            stream="{ecs_container_name}/{ecs_task_id}/{container_name}/{container_id_short}")})
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], msgs + ["stderr line"])
        for r in recs:
            self.assertEqual(r["group"], "/ecs/prod/shop")
            self.assertEqual(r["stream"], "app/0f1e2d3c/web/" + c.id[:12])
        self.assertEqual(recs[0]["timestamp"], 1732440000123)
        self.assertEqual(recs[1]["timestamp"], 1732440000124)
        self.assertEqual(recs[-1]["timestamp"], 1732440000128)
        self.assertEqual(set(recs[0].keys()), {"group", "stream", "timestamp", "message"})

    def test_second_run_prints_only_what_is_new(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["a1", "a2"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["a1", "a2"])
        recs, _ = env.once()
        self.assertEqual(recs, [])
        c.write_lines(["a3"], ts_ns=T0)
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["a3"])

    def test_partial_entries_are_joined_per_stream(self):
        env = Env(self)
        c = Container(env.containers)
        big = "x" * 16384
        c.write(big, ts_ns=T0)                       # partial (no trailing newline)
        c.write("interleaved err\n", stream="stderr", ts_ns=T0 + 1)
        c.write(big, ts_ns=T0 + 2)
        c.write("end\n", ts_ns=T0 + 3)
        env.write_config({"containers": env.docker_source()})
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["interleaved err", big + big + "end"])
        self.assertEqual(recs[1]["timestamp"], 1732440000123)  # first part's time

    def test_corrupt_lines_are_counted_and_skipped_not_fatal(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["before"], ts_ns=T0)
        c.write_raw(b'{"log":"broken\n')
        c.write_raw(b"\x00\x01\xff binary junk\n")
        c.write_raw(b'{"log":"bad escape \\x41\\n","stream":"stdout","time":"2024-11-24T09:20:00Z"}\n')
        c.write_raw(b'{"log":"bad utf8 \xff\xfe\\n","stream":"stdout","time":"2024-11-24T09:20:00Z"}\n')
        c.write_lines(["after"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["before", "bad utf8 \ufffd\ufffd", "after"])
        self.assertIn("corrupt json-file line", err)

    def test_overlong_json_file_line_is_skipped_as_corrupt(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["before"], ts_ns=T0)
        c.write_raw(b'{"log":"' + b"y" * (3 * 1024 * 1024) + b'\\n","stream":"stdout"}\n')
        c.write_lines(["after"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["before", "after"])
        self.assertIn("overlong line", err)

    def test_event_longer_than_max_event_size_is_split(self):
        env = Env(self)
        p = os.path.join(env.logs, "big.log")
        with open(p, "w") as f:
            f.write("é" * 3000 + "\n")  # 6000 bytes of UTF-8
        env.write_config({"app": {"type": "file", "path": p, "group": "g",
                                  "start_at": "beginning"}},
                         cloudwatch_extra="max_event_size = 2k\n")
        recs, _ = env.once()
        self.assertEqual("".join(r["message"] for r in recs), "é" * 3000)
        for r in recs:
            self.assertLessEqual(len(r["message"].encode()), 2048)
        self.assertEqual(len(recs), 3)

    def test_time_format_gives_plain_lines_their_own_time(self):
        env = Env(self)
        p = os.path.join(env.logs, "app.log")
        with open(p, "w") as f:
            f.write("2024-11-24 09:20:00,123 INFO started\n")
            f.write("no time on this line\n")
            f.write("2024-11-24 09:20:01,5 WARN slow\n")
        env.write_config({"app": {"type": "file", "path": p, "group": "g", "start_at": "beginning",
                                  "time_format": "%Y-%m-%d %H:%M:%S,%f"}})
        env.extra_env["TZ"] = "UTC0"  # a time without a zone is local time
        before = int(time.time() * 1000)
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs],
                         ["2024-11-24 09:20:00,123 INFO started", "no time on this line",
                          "2024-11-24 09:20:01,5 WARN slow"])
        self.assertEqual(recs[0]["timestamp"], 1732440000123)
        self.assertGreaterEqual(recs[1]["timestamp"], before)  # no time: when it was read
        self.assertEqual(recs[2]["timestamp"], 1732440001500)

    def test_cri_lines_with_partials(self):
        env = Env(self)
        p = os.path.join(env.logs, "web_default_app-" + "a" * 64 + ".log")
        with open(p, "w") as f:
            f.write(cri_line("hello", ts_ns=T0))
            f.write(cri_line("part one ", tag="P", ts_ns=T0 + 1))
            f.write(cri_line("oops", stream="stderr", ts_ns=T0 + 2))
            f.write(cri_line("part two", tag="F", ts_ns=T0 + 3))
            f.write("not a cri line\n")
            f.write("2024-13-45T00:00:00Z stdout F bad time\n")
            f.write(cri_line("", ts_ns=T0 + 4))  # empty message: nothing to ship
            f.write(cri_line("last", ts_ns=T0 + 5))
        env.write_config({"k8s": {"type": "cri", "path": os.path.join(env.logs, "*.log"),
                                  "group": "/k8s", "stream": "{container_name}",
                                  "start_at": "beginning"}})
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["hello", "oops", "part one part two", "last"])
        self.assertTrue(all(r["stream"] == "app" for r in recs))
        self.assertIn("malformed CRI line", err)

    def test_file_source_glob_start_at_end_on_first_run(self):
        env = Env(self)
        a = os.path.join(env.logs, "a.log")
        with open(a, "w") as f:
            f.write("old 1\nold 2\n")
        env.write_config({"app": {"type": "file", "path": os.path.join(env.logs, "*.log"),
                                  "group": "/host", "stream": "{hostname}/{file_name}"}})
        recs, err = env.once()
        self.assertEqual(recs, [])  # start_at = end is the default on a first run
        with open(a, "a") as f:
            f.write("new 1\n")
        b = os.path.join(env.logs, "b.log")
        with open(b, "w") as f:
            f.write("b from the start\n")
        recs, _ = env.once()
        self.assertEqual(sorted(r["message"] for r in recs), ["b from the start", "new 1"])
        streams = {r["message"]: r["stream"] for r in recs}
        self.assertTrue(streams["new 1"].endswith("/a.log"))

    def test_unterminated_last_line_waits_for_its_newline(self):
        env = Env(self)
        a = os.path.join(env.logs, "a.log")
        with open(a, "w") as f:
            f.write("done\nhalf")
        env.write_config({"app": {"type": "file", "path": a, "group": "g",
                                  "start_at": "beginning"}})
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["done"])
        with open(a, "a") as f:
            f.write(" line\n")
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["half line"])

    def test_ecs_agent_and_pause_containers_are_skipped_by_default(self):
        env = Env(self)
        Container(env.containers, name="ecs-agent").write_lines(["agent"], ts_ns=T0)
        Container(env.containers, name="ecs-shop-7-internalecspause-a1b2c3").write_lines(
            ["pause"], ts_ns=T0)
        Container(env.containers, name="web").write_lines(["app"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        recs, err = env.once()
        self.assertEqual([r["message"] for r in recs], ["app"])
        self.assertIn("container ecs-agent", err)

    def test_include_and_exclude_container_globs(self):
        env = Env(self)
        for n in ("web-1", "web-2", "worker", "ecs-agent"):
            Container(env.containers, name=n).write_lines([n], ts_ns=T0)
        env.write_config({"containers": env.docker_source(include_containers="web-* ecs-*",
                                                          exclude_containers="web-2")})
        recs, _ = env.once()
        # An explicit exclude list replaces the default one: ecs-agent is included here.
        self.assertEqual(sorted(r["message"] for r in recs), ["ecs-agent", "web-1"])

    def test_containers_without_ecs_labels_get_the_placeholder(self):
        env = Env(self)
        Container(env.containers, name="plain").write_lines(["x"], ts_ns=T0)
        env.write_config({"containers": env.docker_source(
            group="/ecs/{ecs_cluster}/{ecs_task_family}", stream="{ecs_container_name}")},
            agent_extra="placeholder = no-ecs\n")
        recs, err = env.once()
        self.assertEqual((recs[0]["group"], recs[0]["stream"]), ("/ecs/no-ecs/no-ecs", "no-ecs"))
        self.assertIn("-> /ecs/no-ecs/no-ecs / no-ecs", err)  # the preview names the destination

    def test_dry_run_checkpoints_are_separate_from_the_real_ones(self):
        env = Env(self)
        c = Container(env.containers)
        c.write_lines(["x"], ts_ns=T0)
        env.write_config({"containers": env.docker_source()})
        env.once()
        self.assertTrue(os.path.exists(os.path.join(env.state, "dry-run", "state.db")))
        self.assertFalse(os.path.exists(os.path.join(env.state, "state.db")))


if __name__ == "__main__":
    main()
