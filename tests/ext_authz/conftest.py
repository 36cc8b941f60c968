"""Black-box tests of tokend as Envoy's external authorizer: a real Envoy
running deploy/envoy/ext-authz.yaml (only the tokend port changed) in
front of a tiny upstream that echoes the headers it received, with ext_authz
pointing at a real `tokend serve`. The fixtures start all three; `.ci/ext-authz`
runs the suite once per database and sets:

  EXT_TOKEND     the tokend binary
  EXT_DB_URL     the database tokend serves (fresh)
  EXT_DB         sqlite | postgres
  EXT_SQLITE_PATH (sqlite only) the database file
  EXT_ENVOY_YAML the rendered gateway config (tokend on EXT_TOKEND_PORT)
  EXT_TOKEND_PORT tokend's gRPC port (default 50061)

Ports: Envoy 8090 (admin 9910), upstream 8091, tokend EXT_TOKEND_PORT; a
second Envoy on 8092 (admin 9911) whose connections to tokend leave from
127.0.0.2, a peer tokend does not admit.
"""

import http.client
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

TOKEND = os.environ.get("EXT_TOKEND", str(Path(__file__).resolve().parents[2] / "target/debug/tokend"))
DB_URL = os.environ.get("EXT_DB_URL", "")
DB = os.environ.get("EXT_DB", "sqlite")
ENVOY_YAML = os.environ.get("EXT_ENVOY_YAML", "")
TOKEND_PORT = int(os.environ.get("EXT_TOKEND_PORT", "50061"))
GATEWAY = ("127.0.0.1", 8090)
REFUSED_GATEWAY = ("127.0.0.1", 8092)
UPSTREAM = ("127.0.0.1", 8091)
ORG = "org-1"
METRICS_PORT = 9913


def metric(series):
    """The value of one `/metrics` sample of tokend (0 when absent)."""
    conn = http.client.HTTPConnection("127.0.0.1", METRICS_PORT, timeout=10)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


