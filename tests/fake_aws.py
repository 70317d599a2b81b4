#!/usr/bin/env python3
"""Fake EC2 IMDSv2, ECS container credentials and CloudWatch Logs for cwlogd's tests.

Everything listens on loopback only and uses the Python 3 standard library
(plus the ``openssl`` command when ``--tls`` is asked for).

CLI
---
    python3 tests/fake_aws.py [--host 127.0.0.1] [--port 0] [--imds-port 0]
        [--state-file FILE] [--region us-east-1] [--seed N]
        [--credential-lifetime SECONDS] [--rotation-window SECONDS]
        [--max-event-size BYTES] [--faults JSON|@FILE] [--tls]
        [--static-key AKID:SECRET[:TOKEN]]... [--ecs-relative-uri URI]
        [--ecs-auth-token TOKEN] [--no-store-events] [--verbose]
        [--quota OP=RATE[:BURST]]...

It prints one JSON line on stdout once both listeners are up, e.g.

    {"port": 40123, "imds_port": 40124, "endpoint": "http://127.0.0.1:40123",
     "imds_endpoint": "http://127.0.0.1:40124", "ecs_full_uri": "http://...",
     "ca_file": null, "region": "us-east-1", "state_file": "...", ...}

and serves until SIGTERM or SIGINT, then exits 0.  With ``--tls`` the
CloudWatch listener speaks HTTPS with a certificate for 127.0.0.1/localhost
signed by a CA made at start-up; ``ca_file`` names that CA (removed on exit).
IMDS and the ECS endpoint are always plain HTTP, as on EC2.

As a module: ``FakeAWS(...).start()`` (or ``with FakeAWS(...) as fake``) runs
the same servers in threads of the calling process, with ``fake.events()``,
``fake.wait_events(n, timeout)``, ``fake.requests()``, ``fake.set_faults()``,
``fake.reset()``, ``fake.config()``, ``fake.create()``/``delete()`` and
``fake.current_credentials()``/``rotate_credentials()`` mirroring the control
API.  ``FakeAWSProcess(args)`` runs the CLI as a child (``.info`` is its JSON
line, ``.control`` a ``Control``, ``.stop()`` sends SIGTERM and returns the
exit status); ``Control(endpoint, ca_file)`` talks to the control API.

IMDSv2 (``imds_endpoint``)
--------------------------
IMDSv1 is disabled.  ``PUT /latest/api/token`` needs
``X-aws-ec2-metadata-token-ttl-seconds`` in 1..21600 (else 400) and refuses
requests carrying ``X-Forwarded-For`` (403).  Every GET needs a live
``X-aws-ec2-metadata-token`` (else 401).  Served paths:
``/latest/meta-data/instance-id``, ``.../placement/region``,
``.../placement/availability-zone``, ``.../hostname``, ``.../local-ipv4``,
``.../iam/info``, ``.../iam/security-credentials/`` (role name) and
``.../iam/security-credentials/ROLE`` (Code, LastUpdated, Type, AccessKeyId,
SecretAccessKey, Token, Expiration), ``/latest/dynamic/instance-identity/document``.
A credential set lives ``credential_lifetime`` seconds; a new one is issued
when the current one is within ``rotation_window`` of its Expiration.  Old
sets stay valid for CloudWatch until they expire.

ECS container credentials: ``GET ecs_relative_uri`` on the IMDS port (no IMDS
token), checked against ``Authorization`` when ``--ecs-auth-token`` is set;
returns AccessKeyId, SecretAccessKey, Token, Expiration, RoleArn.

CloudWatch Logs (``endpoint``)
------------------------------
JSON 1.1: ``POST /`` with ``X-Amz-Target: Logs_20140328.<Op>``.  SigV4 is
verified from the received request (``host`` must be signed, and so must
``x-amz-security-token`` when the key has one, unless
``--allow-unsigned-token``).  Authentication errors are answered with HTTP 400,
as CloudWatch Logs does: MissingAuthenticationTokenException,
IncompleteSignatureException, InvalidSignatureException (bad signature, or
"Signature expired: ..." / "Signature not yet current: ..." when X-Amz-Date is
more than 5 minutes off), UnrecognizedClientException (unknown key, missing or
wrong token), ExpiredTokenException.  Ops: CreateLogGroup,
CreateLogStream, DeleteLogGroup, DeleteLogStream, PutRetentionPolicy,
DescribeLogGroups, DescribeLogStreams, PutLogEvents, with the service's limits
and error types.  Errors are ``{"__type": T, "message": M}`` with
``x-amzn-ErrorType: T``.

Control API (same port as CloudWatch, not signed)
-------------------------------------------------
    GET  /_fake/health                     {"ok": true}
    GET  /_fake/events[?group=&stream=&since=SEQ]
                                           {"events": [...], "count": N}
    GET  /_fake/requests                   per-op counts by status and error,
                                           faults fired, reset_after totals, log
    GET  /_fake/faults                     current rules with fired counts
    POST /_fake/faults                     body: [rule, ...] or
                                           {"rules": [...], "append": bool, "seed": N}
    POST /_fake/reset                      forget events, groups, stats, faults
    GET  /_fake/state                      groups, streams, retention, counts
    GET  /_fake/config, POST /_fake/config {"max_event_size", "clock_offset",
                                            "credential_lifetime", "rotation_window"}
                                           (clock_offset shifts the fake's clock:
                                           IMDS tokens, key expiry, skew, event age)
    GET  /_fake/credentials                the current credential set
    POST /_fake/rotate                     issue a new credential set now
    POST /_fake/create {"group", "stream"?}, POST /_fake/delete {"group", "stream"?}
    GET  /_fake/quotas                     {"quotas": {OP: {"rate", "burst", "allowed",
                                            "throttled", "first", "last"}}}
    POST /_fake/quotas                     body: {OP: RATE | {"rate", "burst"} | null}
                                           or {"quotas": {...}, "append": bool}

A stored event is {"seq", "group", "stream", "timestamp", "message",
"ingestion_time", "request_id", "acked"}; ``acked`` is false when the events
were stored by a request whose answer a ``reset_after`` fault threw away, so a
test can tell the duplicates the fault caused from the agent's own.
With ``--state-file`` the same data (events, groups, request counts) is
written after every request, atomically (temporary file + rename).

Fault rules
-----------
    {"op": "PutLogEvents", "kind": "throttle", "count": 2}
    {"op": "imds:credentials", "kind": "latency", "seconds": 3}
    {"op": "logs", "kind": "outage", "seconds": 5}

``op``: a CloudWatch operation name; ``logs`` (any CloudWatch op); ``imds`` or
one of ``imds:token``, ``imds:roles``, ``imds:credentials``,
``imds:instance-id``, ``imds:region``, ``imds:document``, ``imds:other``;
``ecs`` / ``ecs:credentials``; ``*`` (default) for everything.
``kind``:
    throttle      400 ThrottlingException "Rate exceeded" (IMDS: 429)
    503           503 ServiceUnavailableException (IMDS: 503 HTML page)
    500           500 InternalFailure (IMDS: 500 HTML page)
    error         any error: "status" (400), "type", "message"
    expired_token 400 ExpiredTokenException (IMDS: 401)
    reset_before  TCP reset (SO_LINGER 0), request not performed
    reset_after   request performed (events stored), then TCP reset
    close         connection closed (FIN) without any response
    latency       sleep "seconds", then go on (alias: stall); adds to others
    answer_latency  carry the request out (PutLogEvents stores its events),
                  then sleep "seconds" before answering: the request is
                  "in flight" meanwhile (see put_requests()); adds up
    outage        every matching request reset for "seconds" from installation
    garbage       200 with a body that is neither JSON nor UTF-8
    empty         200 with an empty body (alias: empty_role_list)
    html          an HTML error page, "status" (500)
    endless       200 headers with a chunked body that never ends: one byte
                  every "seconds" (1) until the client gives up
With ``"perform": true`` a garbage, empty, html, error or endless rule first
carries the request out (PutLogEvents stores its events), then answers as
the rule says: a mangled answer to a request that did succeed.  Events so
stored are ``acked`` only when that answer is a 2xx.
Selection: ``count`` (at most N times), ``probability`` (per matching request,
drawn from a generator seeded by ``--seed``), ``after`` (skip the first N
matching requests), ``duration`` (rule active for N seconds after it is
installed).  The first rule that fires answers; latency rules add up.
Faults are applied before authentication and are counted per op under
"faults" in /_fake/requests; /_fake/ control requests are never faulted.

Quotas
------
Account-wide request rates per CloudWatch operation, as the service enforces
them (CreateLogStream 50/s, CreateLogGroup 5/s, PutLogEvents 5,000/s in the
large regions): one token bucket per operation, shared by every caller.  A
bucket refills at RATE tokens/s up to BURST (default: one second's worth, at
least 1) and starts full; a request that finds it empty is answered as
CloudWatch does, HTTP 400 ``{"__type":"ThrottlingException","message":"Rate
exceeded"}``, and counted as a ThrottlingException of its op in
/_fake/requests.  ``--quota CreateLogStream=10`` (repeatable) or POST
/_fake/quotas sets them (``null`` or 0 removes one; without ``append`` the
given set replaces the old); ``logs`` means every op without a quota of its
own.  GET /_fake/quotas has each bucket's counts: allowed, throttled, and the
fake's wall-clock time of the first and last request it saw.  A fault rule
that fires answers before the quota is consulted; /_fake/reset clears the
counts but keeps the rates.
"""

