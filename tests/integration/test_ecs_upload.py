"""What an ECS container instance needs on day one, end to end against the
fake IMDSv2 + CloudWatch Logs endpoint: names from ECS labels and instance
metadata ({instance_id}, {region} with region = auto), journald entries
uploaded and resumed by cursor, and multiline stack traces as one event."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402
from test_journald import REMOTE, unit_entry, write_journal  # noqa: E402

NOW = time.time_ns()


class EcsUpload(unittest.TestCase):
    def setUp(self):
        self.fake = FakeAWS(seed=11)
        self.fake.start()
        self.addCleanup(self.fake.stop)

    def cw(self, env, extra=""):
        return env.cloudwatch_keys(self.fake, "flush_interval = 200ms\n" + extra)

    def test_names_from_ecs_labels_and_instance_metadata(self):
        env = Env(self)
        c = Container(env.containers, name="ecs-shop-7-web-a1b2", labels={
            "com.amazonaws.ecs.cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d3c4b5a",
            "com.amazonaws.ecs.container-name": "web",
            "com.amazonaws.ecs.task-definition-family": "shop"})
        Container(env.containers, name="ecs-agent").write_lines(["agent noise"], ts_ns=NOW)
        c.write_lines(["hello"], ts_ns=NOW)
        env.write_config({"containers": env.docker_source(
            group="/ecs/{ecs_cluster}/{ecs_task_family}",
            stream="{ecs_container_name}/{ecs_task_id}/{instance_id}/{region}")},
            cloudwatch_extra=self.cw(env), region="auto")
        err = env.upload_once()
        evs = self.fake.events()
        self.assertEqual([(e["group"], e["stream"], e["message"]) for e in evs],
                         [("/ecs/prod/shop", "web/0f1e2d3c4b5a/i-0fa4e1c3b2d5a6978/us-east-1",
                           "hello")])
        self.assertIn("region us-east-1 (from instance metadata)", err)

    def test_multiline_trace_arrives_as_one_event(self):
        env = Env(self)
        c = Container(env.containers, name="app")
        trace = ["2024-11-24 09:20:00 ERROR boom", "java.lang.RuntimeException: x",
                 "\tat a.b.C.d(C.java:1)"]
        c.write_lines(trace + ["2024-11-24 09:20:01 INFO ok"], ts_ns=NOW)
        env.write_config({"containers": env.docker_source(
            datetime_format="%Y-%m-%d %H:%M:%S", group="g", stream="s")},
            cloudwatch_extra=self.cw(env))
        env.upload_once()
        self.assertEqual([e["message"] for e in self.fake.events()],
                         ["\n".join(trace), "2024-11-24 09:20:01 INFO ok"])

    @unittest.skipUnless(REMOTE, "systemd-journal-remote is not installed")
    def test_journald_entries_uploaded_and_resumed_by_cursor(self):
        env = Env(self)
        jdir = os.path.join(env.root, "journal")
        os.makedirs(jdir)
        path = os.path.join(jdir, "a.journal")
        write_journal(path, [unit_entry(1, "docker.service", "d1"),
                             unit_entry(2, "ecs.service", "e1"),
                             unit_entry(3, "sshd.service", "s1")])
        env.write_config({"journal": {"type": "journald", "path": jdir, "units": "docker ecs",
                                      "group": "/ec2/journal",
                                      "stream": "{instance_id}/{journal:_SYSTEMD_UNIT}",
                                      "start_at": "beginning"}},
                         cloudwatch_extra=self.cw(env))
        d = env.start(dry_run=False)
        self.fake.wait_events(2, timeout=20)
        write_journal(path, [unit_entry(4, "docker.service", "d2")])
        self.fake.wait_events(3, timeout=20)
        self.assertEqual(d.stop(), 0)
        write_journal(path, [unit_entry(5, "ecs.service", "e2")])
        env.upload_once()
        # Streams are sent in parallel: compare per stream, in order.
        evs = sorted(((e["stream"], e["message"]) for e in self.fake.events()))
        self.assertEqual(evs, [("i-0fa4e1c3b2d5a6978/docker.service", "d1"),
                               ("i-0fa4e1c3b2d5a6978/docker.service", "d2"),
                               ("i-0fa4e1c3b2d5a6978/ecs.service", "e1"),
                               ("i-0fa4e1c3b2d5a6978/ecs.service", "e2")])

    @unittest.skipUnless(REMOTE, "systemd-journal-remote is not installed")
    def test_journal_vacuumed_between_runs_resumes_at_the_oldest_entry_left(self):
        env = Env(self)
        jdir = os.path.join(env.root, "journal")
        os.makedirs(jdir)
        write_journal(os.path.join(jdir, "a.journal"), [unit_entry(1, "x.service", "a1")])
        env.write_config({"journal": {"type": "journald", "path": jdir, "group": "g",
                                      "stream": "s", "start_at": "beginning"}},
                         cloudwatch_extra=self.cw(env))
        first = env.upload_once()
        write_journal(os.path.join(jdir, "a.journal"), [unit_entry(2, "x.service", "a2 lost")])
        write_journal(os.path.join(jdir, "b.journal"), [unit_entry(3, "x.service", "b3")])
        os.unlink(os.path.join(jdir, "a.journal"))  # vacuumed while cwlogd was stopped
        err = env.upload_once()
        self.assertEqual([e["message"] for e in self.fake.events()], ["a1", "b3"],
                         "first run:\n%s\nsecond run:\n%s" % (first, err))
        self.assertIn("journal entry of the checkpoint is gone", err)

    def test_multiline_event_spanning_a_rotation_arrives_whole(self):
        env = Env(self)
        c = Container(env.containers, name="app")
        c.write_lines(["2024-11-24 09:19:59 INFO before"], ts_ns=NOW)
        env.write_config({"containers": env.docker_source(
            multiline_pattern="^[0-9]{4}-", group="g", stream="s")},
            cloudwatch_extra=self.cw(env))
        env.upload_once()
        trace = ["2024-11-24 09:20:00 ERROR boom", "java.lang.RuntimeException: x",
                 "\tat a.b.C.d(C.java:1)", "\tat a.b.C.e(C.java:2)"]
        c.write_lines(trace[:2], ts_ns=NOW)
        c.rotate()
        c.write_lines(trace[2:] + ["2024-11-24 09:20:01 INFO after"], ts_ns=NOW)
        env.upload_once()
        self.assertEqual([e["message"] for e in self.fake.events()],
                         ["2024-11-24 09:19:59 INFO before", "\n".join(trace),
                          "2024-11-24 09:20:01 INFO after"])


if __name__ == "__main__":
    main()
