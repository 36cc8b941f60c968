"""tokend driven the way an operator does it, with no proto files: grpcurl
and buf curl through server reflection (list, describe, a call, an error
with its google.rpc.BadRequest details), and the health service."""

import json
import os
import subprocess

from conftest import ORG, SECRET, unique

GRPC = os.environ.get("GRPC_ADDR", "127.0.0.1:50051")


def run(*args, check=True):
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result
    return result


def grpcurl(*args, check=True):
    return run("grpcurl", "-plaintext", *args, check=check)


def test_grpcurl_lists_describes_and_calls():
    services = grpcurl(GRPC, "list").stdout.split()
    assert {"tokend.v1.ApiTokenService", "grpc.health.v1.Health"} <= set(services), services

    described = grpcurl(GRPC, "describe", "tokend.v1.ApiTokenService").stdout
    for rpc in ["GetApiToken", "ListApiTokens", "LookupApiToken", "CreateApiToken", "UpdateApiToken",
                "UpdateApiTokenRoles", "RotateApiToken", "DeleteApiToken", "ListAuditEvents"]:
        assert f"rpc {rpc} " in described, (rpc, described)
    message = grpcurl(GRPC, "describe", "tokend.v1.ListApiTokensRequest").stdout
    assert "repeated string dag_tags" in message and "google.protobuf.Int32Value limit" in message, message

    health = json.loads(grpcurl(GRPC, "grpc.health.v1.Health/Check").stdout)
    assert health == {"status": "SERVING"}
    health = json.loads(grpcurl("-d", '{"service":"tokend.v1.ApiTokenService"}', GRPC, "grpc.health.v1.Health/Check").stdout)
    assert health == {"status": "SERVING"}

    answer = grpcurl("-H", f"authorization: Bearer {SECRET}", "-d", json.dumps({"organizationId": ORG, "limit": 1}),
                     GRPC, "tokend.v1.ApiTokenService/ListApiTokens")
    listed = json.loads(answer.stdout)
    assert listed["limit"] == 1 and listed["totalCount"] >= 1 and len(listed["tokens"]) == 1


def test_grpcurl_shows_the_error_and_its_field_violation():
    refused = grpcurl("-format-error", "-H", f"authorization: Bearer {SECRET}",
                      "-d", json.dumps({"organizationId": ORG, "limit": 1001}),
                      GRPC, "tokend.v1.ApiTokenService/ListApiTokens", check=False)
    assert refused.returncode == 64 + 3, refused  # grpcurl exits 64 + the gRPC code
    status = json.loads(refused.stderr)
    assert status["code"] == 3
    assert status["details"] == [{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "limit", "description": "must be between 0 and 1000"}],
    }]
    anonymous = grpcurl("-d", json.dumps({"organizationId": ORG}), GRPC,
                        "tokend.v1.ApiTokenService/ListApiTokens", check=False)
    assert anonymous.returncode == 64 + 16, anonymous


def buf_curl(*args, check=True):
    return run("buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args, check=check)


def test_buf_curl_lists_and_calls():
    methods = buf_curl("--list-methods", f"http://{GRPC}").stdout.split()
    assert "tokend.v1.ApiTokenService/LookupApiToken" in methods, methods
    name = unique("made by buf curl")
    created = json.loads(buf_curl(
        "-H", f"authorization: Bearer {SECRET}",
        "-d", json.dumps({"organizationId": ORG, "name": name, "type": "ORGANIZATION",
                          "role": "ORGANIZATION_MEMBER"}),
        f"http://{GRPC}/tokend.v1.ApiTokenService/CreateApiToken").stdout)
    looked_up = json.loads(buf_curl(
        "-H", f"authorization: Bearer {created['token']}",
        "-d", json.dumps({"token": created["token"]}),
        f"http://{GRPC}/tokend.v1.ApiTokenService/LookupApiToken").stdout)
    assert looked_up["name"] == name
    assert looked_up["resourceScopes"], looked_up
    refused = buf_curl("-H", f"authorization: Bearer {SECRET}", "-d", json.dumps({"organizationId": ORG, "sorts": ["name:sideways"]}),
                       f"http://{GRPC}/tokend.v1.ApiTokenService/ListApiTokens", check=False)
    assert refused.returncode != 0
    assert json.loads(refused.stderr)["code"] == "invalid_argument", refused
