"""Every REST response checked against the vendor's published OpenAPI for its
path (issue 18): Astronomer's IAM v1beta1 (the reconstruction of the current
API, `astronomer_iam_v1beta1_current.yaml`) for `/iam/v1beta1/...` and
`/platform/v1beta1/...`, Dynatrace's Environment API v2 for `/api/v2/...`.
The files are read in place from `VENDOR_SPECS` (set by `.ci/rest` to
`../shared/specs`); they are never copied into the repository.

OpenAPI 3.0 schemas are JSON Schema draft 4 with extras; these files use
none that matter here (no `nullable`), so each schema is validated with
`jsonschema`'s Draft4Validator once its `$ref`s are inlined. Get, List and
Lookup answers are also checked closed-world: no property the vendor schema
does not define (Lookup: but tokend's documented extensions).

Where the specs leave a response undocumented, the vendors' published docs
decide: Astronomer answers every error with `Error` (the spec lists only
400/401/403/404/500), Dynatrace every 4XX/5XX with `ErrorEnvelope` (the spec
lists its lookup 404 without a body; docs.dynatrace.com's page for the
lookup documents `ErrorEnvelope` for 4XX and 5XX).
"""

import copy
import os
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
ASTRONOMER = "astronomer_iam_v1beta1_current.yaml"
DYNATRACE = "dynatrace_env_v2_apitokens.yaml"
# tokend's documented extensions of Dynatrace's ApiToken (the proto comments
# of ApiTokenMetadata).
LOOKUP_EXTENSIONS = {
    "organizationId": {"type": "string"},
    "startDate": {"type": "string"},
    "resourceScopes": {"type": "array", "items": {"type": "string"}},
}
# Astronomer's operations, by tokend path after the family prefix.
TEMPLATES = [
    (re.compile(r"^/organizations/[^/]+/tokens$"), "/organizations/{organizationId}/tokens"),
    (re.compile(r"^/organizations/[^/]+/tokens/[^/]+$"), "/organizations/{organizationId}/tokens/{tokenId}"),
    (re.compile(r"^/organizations/[^/]+/tokens/[^/]+/roles$"), "/organizations/{organizationId}/tokens/{tokenId}/roles"),
    (re.compile(r"^/organizations/[^/]+/tokens/[^/]+/rotate$"), "/organizations/{organizationId}/tokens/{tokenId}/rotate"),
]


def specs_dir():
    """The vendor specs, or None when they are absent outside CI. In CI
    (CI=true) their absence fails the run: the check is not optional there."""
    value = os.environ.get("VENDOR_SPECS")
    path = Path(value) if value else ROOT.parent / "shared" / "specs"
    if not path.is_absolute():
        path = ROOT / path
    if (path / ASTRONOMER).is_file() and (path / DYNATRACE).is_file():
        return path
    if os.environ.get("CI") == "true":
        raise AssertionError(f"vendor specs not found in {path} (VENDOR_SPECS); CI needs them")
    return None


_loaded = {}


def spec(name):
    if name not in _loaded:
        directory = specs_dir()
        _loaded[name] = yaml.safe_load((directory / name).read_text()) if directory else None
    return _loaded[name]


def inline(node, document):
    """`node` with every `#/...` reference replaced by what it names."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return inline(target, document)
        return {k: inline(v, document) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [inline(v, document) for v in node]
    return node


def closed(schema):
    """`schema` with `additionalProperties: false` on every object schema."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def family(path):
    """'dynatrace' for /api/..., else 'astronomer' (also for unknown paths:
    the sidecar answers those in Astronomer's shape)."""
    return "dynatrace" if path.startswith("/api/") else "astronomer"


def expected_schema(method, path, status):
    """(schema, what) for a response, or (None, why) when the vendors
    document no body for it."""
    bare = path.split("?", 1)[0]
    if family(bare) == "dynatrace":
        document = spec(DYNATRACE)
        if status >= 400:
            return inline({"$ref": "#/components/schemas/ErrorEnvelope"}, document), "Dynatrace ErrorEnvelope"
        if bare == "/api/v2/apiTokens/lookup" and method == "POST" and status == 200:
            schema = inline(document["paths"]["/apiTokens/lookup"]["post"]["responses"]["200"]["content"]
                            ["application/json; charset=utf-8"]["schema"], document)
            schema = closed(schema)
            schema["properties"].update(LOOKUP_EXTENSIONS)
            return schema, "Dynatrace ApiToken (closed, with tokend's extensions)"
        return None, "no Dynatrace operation"
    document = spec(ASTRONOMER)
    if status >= 400:
        return inline({"$ref": "#/components/schemas/Error"}, document), "Astronomer Error"
    match = re.match(r"^/(iam|platform)/v1beta1(/.*)$", bare)
    template = next((t for pattern, t in TEMPLATES if match and pattern.match(match.group(2))), None)
    if template is None:
        return None, "not an Astronomer path (tokend's own, e.g. /events)"
    operation = document["paths"][template].get(method.lower())
    if operation is None or str(status) not in operation["responses"]:
        raise AssertionError(f"{method} {bare} answered {status}, which Astronomer's spec does not document")
    response = operation["responses"][str(status)]
    if "content" not in response:
        return {"not": {}}, "no body"  # 204: the caller checks the body is empty
    schema = inline(response["content"]["application/json"]["schema"], document)
    if method == "GET":
        schema = closed(schema)
    return schema, f"Astronomer {operation['operationId']} {status}"


def validate(method, path, status, body, raw):
    """Raises AssertionError when a response does not match its vendor's
    spec; returns what it was checked against (None: not checked)."""
    if specs_dir() is None:
        return None
    schema, what = expected_schema(method, path, status)
    if schema is None:
        return None
    if what == "no body":
        assert raw == b"", f"{method} {path}: {status} must have no body, got {raw[:200]!r}"
        return what
    assert body is not None, f"{method} {path}: {status} is not JSON ({what}): {raw[:200]!r}"
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{method} {path} {status} against {what}:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:10]
    ) + f"\n  body: {raw[:400]!r}"
    return what


def error_of(response):
    """A vendor error body, normalized: status, message, the fields it names
    and the request id (Astronomer's; Dynatrace's shape has none)."""
    body = response.json
    assert isinstance(body, dict), response
    if family(response.path) == "dynatrace":
        error = body["error"]
        return {
            "status": error["code"],
            "message": error["message"],
            "fields": [v["path"] for v in error.get("constraintViolations", [])],
            "requestId": None,
        }
    return {
        "status": body["statusCode"],
        "message": body["message"],
        "fields": [v["field"] for v in body.get("fieldErrors", [])],
        "requestId": body["requestId"],
    }
