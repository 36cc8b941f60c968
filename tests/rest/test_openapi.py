"""tokend's own OpenAPI file (deploy/openapi/tokend.swagger.json, issue
18.11) states what clients generated from it need: the List bounds and
sorts as schema, no proto zero values in enums, Rotate's body optional, and
the vendors' error shapes by path family. (.ci/rest also checks the file is
what the proto annotations generate.)"""

import json
from pathlib import Path

SWAGGER = json.loads((Path(__file__).resolve().parents[2] / "deploy/openapi/tokend.swagger.json").read_text())


def parameters(path, method):
    return {p["name"]: p for p in SWAGGER["paths"][path][method]["parameters"]}


def test_list_bounds_and_sorts_are_schema():
    for prefix in ("iam", "platform"):
        query = parameters(f"/{prefix}/v1beta1/organizations/{{organizationId}}/tokens", "get")
        assert (query["offset"]["minimum"], query["offset"]["default"]) == (0, 0)
        assert (query["limit"]["minimum"], query["limit"]["maximum"], query["limit"]["default"]) == (0, 1000, 20)
        assert len(query["sorts"]["items"]["enum"]) == 10 and "tokenStartAt:desc" in query["sorts"]["items"]["enum"]
        assert query["kind"]["enum"] == ["STANDARD", "DIRECT_ACCESS"]


def test_no_enum_offers_a_proto_zero_value():
    assert "_UNSPECIFIED" not in json.dumps(SWAGGER)


def test_rotate_needs_no_body():
    for prefix in ("iam", "platform"):
        body = parameters(f"/{prefix}/v1beta1/organizations/{{organizationId}}/tokens/{{tokenId}}/rotate", "post")["body"]
        assert body["required"] is False


def test_errors_are_documented_in_the_vendor_shape_of_their_path():
    for path, operations in SWAGGER["paths"].items():
        shape = "#/definitions/ErrorEnvelope" if path.startswith("/api/") else "#/definitions/Error"
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["schema"]["$ref"] == shape, (path, method, status)
    assert SWAGGER["definitions"]["Error"]["required"] == ["message", "requestId", "statusCode"]
