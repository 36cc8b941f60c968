"""Black-box REST tests: a real `tokend serve` behind a real Envoy running
deploy/envoy/envoy.yaml. `.ci/rest` starts both and sets:

  REST_URL      the sidecar, e.g. http://127.0.0.1:8080
  GRPC_ADDR     tokend itself, e.g. 127.0.0.1:50051
  REST_SECRET   an ORGANIZATION_OWNER secret of REST_ORG
  REST_ORG      that organization
  REST_DB       sqlite | postgres
  REST_PG_URL   (postgres only) the admin URL and REST_PG_DB the database name
  REST_SQLITE_PATH  (sqlite only) the database file
  REST_THROTTLED_URL  a second sidecar, in front of a second tokend on the
                same database with --auth-failure-threshold 3

Only the standard library talks HTTP, so a request here is exactly what curl
would send.
"""

import collections
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

import vendor

BASE = os.environ.get("REST_URL", "http://127.0.0.1:8080")
SECRET = os.environ.get("REST_SECRET", "")
ORG = os.environ.get("REST_ORG", "org-rest")
SEEDS = Path(__file__).parent / "seeds"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


# What each response was validated against (vendor.validate), counted;
# test_zy_vendor_coverage.py checks that every kind was seen.
VALIDATED = collections.Counter()


class Response:
    def __init__(self, status, headers, body, method="GET", path="/"):
        self.status = status
        self.headers = headers
        self.raw = body
        self.method = method
        self.path = path
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.raw[:400]!r}>"


def call(method, path, body=None, secret=None, headers=None, raw=None, base=None):
    """One HTTP request through the sidecar (`base`: another one).
    `secret=None` uses the bootstrap owner; `secret=""` sends no
    Authorization header."""
    if secret is None:
        secret = SECRET
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request((base or BASE) + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if secret:
        request.add_header("authorization", f"Bearer {secret}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = Response(response.status, response.headers, response.read(), method, path)
    except urllib.error.HTTPError as error:
        answer = Response(error.code, error.headers, error.read(), method, path)
    return checked(answer)


def checked(response):
    """Every response of the suite against its vendor's spec (issue 18);
    Astronomer errors also carry the request id of `x-request-id`."""
    what = vendor.validate(response.method, response.path, response.status, response.json, response.raw)
    if what is not None:
        VALIDATED[what] += 1
    if what == "Astronomer Error" and response.headers.get("x-request-id"):
        assert response.json["requestId"] == response.headers.get("x-request-id"), response
    return response


def ok(response, status=200):
    assert response.status == status, response
    return response.json


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(name=None, type_="WORKSPACE", role="WORKSPACE_OPERATOR", entity=None, secret=None, **extra):
    body = {"name": name or unique("t"), "type": type_, "role": role}
    if type_ != "ORGANIZATION":
        body["entityId"] = entity or unique("ws")
    body.update(extra)
    return ok(call("POST", f"/iam/v1beta1/organizations/{ORG}/tokens", body, secret=secret))


def tokens_path(prefix="platform"):
    return f"/{prefix}/v1beta1/organizations/{ORG}/tokens"


def eventually(what, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def seed_examples(name):
    """Every JSON object in a seed document, biggest last. Seed 000 numbers
    its example lines ("2 \"createdAt\": ..."), so leading numbers go."""
    text = (SEEDS / name).read_text()
    text = "\n".join(re.sub(r"^\d+(?=[\s{}\]\"])", "", line) for line in text.splitlines())
    found = []
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                try:
                    found.append(json.loads(text[start : end + 1]))
                except ValueError:
                    pass
                break
    found = [f for f in found if isinstance(f, dict)]
    return sorted(found, key=lambda f: len(json.dumps(f)))


def kind_of(value):
    """The JSON type of a value as the seeds describe it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "datetime" if RFC3339.match(value) else "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape(value):
    """Key set and types, recursively: {"a": "string", "o": {...}, "l": [{...}]}."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        if not value:
            return "[]"
        if isinstance(value[0], dict):
            return [shape(value[0])]
        return f"{kind_of(value[0])}[]"
    return kind_of(value)


def call_large(method, path, data, secret=None):
    """Like `call` for a body the sidecar refuses before reading it all:
    Envoy answers 413 and closes while the client is still sending, which
    urllib reports as a reset. Send what the socket takes, then read the
    answer that came back."""
    import socket

    host, port = urllib.parse.urlsplit(BASE).netloc.split(":")
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {SECRET if secret is None else secret}\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(head + data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    return checked(Response(int(status_line.split()[1]), {}, body, method, path))


@contextlib.contextmanager
def writes_held():
    """Holds the database's write lock for the block, so that every write
    tokend starts waits (reads still answer: SQLite's WAL readers, and
    PostgreSQL's EXCLUSIVE mode lets SELECT through). Released in any case
    when the block ends."""
    if os.environ.get("REST_DB") == "postgres":
        admin, name = os.environ["REST_PG_URL"], os.environ["REST_PG_DB"]
        url = admin.rsplit("/", 1)[0] + "/" + name
        session = subprocess.Popen(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1"], text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            session.stdin.write("begin;\nlock table api_tokens in exclusive mode;\nselect 'held';\n")
            session.stdin.flush()
            # The answer comes once the lock is held.
            assert session.stdout.readline().strip() == "held", "psql did not take the lock"
            yield
        finally:
            session.communicate("rollback;\n", timeout=30)
    else:
        db = sqlite3.connect(os.environ["REST_SQLITE_PATH"], timeout=10, isolation_level=None)
        try:
            db.execute("begin immediate")
            yield
        finally:
            if db.in_transaction:
                db.execute("rollback")
            db.close()
