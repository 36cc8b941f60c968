"""Completes protoc-gen-swagger's output for tokend's REST surface.

protoc-gen-swagger 1.6.4 writes path and query parameters with proto field
names (`organization_id`, `dag_tags`), leaves repeated query parameters in
Swagger's default comma-separated format, and knows nothing of errors or of
authentication. Envoy's transcoder takes the lowerCamelCase names of the
seeds (`organizationId`, `dagTags=a&dagTags=b`), answers errors in the
vendor's shape of the path (Astronomer's Error, Dynatrace's ErrorEnvelope)
with the HTTP status of the contract, and
tokend wants `Authorization: Bearer`. This script says so, deterministically.

    python3 postprocess.py GENERATED.json OUT.json
"""

import json
import re
import sys


def camel(name):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


# The vendors' error bodies (issue 18.1), as the sidecar answers them: the
# Dynatrace path family (/api/...) and Astronomer's (everything else).
ASTRONOMER_ERROR = {
    "type": "object",
    "description": "Astronomer's Error: the error body under /iam/v1beta1 and /platform/v1beta1, "
    "from tokend through the sidecar or from the sidecar itself.",
    "properties": {
        "message": {"type": "string", "description": "What went wrong; names the offending field."},
        "requestId": {"type": "string", "description": "The request id, as in the x-request-id header."},
        "statusCode": {"type": "integer", "minimum": 400, "maximum": 600, "description": "The HTTP status."},
        "fieldErrors": {
            "type": "array",
            "description": "On 400 from validation: one entry per bad field.",
            "items": {"$ref": "#/definitions/FieldValidationError"},
        },
    },
    "required": ["message", "requestId", "statusCode"],
}
FIELD_ERROR = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "field": {"type": "string"},
        "message": {"type": "string"},
    },
    "required": ["code", "field", "message"],
}
DYNATRACE_ERROR = {
    "type": "object",
    "description": "Dynatrace's ErrorEnvelope: the error body under /api/v2.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "The HTTP status."},
                "message": {"type": "string"},
                "constraintViolations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "message": {"type": "string"},
                            "parameterLocation": {"type": "string", "enum": ["PATH", "PAYLOAD_BODY", "QUERY"]},
                            "location": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}

# HTTP status -> (gRPC code, when). The contract's error table, plus what
# the service's limits and Envoy add.
ERRORS = {
    "400": "INVALID_ARGUMENT: a bad argument (the message and a google.rpc.BadRequest name the field), "
    "an unknown or repeated query parameter, or a body that is not JSON.",
    "401": "UNAUTHENTICATED: no, malformed, unknown, disabled, expired or not-yet-valid bearer token.",
    "403": "PERMISSION_DENIED: the token's roles do not grant this.",
    "404": "NOT_FOUND: the token is absent, deleted, or in an organization the caller cannot see; or no such path.",
    "413": "The request body is over the sidecar's 64 KiB cap.",
    "431": "The request line and headers are over the sidecar's 16 KiB cap.",
    "429": "RESOURCE_EXHAUSTED: too many failed authentications from this address, "
    "or too many calls in flight from it.",
    "503": "UNAVAILABLE: the database or tokend is unreachable, or tokend is shedding load.",
    "504": "DEADLINE_EXCEEDED: the call ran past its deadline (tokend's --request-timeout, a shorter "
    "grpc-timeout header, or the sidecar's 15 s).",
}
WRITE_ERRORS = {
    "409": "ALREADY_EXISTS: another token in this scope has that name.",
}


# Query parameters' bounds, as tokend enforces them (src/domain/list.rs,
# issue 18.11): Astronomer's spec states them the same way.
QUERY_BOUNDS = {
    "offset": {"minimum": 0, "default": 0},
    "limit": {"minimum": 0, "maximum": 1000, "default": 20},
}
SORTS = [f"{field}:{direction}" for field in ("name", "description", "createdAt", "updatedAt", "tokenStartAt")
         for direction in ("asc", "desc")]


