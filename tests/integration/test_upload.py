"""Delivery to CloudWatch Logs against the fake IMDSv2 + CloudWatch endpoint
(tests/fake_aws.py): exactly-once delivery, credentials from IMDSv2, group and
stream creation, faults, outages with both buffer policies, event splitting,
rejected events, and signature failures that show in the agent's log."""

import collections
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402
from fake_aws import FakeAWS  # noqa: E402

NOW_NS = time.time_ns()


def fixture_lines(n, prefix="m"):
    return ["%s%05d" % (prefix, i) for i in range(n)]


def by_stream(events):
    d = collections.defaultdict(list)
    for e in events:
        d[(e["group"], e["stream"])].append(e["message"])
    return d


class UploadCase(unittest.TestCase):
    """Helpers: a fake endpoint per test and a config pointing at it."""

    def fake(self, **kw):
        f = FakeAWS(seed=7, **kw)
        f.start()
        self.addCleanup(f.stop)
        return f

    def env_for(self, fake, sources=None, cw_extra="", agent_extra=""):
        env = Env(self)
        srcs = sources or {"containers": env.docker_source(
            group="/ecs/{ecs_cluster}", stream="{container_name}/{container_id_short}")}
        flush = "" if "flush_interval" in cw_extra else "flush_interval = 200ms\n"
        env.write_config(srcs, agent_extra=agent_extra,
                         cloudwatch_extra=env.cloudwatch_keys(fake, flush + cw_extra))
        return env

