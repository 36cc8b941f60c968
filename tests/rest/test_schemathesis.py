"""Property-based run of schemathesis against the generated OpenAPI file,
through the sidecar: no 5xx, every status, content type, header and body as
documented, and no operation that answers without authentication."""

import os
import subprocess
from pathlib import Path

from conftest import BASE, ORG, SECRET, create

ROOT = Path(__file__).resolve().parents[2]


def test_schemathesis_finds_no_server_error_and_no_schema_violation():
    target = create(name="schemathesis-target")
    env = dict(os.environ, SCHEMATHESIS_TOKEN_ID=target["id"], REST_ORG=ORG, REST_SECRET=SECRET)
    examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "100")
    run = subprocess.run(
        [
            "schemathesis",
            "--config-file",
            str(Path(__file__).parent / "schemathesis.toml"),
            "run",
            str(ROOT / "deploy/openapi/tokend.swagger.json"),
            "--url",
            BASE,
            "--max-examples",
            examples,
            # One worker: with two threads, CPython 3.11 (the machine's
            # Python) crashes inside schemathesis with "SystemError: AST
            # constructor recursion depth mismatch" (python/cpython#106905),
            # seen twice on a loaded machine.
            "--workers",
            "1",
            "--seed",
            os.environ.get("SCHEMATHESIS_SEED", "20261125"),
            "--no-color",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if "generated" in line or line.startswith("=")]
    print("\n".join(summary[-4:]))
    assert run.returncode == 0, output[-6000:]
