#!/usr/bin/env python3
"""Self-test of tests/fake_aws.py: the fake must behave like IMDSv2 and
CloudWatch Logs before the agent's integration tests may trust it.

Requests are signed here by a small SigV4 signer of this file's own, so a
mistake in the fake's verifier cannot cancel out against the same mistake in
the signer; the verifier is also checked against AWS's published vectors."""

import calendar
import hashlib
import hmac
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, HERE)
import fake_aws  # noqa: E402

SHARED = os.environ.get("CWLOGD_SHARED") or os.path.join(HERE, "..", "..", "shared")
VECTORS = os.path.join(SHARED, "testdata", "aws-sigv4-test-suite")
REGION = "us-west-2"
DAY_MS = 86400 * 1000

FAKE = None
STATE_DIR = None


def setUpModule():
    global FAKE, STATE_DIR
    STATE_DIR = tempfile.TemporaryDirectory(prefix="fake-aws-selftest-")
    FAKE = fake_aws.FakeAWS(region=REGION, seed=1234, credential_lifetime=60,
                            state_file=os.path.join(STATE_DIR.name, "state.json"),
                            ecs_auth_token="ecs-secret-token").start()


def tearDownModule():
    FAKE.stop()
    STATE_DIR.cleanup()


# ---- an independent client ------------------------------------------------