class Upload(UploadCase):
    def test_every_event_delivered_once_with_names_times_and_exact_bytes(self):
        fake = self.fake()
        env = self.env_for(fake)
        a = Container(env.containers, name="web", labels={"com.amazonaws.ecs.cluster": "prod"})
        b = Container(env.containers, name="api", labels={"com.amazonaws.ecs.cluster": "prod"})
        tricky = ["unicode é 日本 😀", 'quote " backslash \\ tab \t', "<b>&amp;</b>",
                  "ctl \x01\x1f", "x" * 20000]
        a.write_lines(fixture_lines(3000, "a") + tricky, ts_ns=NOW_NS)
        b.write("part one " * 2000, ts_ns=NOW_NS)          # a partial entry
        b.write("and its end\n", ts_ns=NOW_NS)
        b.write_lines(fixture_lines(500, "b"), ts_ns=NOW_NS + 1_000_000)
        err = env.upload_once()
        got = by_stream(fake.events())
        self.assertEqual(got[("/ecs/prod", "web/" + a.id[:12])], fixture_lines(3000, "a") + tricky)
        self.assertEqual(got[("/ecs/prod", "api/" + b.id[:12])],
                         ["part one " * 2000 + "and its end"] + fixture_lines(500, "b"))
        ev = fake.events()[0]
        self.assertEqual(ev["timestamp"], NOW_NS // 1_000_000)
        self.assertIn("imds", err)  # credentials came from the instance role
        # A second run sends nothing and creates nothing.
        before = fake.requests()["total"]
        env.upload_once()
        ops = [l["op"] for l in fake.requests()["log"][before:]]
        self.assertNotIn("PutLogEvents", ops)
        self.assertNotIn("CreateLogStream", ops)

    def test_many_busy_streams_share_request_buffers_and_send_full_requests(self):
        # 10 streams of ~2.4 MB each go through at most 4 request-sized buffers
        # (uploader.c, SLABS_MAX): every event arrives once and in order, and
        # requests stay near the 1 MiB the API allows instead of shrinking.
        fake = self.fake()
        env = self.env_for(fake, cw_extra="flush_interval = 5s\n")
        ctl = "\x01" * 3000  # escaped six times longer than it counts
        want = {}
        for k in range(10):
            c = Container(env.containers, name="busy%d" % k,
                          labels={"com.amazonaws.ecs.cluster": "many"})
            msgs = ["%d-%06d %s" % (k, i, "y" * 180) for i in range(12000)]
            if k == 0:
                msgs[5000:5000] = [ctl + str(i) for i in range(300)]
            c.write_lines(msgs, ts_ns=NOW_NS)
            if k == 1:
                # A partial joined after a later line of the other stream:
                # the batch must be put in time order when it is sent.
                c.write("early ", stream="stdout", ts_ns=NOW_NS + 20_000_000_000)
                c.write("late line\n", stream="stderr", ts_ns=NOW_NS + 21_000_000_000)
                c.write("end\n", stream="stdout", ts_ns=NOW_NS + 22_000_000_000)
                msgs = msgs + ["early end", "late line"]
            want[("/ecs/many", "busy%d/%s" % (k, c.id[:12]))] = msgs
        env.upload_once(timeout=180)
        events = fake.events()
        got = by_stream(events)
        for key, msgs in want.items():
            if key[1].startswith("busy1/"):
                self.assertEqual(sorted(got[key]), sorted(msgs), key)
                self.assertEqual(got[key][-2:], ["early end", "late line"])
            else:
                self.assertEqual(got[key], msgs, key)
        # Requests: the bytes the service counts, per request.
        per_req = collections.Counter()
        for e in events:
            per_req[e["request_id"]] += len(e["message"].encode()) + 26
        sizes = list(per_req.values())
        ideal = sum(-(-sum(len(m.encode()) + 26 for m in msgs) // 1048576)
                    for msgs in want.values())
        print("%d requests for an ideal of %d" % (len(sizes), ideal), file=sys.stderr)
        self.assertLessEqual(len(sizes), ideal + len(want),
                             "requests shrank: %d for an ideal of %d" % (len(sizes), ideal))
        self.assertTrue(all(n <= 1048576 for n in sizes))

    def test_streams_of_removed_containers_are_forgotten(self):
        # Container churn: the uploader frees the state of streams no file
        # maps to any more once they are idle; live streams are kept. The
        # metrics and the status count the streams kept.
        fake = self.fake()
        env = self.env_for(fake)
        sock = os.path.join(env.root, "control.sock")
        env.write_config({"containers": env.docker_source(
            group="/ecs/{ecs_cluster}", stream="{container_name}/{container_id_short}")},
            agent_extra="control_socket = %s\n" % sock,
            cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        env.extra_env["CWLOGD_IDLE_FORGET_MS"] = "300"
        cs = [Container(env.containers, name="churn%d" % k) for k in range(3)]
        d = env.start(dry_run=False)
        for k, c in enumerate(cs):
            c.write_lines(["%d-a" % k], ts_ns=NOW_NS)
        fake.wait_events(3, timeout=20)
        self.assertIn("cwlogd_streams 3\n", env.run("metrics", "--socket", sock).stdout.decode())
        cs[1].remove()
        cs[2].remove()
        deadline = time.time() + 20
        while d.log().count("forgetting idle stream") < 2 and time.time() < deadline:
            time.sleep(0.1)
        cs[0].write_lines(["0-b"], ts_ns=NOW_NS)
        fake.wait_events(4, timeout=20)
        time.sleep(1)
        self.assertIn("cwlogd_streams 1\n", env.run("metrics", "--socket", sock).stdout.decode())
        self.assertIn("; 1 stream(s), ", env.run("status", "--socket", sock).stdout.decode())
        self.assertEqual(d.stop(), 0)
        log = d.log()
        self.assertEqual(log.count("forgetting idle stream"), 2, log)
        self.assertNotIn("churn0/", "".join(l for l in log.splitlines() if "forgetting" in l))
        self.assertEqual(sorted(e["message"] for e in fake.events()), ["0-a", "0-b", "1-a", "2-a"])

    def test_group_created_with_retention_and_streams_remembered(self):
        fake = self.fake()
        env = self.env_for(fake, cw_extra="retention_days = 14\n")
        c = Container(env.containers, name="svc", labels={"com.amazonaws.ecs.cluster": "c1"})
        c.write_lines(["one"], ts_ns=NOW_NS)
        env.upload_once()
        state = fake.state()["groups"]
        self.assertEqual(state["/ecs/c1"]["retentionInDays"], 14)
        c.write_lines(["two"], ts_ns=NOW_NS)
        before = fake.requests()["total"]
        env.upload_once()
        ops = [l["op"] for l in fake.requests()["log"][before:] if not l["op"].startswith("imds")]
        self.assertEqual(ops, ["PutLogEvents"])  # known from the state db: no create
        self.assertEqual([e["message"] for e in fake.events()], ["one", "two"])

    def test_recovers_from_each_fault_without_loss(self):
        for kind in ["throttle", "503", "500", "reset_before", "close", "latency", "reset_after"]:
            with self.subTest(kind=kind):
                fake = self.fake()
                rule = {"op": "PutLogEvents", "kind": kind, "count": 2}
                if kind == "latency":
                    rule["seconds"] = 1
                fake.set_faults([rule])
                env = self.env_for(fake)
                c = Container(env.containers, name="f")
                c.write_lines(fixture_lines(200), ts_ns=NOW_NS)
                env.upload_once()
                msgs = [e["message"] for e in fake.events()]
                self.assertEqual(set(msgs), set(fixture_lines(200)))
                dups = len(msgs) - 200
                caused = fake.requests()["reset_after"]["events"]
                self.assertEqual(dups, caused, "duplicates beyond what reset_after caused")
                if kind == "reset_after":
                    self.assertGreater(caused, 0)

    def test_outage_blocking_source_loses_nothing(self):
        fake = self.fake()
        env = self.env_for(fake, sources=None)
        env.write_config({"containers": Env.docker_source(env, max_buffer_size="16k")},
                         cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        c = Container(env.containers, name="blk")
        fake.set_faults([{"op": "logs", "kind": "outage", "seconds": 4}])
        d = env.start(dry_run=False)
        c.write_lines(fixture_lines(3000), ts_ns=NOW_NS)
        fake.wait_events(3000, timeout=40)
        self.assertEqual(d.stop(), 0)
        self.assertEqual([e["message"] for e in fake.events()], fixture_lines(3000))

    def test_outage_non_blocking_source_drops_with_exact_count_and_marker(self):
        fake = self.fake()
        env = self.env_for(fake)
        env.write_config({"containers": Env.docker_source(
            env, mode="non-blocking", max_buffer_size="16k", group="g", stream="s")},
            agent_extra="total_buffer_limit = 64k\n",
            cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        c = Container(env.containers, name="nb")
        fake.set_faults([{"op": "logs", "kind": "outage", "seconds": 4}])
        d = env.start(dry_run=False)
        c.write_lines(fixture_lines(5000), ts_ns=NOW_NS)
        time.sleep(6)
        c.write_lines(["after the outage"], ts_ns=NOW_NS + 10**9)
        deadline = time.time() + 30
        while time.time() < deadline:
            msgs = [e["message"] for e in fake.events()]
            if "after the outage" in msgs:
                break
            time.sleep(0.2)
        self.assertEqual(d.stop(), 0)
        msgs = [e["message"] for e in fake.events()]
        markers = [m for m in msgs if m.startswith("cwlogd: dropped ")]
        data = [m for m in msgs if not m.startswith("cwlogd: dropped ")]
        self.assertTrue(markers, "no drop marker")
        dropped = sum(int(m.split()[2]) for m in markers)
        self.assertGreater(dropped, 0)
        self.assertEqual(len(data) - 1 + dropped, 5000, "delivered + dropped must add up")
        self.assertEqual(len(set(data)), len(data))
        self.assertIn("from containers between", markers[0])
        self.assertIn("dropping", d.log())

    def test_containers_own_log_options_override_the_source(self):
        # Docker's --log-opt mode / max-buffer-size (hostconfig.json) apply to
        # that container alone: in a non-blocking source with a 16k buffer,
        # a blocking container loses nothing and does not hold the others
        # back, and a container with a 4m buffer rides out the outage. Each
        # writes more than two batches hold (10,000 events each), so what the
        # outage leaves unsent must wait in the container's buffer.
        N = 30000
        fake = self.fake()
        env = self.env_for(fake)
        env.write_config({"containers": Env.docker_source(
            env, mode="non-blocking", max_buffer_size="16k", group="g",
            stream="{container_name}", container_max_buffer_size="4m")},
            cloudwatch_extra=env.cloudwatch_keys(fake, "flush_interval = 200ms\n"))
        opts = {"drop": None, "block": {"mode": "blocking", "max-buffer-size": "16k"},
                "big": {"max-buffer-size": "4m"}}
        cs = {}
        for name, o in opts.items():
            c = Container(env.containers, name=name)
            if o is not None:
                with open(os.path.join(c.dir, "hostconfig.json"), "w") as f:
                    json.dump({"LogConfig": {"Type": "json-file", "Config": o}}, f)
            cs[name] = c
        fake.set_faults([{"op": "logs", "kind": "outage", "seconds": 5}])
        d = env.start(dry_run=False)
        for name, c in cs.items():
            c.write_lines(fixture_lines(N, name), ts_ns=NOW_NS)
        time.sleep(7)
        for name, c in cs.items():
            c.write_lines(["%s after" % name], ts_ns=NOW_NS + 30 * 10**9)  # after line N
        deadline = time.time() + 40
        while time.time() < deadline:
            got = by_stream(fake.events())
            if all(("g", n) in got and got[("g", n)][-1:] == ["%s after" % n] for n in cs):
                break
            time.sleep(0.2)
        self.assertEqual(d.stop(), 0)
        got = by_stream(fake.events())
        self.assertEqual(got[("g", "block")], fixture_lines(N, "block") + ["block after"])
        self.assertEqual(got[("g", "big")], fixture_lines(N, "big") + ["big after"])
        msgs = got[("g", "drop")]
        markers = [m for m in msgs if m.startswith("cwlogd: dropped ")]
        data = [m for m in msgs if not m.startswith("cwlogd: dropped ")]
        dropped = sum(int(m.split()[2]) for m in markers)
        self.assertGreater(dropped, 0, "the source's own policy did not apply")
        self.assertEqual(len(data) - 1 + dropped, N, "delivered + dropped must add up")
        log = d.log()
        self.assertIn("has its own log options: mode blocking, max-buffer-size 16384", log)
        self.assertIn("has its own log options: mode non-blocking, max-buffer-size 4194304", log)

    def test_oversized_events_are_split_to_the_learnt_limit(self):
        fake = self.fake(max_event_size=4096)
        env = self.env_for(fake)
        c = Container(env.containers, name="big")
        big = "é" * 5000  # 10000 bytes
        c.write_lines([big, "small"], ts_ns=NOW_NS)
        err = env.upload_once()
        msgs = [e["message"] for e in fake.events()]
        self.assertEqual("".join(msgs[:-1]), big)
        self.assertTrue(all(len(m.encode()) <= 4096 for m in msgs))
        self.assertEqual(msgs[-1], "small")
        self.assertIn("limit is 4096", err)

    def test_too_old_events_are_counted_as_rejected_and_passed(self):
        fake = self.fake()
        env = self.env_for(fake)
        c = Container(env.containers, name="old")
        old = NOW_NS - 20 * 86400 * 10**9
        c.write_lines(["ancient 1", "ancient 2"], ts_ns=old)
        c.write_lines(["fresh"], ts_ns=NOW_NS)
        err = env.upload_once()
        self.assertEqual([e["message"] for e in fake.events()], ["fresh"])
        self.assertIn("2 event(s) rejected as too old", err)
        env.upload_once()  # checkpoint moved past them: nothing again
        self.assertEqual(len(fake.events()), 1)

    def test_wrong_secret_fails_loudly(self):
        fake = self.fake(static_credentials=[("AKIDTEST", "right-secret")])
        env = self.env_for(fake, cw_extra="access_key_id = AKIDTEST\nsecret_access_key = S3cr3t-Wr0ng\n")
        c = Container(env.containers, name="auth")
        c.write_lines(["x"], ts_ns=NOW_NS)
        d = env.start(dry_run=False)
        d.wait_log("InvalidSignatureException", timeout=20)
        d.stop()
        self.assertEqual(fake.events(), [])
        self.assertNotIn("S3cr3t-Wr0ng", d.log())  # secrets never reach a log line

    def test_clock_off_by_an_hour_fails_loudly(self):
        fake = self.fake()
        fake.config(clock_offset=3600)
        env = self.env_for(fake)
        c = Container(env.containers, name="clk")
        c.write_lines(["x"], ts_ns=NOW_NS)
        d = env.start(dry_run=False)
        d.wait_log("clock", timeout=30)
        d.stop()
        # An error (the operator must act), rate-limited per stream like any failure.
        self.assertRegex(d.log(), r"error: cloudwatch: \w+ \S+ / \S+ failed: "
                                  r"InvalidSignatureException: Signature .* is this host's clock right\?")

    def test_tls_endpoint_verified_with_ca_file(self):
        fake = self.fake(tls=True)
        self.assertTrue(fake.endpoint.startswith("https://"))
        env = self.env_for(fake)  # cloudwatch_keys() adds ca_file
        c = Container(env.containers, name="tls")
        c.write_lines(["over tls"], ts_ns=NOW_NS)
        env.upload_once()
        self.assertEqual([e["message"] for e in fake.events()], ["over tls"])

    def test_invalid_parameter_isolates_the_bad_event_and_drops_only_it(self):
        fake = self.fake()
        fake.set_faults([{"op": "PutLogEvents", "kind": "error", "status": 400,
                          "type": "InvalidParameterException", "message": "bad event",
                          "count": 3}])
        env = self.env_for(fake)
        c = Container(env.containers, name="inv")
        c.write_lines(["e1", "e2", "e3", "e4"], ts_ns=NOW_NS)
        err = env.upload_once()
        # 4 -> [2, 2]: the first half fails -> [1, 1]: the first fails for good.
        self.assertEqual([e["message"] for e in fake.events()], ["e2", "e3", "e4"])
        self.assertIn("refused for good", err)
        env.upload_once()
        self.assertEqual(len(fake.events()), 3)  # the checkpoint passed the dropped event

    def test_imds_outage_at_start_delays_but_loses_nothing(self):
        fake = self.fake()
        fake.set_faults([{"op": "imds", "kind": "outage", "seconds": 3}])
        env = self.env_for(fake)
        c = Container(env.containers, name="imds")
        c.write_lines(fixture_lines(50), ts_ns=NOW_NS)
        d = env.start(dry_run=False)
        fake.wait_events(50, timeout=40)
        d.stop()
        self.assertEqual([e["message"] for e in fake.events()], fixture_lines(50))

    def test_sigterm_delivers_what_is_buffered(self):
        fake = self.fake()
        env = self.env_for(fake, cw_extra="flush_interval = 1h\n")
        c = Container(env.containers, name="term")
        d = env.start(dry_run=False)
        c.write_lines(fixture_lines(100), ts_ns=NOW_NS)
        time.sleep(1)
        self.assertEqual(fake.events(), [])  # still batching (flush_interval = 1h)
        d.signal(signal.SIGTERM)
        self.assertEqual(d.stop(), 0)
        self.assertEqual([e["message"] for e in fake.events()], fixture_lines(100))
        d2 = env.start(dry_run=False)
        time.sleep(1)
        d2.stop()
        self.assertEqual(len(fake.events()), 100)

    def test_sigterm_during_a_short_outage_retries_and_delivers_before_exiting(self):
        # Found under systemd (tests/packaging/test_systemd.py): `systemctl stop`
        # while CloudWatch reset connections gave up at the first failure.
        fake = self.fake()
        env = self.env_for(fake, cw_extra="flush_interval = 1h\n")
        c = Container(env.containers, name="term")
        d = env.start(dry_run=False)
        time.sleep(0.5)
        fake.set_faults([{"op": "logs", "kind": "outage", "seconds": 3}])
        c.write_lines(fixture_lines(100), ts_ns=NOW_NS)
        time.sleep(1)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.stop(), 0)
        took = time.monotonic() - t0
        self.assertEqual([e["message"] for e in fake.events()], fixture_lines(100))
        self.assertLess(took, 10, "the stop outlasted a 3 s outage by far")
        self.assertGreater(sum(per.get("outage", 0)
                               for per in fake.requests()["faults"].values()), 0)


if __name__ == "__main__":
    main()