import argparse
import calendar
import email.utils
import hashlib
import hmac
import http.client
import http.server
import json
import math
import os
import random
import re
import selectors
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import unicodedata
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

__all__ = [
    "AwsError", "Control", "Credential", "FakeAWS", "FakeAWSProcess",
    "FaultRule", "Quotas", "sigv4_canonical_request", "sigv4_verify", "main",
]

# CloudWatch Logs limits (PutLogEvents API reference).
MAX_BATCH_BYTES = 1048576
MAX_BATCH_EVENTS = 10000
EVENT_OVERHEAD = 26
DEFAULT_MAX_EVENT_SIZE = 1048576 - EVENT_OVERHEAD
MAX_SPAN_MS = 24 * 3600 * 1000
TOO_OLD_MS = 14 * 24 * 3600 * 1000
TOO_NEW_MS = 2 * 3600 * 1000
MAX_CLOCK_SKEW = 300
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
                  731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
GROUP_PATTERN = r"[\.\-_/#A-Za-z0-9]+"
STREAM_PATTERN = r"[^:*]*"
JSON_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "Logs_20140328."
MAX_BODY = 16 * 1024 * 1024
IMDS_MAX_TTL = 21600
LOG_LIMIT = 5000

MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details.")
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"


class AwsError(Exception):
    """An error answered in AWS's JSON 1.1 shape."""

    def __init__(self, status, type_, message):
        super().__init__(f"{type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message


def _invalid(msg):
    return AwsError(400, "InvalidParameterException", msg)


def _validation(value, field, constraint):
    shown = "null" if value is None else f"'{value}'"
    return _invalid(f"1 validation error detected: Value {shown} at '{field}' "
                    f"failed to satisfy constraint: {constraint}")


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _amz(ts):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def _parse_amz(value):
    try:
        return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))
    except (ValueError, TypeError):
        return None


def _utf8_len(s):
    return len(s.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------
# SigV4 verification, computed from what the server received.

def _encode_part(raw):
    return urllib.parse.quote(raw, safe="")


def _canonical_uri(path, normalize):
    raw = path.encode("latin-1", "replace") if isinstance(path, str) else path
    if not raw:
        raw = b"/"
    if normalize:
        kept = []
        parts = raw.split(b"/")
        for seg in parts:
            if seg in (b"", b"."):
                continue
            if seg == b"..":
                if kept:
                    kept.pop()
                continue
            kept.append(seg)
        trailing = kept and (raw.endswith(b"/") or parts[-1] in (b".", b".."))
        raw = b"/" + b"/".join(kept) + (b"/" if trailing else b"")
    return "/".join(_encode_part(seg) for seg in raw.split(b"/"))


def _canonical_query(query):
    pairs = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((
            _encode_part(urllib.parse.unquote_to_bytes(name.encode("latin-1", "replace"))),
            _encode_part(urllib.parse.unquote_to_bytes(value.encode("latin-1", "replace")))))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


_WS = re.compile(r"[ \t\r\n]+")


def sigv4_canonical_request(method, target, headers, signed_headers,
                            payload_hash, normalize=True):
    """Canonical request text for a received request.

    target: the request-target as received (path and query).  headers: the
    received (name, value) pairs, duplicates included, in order."""
    path, _, query = target.partition("?")
    values = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(_WS.sub(" ", value).strip())
    lines = [method, _canonical_uri(path, normalize), _canonical_query(query)]
    lines += [f"{h}:{','.join(values.get(h, []))}" for h in signed_headers]
    lines += ["", ";".join(signed_headers), payload_hash]
    return "\n".join(lines)


def _wire_bytes(text):
    # Header values arrive decoded as ISO-8859-1; encoding back that way
    # restores the exact bytes the client hashed.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sigv4_signature(secret, date, region, service, string_to_sign):
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    key = _hmac(key, "aws4_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sigv4_verify(method, target, headers, body, *, region, service, now,
                 lookup, normalize=True, require_signed_token=True):
    """Check a request's SigV4 Authorization header.

    lookup(access_key_id) returns a Credential or None.  Returns the
    Credential; raises AwsError as the service would."""
    hdr = {}
    for name, value in headers:
        hdr.setdefault(name.lower(), value)
    auth = hdr.get("authorization")
    if not auth:
        raise AwsError(400, "MissingAuthenticationTokenException",
                       "Missing Authentication Token")
    algorithm, _, rest = auth.strip().partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise AwsError(400, "IncompleteSignatureException",
                       f"Unsupported AWS 'algorithm': '{algorithm}'")
    fields = {}
    for item in rest.split(","):
        key, eq, value = item.strip().partition("=")
        if eq:
            fields[key] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise AwsError(400, "IncompleteSignatureException", " ".join(
            f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={auth}")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise AwsError(400, "IncompleteSignatureException",
                       "Credential should be scoped with a valid terminator: "
                       f"'aws4_request', not '{scope[-1]}'.")
    akid, date, cred_region, cred_service, _ = scope
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        raise AwsError(400, "InvalidSignatureException",
                       "'Host' or ':authority' must be a 'SignedHeader' in the "
                       "AWS Authorization.")

    amz_date = hdr.get("x-amz-date")
    if amz_date is not None:
        req_time = _parse_amz(amz_date.strip())
        if req_time is None:
            raise AwsError(400, "IncompleteSignatureException",
                           f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.")
    elif hdr.get("date"):
        try:
            req_time = email.utils.parsedate_to_datetime(hdr["date"]).timestamp()
            amz_date = _amz(req_time)
        except (TypeError, ValueError):
            req_time = None
        if req_time is None:
            raise AwsError(400, "IncompleteSignatureException",
                           f"Date must be in ISO-8601 'basic format'. Got '{hdr['date']}'.")
    else:
        raise AwsError(400, "IncompleteSignatureException",
                       "Authorization header requires existence of either a "
                       "'X-Amz-Date' or a 'Date' header. Authorization=" + auth)
    if date != amz_date[:8]:
        raise AwsError(400, "InvalidSignatureException",
                       "Date in Credential scope does not match YYYYMMDD from "
                       f"ISO-8601 version of date from HTTP: '{date}' != "
                       f"'{amz_date[:8]}', from '{amz_date}'.")
    if cred_service != service:
        raise AwsError(400, "InvalidSignatureException",
                       f"Credential should be scoped to correct service: '{service}'. ")
    if cred_region != region:
        raise AwsError(400, "InvalidSignatureException",
                       "Credential should be scoped to a valid region. ")

    cred = lookup(akid)
    if cred is None:
        raise AwsError(400, "UnrecognizedClientException", MSG_BAD_TOKEN)
    sent_token = hdr.get("x-amz-security-token")
    if cred.token is not None:
        if sent_token is None or sent_token.strip() != cred.token:
            raise AwsError(400, "UnrecognizedClientException", MSG_BAD_TOKEN)
        if require_signed_token and "x-amz-security-token" not in signed:
            raise AwsError(400, "IncompleteSignatureException",
                           "x-amz-security-token must be one of the SignedHeaders "
                           "(strict check of this fake)")
    elif sent_token is not None:
        raise AwsError(400, "UnrecognizedClientException", MSG_BAD_TOKEN)

    body_hash = hashlib.sha256(body).hexdigest()
    declared = hdr.get("x-amz-content-sha256")
    if declared is not None and declared.strip() not in (body_hash, "UNSIGNED-PAYLOAD"):
        raise AwsError(400, "InvalidSignatureException",
                       "The provided 'x-amz-content-sha256' header does not match "
                       "what was computed.")
    canonical = sigv4_canonical_request(method, target, headers, signed,
                                        body_hash, normalize)
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, f"{date}/{cred_region}/{cred_service}/aws4_request",
        hashlib.sha256(_wire_bytes(canonical)).hexdigest()])
    expected = sigv4_signature(cred.secret_access_key, date, cred_region,
                               cred_service, string_to_sign)
    if not hmac.compare_digest(expected, fields["Signature"].strip()):
        raise AwsError(400, "InvalidSignatureException", MSG_BAD_SIGNATURE +
                       "\n\nThe Canonical String for this request should have been\n'"
                       + canonical + "'\n\nThe String-to-Sign should have been\n'"
                       + string_to_sign + "'\n")

    if req_time < now - MAX_CLOCK_SKEW:
        raise AwsError(400, "InvalidSignatureException",
                       f"Signature expired: {amz_date} is now earlier than "
                       f"{_amz(now - MAX_CLOCK_SKEW)} ({_amz(now)} - 5 min.)")
    if req_time > now + MAX_CLOCK_SKEW:
        raise AwsError(400, "InvalidSignatureException",
                       f"Signature not yet current: {amz_date} is still later than "
                       f"{_amz(now + MAX_CLOCK_SKEW)} ({_amz(now)} + 5 min.)")
    if cred.expiration is not None and now >= cred.expiration:
        raise AwsError(400, "ExpiredTokenException", MSG_EXPIRED_TOKEN)
    return cred


# --------------------------------------------------------------------------
# Credentials and faults.

class Credential:
    """One key set.  issued/expiration are epoch seconds (expiration None: never)."""

    def __init__(self, access_key_id, secret_access_key, token=None,
                 issued=0, expiration=None):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.token = token
        self.issued = issued
        self.expiration = expiration

    def to_json(self):
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "LastUpdated": _iso(self.issued),
            "Expiration": None if self.expiration is None else _iso(self.expiration),
        }


