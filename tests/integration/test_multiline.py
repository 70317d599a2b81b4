"""Multiline joining: a start pattern (ERE) or a datetime format decides where
an event starts; stack traces (Java, Python, Go) become one event each; a
pending event is flushed after multiline_timeout; a joined event never
exceeds the event size limit."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Container, Env, main  # noqa: E402
import unittest  # noqa: E402

NOW = time.time_ns()

JAVA = [
    "2024-11-24 09:20:00.123 ERROR [main] c.e.OrderService - failed to process order 17",
    "java.lang.IllegalStateException: inventory service returned 503",
    "\tat com.example.InventoryClient.reserve(InventoryClient.java:88)",
    "\tat com.example.OrderService.process(OrderService.java:42)",
    "Caused by: java.net.SocketTimeoutException: Read timed out",
    "\t... 12 more",
]
PYTHON = [
    "2024-11-24 09:20:01,456 ERROR worker crashed",
    "Traceback (most recent call last):",
    '  File "/app/worker.py", line 10, in run',
    "    handle(job)",
    "KeyError: 'id'",
]
GO = [
    "2024-11-24 09:20:02 panic: runtime error: index out of range [3] with length 3",
    "",
    "goroutine 1 [running]:",
    "main.main()",
    "\t/app/main.go:12 +0x1d",
    "exit status 2",
]
PLAIN = "2024-11-24 09:20:03.000 INFO [main] c.e.OrderService - order 18 done"


class Multiline(unittest.TestCase):
    def run_once(self, **src):
        env = Env(self)
        c = Container(env.containers, name="app")
        c.write_lines(JAVA + PYTHON + GO + [PLAIN], ts_ns=NOW)
        env.write_config({"containers": env.docker_source(**src)})
        recs, _ = env.once()
        return [r["message"] for r in recs]

    def test_pattern_joins_stack_traces(self):
        msgs = self.run_once(multiline_pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2} ")
        self.assertEqual(msgs, ["\n".join(JAVA), "\n".join(PYTHON), "\n".join(GO), PLAIN])

    def test_datetime_format_joins_stack_traces(self):
        msgs = self.run_once(datetime_format="%Y-%m-%d %H:%M:%S")
        self.assertEqual(msgs, ["\n".join(JAVA), "\n".join(PYTHON), "\n".join(GO), PLAIN])

    def test_without_multiline_every_line_is_an_event(self):
        msgs = self.run_once()
        self.assertEqual(len(msgs), len(JAVA + PYTHON + GO) + 1 - 1)  # the empty line is skipped

    def test_joined_event_is_cut_at_the_event_size_limit(self):
        env = Env(self)
        p = os.path.join(env.logs, "app.log")
        with open(p, "w") as f:
            f.write("START first\n" + ("continuation line " * 10 + "\n") * 30 + "START second\n")
        env.write_config({"app": {"type": "file", "path": p, "group": "g",
                                  "start_at": "beginning", "multiline_pattern": "^START"}},
                         cloudwatch_extra="max_event_size = 1k\n")
        recs, _ = env.once()
        msgs = [r["message"] for r in recs]
        self.assertTrue(all(len(m.encode()) <= 1024 for m in msgs))
        self.assertTrue(msgs[0].startswith("START first\n"))
        self.assertEqual(msgs[-1], "START second")
        joined = "\n".join(msgs[:-1])
        self.assertEqual(joined.count("continuation line"), 300)

    def test_pending_event_is_flushed_after_the_timeout(self):
        env = Env(self)
        c = Container(env.containers, name="app")
        env.write_config({"containers": env.docker_source(
            multiline_pattern="^[0-9]{4}-", multiline_timeout="500ms")})
        d = env.start()
        c.write_lines(PYTHON, ts_ns=NOW)
        d.wait_count(1, timeout=10)  # no next start line ever comes
        d.stop()
        self.assertEqual(d.messages(), ["\n".join(PYTHON)])

    def test_restart_in_the_middle_of_an_event_loses_nothing(self):
        env = Env(self)
        c = Container(env.containers, name="app")
        c.write_lines(JAVA[:3], ts_ns=NOW)
        env.write_config({"containers": env.docker_source(multiline_pattern="^[0-9]{4}-",
                                                          multiline_timeout="1h")})
        d = env.start()
        time.sleep(1)
        d.stop()  # the event is still open: not delivered, not checkpointed past
        self.assertEqual(d.messages(), [])
        c.write_lines(JAVA[3:] + [PLAIN], ts_ns=NOW)
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["\n".join(JAVA), PLAIN])

    def test_event_spanning_a_rotation_while_stopped_is_joined(self):
        env = Env(self)
        c = Container(env.containers, name="app")
        c.write_lines([PLAIN], ts_ns=NOW)
        env.write_config({"containers": env.docker_source(multiline_pattern="^[0-9]{4}-")})
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], [PLAIN])
        c.write_lines(JAVA[:3], ts_ns=NOW)
        c.rotate()
        c.write_lines(JAVA[3:] + [PLAIN], ts_ns=NOW)
        recs, _ = env.once()
        self.assertEqual([r["message"] for r in recs], ["\n".join(JAVA), PLAIN])

    def test_event_spanning_a_rotation_while_running_is_joined(self):
        env = Env(self)
        c = Container(env.containers, name="app")
        env.write_config({"containers": env.docker_source(multiline_pattern="^[0-9]{4}-",
                                                          multiline_timeout="30s")})
        d = env.start()
        c.write_lines(JAVA[:3], ts_ns=NOW)
        time.sleep(0.5)
        c.rotate()
        c.write_lines(JAVA[3:] + [PLAIN, PLAIN], ts_ns=NOW)
        d.wait_count(2, timeout=20)
        d.stop()
        self.assertEqual(d.messages()[:2], ["\n".join(JAVA), PLAIN])


if __name__ == "__main__":
    main()