def sign(method, path, headers, body, creds, region=REGION, service="logs",
         when=None, unsigned=()):
    """Return the headers to send, Authorization included.  Every header
    except those named in `unsigned` is signed."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if when is None else when))
    day = stamp[:8]
    out = {k.lower(): str(v) for k, v in headers.items()}
    out["x-amz-date"] = stamp
    if creds.get("token"):
        out["x-amz-security-token"] = creds["token"]
    names = sorted(n for n in out if n not in unsigned)
    canonical = "%s\n%s\n\n%s\n%s\n%s" % (
        method, path, "".join("%s:%s\n" % (n, out[n].strip()) for n in names),
        ";".join(names), hashlib.sha256(body).hexdigest())
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    to_sign = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (
        stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
    key = ("AWS4" + creds["secret"]).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        creds["key"], scope, ";".join(names), signature)
    return out


def request(port, method, path, headers=None, body=b"", timeout=10, context=None):
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    if context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def fake_creds(fake=None):
    c = (fake or FAKE).current_credentials()
    return {"key": c.access_key_id, "secret": c.secret_access_key, "token": c.token}


def logs(op, payload, creds=None, fake=None, when=None, unsigned=(), raw_body=None,
         content_type="application/x-amz-json-1.1", tamper=None):
    """A signed CloudWatch Logs call: (status, parsed JSON or None, headers)."""
    fake = fake or FAKE
    body = raw_body if raw_body is not None else json.dumps(payload).encode()
    hdrs = {"Host": "127.0.0.1:%d" % fake.port, "Content-Type": content_type,
            "X-Amz-Target": "Logs_20140328." + op}
    hdrs = sign("POST", "/", hdrs, body, creds or fake_creds(fake), when=when,
                unsigned=unsigned)
    if tamper:
        body = tamper(body)
    status, rh, data = request(fake.port, "POST", "/", hdrs, body)
    return status, (json.loads(data) if data else None), rh


def imds_token(port=None, ttl=60):
    status, _, body = request(port or FAKE.imds_port, "PUT", "/latest/api/token",
                              {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
    assert status == 200, status
    return body.decode()


def imds_get(path, token, port=None):
    hdrs = {} if token is None else {"X-aws-ec2-metadata-token": token}
    return request(port or FAKE.imds_port, "GET", path, hdrs)


def now_ms():
    return int(time.time() * 1000)


def parse_iso(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class FakeTestCase(unittest.TestCase):
    def setUp(self):
        FAKE.reset()
        FAKE.config(clock_offset=0, max_event_size=fake_aws.DEFAULT_MAX_EVENT_SIZE)

    def assertAwsError(self, result, status, type_, message=None):
        code, doc, headers = result
        self.assertEqual(code, status, doc)
        self.assertEqual(doc["__type"], type_, doc)
        self.assertEqual(headers.get("x-amzn-errortype"), type_)
        self.assertIn("x-amzn-requestid", headers)
        if message is not None:
            self.assertEqual(doc.get("message"), message)
        return doc

    def put(self, events, group="g", stream="s", **kw):
        return logs("PutLogEvents", {"logGroupName": group, "logStreamName": stream,
                                     "logEvents": events}, **kw)


# ---- SigV4 verifier against the official vectors ---------------------------

def _parse_vector_request(path):
    with open(path, "rb") as f:
        text = f.read().decode("latin-1")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + "\r\n" + line)
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, rest.rsplit(" ", 1)[0], headers, body.encode("latin-1")


@unittest.skipUnless(os.path.isdir(VECTORS), "SigV4 vectors not found at " + VECTORS)
class SigV4VectorTest(unittest.TestCase):
    def cases(self):
        for name in sorted(os.listdir(VECTORS)):
            ctx = os.path.join(VECTORS, name, "context.json")
            if os.path.exists(ctx):
                with open(ctx) as f:
                    yield name, json.load(f)

    def verify(self, name, ctx, strict):
        method, target, headers, body = _parse_vector_request(
            os.path.join(VECTORS, name, "header-signed-request.txt"))
        c = ctx["credentials"]
        cred = fake_aws.Credential(c["access_key_id"], c["secret_access_key"], c.get("token"))
        return fake_aws.sigv4_verify(
            method, target, headers, body, region=ctx["region"], service=ctx["service"],
            now=parse_iso(ctx["timestamp"]), normalize=ctx["normalize"],
            lookup=lambda k: cred if k == cred.access_key_id else None,
            require_signed_token=strict)

    def test_verifier_reproduces_every_canonical_request_and_accepts_signature(self):
        n = 0
        for name, ctx in self.cases():
            with self.subTest(vector=name):
                method, target, headers, body = _parse_vector_request(
                    os.path.join(VECTORS, name, "header-signed-request.txt"))
                auth = dict(headers)["Authorization"]
                signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
                with open(os.path.join(VECTORS, name, "header-canonical-request.txt"),
                          encoding="utf-8") as f:
                    expected = f.read()
                got = fake_aws.sigv4_canonical_request(
                    method, target, headers, signed, hashlib.sha256(body).hexdigest(),
                    ctx["normalize"])
                self.assertEqual(got, expected)
                self.verify(name, ctx, strict=False)
                n += 1
        self.assertGreaterEqual(n, 30)

    def test_verifier_rejects_tampered_vector(self):
        name, ctx = next(c for c in self.cases() if c[0] == "get-vanilla")
        ctx = dict(ctx, credentials=dict(ctx["credentials"], secret_access_key="x" * 40))
        with self.assertRaises(fake_aws.AwsError) as cm:
            self.verify(name, ctx, strict=False)
        self.assertEqual(cm.exception.type, "InvalidSignatureException")

    def test_strict_mode_requires_signed_session_token(self):
        ctx = dict(self.cases())["post-sts-header-after"]
        with self.assertRaises(fake_aws.AwsError) as cm:
            self.verify("post-sts-header-after", ctx, strict=True)
        self.assertEqual(cm.exception.type, "IncompleteSignatureException")
        self.verify("post-sts-header-before", dict(self.cases())["post-sts-header-before"],
                    strict=True)


# ---- IMDSv2 and ECS ---------------------------------------------------------

class ImdsTest(FakeTestCase):
    def test_token_put_validates_ttl_header(self):
        port = FAKE.imds_port
        self.assertEqual(request(port, "PUT", "/latest/api/token")[0], 400)
        for bad in ("0", "21601", "abc", "-5", ""):
            with self.subTest(ttl=bad):
                st = request(port, "PUT", "/latest/api/token",
                             {"X-aws-ec2-metadata-token-ttl-seconds": bad})[0]
                self.assertEqual(st, 400)
        for good in ("1", "21600"):
            st, hdrs, body = request(port, "PUT", "/latest/api/token",
                                     {"X-aws-ec2-metadata-token-ttl-seconds": good})
            self.assertEqual(st, 200)
            self.assertEqual(hdrs["x-aws-ec2-metadata-token-ttl-seconds"], good)
            self.assertGreater(len(body), 20)
        st = request(port, "PUT", "/latest/api/token",
                     {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                      "X-Forwarded-For": "10.1.1.1"})[0]
        self.assertEqual(st, 403)
        self.assertEqual(request(port, "GET", "/latest/api/token")[0], 405)

    def test_get_without_valid_token_is_401_imdsv1_disabled(self):
        self.assertEqual(imds_get("/latest/meta-data/instance-id", None)[0], 401)
        self.assertEqual(imds_get("/latest/meta-data/instance-id", "bogus")[0], 401)
        token = imds_token(ttl=1)
        self.assertEqual(imds_get("/latest/meta-data/instance-id", token)[0], 200)
        FAKE.config(clock_offset=2)
        self.assertEqual(imds_get("/latest/meta-data/instance-id", token)[0], 401)

    def test_metadata_paths(self):
        token = imds_token()
        st, _, body = imds_get("/latest/meta-data/instance-id", token)
        self.assertEqual((st, body.decode()), (200, FAKE.instance_id))
        st, _, body = imds_get("/latest/meta-data/placement/region", token)
        self.assertEqual((st, body.decode()), (200, REGION))
        st, _, body = imds_get("/latest/dynamic/instance-identity/document", token)
        doc = json.loads(body)
        self.assertEqual((doc["region"], doc["instanceId"], doc["accountId"]),
                         (REGION, FAKE.instance_id, FAKE.account_id))
        self.assertEqual(imds_get("/latest/meta-data/no-such-thing", token)[0], 404)

    def test_role_credentials_shape(self):
        FAKE.rotate_credentials()
        token = imds_token()
        for path in ("/latest/meta-data/iam/security-credentials/",
                     "/latest/meta-data/iam/security-credentials"):
            st, _, body = imds_get(path, token)
            self.assertEqual((st, body.decode()), (200, FAKE.role_name))
        st, _, body = imds_get("/latest/meta-data/iam/security-credentials/" + FAKE.role_name,
                               token)
        self.assertEqual(st, 200)
        doc = json.loads(body)
        self.assertEqual(doc["Code"], "Success")
        self.assertEqual(doc["Type"], "AWS-HMAC")
        self.assertRegex(doc["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(doc["LastUpdated"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(doc["AccessKeyId"], r"^ASIA[A-Z2-7]{16}$")
        left = parse_iso(doc["Expiration"]) - time.time()
        self.assertTrue(59 <= left <= 61, left)
        # Those credentials work against CloudWatch Logs: the whole chain.
        creds = {"key": doc["AccessKeyId"], "secret": doc["SecretAccessKey"],
                 "token": doc["Token"]}
        self.assertEqual(logs("CreateLogGroup", {"logGroupName": "via-imds"}, creds)[0], 200)
        self.assertEqual(imds_get("/latest/meta-data/iam/security-credentials/other-role",
                                  token)[0], 404)

    def test_ecs_credentials_require_authorization(self):
        uri = FAKE.ecs_relative_uri
        self.assertEqual(request(FAKE.imds_port, "GET", uri)[0], 401)
        self.assertEqual(request(FAKE.imds_port, "GET", uri, {"Authorization": "nope"})[0], 401)
        st, _, body = request(FAKE.imds_port, "GET", uri, {"Authorization": "ecs-secret-token"})
        self.assertEqual(st, 200)
        doc = json.loads(body)
        cur = FAKE.current_credentials()
        self.assertEqual((doc["AccessKeyId"], doc["Token"]), (cur.access_key_id, cur.token))
        self.assertIn("Expiration", doc)
        self.assertIn("RoleArn", doc)


class RotationTest(unittest.TestCase):
    def test_keys_rotate_near_expiry_and_expired_keys_are_refused(self):
        with fake_aws.FakeAWS(region=REGION, seed=7, credential_lifetime=2,
                              rotation_window=1) as fake:
            fake.create("g", "s")
            token = imds_token(fake.imds_port)
            path = "/latest/meta-data/iam/security-credentials/" + fake.role_name

            def fetch():
                doc = json.loads(imds_get(path, token, fake.imds_port)[2])
                return doc, {"key": doc["AccessKeyId"], "secret": doc["SecretAccessKey"],
                             "token": doc["Token"]}

            first, c1 = fetch()
            self.assertEqual(fetch()[0]["AccessKeyId"], first["AccessKeyId"])
            put = {"logGroupName": "g", "logStreamName": "s",
                   "logEvents": [{"timestamp": now_ms(), "message": "one"}]}
            self.assertEqual(logs("PutLogEvents", put, c1, fake)[0], 200)

            expiry = parse_iso(first["Expiration"])
            time.sleep(max(0.0, expiry - 1 - time.time()) + 0.05)
            second, c2 = fetch()
            self.assertNotEqual(second["AccessKeyId"], first["AccessKeyId"])
            self.assertGreater(parse_iso(second["Expiration"]), expiry)
            self.assertEqual(logs("PutLogEvents", put, c1, fake)[0], 200)  # not yet expired
            self.assertEqual(logs("PutLogEvents", put, c2, fake)[0], 200)

            time.sleep(max(0.0, expiry - time.time()) + 0.05)
            code, doc, _ = logs("PutLogEvents", put, c1, fake)
            self.assertEqual((code, doc["__type"]), (400, "ExpiredTokenException"))
            self.assertEqual(logs("PutLogEvents", put, c2, fake)[0], 200)
            self.assertEqual(len(fake.events()), 4)


# ---- CloudWatch Logs ------------------------------------------------------------

class LogsTest(FakeTestCase):
    def test_put_is_stored_and_read_back_three_ways(self):
        code, doc, _ = logs("CreateLogGroup", {"logGroupName": "/ecs/app"})
        self.assertEqual((code, doc), (200, None))
        code, doc, _ = logs("CreateLogStream", {"logGroupName": "/ecs/app",
                                                "logStreamName": "web/1"})
        self.assertEqual((code, doc), (200, None))
        code, doc, _ = logs("DescribeLogGroups", {})
        self.assertEqual([g["logGroupName"] for g in doc["logGroups"]], ["/ecs/app"])
        t = now_ms()
        code, doc, _ = self.put([{"timestamp": t, "message": "hello"},
                                 {"timestamp": t + 1, "message": "wörld ✓"}],
                                "/ecs/app", "web/1")
        self.assertEqual(code, 200, doc)
        self.assertIn("nextSequenceToken", doc)
        self.assertNotIn("rejectedLogEventsInfo", doc)

        evs = FAKE.events("/ecs/app", "web/1")
        self.assertEqual([(e["timestamp"], e["message"]) for e in evs],
                         [(t, "hello"), (t + 1, "wörld ✓")])
        self.assertTrue(all(e["acked"] and e["request_id"] for e in evs))
        status, _, body = request(FAKE.port, "GET", "/_fake/events?group=/ecs/app")
        self.assertEqual(status, 200)
        self.assertEqual([e["message"] for e in json.loads(body)["events"]],
                         ["hello", "wörld ✓"])
        with open(FAKE.state_file, encoding="utf-8") as f:
            state = json.load(f)
        self.assertEqual([e["message"] for e in state["events"]], ["hello", "wörld ✓"])
        self.assertIn("web/1", state["groups"]["/ecs/app"]["streams"])

        code, doc, _ = logs("DescribeLogStreams", {"logGroupName": "/ecs/app"})
        self.assertEqual(code, 200)
        self.assertEqual([s["logStreamName"] for s in doc["logStreams"]], ["web/1"])
        self.assertEqual(doc["logStreams"][0]["lastEventTimestamp"], t + 1)
        reqs = FAKE.requests()
        self.assertEqual(reqs["ops"]["PutLogEvents"]["status"], {"200": 1})

    def test_create_group_and_stream_errors(self):
        self.assertEqual(logs("CreateLogGroup", {"logGroupName": "g"})[0], 200)
        self.assertAwsError(logs("CreateLogGroup", {"logGroupName": "g"}), 400,
                            "ResourceAlreadyExistsException")
        self.assertAwsError(logs("CreateLogStream", {"logGroupName": "nope",
                                                     "logStreamName": "s"}),
                            400, "ResourceNotFoundException",
                            "The specified log group does not exist.")
        self.assertEqual(logs("CreateLogStream", {"logGroupName": "g",
                                                  "logStreamName": "s"})[0], 200)
        self.assertAwsError(logs("CreateLogStream", {"logGroupName": "g",
                                                     "logStreamName": "s"}),
                            400, "ResourceAlreadyExistsException")
        self.assertAwsError(logs("CreateLogGroup", {"logGroupName": "bad name!"}),
                            400, "InvalidParameterException")
        self.assertAwsError(logs("CreateLogStream", {"logGroupName": "g",
                                                     "logStreamName": "a:b"}),
                            400, "InvalidParameterException")
        self.assertAwsError(logs("CreateLogGroup", {"logGroupName": "x" * 513}),
                            400, "InvalidParameterException")

    def test_retention_policy_validates_days(self):
        FAKE.create("g")
        self.assertEqual(logs("PutRetentionPolicy", {"logGroupName": "g",
                                                     "retentionInDays": 30})[0], 200)
        self.assertEqual(FAKE.state()["groups"]["g"]["retentionInDays"], 30)
        self.assertAwsError(logs("PutRetentionPolicy", {"logGroupName": "g",
                                                        "retentionInDays": 31}),
                            400, "InvalidParameterException")
        self.assertAwsError(logs("PutRetentionPolicy", {"logGroupName": "missing",
                                                        "retentionInDays": 30}),
                            400, "ResourceNotFoundException")

    def test_put_to_missing_group_or_stream(self):
        ev = [{"timestamp": now_ms(), "message": "x"}]
        self.assertAwsError(self.put(ev), 400, "ResourceNotFoundException",
                            "The specified log group does not exist.")
        FAKE.create("g")
        self.assertAwsError(self.put(ev), 400, "ResourceNotFoundException",
                            "The specified log stream does not exist.")
        self.assertEqual(FAKE.events(), [])

    def test_bad_signatures_are_rejected(self):
        FAKE.create("g", "s")
        ev = [{"timestamp": now_ms(), "message": "x"}]
        good = fake_creds()
        doc = self.assertAwsError(self.put(ev, creds=dict(good, secret="W" * 40)), 400,
                                  "InvalidSignatureException")
        self.assertTrue(doc["message"].startswith(
            "The request signature we calculated does not match"), doc)
        self.assertAwsError(self.put(ev, tamper=lambda b: b.replace(b'"x"', b'"y"')),
                            400, "InvalidSignatureException")
        self.assertAwsError(self.put(ev, creds=dict(good, key="ASIAAAAAAAAAAAAAAAAA")),
                            400, "UnrecognizedClientException")
        self.assertAwsError(self.put(ev, creds=dict(good, token=None)), 400,
                            "UnrecognizedClientException")
        self.assertAwsError(self.put(ev, creds=dict(good, token="forged")), 400,
                            "UnrecognizedClientException")
        self.assertAwsError(self.put(ev, unsigned=("host",)), 400, "InvalidSignatureException")
        self.assertAwsError(self.put(ev, unsigned=("x-amz-security-token",)), 400,
                            "IncompleteSignatureException")
        status, _, body = request(FAKE.port, "POST", "/", {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Logs_20140328.PutLogEvents"}, b"{}")
        self.assertEqual((status, json.loads(body)["__type"]),
                         (400, "MissingAuthenticationTokenException"))
        self.assertEqual(FAKE.events(), [])
        self.assertEqual(self.put(ev)[0], 200)

    def test_request_time_more_than_five_minutes_off(self):
        FAKE.create("g", "s")
        ev = [{"timestamp": now_ms(), "message": "x"}]
        doc = self.assertAwsError(self.put(ev, when=time.time() - 360), 400,
                                  "InvalidSignatureException")
        self.assertRegex(doc["message"], r"^Signature expired: \d{8}T\d{6}Z is now earlier "
                         r"than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$")
        doc = self.assertAwsError(self.put(ev, when=time.time() + 360), 400,
                                  "InvalidSignatureException")
        self.assertTrue(doc["message"].startswith("Signature not yet current:"), doc)
        self.assertEqual(self.put(ev, when=time.time() - 200)[0], 200)

    def test_static_key_without_token(self):
        FAKE.add_static_credentials("AKIDSTATICEXAMPLE001", "s" * 40)
        creds = {"key": "AKIDSTATICEXAMPLE001", "secret": "s" * 40, "token": None}
        self.assertEqual(logs("CreateLogGroup", {"logGroupName": "st"}, creds)[0], 200)

    def test_batch_count_limit(self):
        FAKE.create("g", "s")
        t = now_ms()
        self.assertEqual(self.put([{"timestamp": t, "message": "m"}] * 10000)[0], 200)
        doc = self.assertAwsError(self.put([{"timestamp": t, "message": "m"}] * 10001),
                                  400, "InvalidParameterException")
        self.assertIn("less than or equal to 10000", doc["message"])
        self.assertEqual(len(FAKE.events()), 10000)

    def test_batch_byte_limit_counts_utf8_plus_26(self):
        FAKE.create("g", "s")
        t = now_ms()
        half = 1048576 // 2 - 26
        self.assertEqual(self.put([{"timestamp": t, "message": "a" * half},
                                   {"timestamp": t, "message": "b" * half}])[0], 200)
        self.assertAwsError(self.put([{"timestamp": t, "message": "a" * half},
                                      {"timestamp": t, "message": "b" * (half + 1)}]),
                            400, "InvalidParameterException",
                            "Upload too large: 1048577 bytes exceeds limit of 1048576")
        # Two-byte characters count twice.
        self.assertAwsError(self.put([{"timestamp": t, "message": "a" * half},
                                      {"timestamp": t, "message": "é" * (half // 2 + 1)}]),
                            400, "InvalidParameterException")

    def test_event_size_limit_default_and_configured(self):
        FAKE.create("g", "s")
        t = now_ms()
        self.assertEqual(self.put([{"timestamp": t, "message": "a" * 1048550}])[0], 200)
        self.assertAwsError(self.put([{"timestamp": t, "message": "a" * 1048551}]), 400,
                            "InvalidParameterException",
                            "Log event too large: 1048551 bytes exceeds limit of 1048550")
        FAKE.config(max_event_size=262118)
        self.assertAwsError(self.put([{"timestamp": t, "message": "é" * 131060}]), 400,
                            "InvalidParameterException",
                            "Log event too large: 262120 bytes exceeds limit of 262118")
        self.assertEqual(self.put([{"timestamp": t, "message": "é" * 131059}])[0], 200)

    def test_order_span_and_shape_errors(self):
        FAKE.create("g", "s")
        t = now_ms()
        self.assertAwsError(self.put([{"timestamp": t, "message": "b"},
                                      {"timestamp": t - 1, "message": "a"}]),
                            400, "InvalidParameterException",
                            "Log events in a single PutLogEvents request must be in "
                            "chronological order.")
        self.assertEqual(self.put([{"timestamp": t - DAY_MS, "message": "a"},
                                   {"timestamp": t, "message": "b"}])[0], 200)
        self.assertAwsError(self.put([{"timestamp": t - DAY_MS - 1, "message": "a"},
                                      {"timestamp": t, "message": "b"}]),
                            400, "InvalidParameterException")
        self.assertAwsError(self.put([]), 400, "InvalidParameterException")
        self.assertAwsError(self.put([{"timestamp": t, "message": ""}]), 400,
                            "InvalidParameterException")
        self.assertAwsError(self.put([{"timestamp": "now", "message": "x"}]), 400,
                            "SerializationException")
        self.assertEqual(len(FAKE.events()), 2)

    def test_too_old_too_new_and_expired_events_are_rejected_not_failed(self):
        FAKE.create("g", "s")
        t = now_ms()
        hour = 3600 * 1000
        code, doc, _ = self.put([{"timestamp": t - 14 * DAY_MS - 2 * hour, "message": "old1"},
                                 {"timestamp": t - 14 * DAY_MS - hour, "message": "old2"},
                                 {"timestamp": t - 14 * DAY_MS + hour, "message": "kept1"}])
        self.assertEqual(code, 200)
        self.assertEqual(doc["rejectedLogEventsInfo"], {"tooOldLogEventEndIndex": 2})
        code, doc, _ = self.put([{"timestamp": t, "message": "kept2"},
                                 {"timestamp": t + hour, "message": "kept3"},
                                 {"timestamp": t + 3 * hour, "message": "new1"}])
        self.assertEqual(code, 200)
        self.assertEqual(doc["rejectedLogEventsInfo"], {"tooNewLogEventStartIndex": 2})
        FAKE.create("r", "s", retention=1)
        code, doc, _ = self.put([{"timestamp": t - DAY_MS - hour, "message": "exp1"},
                                 {"timestamp": t - DAY_MS - hour // 2, "message": "exp2"},
                                 {"timestamp": t - 2 * hour, "message": "kept4"}], group="r")
        self.assertEqual(code, 200)
        self.assertEqual(doc["rejectedLogEventsInfo"], {"expiredLogEventEndIndex": 2})
        self.assertEqual([e["message"] for e in FAKE.events()],
                         ["kept1", "kept2", "kept3", "kept4"])

    def test_protocol_errors(self):
        self.assertAwsError(logs("Frobnicate", {}), 400, "UnknownOperationException")
        self.assertAwsError(logs("CreateLogGroup", None, raw_body=b"{not json"), 400,
                            "SerializationException")
        self.assertAwsError(logs("CreateLogGroup", {"logGroupName": "g"},
                                 content_type="application/json"),
                            400, "SerializationException")


# ---- faults -----------------------------------------------------------------------

class FaultTest(FakeTestCase):
    def setUp(self):
        super().setUp()
        FAKE.create("g", "s")
        self.ev = [{"timestamp": now_ms(), "message": "a"}, {"timestamp": now_ms(), "message": "b"}]

    def test_throttle_503_500_error_and_expired_token(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "throttle", "count": 1},
                         {"op": "PutLogEvents", "kind": "503", "count": 1},
                         {"op": "PutLogEvents", "kind": "500", "count": 1},
                         {"op": "PutLogEvents", "kind": "expired_token", "count": 1},
                         {"op": "PutLogEvents", "kind": "error", "count": 1, "status": 400,
                          "type": "AccessDeniedException", "message": "no"}])
        self.assertAwsError(self.put(self.ev), 400, "ThrottlingException", "Rate exceeded")
        self.assertAwsError(self.put(self.ev), 503, "ServiceUnavailableException")
        self.assertAwsError(self.put(self.ev), 500, "InternalFailure")
        self.assertAwsError(self.put(self.ev), 400, "ExpiredTokenException")
        self.assertAwsError(self.put(self.ev), 400, "AccessDeniedException", "no")
        self.assertEqual(FAKE.events(), [])
        self.assertEqual(self.put(self.ev)[0], 200)
        stats = FAKE.requests()
        self.assertEqual(stats["ops"]["PutLogEvents"]["status"],
                         {"400": 3, "503": 1, "500": 1, "200": 1})
        self.assertEqual(stats["faults"]["PutLogEvents"],
                         {"throttle": 1, "503": 1, "500": 1, "expired_token": 1, "error": 1})

    def test_reset_before_stores_nothing(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "reset_before", "count": 1}])
        with self.assertRaises(ConnectionResetError) as cm:
            self.put(self.ev)
        self.assertNotIsInstance(cm.exception, http.client.RemoteDisconnected)
        self.assertEqual(FAKE.events(), [])
        self.assertEqual(self.put(self.ev)[0], 200)
        self.assertEqual(FAKE.requests()["ops"]["PutLogEvents"]["status"],
                         {"reset": 1, "200": 1})

    def test_reset_after_stores_then_resets_and_counts_duplicates(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "reset_after", "count": 1}])
        with self.assertRaises(ConnectionResetError) as cm:
            self.put(self.ev)
        self.assertNotIsInstance(cm.exception, http.client.RemoteDisconnected)
        self.assertEqual(self.put(self.ev)[0], 200)   # the retry duplicates
        evs = FAKE.events()
        self.assertEqual([(e["message"], e["acked"]) for e in evs],
                         [("a", False), ("b", False), ("a", True), ("b", True)])
        stats = FAKE.requests()
        self.assertEqual(stats["reset_after"], {"requests": 1, "events": 2})
        faulted = [entry for entry in stats["log"] if entry["fault"] == "reset_after"]
        self.assertEqual([entry["request_id"] for entry in faulted], [evs[0]["request_id"]])

    def test_close_without_response(self):
        FAKE.set_faults([{"op": "logs", "kind": "close", "count": 1}])
        with self.assertRaises(http.client.RemoteDisconnected):
            self.put(self.ev)
        self.assertEqual(self.put(self.ev)[0], 200)

    def test_latency_then_answer(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "latency", "seconds": 0.3}])
        start = time.monotonic()
        self.assertEqual(self.put(self.ev)[0], 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        self.assertEqual(len(FAKE.events()), 2)

    def test_outage_resets_everything_for_its_duration(self):
        FAKE.set_faults([{"op": "logs", "kind": "outage", "seconds": 1.0}])
        t0 = time.monotonic()
        for op in ("PutLogEvents", "CreateLogGroup"):
            with self.assertRaises(ConnectionResetError):
                logs(op, {"logGroupName": "z"})
        self.assertEqual(request(FAKE.port, "GET", "/_fake/health")[0], 200)  # not affected
        self.assertEqual(imds_get("/latest/meta-data/instance-id", imds_token())[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0, "machine too slow for this window")
        time.sleep(max(0.0, 1.05 - (time.monotonic() - t0)))
        self.assertEqual(self.put(self.ev)[0], 200)

    def test_garbage_empty_and_html_bodies(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "garbage", "count": 1},
                         {"op": "PutLogEvents", "kind": "empty", "count": 1},
                         {"op": "PutLogEvents", "kind": "html", "count": 1, "status": 502}])
        st, _, body = request(FAKE.port, "POST", "/", sign("POST", "/", {
            "Host": "127.0.0.1:%d" % FAKE.port, "X-Amz-Target": "Logs_20140328.PutLogEvents",
            "Content-Type": "application/x-amz-json-1.1"}, b"{}", fake_creds()), b"{}")
        self.assertEqual(st, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        self.assertEqual(self.put(self.ev)[:2], (200, None))
        with self.assertRaises(json.JSONDecodeError):
            self.put(self.ev)
        self.assertEqual(FAKE.requests()["ops"]["PutLogEvents"]["status"],
                         {"200": 2, "502": 1})

    def test_perform_then_a_mangled_answer(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "garbage", "count": 1, "perform": True},
                         {"op": "PutLogEvents", "kind": "error", "status": 500, "count": 1,
                          "perform": True}])
        with self.assertRaises(ValueError):  # the events are stored all the same
            self.put(self.ev)
        self.assertEqual(self.put(self.ev)[0], 500)
        self.assertEqual([(e["message"], e["acked"]) for e in FAKE.events()],
                         [("a", True), ("b", True), ("a", False), ("b", False)])
        with self.assertRaises(ValueError):
            fake_aws.FaultRule({"kind": "throttle", "perform": True}, 0)

    def test_endless_body_trickles_until_the_client_goes(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "endless", "seconds": 0.05}])
        body = json.dumps({"logGroupName": "g", "logStreamName": "s",
                           "logEvents": self.ev}).encode()
        hdrs = sign("POST", "/", {"Host": "127.0.0.1:%d" % FAKE.port,
                                  "X-Amz-Target": "Logs_20140328.PutLogEvents",
                                  "Content-Type": "application/x-amz-json-1.1"}, body, fake_creds())
        conn = http.client.HTTPConnection("127.0.0.1", FAKE.port, timeout=5)
        try:
            conn.request("POST", "/", body=body, headers=hdrs)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
            self.assertEqual(resp.read(4), b"    ")
        finally:
            conn.close()
        self.assertEqual(FAKE.events(), [])  # not performed
        self.assertEqual(FAKE.requests()["ops"]["PutLogEvents"]["status"], {"endless": 1})

    def test_after_count_and_duration(self):
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "throttle", "after": 1, "count": 2}])
        got = [self.put(self.ev)[0] for _ in range(4)]
        self.assertEqual(got, [200, 400, 400, 200])
        FAKE.set_faults([{"op": "PutLogEvents", "kind": "throttle", "duration": 0.3}])
        self.assertEqual(self.put(self.ev)[0], 400)
        time.sleep(0.35)
        self.assertEqual(self.put(self.ev)[0], 200)

    def test_probability_is_deterministic_for_a_seed(self):
        def run():
            out = []
            for _ in range(24):
                st, _, body = request(FAKE.port, "POST", "/", {
                    "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                    "Content-Type": "application/x-amz-json-1.1"}, b"{}")
                out.append(json.loads(body)["__type"])
            return out

        rule = [{"op": "DescribeLogGroups", "kind": "throttle", "probability": 0.5}]
        FAKE.set_faults(rule, seed=99)
        first = run()
        FAKE.set_faults(rule, seed=99)
        self.assertEqual(run(), first)
        self.assertEqual(set(first), {"ThrottlingException",
                                      "MissingAuthenticationTokenException"})
        FAKE.set_faults([dict(rule[0], probability=0)], seed=99)
        self.assertNotIn("ThrottlingException", run())

    def test_faults_set_over_http_and_invalid_rules_refused(self):
        body = json.dumps({"rules": [{"op": "PutLogEvents", "kind": "503", "count": 1}]})
        st, _, data = request(FAKE.port, "POST", "/_fake/faults", {}, body.encode())
        self.assertEqual(st, 200, data)
        self.assertAwsError(self.put(self.ev), 503, "ServiceUnavailableException")
        st, _, data = request(FAKE.port, "GET", "/_fake/faults")
        self.assertEqual(json.loads(data)["rules"][0]["fired"], 1)
        for bad in ([{"kind": "explode"}], [{"kind": "throttle", "count": -1}],
                    [{"kind": "throttle", "probability": 2}], [{"kind": "throttle", "cnt": 1}],
                    [{"kind": "outage"}]):
            with self.subTest(rule=bad):
                st, _, _ = request(FAKE.port, "POST", "/_fake/faults", {},
                                   json.dumps(bad).encode())
                self.assertEqual(st, 400)
                with self.assertRaises(ValueError):
                    FAKE.set_faults(bad)
        st, _, data = request(FAKE.port, "POST", "/_fake/reset", {}, b"")
        self.assertEqual(st, 200)
        self.assertEqual(FAKE.faults(), [])
        self.assertEqual(FAKE.requests()["total"], 0)

    def test_imds_faults(self):
        token = imds_token()
        creds = "/latest/meta-data/iam/security-credentials/" + FAKE.role_name
        FAKE.set_faults([
            {"op": "imds:token", "kind": "close", "count": 1},
            {"op": "imds:credentials", "kind": "503", "count": 1},
            {"op": "imds:credentials", "kind": "garbage", "count": 1},
            {"op": "imds:roles", "kind": "empty", "count": 1},
            {"op": "imds:instance-id", "kind": "html", "count": 1},
            {"op": "imds:region", "kind": "stall", "seconds": 0.3, "count": 1},
        ])
        with self.assertRaises(http.client.RemoteDisconnected):
            imds_token()
        self.assertEqual(imds_get(creds, token)[0], 503)
        st, _, body = imds_get(creds, token)
        self.assertEqual(st, 200)
        with self.assertRaises(ValueError):
            json.loads(body.decode("utf-8"))
        self.assertEqual(imds_get("/latest/meta-data/iam/security-credentials/", token)[:3:2],
                         (200, b""))
        st, hdrs, body = imds_get("/latest/meta-data/instance-id", token)
        self.assertEqual((st, hdrs["content-type"]), (500, "text/html"))
        self.assertTrue(body.lstrip().startswith(b"<"))
        start = time.monotonic()
        self.assertEqual(imds_get("/latest/meta-data/placement/region", token)[2],
                         REGION.encode())
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        # Every rule spent: IMDS answers normally again.
        self.assertEqual(imds_get(creds, token)[0], 200)
        self.assertEqual(FAKE.requests()["ops"]["imds:token"]["status"], {"200": 1, "closed": 1})

    def test_imds_outage(self):
        FAKE.set_faults([{"op": "imds", "kind": "outage", "seconds": 0.3}])
        with self.assertRaises(ConnectionResetError):
            imds_token()
        time.sleep(0.35)
        self.assertTrue(imds_token())


# ---- the CLI ------------------------------------------------------------------

class QuotaTest(FakeTestCase):
    """Account-wide rates per op: a token bucket shared by every caller."""

    def tearDown(self):
        FAKE.quotas.set({})

    def test_bucket_refills_at_its_rate_up_to_its_burst(self):
        clock = [100.0]
        q = fake_aws.Quotas({"CreateLogStream": 10, "CreateLogGroup": {"rate": 1, "burst": 2}},
                            clock=lambda: clock[0], wall=lambda: 5000.0)
        self.assertEqual([q.take("CreateLogStream") for _ in range(11)], [True] * 10 + [False])
        clock[0] += 0.25   # 2.5 tokens: 2 more
        self.assertEqual([q.take("CreateLogStream") for _ in range(3)], [True, True, False])
        self.assertEqual([q.take("CreateLogGroup") for _ in range(3)], [True, True, False])
        clock[0] += 60     # never more than the burst
        self.assertEqual([q.take("CreateLogGroup") for _ in range(3)], [True, True, False])
        self.assertTrue(all(q.take("PutLogEvents") for _ in range(1000)))  # no quota: free
        st = q.to_json()
        self.assertEqual((st["CreateLogStream"]["allowed"], st["CreateLogStream"]["throttled"]),
                         (12, 2))
        self.assertEqual((st["CreateLogGroup"]["allowed"], st["CreateLogGroup"]["throttled"]),
                         (4, 2))
        self.assertEqual(st["CreateLogGroup"]["first"], 5000.0)
        self.assertNotIn("PutLogEvents", st)
        q.set({"logs": 2})   # replaces the set; "logs" covers every op
        self.assertEqual([q.take("PutLogEvents") for _ in range(3)], [True, True, False])
        self.assertFalse(q.take("CreateLogStream"))

    def test_invalid_quotas_are_refused(self):
        for bad in ({"PutLogEvents": -1}, {"PutLogEvents": "x"}, {"PutLogEvents": True},
                    {"PutLogEvents": {"rate": 5, "burst": 0.5}}, [1]):
            with self.assertRaises(ValueError):
                fake_aws.Quotas().set(bad)
        with self.assertRaises(ValueError):
            fake_aws.Quotas.parse_flag("PutLogEvents")
        self.assertEqual(fake_aws.Quotas.parse_flag("CreateLogStream=10:20"),
                         {"CreateLogStream": {"rate": 10.0, "burst": 20.0}})

    def test_over_the_quota_answers_throttling_as_cloudwatch_and_counts_it(self):
        ctl = fake_aws.Control(FAKE.endpoint)
        ctl.set_quotas({"CreateLogStream": {"rate": 0.01, "burst": 2}})
        FAKE.create("g")
        results = [logs("CreateLogStream", {"logGroupName": "g", "logStreamName": "s%d" % i})
                   for i in range(3)]
        self.assertEqual([r[0] for r in results[:2]], [200, 200])
        self.assertAwsError(results[2], 400, "ThrottlingException", "Rate exceeded")
        self.assertEqual(results[2][1], {"__type": "ThrottlingException",
                                         "message": "Rate exceeded"})
        self.assertEqual(sorted(FAKE.state()["groups"]["g"]["streams"]), ["s0", "s1"])
        per = ctl.requests()["ops"]["CreateLogStream"]
        self.assertEqual(per["status"], {"200": 2, "400": 1})
        self.assertEqual(per["errors"], {"ThrottlingException": 1})
        q = ctl.quotas()["CreateLogStream"]
        self.assertEqual((q["rate"], q["burst"], q["allowed"], q["throttled"]),
                         (0.01, 2, 2, 1))
        self.assertLessEqual(q["first"], q["last"])
        ctl.reset()   # counts cleared, the rate kept
        self.assertEqual((ctl.quotas()["CreateLogStream"]["allowed"],
                          ctl.quotas()["CreateLogStream"]["rate"]), (0, 0.01))
        with self.assertRaises(RuntimeError):
            ctl.set_quotas({"CreateLogStream": -3})
        ctl.set_quotas({"CreateLogStream": None}, append=True)
        self.assertEqual(ctl.quotas(), {})


class CliTest(unittest.TestCase):
    def test_cli_prints_ports_serves_and_stops_on_sigterm(self):
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "state.json")
            rules = [{"op": "PutLogEvents", "kind": "throttle", "count": 3}]
            proc = fake_aws.FakeAWSProcess(["--port", "0", "--imds-port", "0", "--seed", "3",
                                            "--state-file", state, "--region", REGION,
                                            "--credential-lifetime", "60",
                                            "--faults", json.dumps(rules)], timeout=20)
            with proc:
                info = proc.info
                self.assertGreater(info["port"], 0)
                self.assertGreater(info["imds_port"], 0)
                self.assertNotEqual(info["port"], info["imds_port"])
                self.assertEqual(info["endpoint"], "http://127.0.0.1:%d" % info["port"])
                self.assertIsNone(info["ca_file"])
                self.assertEqual(proc.control.health(), {"ok": True})
                self.assertEqual(proc.control.faults()[0]["count"], 3)
                st, _, _ = request(info["imds_port"], "PUT", "/latest/api/token",
                                   {"X-aws-ec2-metadata-token-ttl-seconds": "30"})
                self.assertEqual(st, 200)
                with open(state, encoding="utf-8") as f:
                    self.assertEqual(json.load(f)["requests"]["ops"]["imds:token"]["total"], 1)
                start = time.monotonic()
                self.assertEqual(proc.stop(), 0)
                self.assertLess(time.monotonic() - start, 5)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", info["port"]), timeout=1).close()

    def test_cli_quota_flags(self):
        proc = fake_aws.FakeAWSProcess(["--quota", "CreateLogStream=10",
                                        "--quota", "PutLogEvents=100:150"], timeout=20)
        with proc:
            q = proc.control.quotas()
            self.assertEqual((q["CreateLogStream"]["rate"], q["CreateLogStream"]["burst"]),
                             (10, 10))
            self.assertEqual((q["PutLogEvents"]["rate"], q["PutLogEvents"]["burst"]),
                             (100, 150))
        bad = subprocess.run([sys.executable, fake_aws.__file__, "--quota", "x"],
                             capture_output=True, timeout=20)
        self.assertEqual(bad.returncode, 2)
        self.assertIn(b"--quota", bad.stderr)

    def test_cli_tls_uses_generated_ca(self):
        proc = fake_aws.FakeAWSProcess(["--tls"], timeout=30)
        with proc:
            ca = proc.info["ca_file"]
            self.assertTrue(ca and os.path.exists(ca))
            self.assertTrue(proc.info["endpoint"].startswith("https://127.0.0.1:"))
            self.assertEqual(proc.control.health(), {"ok": True})   # verified by the CA
            ctx = ssl.create_default_context(cafile=ca)
            st, _, _ = request(proc.info["port"], "GET", "/_fake/health", context=ctx)
            self.assertEqual(st, 200)
            with socket.create_connection(("127.0.0.1", proc.info["port"]), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    self.assertEqual(tls.version()[:3], "TLS")
            with self.assertRaises(ssl.SSLError):
                request(proc.info["port"], "GET", "/_fake/health",
                        context=ssl.create_default_context())
            self.assertEqual(proc.stop(), 0)
        self.assertFalse(os.path.exists(ca))


if __name__ == "__main__":
    unittest.main(verbosity=2)