FAULT_KINDS = {
    "throttle", "503", "500", "error", "expired_token", "reset_before",
    "reset_after", "close", "latency", "stall", "outage", "garbage", "empty",
    "empty_role_list", "html", "endless", "answer_latency",
}
_PERFORMABLE = {"garbage", "empty", "empty_role_list", "html", "error", "endless"}
_RULE_KEYS = {"op", "kind", "count", "probability", "seconds", "after",
              "duration", "status", "type", "message", "perform"}


class FaultRule:
    """One fault-injection rule (see the module docstring)."""

    def __init__(self, spec, installed):
        if not isinstance(spec, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = set(spec) - _RULE_KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        self.spec = dict(spec)
        self.op = spec.get("op", "*")
        self.kind = spec.get("kind")
        if not isinstance(self.op, str) or not self.op:
            raise ValueError("fault rule 'op' must be a non-empty string")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault rule 'kind' must be one of {sorted(FAULT_KINDS)}")
        self.count = self._num(spec, "count", int, None)
        self.probability = self._num(spec, "probability", float, None)
        self.seconds = self._num(spec, "seconds", float, 0.0)
        self.after = self._num(spec, "after", int, 0)
        self.duration = self._num(spec, "duration", float, None)
        self.status = self._num(spec, "status", int, None)
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("fault rule 'probability' must be within 0..1")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("fault rule 'status' must be an HTTP status")
        if self.kind == "outage" and self.seconds <= 0:
            raise ValueError("an outage needs 'seconds' > 0")
        self.type = spec.get("type")
        self.message = spec.get("message")
        self.perform = spec.get("perform", False)
        if not isinstance(self.perform, bool):
            raise ValueError("fault rule 'perform' must be true or false")
        if self.perform and self.kind not in _PERFORMABLE:
            raise ValueError(f"'perform' goes with one of {sorted(_PERFORMABLE)}")
        self.installed = installed
        self.seen = 0
        self.fired = 0

    @staticmethod
    def _num(spec, key, kind, default):
        if key not in spec or spec[key] is None:
            return default
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"fault rule '{key}' must be a number")
        if kind is int and value != int(value):
            raise ValueError(f"fault rule '{key}' must be an integer")
        if value < 0:
            raise ValueError(f"fault rule '{key}' must not be negative")
        return kind(value)

    def matches(self, op):
        if self.op in ("*", op):
            return True
        if self.op == "logs":
            return not op.startswith(("imds:", "ecs:"))
        return ":" not in self.op and op.startswith(self.op + ":")

    def active(self, mono):
        if self.kind == "outage":
            return mono < self.installed + self.seconds
        return self.duration is None or mono < self.installed + self.duration

    def to_json(self):
        return dict(self.spec, seen=self.seen, fired=self.fired)


class Quotas:
    """Account-wide request rates per operation: a token bucket each, shared
    by every caller (see "Quotas" above).  Thread-safe on its own lock."""

    def __init__(self, spec=None, clock=time.monotonic, wall=time.time):
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._buckets = {}
        if spec:
            self.set(spec)

    @staticmethod
    def parse_flag(text):
        """'OP=RATE[:BURST]' -> {OP: {"rate", "burst"?}}."""
        op, sep, value = text.partition("=")
        rate, _, burst = value.partition(":")
        if not sep or not op.strip():
            raise ValueError(f"bad quota {text!r} (expected OP=RATE[:BURST])")
        spec = {"rate": float(rate)}
        if burst:
            spec["burst"] = float(burst)
        return {op.strip(): spec}

    def set(self, spec, append=False):
        """spec: {op: rate | {"rate", "burst"} | None}.  Raises ValueError."""
        if not isinstance(spec, dict):
            raise ValueError("quotas must be an object {op: rate}")
        parsed = {}
        for op, v in spec.items():
            if v is None or v == 0:
                parsed[op] = None
                continue
            if not isinstance(v, dict):
                v = {"rate": v}
            rate, burst = v.get("rate"), v.get("burst")
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
                raise ValueError(f"quota {op}: rate must be a number >= 0")
            if burst is None:
                burst = max(1.0, float(rate))
            if isinstance(burst, bool) or not isinstance(burst, (int, float)) or burst < 1:
                raise ValueError(f"quota {op}: burst must be a number >= 1")
            parsed[op] = (float(rate), float(burst)) if rate else None
        with self._lock:
            if not append:
                self._buckets = {}
            for op, rb in parsed.items():
                if rb is None:
                    self._buckets.pop(op, None)
                    continue
                self._buckets[op] = {"rate": rb[0], "burst": rb[1], "tokens": rb[1],
                                     "at": self._clock(), "allowed": 0, "throttled": 0,
                                     "first": None, "last": None}
            return self._json_locked()

    def take(self, op):
        """True when op may go ahead now (a token taken), False: throttled."""
        with self._lock:
            b = self._buckets.get(op) or self._buckets.get("logs")
            if b is None:
                return True
            now = self._clock()
            b["tokens"] = min(b["burst"], b["tokens"] + (now - b["at"]) * b["rate"])
            b["at"] = now
            wall = self._wall()
            if b["first"] is None:
                b["first"] = wall
            b["last"] = wall
            if b["tokens"] >= 1.0:
                b["tokens"] -= 1.0
                b["allowed"] += 1
                return True
            b["throttled"] += 1
            return False

    def reset_counts(self):
        with self._lock:
            for b in self._buckets.values():
                b.update(allowed=0, throttled=0, first=None, last=None, tokens=b["burst"],
                         at=self._clock())

    def _json_locked(self):
        return {op: {k: b[k] for k in ("rate", "burst", "allowed", "throttled", "first", "last")}
                for op, b in self._buckets.items()}

    def to_json(self):
        with self._lock:
            return self._json_locked()


class _Reply:
    __slots__ = ("status", "body", "content_type", "headers", "error", "events",
                 "request_id")

    def __init__(self, status, body=b"", content_type="text/plain",
                 headers=None, error=None, events=0):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []
        self.error = error
        self.events = events
        self.request_id = None


def _html_page(status):
    reason = http.client.responses.get(status, "Error")
    return (f"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head>"
            f"<title>{status} - {reason}</title></head><body><h1>{status} - "
            f"{reason}</h1></body></html>\n").encode("ascii")


GARBAGE = b"\x8b\x1f\x00\xff\xfegarbage{\"Code\": \"Succ\x80\xc3"


# --------------------------------------------------------------------------
# The fake.

