"""Fuzzing ``edgerep serve`` against its own OpenAPI description with schemathesis: a real server
process on loopback (token on, an entity-conditioned bundle), every operation, a bounded number
of generated requests (valid and invalid bodies, headers, methods). Every schemathesis check
runs: no 5xx, status codes and content types documented, answers conform to their schemas,
schema-invalid requests rejected, the token not ignored, undocumented methods refused."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the [dev] extra) is not installed")
from hypothesis import HealthCheck, settings  # noqa: E402

from edgerep.device.serve import spawn  # noqa: E402

TOKEN = "fuzz-" + "0123456789abcdef" * 2
MAX_EXAMPLES = 100  # per operation and phase: a few hundred requests in all


@pytest.fixture(scope="module")
def fuzzed_server(tiny_entity_bundles, tmp_path_factory):
    token_file = tmp_path_factory.mktemp("fuzz") / "token"
    token_file.write_text(TOKEN)
    proc, url = spawn(tiny_entity_bundles["dynamic-int8"], "--token-file", str(token_file), "--max-texts", "8", "--max-body-kb", "256")
    yield url
    proc.terminate()
    proc.wait(20)
    assert proc.returncode in (0, -15), "the server did not stop cleanly after the fuzz run"


@pytest.fixture(scope="module")
def api_schema(fuzzed_server):
    return schemathesis.openapi.from_url(f"{fuzzed_server}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