def eventually(what, check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers 200 with the request's headers as JSON, and records them."""

    seen = []

    def _answer(self):
        headers = {k.lower(): v for k, v in self.headers.items()}
        Echo.seen.append({"path": self.path, "headers": headers})
        body = json.dumps({"path": self.path, "headers": headers}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.raw = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return f"<{self.status} {dict(self.headers)} {self.raw[:300]!r}>"


def get(path, authorization=None, headers=None, source="127.0.0.1", gateway=GATEWAY):
    """One HTTP/1.1 request through the gateway from `source` (a loopback
    address: each test's failures are its own client's)."""
    conn = http.client.HTTPConnection(*gateway, timeout=15, source_address=(source, 0))
    try:
        sent = dict(headers or {})
        if authorization is not None:
            sent["authorization"] = authorization
        conn.request("GET", path, headers=sent)
        answer = conn.getresponse()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        conn.close()


class Tokend:
    """The tokend process behind the gateway; stopped and started by the
    fail-closed test."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.proc = None

    def start(self):
        log = open(self.log_dir / "tokend.log", "ab")
        self.proc = subprocess.Popen(
            [TOKEND, "--database-url", DB_URL, "serve", "--listen", f"127.0.0.1:{TOKEND_PORT}",
             "--usage-flush-interval", "200ms", "--health-check-interval", "200ms",
             "--auth-failure-threshold", "10", "--auth-failure-window", "1m",
             # Check only from 127.0.0.1: the second gateway (from
             # 127.0.0.2) must be refused.
             "--ext-authz-allowed-peers", "127.0.0.1/32",
             "--metrics-listen", f"127.0.0.1:{METRICS_PORT}"],
            stdout=log, stderr=log)
        eventually("tokend", lambda: self.rpc_ok())

    def rpc_ok(self):
        try:
            grpcurl("grpc.health.v1.Health/Check", {})
            return True
        except AssertionError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None


def grpcurl(method, body, secret=None):
    """A gRPC call to tokend by reflection; the answer as JSON."""
    args = ["grpcurl", "-plaintext", "-d", json.dumps(body)]
    if secret:
        args += ["-H", f"authorization: Bearer {secret}"]
    args += [f"127.0.0.1:{TOKEND_PORT}", method]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"{method}: {out.stdout} {out.stderr}"
    return json.loads(out.stdout) if out.stdout.strip() else {}


def start_envoy(config, base_id, log_path, admin_port):
    proc = subprocess.Popen(["envoy", "-c", str(config), "--base-id", str(base_id), "--log-level", "warn"],
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)

    def ready():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=2)
            conn.request("GET", "/ready")
            return conn.getresponse().status == 200
        except OSError:
            return False

    eventually("envoy", ready)
    return proc


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("ext-authz")


@pytest.fixture(scope="session")
def upstream():
    server = http.server.ThreadingHTTPServer(UPSTREAM, Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Echo
    server.shutdown()


@pytest.fixture(scope="session")
def tokend(workdir):
    owner = subprocess.run([TOKEND, "--database-url", DB_URL, "token", "create", "--org", ORG,
                            "--name", "gateway-owner", "--type", "ORGANIZATION",
                            "--role", "ORGANIZATION_OWNER", "--created-by", "ci"],
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    server = Tokend(workdir)
    server.owner = owner
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(tokend, upstream, workdir):
    proc = start_envoy(ENVOY_YAML, 27, workdir / "envoy.log", 9910)
    # The second gateway: the same config, its connections to tokend bound
    # to 127.0.0.2.
    config = yaml.safe_load(Path(ENVOY_YAML).read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = 9911
    config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 8092
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "tokend":
            cluster["upstream_bind_config"] = {"source_address": {"address": "127.0.0.2", "port_value": 0}}
    refused = workdir / "envoy-refused.yaml"
    refused.write_text(yaml.safe_dump(config))
    proc2 = start_envoy(refused, 28, workdir / "envoy-refused.log", 9911)
    yield
    for p in (proc, proc2):
        p.terminate()
        p.wait(timeout=30)


# Routes whose tokend requirement is a configuration error.
MISCONFIGURED = {
    "/unknown-role": {"tokend.organization_id": ORG, "tokend.required_role": "WORKSPACE_KING",
                      "tokend.entity": "WORKSPACE:ws-1"},
    "/malformed-entity": {"tokend.organization_id": ORG, "tokend.required_role": "WORKSPACE_AUTHOR",
                          "tokend.entity": "ws-1"},
    "/no-organization": {"tokend.required_role": "WORKSPACE_AUTHOR", "tokend.entity": "WORKSPACE:ws-1"},
    "/misspelt-key": {"tokend.organisation_id": ORG},
}


@pytest.fixture(scope="session")
def misconfigured_gateway(tokend, upstream, workdir):
    """A third gateway (8093, admin 9912) whose routes are misconfigured."""
    config = yaml.safe_load(Path(ENVOY_YAML).read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = 9912
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 8093
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    template = routes[0]
    manager["route_config"]["virtual_hosts"][0]["routes"] = [
        {**template, "match": {"prefix": f"{path}/"}, "typed_per_filter_config": {
            "envoy.filters.http.ext_authz": {
                **template["typed_per_filter_config"]["envoy.filters.http.ext_authz"],
                "check_settings": {"context_extensions": extensions}}}}
        for path, extensions in MISCONFIGURED.items()
    ]
    path = workdir / "envoy-misconfigured.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = start_envoy(path, 29, workdir / "envoy-misconfigured.log", 9912)
    yield list(MISCONFIGURED)
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def unknown_secret(workdir):
    """A well-formed secret of this deployment's prefix that no token of
    the database under test has: minted in a throwaway database."""
    out = subprocess.run([TOKEND, "--database-url", f"sqlite://{workdir}/elsewhere.db?mode=rwc", "token", "create",
                          "--org", ORG, "--name", "elsewhere", "--type", "ORGANIZATION",
                          "--role", "ORGANIZATION_OWNER"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(owner, role="WORKSPACE_OPERATOR", type_="WORKSPACE", entity="ws-1", org=ORG, **extra):
    body = {"organizationId": org, "name": unique("gw"), "type": type_, "role": role}
    if type_ != "ORGANIZATION":
        body["entityId"] = entity
    body.update(extra)
    return grpcurl("tokend.v1.ApiTokenService/CreateApiToken", body, owner)


def usage_of(token_id):
    """(last_used_at, last_used_ip) of a token, straight from the database."""
    query = f"SELECT last_used_at, last_used_ip FROM api_tokens WHERE id = '{token_id}'"
    if DB == "postgres":
        out = subprocess.run(["psql", DB_URL, "-Atc", query], capture_output=True, text=True, check=True).stdout
        at, _, ip = out.strip().partition("|")
        return (int(at) if at else None, ip or None)
    db = sqlite3.connect(os.environ["EXT_SQLITE_PATH"], timeout=10)
    try:
        row = db.execute(query).fetchone()
        return tuple(row) if row else (None, None)
    finally:
        db.close()