class FakeAWS:
    """IMDSv2 + ECS credentials + CloudWatch Logs, served from threads."""

    def __init__(self, *, host="127.0.0.1", port=0, imds_port=0,
                 region="us-east-1", state_file=None, seed=None,
                 credential_lifetime=6 * 3600, rotation_window=None,
                 max_event_size=DEFAULT_MAX_EVENT_SIZE, faults=None, tls=False,
                 static_credentials=(), ecs_relative_uri="/v2/credentials/fake-task-0001",
                 ecs_auth_token=None, store_events=True, verbose=False,
                 instance_id="i-0fa4e1c3b2d5a6978", account_id="123456789012",
                 role_name="cwlogd-test-role", require_signed_token=True, quotas=None):
        if not _is_loopback(host):
            raise ValueError(f"fake_aws listens on loopback only, not {host}")
        self.host = "127.0.0.1" if host == "localhost" else host
        self._ports = (port, imds_port)
        self.region = region
        self.state_file = state_file
        self.seed = seed
        self.credential_lifetime = float(credential_lifetime)
        self.rotation_window = rotation_window
        self.max_event_size = int(max_event_size)
        self.tls = tls
        self.ecs_relative_uri = ecs_relative_uri
        self.ecs_auth_token = ecs_auth_token
        self.store_events = store_events
        self.verbose = verbose
        self.instance_id = instance_id
        self.account_id = account_id
        self.role_name = role_name
        self.require_signed_token = require_signed_token
        self.clock_offset = 0.0
        self.quotas = Quotas(quotas)

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._ids = random.Random(seed)
        self._fault_rng = random.Random(seed)
        self._creds = {}
        self._current = None
        self._imds_tokens = {}
        self._rules = []
        self._stopping = threading.Event()
        self._servers = []
        self._threads = []
        self._tmpdir = None
        self.ca_file = None
        self.port = None
        self.imds_port = None
        for item in static_credentials:
            self.add_static_credentials(*item)
        self._clear_data()
        if faults:
            self.set_faults(faults)

    # ---- lifecycle --------------------------------------------------------

    def start(self):
        ctx = None
        if self.tls:
            self._tmpdir = tempfile.mkdtemp(prefix="fake-aws-tls-")
            self.ca_file, cert, key = _make_certificates(self._tmpdir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        logs = _Server((self.host, self._ports[0]), _LogsHandler, self, ctx)
        try:
            imds = _Server((self.host, self._ports[1]), _ImdsHandler, self, None)
        except OSError:
            logs.server_close()
            raise
        self._servers = [logs, imds]
        self.port = logs.server_address[1]
        self.imds_port = imds.server_address[1]
        for srv in self._servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                 name=f"fake-aws-{srv.server_address[1]}", daemon=True)
            t.start()
            self._threads.append(t)
        with self._lock:
            self._save_locked()
        return self

    def stop(self):
        self._stopping.set()
        for srv in self._servers:
            srv.shutdown()
            srv.close_all()
            srv.server_close()
        for t in self._threads:
            t.join(5)
        self._servers, self._threads = [], []
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def endpoint(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def imds_endpoint(self):
        return f"http://{self.host}:{self.imds_port}"

    def info(self):
        return {
            "pid": os.getpid(), "host": self.host, "port": self.port,
            "imds_port": self.imds_port, "endpoint": self.endpoint,
            "imds_endpoint": self.imds_endpoint,
            "ecs_full_uri": self.imds_endpoint + self.ecs_relative_uri,
            "ecs_relative_uri": self.ecs_relative_uri,
            "ecs_auth_token": self.ecs_auth_token, "ca_file": self.ca_file,
            "tls": self.tls, "region": self.region, "instance_id": self.instance_id,
            "account_id": self.account_id, "role_name": self.role_name,
            "state_file": self.state_file, "seed": self.seed,
        }

    def now(self):
        return time.time() + self.clock_offset

    # ---- credentials ------------------------------------------------------

    def _rand(self, alphabet, n):
        return "".join(self._ids.choice(alphabet) for _ in range(n))

    def _window(self):
        if self.rotation_window is not None:
            return float(self.rotation_window)
        return min(900.0, self.credential_lifetime / 4)

    def add_static_credentials(self, access_key_id, secret_access_key, token=None):
        with self._lock:
            cred = Credential(access_key_id, secret_access_key, token, int(self.now()))
            self._creds[access_key_id] = cred
            return cred

    def rotate_credentials(self):
        """Issue a new instance-role credential set and make it current."""
        with self._lock:
            now = self.now()
            upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            cred = Credential(
                "ASIA" + self._rand(upper, 16), self._rand(b64, 40),
                "IQoJ" + self._rand(b64, 300) + "==", int(now),
                math.ceil(now + self.credential_lifetime))
            self._creds[cred.access_key_id] = cred
            self._current = cred
            return cred

    def current_credentials(self):
        """The set IMDS/ECS hand out now, rotating it when near expiry."""
        with self._lock:
            cur = self._current
            if cur is None or self.now() >= cur.expiration - self._window():
                cur = self.rotate_credentials()
            return cur

    def lookup_credential(self, access_key_id):
        with self._lock:
            return self._creds.get(access_key_id)

    # ---- faults -----------------------------------------------------------

    def set_faults(self, rules, append=False, seed=None):
        """Install fault rules (list of dicts).  Raises ValueError when invalid."""
        if isinstance(rules, dict):
            rules = [rules]
        if not isinstance(rules, list):
            raise ValueError("faults must be a list of rules")
        mono = time.monotonic()
        parsed = [FaultRule(r, mono) for r in rules]
        with self._lock:
            if seed is not None:
                self._fault_rng.seed(seed)
            self._rules = (self._rules if append else []) + parsed
            return [r.to_json() for r in self._rules]

    def faults(self):
        with self._lock:
            return [r.to_json() for r in self._rules]

    def _pick_fault(self, op):
        """Returns (delay seconds, terminal rule or None); counts what fired."""
        delay, chosen = 0.0, None
        with self._lock:
            mono = time.monotonic()
            for rule in self._rules:
                if not rule.matches(op) or not rule.active(mono):
                    continue
                if rule.kind == "outage":
                    rule.fired += 1
                    chosen = rule
                    break
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability is not None and \
                        self._fault_rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.kind in ("latency", "stall"):
                    delay += rule.seconds
                    self._count_fault(op, rule.kind)
                    continue
                if rule.kind == "answer_latency":
                    self._answer_delay[threading.get_ident()] = \
                        self._answer_delay.get(threading.get_ident(), 0.0) + rule.seconds
                    self._count_fault(op, rule.kind)
                    continue
                chosen = rule
                break
            if chosen is not None:
                self._count_fault(op, chosen.kind)
        return delay, chosen

    def _count_fault(self, op, kind):
        per = self._stats["faults"].setdefault(op, {})
        per[kind] = per.get(kind, 0) + 1

    # ---- data, stats, state file ------------------------------------------

    def _clear_data(self):
        self._groups = {}
        self._events = []
        self._seq = 0
        self._stats = {"total": 0, "ops": {}, "status": {}, "faults": {},
                       "reset_after": {"requests": 0, "events": 0}}
        self._log = []
        # request id -> [events stored, stored at, answered at, received at]
        self._puts = {}
        self._received = {}  # handler thread -> when its request's headers were read
        self._answer_delay = {}  # handler thread -> seconds to wait before answering

    def reset(self):
        """Forget events, groups, request counts and fault rules."""
        with self._lock:
            self._clear_data()
            self._rules = []
            self.quotas.reset_counts()
            self._save_locked()
            self._cond.notify_all()

    def _record(self, op, status, error=None, fault=None, events=0, request_id=None):
        with self._lock:
            st = self._stats
            st["total"] += 1
            key = str(status)
            st["status"][key] = st["status"].get(key, 0) + 1
            per = st["ops"].setdefault(op, {"total": 0, "status": {}, "errors": {}})
            per["total"] += 1
            per["status"][key] = per["status"].get(key, 0) + 1
            if error:
                per["errors"][error] = per["errors"].get(error, 0) + 1
            self._log.append({"time": time.time(), "op": op, "status": status,
                              "error": error, "fault": fault, "events": events,
                              "request_id": request_id})
            del self._log[:-LOG_LIMIT]
            self._save_locked()
            self._cond.notify_all()

    def _state_locked(self):
        groups = {}
        for name, g in self._groups.items():
            groups[name] = {
                "creationTime": g["creationTime"],
                "retentionInDays": g["retentionInDays"],
                "logGroupClass": g.get("logGroupClass", "STANDARD"),
                "kmsKeyId": g.get("kmsKeyId"),
                "tags": dict(g.get("tags", {})),
                "streams": {s: {k: v for k, v in st.items() if k != "token"}
                            for s, st in g["streams"].items()},
            }
        return groups

    def _save_locked(self):
        if not self.state_file:
            return
        doc = {"version": 1, "region": self.region, "groups": self._state_locked(),
               "events": self._events, "requests": self._stats,
               "faults": [r.to_json() for r in self._rules]}
        tmp = self.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, self.state_file)

    def events(self, group=None, stream=None, since=0):
        with self._lock:
            return [dict(e) for e in self._events
                    if (group is None or e["group"] == group)
                    and (stream is None or e["stream"] == stream)
                    and e["seq"] > since]

    def wait_events(self, count, timeout=10.0, group=None, stream=None):
        """Wait until at least count matching events are stored; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.events(group, stream)
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._cond.wait(min(left, 0.5))

    def requests(self):
        with self._lock:
            return json.loads(json.dumps(dict(self._stats, log=self._log)))

    def put_requests(self):
        """Every PutLogEvents that stored events: {request id: {"events": N,
        "received": T, "stored": T, "answered": T or None}}, times from
        time.monotonic(). "received" is when its headers were read (its body,
        a megabyte, is read, verified and stored after that, possibly after
        the client that sent it died); "answered" is when the last byte of the
        answer went to the socket; a request stored but not answered when a
        client died was in flight."""
        with self._lock:
            return {rid: {"events": n, "received": tr, "stored": t0, "answered": t1}
                    for rid, (n, t0, t1, tr) in self._puts.items()}

    def _request_received(self, done=False):
        """Notes (or, done, forgets) when the handler thread's request arrived."""
        with self._lock:
            if done:
                self._received.pop(threading.get_ident(), None)
            else:
                self._received[threading.get_ident()] = time.monotonic()

    def _answered(self, request_id):
        with self._lock:
            if request_id in self._puts:
                self._puts[request_id][2] = time.monotonic()

    def state(self):
        with self._lock:
            cur = self._current
            return {"groups": self._state_locked(), "events": len(self._events),
                    "current_access_key_id": cur.access_key_id if cur else None,
                    "clock_offset": self.clock_offset}

    def config(self, **changes):
        allowed = {"max_event_size": int, "clock_offset": float,
                   "credential_lifetime": float, "rotation_window": float}
        with self._lock:
            for key, value in changes.items():
                if key not in allowed:
                    raise ValueError(f"unknown config key {key!r}")
                if value is not None and (isinstance(value, bool) or
                                          not isinstance(value, (int, float))):
                    raise ValueError(f"config {key!r} must be a number")
                setattr(self, key, None if value is None and key == "rotation_window"
                        else allowed[key](value))
            return {k: getattr(self, k) for k in allowed}

    def create(self, group, stream=None, retention=None):
        with self._lock:
            g = self._groups.setdefault(group, self._new_group())
            if retention is not None:
                g["retentionInDays"] = retention
            if stream is not None:
                g["streams"].setdefault(stream, self._new_stream())
            self._save_locked()

    def delete(self, group, stream=None):
        with self._lock:
            if stream is None:
                self._groups.pop(group, None)
            elif group in self._groups:
                self._groups[group]["streams"].pop(stream, None)
            self._save_locked()

    def _new_group(self):
        return {"creationTime": int(self.now() * 1000), "retentionInDays": None,
                "streams": {}}

    def _new_stream(self):
        return {"creationTime": int(self.now() * 1000), "events": 0, "bytes": 0,
                "firstEventTimestamp": None, "lastEventTimestamp": None,
                "lastIngestionTime": None, "token": 0}

    def request_id(self):
        with self._lock:
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    # ---- IMDS and ECS -----------------------------------------------------

    @staticmethod
    def imds_op(method, path):
        if path == "/latest/api/token":
            return "imds:token"
        p = path.rstrip("/")
        if p == "/latest/meta-data/iam/security-credentials":
            return "imds:roles"
        if p.startswith("/latest/meta-data/iam/security-credentials/"):
            return "imds:credentials"
        return {
            "/latest/meta-data/instance-id": "imds:instance-id",
            "/latest/meta-data/placement/region": "imds:region",
            "/latest/dynamic/instance-identity/document": "imds:document",
        }.get(p, "imds:other")

    def handle_imds(self, method, path, headers):
        """Answer one IMDS request (a _Reply)."""
        now = self.now()
        text = "text/plain"
        if path == "/latest/api/token":
            if method != "PUT":
                return _Reply(405, _html_page(405), "text/html")
            if headers.get("X-Forwarded-For") is not None:
                return _Reply(403, _html_page(403), "text/html")
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if ttl is None or not re.fullmatch(r"[0-9]{1,6}", ttl.strip()) or \
                    not 1 <= int(ttl) <= IMDS_MAX_TTL:
                return _Reply(400, _html_page(400), "text/html")
            with self._lock:
                token = "AQAEA" + self._rand(
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 51) + "=="
                self._imds_tokens = {t: e for t, e in self._imds_tokens.items() if e > now}
                self._imds_tokens[token] = now + int(ttl)
            return _Reply(200, token.encode(), text,
                          [("X-aws-ec2-metadata-token-ttl-seconds", str(int(ttl)))])
        if method != "GET":
            return _Reply(405, _html_page(405), "text/html")
        token = headers.get("X-aws-ec2-metadata-token")
        with self._lock:
            expiry = self._imds_tokens.get((token or "").strip())
        if expiry is None or now >= expiry:
            return _Reply(401, _html_page(401), "text/html")

        p = path.rstrip("/")
        creds_dir = "/latest/meta-data/iam/security-credentials"
        az = self.region + "a"
        simple = {
            "/latest/meta-data/instance-id": self.instance_id,
            "/latest/meta-data/placement/region": self.region,
            "/latest/meta-data/placement/availability-zone": az,
            "/latest/meta-data/hostname": "ip-10-0-0-10.ec2.internal",
            "/latest/meta-data/local-hostname": "ip-10-0-0-10.ec2.internal",
            "/latest/meta-data/local-ipv4": "10.0.0.10",
            "/latest/meta-data/ami-id": "ami-0c1d2e3f4a5b6c7d8",
            "/latest/meta-data/instance-type": "m5.large",
            "/latest/meta-data": "ami-id\nhostname\niam/\ninstance-id\ninstance-type\n"
                                 "local-hostname\nlocal-ipv4\nplacement/",
            "/latest/meta-data/placement": "availability-zone\nregion",
            "/latest/meta-data/iam": "info\nsecurity-credentials/",
            creds_dir: self.role_name,
        }
        if p in simple:
            return _Reply(200, simple[p].encode(), text)
        if p == "/latest/meta-data/iam/info":
            body = {"Code": "Success", "LastUpdated": _iso(now),
                    "InstanceProfileArn": f"arn:aws:iam::{self.account_id}:instance-profile/{self.role_name}",
                    "InstanceProfileId": "AIPAFAKEINSTANCEPROF1"}
            return _Reply(200, json.dumps(body, indent=2).encode(), text)
        if p == creds_dir + "/" + self.role_name:
            cred = self.current_credentials()
            body = {"Code": "Success", "LastUpdated": _iso(cred.issued),
                    "Type": "AWS-HMAC", "AccessKeyId": cred.access_key_id,
                    "SecretAccessKey": cred.secret_access_key, "Token": cred.token,
                    "Expiration": _iso(cred.expiration)}
            return _Reply(200, json.dumps(body, indent=2).encode(), text)
        if p == "/latest/dynamic/instance-identity/document":
            doc = {"accountId": self.account_id, "architecture": "x86_64",
                   "availabilityZone": az, "billingProducts": None,
                   "devpayProductCodes": None, "marketplaceProductCodes": None,
                   "imageId": "ami-0c1d2e3f4a5b6c7d8", "instanceId": self.instance_id,
                   "instanceType": "m5.large", "kernelId": None,
                   "pendingTime": "2024-11-24T04:20:00Z", "privateIp": "10.0.0.10",
                   "ramdiskId": None, "region": self.region, "version": "2017-09-30"}
            return _Reply(200, json.dumps(doc, indent=2).encode(), text)
        return _Reply(404, _html_page(404), "text/html")

    def handle_ecs(self, method, headers):
        if method != "GET":
            return _Reply(405, b'{"code":"InvalidRequest","message":"method not allowed"}',
                          "application/json")
        if self.ecs_auth_token is not None and \
                headers.get("Authorization") != self.ecs_auth_token:
            return _Reply(401, b'{"code":"InvalidIdentity","message":"invalid authorization token"}',
                          "application/json")
        cred = self.current_credentials()
        body = {"AccessKeyId": cred.access_key_id, "SecretAccessKey": cred.secret_access_key,
                "Token": cred.token, "Expiration": _iso(cred.expiration),
                "RoleArn": f"arn:aws:iam::{self.account_id}:role/{self.role_name}"}
        return _Reply(200, json.dumps(body).encode(), "application/json")

    # ---- CloudWatch Logs --------------------------------------------------

    def handle_logs(self, method, target, headers, body, acked=True):
        """Answer one CloudWatch Logs request: (op name, _Reply)."""
        hmap = {k.lower(): v for k, v in reversed(headers)}
        amz_target = (hmap.get("x-amz-target") or "").strip()
        op = amz_target[len(TARGET_PREFIX):] if amz_target.startswith(TARGET_PREFIX) else None
        rid = self.request_id()
        events = 0
        try:
            if method != "POST":
                raise AwsError(404, "UnknownOperationException", None)
            with self._lock:
                sigv4_verify(method, target, headers, body, region=self.region,
                             service="logs", now=self.now(), lookup=self._creds.get,
                             require_signed_token=self.require_signed_token)
            handler = getattr(self, "_op_" + op, None) if op and op.isalnum() else None
            if handler is None:
                raise AwsError(400, "UnknownOperationException", None)
            ctype = (hmap.get("content-type") or "").split(";")[0].strip().lower()
            if ctype != JSON_TYPE:
                raise AwsError(400, "SerializationException",
                               f"Content-Type must be {JSON_TYPE}, not '{ctype}'")
            try:
                req = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
            except (UnicodeDecodeError, ValueError) as e:
                raise AwsError(400, "SerializationException", str(e)) from None
            if not isinstance(req, dict):
                raise AwsError(400, "SerializationException",
                               "Start of list found where not expected")
            with self._lock:
                result = handler(req, rid, acked)
                if isinstance(result, tuple):
                    result, events = result
            payload = b"" if result is None else json.dumps(result).encode()
            reply = _Reply(200, payload, JSON_TYPE, events=events)
        except AwsError as e:
            reply = self.error_reply(e)
        reply.headers.insert(0, ("x-amzn-RequestId", rid))
        reply.request_id = rid
        return op or "unknown", reply

    @staticmethod
    def error_reply(e):
        doc = {"__type": e.type}
        if e.message is not None:
            doc["message"] = e.message
        return _Reply(e.status, json.dumps(doc).encode(), JSON_TYPE,
                      [("x-amzn-ErrorType", e.type)], error=e.type)

    def _str(self, req, key, pattern=None, required=True, maxlen=512):
        value = req.get(key)
        if value is None:
            if required:
                raise _validation(None, key, "Member must not be null")
            return None
        if not isinstance(value, str):
            raise AwsError(400, "SerializationException",
                           f"Unexpected value type for '{key}': expected a string")
        if len(value) < 1:
            raise _validation(value, key, "Member must have length greater than or equal to 1")
        if len(value) > maxlen:
            raise _validation(value, key,
                              f"Member must have length less than or equal to {maxlen}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise _validation(value, key, "Member must satisfy regular expression "
                              f"pattern: {pattern}")
        return value

    def _group(self, name):
        g = self._groups.get(name)
        if g is None:
            raise AwsError(400, "ResourceNotFoundException",
                           "The specified log group does not exist.")
        return g

    def _group_arn(self, name):
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}"

    def _op_CreateLogGroup(self, req, rid, acked):
        name = self._str(req, "logGroupName", GROUP_PATTERN)
        cls = req.get("logGroupClass", "STANDARD")
        if cls not in ("STANDARD", "INFREQUENT_ACCESS", "DELIVERY"):
            raise _validation(cls, "logGroupClass",
                              "Member must satisfy enum value set: "
                              "[DELIVERY, STANDARD, INFREQUENT_ACCESS]")
        kms = req.get("kmsKeyId")
        if kms is not None:
            if not isinstance(kms, str) or len(kms) > 256:
                raise _validation(kms, "kmsKeyId",
                                  "Member must have length less than or equal to 256")
            if not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", kms):
                raise _invalid("Specified KMS key ARN is not valid: " + kms)
        tags = req.get("tags") or {}
        if not isinstance(tags, dict):
            raise AwsError(400, "SerializationException", "tags must be a map")
        if len(tags) > 50:
            raise _validation("{...}", "tags", "Member must have length less than or equal to 50")
        for k, v in tags.items():
            if not 1 <= len(k) <= 128 or not _tag_text_ok(k):
                raise _validation(k, "tags.key", "Member must satisfy regular expression "
                                  "pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+)$")
            if not isinstance(v, str) or len(v) > 256 or not _tag_text_ok(v):
                raise _validation(v, "tags.value", "Member must satisfy regular expression "
                                  "pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$")
            if k.lower().startswith("aws:"):
                raise _invalid("Tag keys starting with aws: are reserved")
        if name in self._groups:
            raise AwsError(400, "ResourceAlreadyExistsException",
                           "The specified log group already exists")
        g = self._new_group()
        g.update(logGroupClass=cls, kmsKeyId=kms, tags=dict(tags))
        self._groups[name] = g
        return None

    def _op_CreateLogStream(self, req, rid, acked):
        group = self._str(req, "logGroupName", GROUP_PATTERN)
        stream = self._str(req, "logStreamName", STREAM_PATTERN)
        g = self._group(group)
        if stream in g["streams"]:
            raise AwsError(400, "ResourceAlreadyExistsException",
                           "The specified log stream already exists")
        g["streams"][stream] = self._new_stream()
        return None

    def _op_DeleteLogGroup(self, req, rid, acked):
        name = self._str(req, "logGroupName", GROUP_PATTERN)
        self._group(name)
        del self._groups[name]
        return None

    def _op_DeleteLogStream(self, req, rid, acked):
        g = self._group(self._str(req, "logGroupName", GROUP_PATTERN))
        stream = self._str(req, "logStreamName", STREAM_PATTERN)
        if stream not in g["streams"]:
            raise AwsError(400, "ResourceNotFoundException",
                           "The specified log stream does not exist.")
        del g["streams"][stream]
        return None

    def _op_PutRetentionPolicy(self, req, rid, acked):
        name = self._str(req, "logGroupName", GROUP_PATTERN)
        days = req.get("retentionInDays")
        if days is None:
            raise _validation(None, "retentionInDays", "Member must not be null")
        if isinstance(days, bool) or not isinstance(days, int):
            raise AwsError(400, "SerializationException",
                           "Unexpected value type for 'retentionInDays': expected an integer")
        if days not in RETENTION_DAYS:
            raise _validation(days, "retentionInDays", "Member must satisfy enum value "
                              f"set: [{', '.join(map(str, RETENTION_DAYS))}]")
        self._group(name)["retentionInDays"] = days
        return None

    def _op_DescribeLogGroups(self, req, rid, acked):
        prefix = self._str(req, "logGroupNamePrefix", GROUP_PATTERN, required=False) or ""
        out = []
        for name in sorted(self._groups):
            if name.startswith(prefix):
                g = self._groups[name]
                item = {"logGroupName": name, "creationTime": g["creationTime"],
                        "metricFilterCount": 0, "arn": self._group_arn(name) + ":*",
                        "storedBytes": sum(s["bytes"] for s in g["streams"].values())}
                if g["retentionInDays"] is not None:
                    item["retentionInDays"] = g["retentionInDays"]
                item["logGroupClass"] = g.get("logGroupClass", "STANDARD")
                if g.get("kmsKeyId"):
                    item["kmsKeyId"] = g["kmsKeyId"]
                out.append(item)
        limit = req.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 50:
            raise _validation(limit, "limit", "Member must have value between 1 and 50")
        return {"logGroups": out[:limit]}

    def _op_DescribeLogStreams(self, req, rid, acked):
        name = self._str(req, "logGroupName", GROUP_PATTERN)
        prefix = self._str(req, "logStreamNamePrefix", STREAM_PATTERN, required=False) or ""
        limit = req.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise _validation(limit, "limit", "Member must have value between 1 and 50")
        g = self._group(name)
        out = []
        for sname in sorted(g["streams"]):
            if not sname.startswith(prefix):
                continue
            s = g["streams"][sname]
            item = {"logStreamName": sname, "creationTime": s["creationTime"],
                    "arn": f"{self._group_arn(name)}:log-stream:{sname}",
                    "storedBytes": 0, "uploadSequenceToken": _seq_token(s["token"])}
            for key in ("firstEventTimestamp", "lastEventTimestamp", "lastIngestionTime"):
                if s[key] is not None:
                    item[key] = s[key]
            out.append(item)
        return {"logStreams": out[:limit]}

    def _op_PutLogEvents(self, req, rid, acked):
        group = self._str(req, "logGroupName", GROUP_PATTERN)
        stream = self._str(req, "logStreamName", STREAM_PATTERN)
        evs = req.get("logEvents")
        if evs is None:
            raise _validation(None, "logEvents", "Member must not be null")
        if not isinstance(evs, list):
            raise AwsError(400, "SerializationException",
                           "Unexpected value type for 'logEvents': expected a list")
        if len(evs) < 1:
            raise _validation("[]", "logEvents",
                              "Member must have length greater than or equal to 1")
        if len(evs) > MAX_BATCH_EVENTS:
            raise _validation(f"[{len(evs)} events]", "logEvents",
                              f"Member must have length less than or equal to {MAX_BATCH_EVENTS}")
        sizes = []
        for i, ev in enumerate(evs, 1):
            if not isinstance(ev, dict):
                raise AwsError(400, "SerializationException",
                               "Unexpected value type in 'logEvents': expected an object")
            ts, msg = ev.get("timestamp"), ev.get("message")
            if ts is None:
                raise _validation(None, f"logEvents.{i}.member.timestamp",
                                  "Member must not be null")
            if msg is None:
                raise _validation(None, f"logEvents.{i}.member.message",
                                  "Member must not be null")
            if isinstance(ts, bool) or not isinstance(ts, int):
                raise AwsError(400, "SerializationException",
                               f"Unexpected value type for 'timestamp': {ts!r} is not a Long")
            if not isinstance(msg, str):
                raise AwsError(400, "SerializationException",
                               "Unexpected value type for 'message': expected a string")
            if ts < 0:
                raise _validation(ts, f"logEvents.{i}.member.timestamp",
                                  "Member must have value greater than or equal to 0")
            if not msg:
                raise _validation("", f"logEvents.{i}.member.message",
                                  "Member must have length greater than or equal to 1")
            sizes.append(_utf8_len(msg))
        for n in sizes:
            if n > self.max_event_size:
                raise _invalid(f"Log event too large: {n} bytes exceeds limit of "
                               f"{self.max_event_size}")
        total = sum(sizes) + EVENT_OVERHEAD * len(sizes)
        if total > MAX_BATCH_BYTES:
            raise _invalid(f"Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}")
        stamps = [ev["timestamp"] for ev in evs]
        if any(b < a for a, b in zip(stamps, stamps[1:])):
            raise _invalid("Log events in a single PutLogEvents request must be in "
                           "chronological order.")
        if stamps[-1] - stamps[0] > MAX_SPAN_MS:
            raise _invalid("The batch of log events in a single PutLogEvents request "
                           "cannot span more than 24 hours.")
        g = self._group(group)
        s = g["streams"].get(stream)
        if s is None:
            raise AwsError(400, "ResourceNotFoundException",
                           "The specified log stream does not exist.")

        now_ms = int(self.now() * 1000)
        too_old = sum(1 for t in stamps if t < now_ms - TOO_OLD_MS)
        expired = 0
        if g["retentionInDays"] is not None:
            expired = sum(1 for t in stamps
                          if t < now_ms - g["retentionInDays"] * 86400000)
        too_new_from = next((i for i, t in enumerate(stamps) if t > now_ms + TOO_NEW_MS),
                            len(stamps))
        rejected = {}
        if too_new_from < len(stamps):
            rejected["tooNewLogEventStartIndex"] = too_new_from
        if too_old:
            rejected["tooOldLogEventEndIndex"] = too_old
        if expired:
            rejected["expiredLogEventEndIndex"] = expired
        stored = 0
        for i in range(max(too_old, expired), too_new_from):
            stored += 1
            self._seq += 1
            s["events"] += 1
            s["bytes"] += sizes[i]
            if self.store_events:
                self._events.append({
                    "seq": self._seq, "group": group, "stream": stream,
                    "timestamp": stamps[i], "message": evs[i]["message"],
                    "ingestion_time": now_ms, "request_id": rid, "acked": acked})
        if stored:
            first, last = stamps[max(too_old, expired)], stamps[too_new_from - 1]
            if s["firstEventTimestamp"] is None or first < s["firstEventTimestamp"]:
                s["firstEventTimestamp"] = first
            if s["lastEventTimestamp"] is None or last > s["lastEventTimestamp"]:
                s["lastEventTimestamp"] = last
            s["lastIngestionTime"] = now_ms
        if stored:
            now = time.monotonic()
            self._puts[rid] = [stored, now, None, self._received.get(threading.get_ident(), now)]
        s["token"] += 1
        out = {"nextSequenceToken": _seq_token(s["token"])}
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out, stored


