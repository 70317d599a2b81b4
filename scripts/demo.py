"""The demo behind scripts/demo: sample container logs, the fake endpoint,
a preview with --dry-run, then the real upload and what arrived."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "tests")
sys.path.insert(0, "tests/integration")
from fake_aws import FakeAWS  # noqa: E402
from harness import Container  # noqa: E402

BIN = sys.argv[1]


def ecs(name):
    return {"com.amazonaws.ecs.cluster": "demo-cluster",
            "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/demo-cluster/5d2f0c1e9a8b4c7d",
            "com.amazonaws.ecs.container-name": name,
            "com.amazonaws.ecs.task-definition-family": "shop",
            "com.amazonaws.ecs.task-definition-version": "7"}


def run(args, env):
    print("$ cwlogd " + " ".join(args[2:]))
    return subprocess.run([BIN] + args, env=env, capture_output=True, text=True)


def main():
    work = tempfile.mkdtemp(prefix="cwlogd-demo.")
    fake = FakeAWS(seed=1)
    fake.start()
    try:
        root = os.path.join(work, "containers")
        os.makedirs(root)
        web = Container(root, name="ecs-shop-7-web", labels=ecs("web"))
        api = Container(root, name="ecs-shop-7-api", labels=ecs("api"))
        redis = Container(root, name="redis", labels={"com.amazonaws.ecs.cluster": "demo-cluster"})
        t = time.time_ns()
        web.write_lines(["GET /cart 200 12ms", "GET /checkout 200 48ms",
                         'POST /pay 502 "upstream timeout"'], ts_ns=t)
        api.write_lines(["order 1001 created", "order 1001 paid ✓",
                         "émoji and unicode: 日本語 😀"], ts_ns=t)
        api.write("x" * 20000, ts_ns=t + 3_000_000)  # Docker splits it at 16 KiB; joined back
        api.write(" (end of a long line)\n", ts_ns=t + 3_000_000)
        redis.write_lines(["Ready to accept connections tcp"], ts_ns=t)
        os.makedirs(os.path.join(work, "ecs"))
        with open(os.path.join(work, "ecs", "ecs-agent.log"), "w") as f:
            f.write('level=info msg="Registered container instance"\n')
        conf = os.path.join(work, "cwlogd.conf")
        with open(conf, "w") as f:
            f.write(f"""[agent]
state_dir = {work}/state

[cloudwatch]
; the fake endpoint stands in for https://logs.REGION.amazonaws.com and for IMDS
endpoint = {fake.endpoint}
imds_endpoint = {fake.imds_endpoint}
retention_days = 30

[source containers]
type = docker
path = {root}
start_at = beginning
group = /ecs/{{ecs_cluster|standalone}}/{{ecs_task_family|container_name}}
stream = {{ecs_container_name|container_name}}/{{ecs_task_id|container_id_short}}
mode = non-blocking
max_buffer_size = 4m

[source ecs-agent]
type = file
path = {work}/ecs/ecs-agent.log*
start_at = beginning
group = /ecs/host
stream = {{instance_id}}/ecs-agent
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        p = run(["--config", conf, "--check-config"], env)
        print(p.stdout + p.stderr)

        p = run(["--config", conf, "--once", "--dry-run"], env)
        print("(preview: each line is one record that would be uploaded)")
        for line in p.stdout.splitlines():
            print("  " + (line if len(line) < 150 else line[:130] + "..."))
        print()

        p = run(["--config", conf, "--once"], env)
        print(p.stderr)
        if p.returncode != 0:
            sys.exit("cwlogd --once failed with %d" % p.returncode)

        print("== what the fake CloudWatch Logs received, per log group / stream")
        by = {}
        for e in fake.events():
            by.setdefault((e["group"], e["stream"]), []).append(e)
        for (g, s), evs in by.items():
            print(f"{g}  {s}: {len(evs)} event(s)")
            for e in evs:
                m = e["message"]
                print(f"    {e['timestamp']}  {m if len(m) < 70 else m[:50] + f'... ({len(m)} chars)'}")
        st = fake.state()["groups"]
        print("\nlog groups created: " + ", ".join(
            f"{g} (retention {v['retentionInDays']} days)" for g, v in st.items()))
        ops = {op: v["total"] for op, v in fake.requests()["ops"].items()}
        print("requests: " + json.dumps(ops))

        before = len(fake.events())
        run(["--config", conf, "--once"], env)
        print(f"a second run sends nothing new: {len(fake.events()) - before} event(s)")
    finally:
        fake.stop()
        shutil.rmtree(work, True)


if __name__ == "__main__":
    main()