def without_unspecified(node):
    """Drops proto3's zero values (`*_UNSPECIFIED`) from every enum a client
    sends or receives: tokend never answers one and refuses or ignores one
    sent (absent means the same), so a generated client should not offer it."""
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            node["enum"] = [v for v in node["enum"] if not str(v).endswith("_UNSPECIFIED")]
        if str(node.get("default", "")).endswith("_UNSPECIFIED"):
            del node["default"]
        if isinstance(node.get("description"), str):
            node["description"] = "\n".join(
                line for line in node["description"].split("\n") if "_UNSPECIFIED:" not in line
            ).rstrip()
        for value in node.values():
            without_unspecified(value)
    elif isinstance(node, list):
        for value in node:
            without_unspecified(value)


def main(source, target):
    with open(source) as f:
        spec = json.load(f)

    spec["info"] = {
        "title": "tokend REST API",
        "description": "tokend.v1.ApiTokenService through the Envoy JSON transcoding sidecar "
        "(deploy/envoy/envoy.yaml). Generated from proto/tokend/v1/api_token.proto by "
        "deploy/openapi/generate; do not edit.",
        "version": "v1",
    }
    spec["schemes"] = ["http"]
    spec["securityDefinitions"] = {
        "bearer": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Bearer <secret>`: an API token of this deployment.",
        }
    }
    spec["security"] = [{"bearer": []}]
    definitions = spec["definitions"]
    definitions.pop("rpcStatus", None)
    definitions.pop("protobufAny", None)
    definitions["Error"] = ASTRONOMER_ERROR
    definitions["FieldValidationError"] = FIELD_ERROR
    definitions["ErrorEnvelope"] = DYNATRACE_ERROR

    path_fields = set()
    paths = {}
    for path, operations in spec["paths"].items():
        new_path = re.sub(r"\{([a-z_]+)\}", lambda m: "{" + camel(m.group(1)) + "}", path)
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("path", "query"):
                    if parameter["in"] == "path":
                        path_fields.add(camel(parameter["name"]))
                    parameter["name"] = camel(parameter["name"])
                if parameter.get("type") == "array" and parameter["in"] == "query":
                    parameter["collectionFormat"] = "multi"
                if parameter["in"] == "query":
                    parameter.update(QUERY_BOUNDS.get(parameter["name"], {}))
                    if parameter["name"] == "sorts":
                        parameter["items"]["enum"] = SORTS
                if parameter["in"] == "body":
                    # Rotate's body only carries the optional grace period:
                    # Astronomer's clients send none, which the sidecar takes.
                    parameter["required"] = not new_path.endswith("/rotate")
            errors = dict(ERRORS)
            if method != "get":
                errors.update(WRITE_ERRORS)
            shape = "ErrorEnvelope" if new_path.startswith("/api/") else "Error"
            for status, description in sorted(errors.items()):
                operation["responses"][status] = {
                    "description": description,
                    "schema": {"$ref": f"#/definitions/{shape}"},
                }
            operation["responses"]["200"]["description"] = "OK"
            if "properties" in operation["responses"]["200"].get("schema", {}):
                operation["responses"]["200"]["schema"] = {"type": "object", "properties": {}}
            if method == "delete":
                # The sidecar answers Astronomer's 204 with no body, not the
                # transcoded google.protobuf.Empty (deploy/envoy/envoy.yaml).
                del operation["responses"]["200"]
                operation["responses"]["204"] = {"description": "Deleted; no body."}
        paths[new_path] = operations
    spec["paths"] = paths

    # A body field bound to the path is not part of the body: Envoy refuses
    # a body that repeats it (reject_binding_body_field_collisions).
    for operations in paths.values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                ref = parameter.get("schema", {}).get("$ref", "")
                if parameter["in"] == "body" and ref:
                    schema = definitions[ref.rsplit("/", 1)[1]]
                    for field in path_fields:
                        schema.get("properties", {}).pop(field, None)

    without_unspecified(spec)

    with open(target, "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