def _seq_token(n):
    return f"{49600000000000000000000000000000000000000000000000000000 + n:056d}"


def _tag_text_ok(text):
    """CloudWatch's tag pattern [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]: letters,
    separators, numbers and those characters."""
    return all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in text)


def _no_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return socket.inet_aton(host)[0] == 127 and host.count(".") == 3
    except OSError:
        return False


def _make_certificates(directory):
    """A throw-away CA and a server certificate for 127.0.0.1/localhost."""
    ca_key = os.path.join(directory, "ca.key")
    ca_pem = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    cert = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_pem,
         "-days", "7", "-subj", "/CN=fake_aws test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-new", *ec, "-keyout", key, "-out", csr,
         "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
         "-set_serial", "4097", "-days", "7", "-out", cert, "-extfile", ext],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed: {r.stderr.decode(errors='replace')}")
    return ca_pem, cert, key


# --------------------------------------------------------------------------
# HTTP plumbing.

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, fake, ssl_ctx):
        self.fake = fake
        self.ssl_ctx = ssl_ctx
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host name; nothing here may
        # touch a resolver, so bind and record the address only.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ssl_ctx is not None:
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def close_all(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.fake.verbose:
            super().handle_error(request, client_address)


class _BaseHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_aws"
    sys_version = ""
    timeout = 120

    def version_string(self):
        return self.server_version

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)
        self.fake = self.server.fake

    def finish(self):
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fake_aws %s %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(16)
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length)

    def send_reply(self, reply):
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def hard_reset(self):
        """Drop the connection with a TCP RST, sending nothing."""
        self.close_connection = True
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for closer in (self.rfile.close, sock.close):
            try:
                closer()
            except OSError:
                pass

    def fault_reply(self, rule, aws):
        """The answer a terminal fault rule gives, or None for connection faults."""
        kind = rule.kind
        if aws:
            if kind == "throttle":
                return self.fake.error_reply(AwsError(400, "ThrottlingException", "Rate exceeded"))
            if kind == "503":
                return self.fake.error_reply(AwsError(
                    503, "ServiceUnavailableException",
                    "The service is unavailable. Please try again later."))
            if kind == "500":
                return self.fake.error_reply(AwsError(
                    500, "InternalFailure", "The request processing has failed "
                    "because of an unknown error, exception or failure."))
            if kind == "error":
                return self.fake.error_reply(AwsError(
                    rule.status or 400, rule.type or "InternalFailure", rule.message or "injected"))
            if kind == "expired_token":
                return self.fake.error_reply(AwsError(400, "ExpiredTokenException",
                                                      MSG_EXPIRED_TOKEN))
        else:
            status = {"throttle": 429, "503": 503, "500": 500, "expired_token": 401,
                      "error": rule.status or 500}.get(kind)
            if status is not None:
                body = (rule.message or "").encode() if kind == "error" else _html_page(status)
                return _Reply(status, body, "text/plain" if kind == "error" else "text/html")
        if kind == "garbage":
            return _Reply(200, GARBAGE, "text/plain")
        if kind in ("empty", "empty_role_list"):
            return _Reply(200, b"", "text/plain")
        if kind == "html":
            return _Reply(rule.status or 500, _html_page(rule.status or 500), "text/html")
        return None

    def serve(self, op, perform, aws):
        """Common path: faults, then perform() -> _Reply, then record."""
        delay, rule = self.fake._pick_fault(op)
        with self.fake._lock:
            answer_delay = self.fake._answer_delay.pop(threading.get_ident(), 0.0)
        if delay:
            self.fake._stopping.wait(delay)
        kind = rule.kind if rule else None
        if kind in ("reset_before", "outage"):
            self.fake._record(op, "reset", fault=kind)
            self.hard_reset()
            return
        if kind == "close":
            self.close_connection = True
            self.fake._record(op, "closed", fault=kind)
            return
        # Record before answering: once a client has its answer, the counts
        # and the state file already include the request.
        if kind == "endless":
            events = perform(False).events if rule.perform else 0
            self.fake._record(op, "endless", fault=kind, events=events)
            self.send_endless(rule.seconds or 1.0)
            return
        if rule is not None and kind != "reset_after":
            reply = self.fault_reply(rule, aws)
            if rule.perform:
                reply.events = perform(200 <= reply.status < 300).events
            if aws:
                reply.request_id = self.fake.request_id()
                reply.headers.insert(0, ("x-amzn-RequestId", reply.request_id))
            self.fake._record(op, reply.status, reply.error, fault=kind,
                              events=reply.events, request_id=reply.request_id)
            self.send_reply(reply)
            return
        reply = perform(kind != "reset_after")
        if kind == "reset_after":
            with self.fake._lock:
                self.fake._stats["reset_after"]["requests"] += 1
                self.fake._stats["reset_after"]["events"] += reply.events
            self.fake._record(op, "reset", reply.error, fault=kind, events=reply.events,
                              request_id=reply.request_id)
            self.hard_reset()
            return
        self.fake._record(op, reply.status, reply.error, fault="latency" if delay else None,
                          events=reply.events, request_id=reply.request_id)
        if answer_delay:
            self.fake._stopping.wait(answer_delay)
        self.send_reply(reply)
        self.fake._answered(reply.request_id)

    def send_endless(self, interval):
        """200 and a chunked body that never ends, until the client goes."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while not self.fake._stopping.wait(interval):
                self.wfile.write(b"1\r\n \r\n")
                self.wfile.flush()
        except OSError:
            pass

    def read_or_fail(self):
        try:
            return self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_reply(_Reply(400, b"bad request body\n"))
            return None


class _ImdsHandler(_BaseHandler):
    def do_any(self):
        path = urllib.parse.urlsplit(self.path).path
        if self.read_or_fail() is None:
            return
        hdrs = self.headers
        if path == self.fake.ecs_relative_uri:
            self.serve("ecs:credentials",
                       lambda acked: self.fake.handle_ecs(self.command, hdrs), aws=False)
            return
        self.serve(self.fake.imds_op(self.command, path),
                   lambda acked: self.fake.handle_imds(self.command, path, hdrs), aws=False)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_any


class _LogsHandler(_BaseHandler):
    def do_any(self):
        if self.path.startswith("/_fake/"):
            self.control()
            return
        self.fake._request_received()
        try:
            self.do_logs()
        finally:
            self.fake._request_received(done=True)

    def do_logs(self):
        body = self.read_or_fail()
        if body is None:
            return
        headers = list(self.headers.items())
        target = (self.headers.get("X-Amz-Target") or "").strip()
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else "unknown"
        method, path = self.command, self.path

        def perform(acked):
            if not self.fake.quotas.take(op):
                reply = self.fake.error_reply(AwsError(400, "ThrottlingException",
                                                       "Rate exceeded"))
                reply.request_id = self.fake.request_id()
                reply.headers.insert(0, ("x-amzn-RequestId", reply.request_id))
                return reply
            _, reply = self.fake.handle_logs(method, path, headers, body, acked)
            return reply
        self.serve(op or "unknown", perform, aws=True)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_any

    def control(self):
        fake = self.fake
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        route = (self.command, url.path.rstrip("/"))
        try:
            raw = self.read_body()
            doc = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            if route == ("GET", "/_fake/health"):
                out = {"ok": True}
            elif route == ("GET", "/_fake/events"):
                evs = fake.events(q.get("group"), q.get("stream"), int(q.get("since", 0)))
                out = {"events": evs, "count": len(evs), "stored": fake.store_events}
            elif route == ("GET", "/_fake/requests"):
                out = fake.requests()
            elif route == ("GET", "/_fake/faults"):
                out = {"rules": fake.faults()}
            elif route == ("POST", "/_fake/faults"):
                if isinstance(doc, dict) and ("rules" in doc or "seed" in doc):
                    rules = fake.set_faults(doc.get("rules", []), bool(doc.get("append")),
                                            doc.get("seed"))
                else:
                    rules = fake.set_faults(doc)
                out = {"rules": rules}
            elif route == ("POST", "/_fake/reset"):
                fake.reset()
                out = {"ok": True}
            elif route == ("GET", "/_fake/state"):
                out = fake.state()
            elif route == ("GET", "/_fake/config"):
                out = fake.config()
            elif route == ("POST", "/_fake/config"):
                out = fake.config(**doc)
            elif route == ("GET", "/_fake/credentials"):
                out = fake.current_credentials().to_json()
            elif route == ("POST", "/_fake/rotate"):
                out = fake.rotate_credentials().to_json()
            elif route == ("POST", "/_fake/create"):
                fake.create(doc["group"], doc.get("stream"), doc.get("retention"))
                out = {"ok": True}
            elif route == ("POST", "/_fake/delete"):
                fake.delete(doc["group"], doc.get("stream"))
                out = {"ok": True}
            elif route == ("GET", "/_fake/quotas"):
                out = {"quotas": fake.quotas.to_json()}
            elif route == ("POST", "/_fake/quotas"):
                if isinstance(doc, dict) and "quotas" in doc:
                    out = {"quotas": fake.quotas.set(doc["quotas"], bool(doc.get("append")))}
                else:
                    out = {"quotas": fake.quotas.set(doc)}
            else:
                self.send_reply(_Reply(404, b'{"error": "no such control endpoint"}',
                                       "application/json"))
                return
            status = 200
        except (ValueError, KeyError, TypeError) as e:
            out, status = {"error": f"{type(e).__name__}: {e}"}, 400
        self.send_reply(_Reply(status, json.dumps(out).encode(), "application/json"))


# --------------------------------------------------------------------------
# Clients for tests in other processes.

class Control:
    """Client of the control API (/_fake/...) of a running fake."""

    def __init__(self, endpoint, ca_file=None, timeout=10.0):
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ctx) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")

    def health(self):
        return self.call("GET", "/_fake/health")

    def events(self, group=None, stream=None, since=0):
        q = {k: v for k, v in (("group", group), ("stream", stream), ("since", since)) if v}
        suffix = "?" + urllib.parse.urlencode(q) if q else ""
        return self.call("GET", "/_fake/events" + suffix)["events"]

    def wait_events(self, count, timeout=10.0, group=None, stream=None):
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(group, stream)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def requests(self):
        return self.call("GET", "/_fake/requests")

    def faults(self):
        return self.call("GET", "/_fake/faults")["rules"]

    def set_faults(self, rules, append=False, seed=None):
        body = {"rules": rules, "append": append}
        if seed is not None:
            body["seed"] = seed
        return self.call("POST", "/_fake/faults", body)["rules"]

    def reset(self):
        return self.call("POST", "/_fake/reset", {})

    def state(self):
        return self.call("GET", "/_fake/state")

    def config(self, **changes):
        return self.call("POST", "/_fake/config", changes) if changes \
            else self.call("GET", "/_fake/config")

    def credentials(self):
        return self.call("GET", "/_fake/credentials")

    def rotate(self):
        return self.call("POST", "/_fake/rotate", {})

    def create(self, group, stream=None, retention=None):
        return self.call("POST", "/_fake/create",
                         {"group": group, "stream": stream, "retention": retention})

    def delete(self, group, stream=None):
        return self.call("POST", "/_fake/delete", {"group": group, "stream": stream})

    def quotas(self):
        return self.call("GET", "/_fake/quotas")["quotas"]

    def set_quotas(self, quotas, append=False):
        return self.call("POST", "/_fake/quotas", {"quotas": quotas, "append": append})["quotas"]


class FakeAWSProcess:
    """Runs this file's CLI as a child process; .info is its JSON line."""

    def __init__(self, args=(), timeout=30.0, python=None):
        self.cmd = [python or sys.executable, os.path.abspath(__file__), *args]
        self.timeout = timeout
        self.proc = None
        self.info = None
        self.control = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE)
        line = b""
        deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.stop()
                    raise RuntimeError("fake_aws did not print its JSON line in time")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.stop()
                    raise RuntimeError("fake_aws exited before printing its JSON line")
                line += chunk
        self.info = json.loads(line.decode())
        self.control = Control(self.info["endpoint"], self.info.get("ca_file"))
        return self

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit status (killed if it hangs)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# CLI.

