"""Log groups as operators want them created: group_class, group_tags,
kms_key_id and retention_days in [cloudwatch] as defaults and per [source],
applied by CreateLogGroup / PutRetentionPolicy as the fake (which checks them
as CloudWatch does) records them; a group that already exists is left as it
is, and a retention that differs from the configuration is said once;
--check-config names bad values; template fallbacks name plain containers."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
AUDIT_KEY = "arn:aws:kms:us-east-1:123456789012:key/0000ffff-12ab-34cd-56ef-1234567890ab"


class Groups(unittest.TestCase):
    def setUp(self):
        self.fake = FakeAWS(seed=16)
        self.fake.start()
        self.addCleanup(self.fake.stop)
        self.env = Env(self)

    def write(self, sources, cloudwatch=""):
        self.env.write_config(sources, cloudwatch_extra=self.env.cloudwatch_keys(
            self.fake, "flush_interval = 200ms\n" + cloudwatch))

    def container(self, name, labels=None, lines=3):
        c = Container(self.env.containers, name=name, labels=labels)
        c.write_lines(["%s %d" % (name, i) for i in range(lines)], ts_ns=time.time_ns())
        return c

    def test_defaults_and_per_source_overrides_reach_create_log_group(self):
        self.container("app")
        logs = os.path.join(self.env.logs, "audit.log")
        with open(logs, "w") as f:
            f.write("login ok\n")
        self.write({
            "containers": self.env.docker_source(group="/ecs/app", stream="{container_name}"),
            "audit": {"type": "file", "path": logs, "group": "/audit", "stream": "s",
                      "start_at": "beginning", "retention_days": "365",
                      "group_class": "STANDARD", "kms_key_id": AUDIT_KEY,
                      "group_tags": "team=security\ngroup_tags = data=regulated"},
        }, cloudwatch="retention_days = 7\ngroup_class = INFREQUENT_ACCESS\n"
                      "group_tags = team=payments\ngroup_tags = cost center=42\n"
                      "kms_key_id = %s\n" % KEY)
        self.env.upload_once()
        groups = self.fake.state()["groups"]
        app, audit = groups["/ecs/app"], groups["/audit"]
        self.assertEqual(app["logGroupClass"], "INFREQUENT_ACCESS")
        self.assertEqual(app["retentionInDays"], 7)
        self.assertEqual(app["kmsKeyId"], KEY)
        self.assertEqual(app["tags"], {"team": "payments", "cost center": "42"})
        # The source's own settings win; tags are merged, its value for "team".
        self.assertEqual(audit["logGroupClass"], "STANDARD")
        self.assertEqual(audit["retentionInDays"], 365)
        self.assertEqual(audit["kmsKeyId"], AUDIT_KEY)
        self.assertEqual(audit["tags"], {"team": "security", "cost center": "42",
                                         "data": "regulated"})
        ops = self.fake.requests()["ops"]
        self.assertEqual(ops["CreateLogGroup"]["status"], {"200": 2})
        self.assertEqual(ops["PutRetentionPolicy"]["status"], {"200": 2})

    def test_an_existing_group_is_left_as_it_is_and_a_different_retention_said_once(self):
        self.fake.create("/ecs/app", retention=30)
        self.fake.create("/ecs/same", retention=7)
        self.container("app")
        self.container("other")
        self.write({"containers": self.env.docker_source(group="/ecs/app",
                                                         stream="{container_name}"),
                    "same": self.env.docker_source(group="/ecs/same",
                                                   stream="{container_name}")},
                   cloudwatch="retention_days = 7\ngroup_class = INFREQUENT_ACCESS\n"
                              "group_tags = team=payments\n")
        err = self.env.upload_once()
        g = self.fake.state()["groups"]["/ecs/app"]
        self.assertEqual((g["retentionInDays"], g["logGroupClass"], g["tags"]),
                         (30, "STANDARD", {}))
        warning = ("log group /ecs/app already exists with a retention of 30 days; "
                   "retention_days = 7 applies only to groups cwlogd creates")
        self.assertEqual(err.count(warning), 1, err)
        self.assertNotIn("log group /ecs/same already exists", err)
        ops = self.fake.requests()["ops"]
        self.assertNotIn("CreateLogGroup", ops)
        self.assertNotIn("PutRetentionPolicy", ops)
        # Once: a later run (new lines, the streams known) does not look again.
        self.container("app2")
        err = self.env.upload_once()
        self.assertNotIn("already exists with", err)
        self.assertEqual(self.fake.requests()["ops"]["DescribeLogGroups"]["total"], 2)

    def test_fallbacks_name_plain_containers_and_a_label_picks_the_group(self):
        self.container("redis", lines=1)
        self.container("web", labels={
            "com.amazonaws.ecs.task-definition-family": "shop",
            "com.amazonaws.ecs.container-name": "web",
            "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:1:task/prod/5d2f0c1e",
            "com.example.log-group": "/teams/payments"}, lines=1)
        self.write({"c": self.env.docker_source(
            group="{label:com.example.log-group|/ecs/shared}",
            stream="{ecs_task_family|container_name}/{ecs_task_id|container_name}")})
        self.env.upload_once()
        got = sorted((e["group"], e["stream"]) for e in self.fake.events())
        self.assertEqual(got, [("/ecs/shared", "redis/redis"),
                               ("/teams/payments", "shop/5d2f0c1e")])

    def test_check_config_names_bad_group_settings(self):
        self.write({"c": self.env.docker_source(group="/g", stream="s",
                                                group_class="COLD",
                                                kms_key_id="alias/mykey",
                                                group_tags="aws:owner=me\ngroup_tags = a*b=1")},
                   cloudwatch="retention_days = 10\n" + "".join(
                       "group_tags = k%d=v\n" % i for i in range(50)))
        p = self.env.run("--check-config", check=False)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 78, err)
        for text in ("[cloudwatch] retention_days: invalid value \"10\"",
                     "[source c] group_class: invalid value \"COLD\" (expected STANDARD or "
                     "INFREQUENT_ACCESS)",
                     "[source c] kms_key_id: invalid value \"alias/mykey\" (expected a KMS "
                     "key ARN",
                     "[source c] group_tags: invalid tag \"aws:owner=me\": keys starting with "
                     "aws: are reserved",
                     "[source c] group_tags: invalid tag \"a*b=1\": byte 2 of the key is not "
                     "allowed"):
            self.assertIn(text, err)

    def test_more_than_50_tags_with_the_defaults_is_an_error(self):
        self.write({"c": self.env.docker_source(group="/g", stream="s",
                                                group_tags="extra=1")},
                   cloudwatch="".join("group_tags = k%d=v\n" % i for i in range(50)))
        p = self.env.run("--check-config", check=False)
        self.assertEqual(p.returncode, 78)
        self.assertIn("[source c] group_tags: 51 tags for its log groups with [cloudwatch]'s "
                      "(CloudWatch takes at most 50)", p.stderr.decode())


if __name__ == "__main__":
    main()