def _parse_args(argv):
    p = argparse.ArgumentParser(
        description="Fake IMDSv2 + ECS credentials + CloudWatch Logs for tests "
                    "(loopback only). Prints a JSON line with the ports, serves "
                    "until SIGTERM.")
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="CloudWatch Logs port (0: any)")
    p.add_argument("--imds-port", type=int, default=0, help="IMDS/ECS port (0: any)")
    p.add_argument("--state-file", help="JSON file rewritten after every request")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--seed", type=int, help="seed for fault probabilities and generated ids")
    p.add_argument("--credential-lifetime", type=float, default=6 * 3600,
                   help="seconds each credential set lives (default 21600)")
    p.add_argument("--rotation-window", type=float,
                   help="issue a new set this long before expiry (default min(900, lifetime/4))")
    p.add_argument("--max-event-size", type=int, default=DEFAULT_MAX_EVENT_SIZE,
                   help=f"per-event message limit in bytes (default {DEFAULT_MAX_EVENT_SIZE})")
    p.add_argument("--faults", help="fault rules: JSON list, or @FILE")
    p.add_argument("--tls", action="store_true", help="serve CloudWatch over HTTPS")
    p.add_argument("--static-key", action="append", default=[], metavar="AKID:SECRET[:TOKEN]",
                   help="also accept this never-expiring key (repeatable)")
    p.add_argument("--ecs-relative-uri", default="/v2/credentials/fake-task-0001")
    p.add_argument("--ecs-auth-token", help="required Authorization value for ECS credentials")
    p.add_argument("--no-store-events", action="store_true",
                   help="count events but keep no messages (benchmarks)")
    p.add_argument("--allow-unsigned-token", action="store_true",
                   help="accept an x-amz-security-token that is not signed")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    p.add_argument("--quota", action="append", default=[], metavar="OP=RATE[:BURST]",
                   help="account-wide requests/s of a CloudWatch op (repeatable; OP 'logs': "
                        "every op without its own)")
    return p.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    faults = None
    if args.faults:
        text = args.faults
        try:
            if text.startswith("@"):
                with open(text[1:], encoding="utf-8") as f:
                    text = f.read()
            faults = json.loads(text)
        except (OSError, ValueError) as e:
            sys.stderr.write(f"fake_aws: --faults: {e}\n")
            return 2
    static = []
    for item in args.static_key:
        parts = item.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise SystemExit(f"fake_aws: bad --static-key {item!r}")
        static.append(tuple(parts))
    quotas = {}
    try:
        for item in args.quota:
            quotas.update(Quotas.parse_flag(item))
    except ValueError as e:
        sys.stderr.write(f"fake_aws: --quota: {e}\n")
        return 2
    try:
        fake = _fake_from_args(args, faults, static)
        fake.quotas.set(quotas)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"fake_aws: {e}\n")
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        fake.start()
    except (OSError, RuntimeError) as e:
        sys.stderr.write(f"fake_aws: cannot start: {e}\n")
        fake.stop()
        return 1
    try:
        sys.stdout.write(json.dumps(fake.info()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        fake.stop()
    return 0


def _fake_from_args(args, faults, static):
    return FakeAWS(host=args.host, port=args.port, imds_port=args.imds_port,
                   region=args.region, state_file=args.state_file, seed=args.seed,
                   credential_lifetime=args.credential_lifetime,
                   rotation_window=args.rotation_window, max_event_size=args.max_event_size,
                   faults=faults, tls=args.tls, static_credentials=static,
                   ecs_relative_uri=args.ecs_relative_uri, ecs_auth_token=args.ecs_auth_token,
                   store_events=not args.no_store_events, verbose=args.verbose,
                   require_signed_token=not args.allow_unsigned_token)


if __name__ == "__main__":
    sys.exit(main())
