"""Property-based fuzzing of the real service from its own OpenAPI schema (schemathesis).

Against a real `execbench serve` process: no server error, no response that breaks the
schema, no invalid input accepted, and no unauthenticated change to the admin state.
schemathesis' pytest plugin does not support this pytest; its Hypothesis strategies are
driven directly instead, with a bounded number of examples per operation.
"""

import httpx
import hypothesis
import pydantic
import pytest
import schemathesis

from service.schemas import FlagChange, ProviderChange

pytestmark = pytest.mark.slow
EXAMPLES = 60


def test_every_operation_holds_its_schema_under_fuzzing(running_service):
    svc = running_service(seed_users=20, orders_per_user=3, extra_env={
        "EXECBENCH_PROVIDER_DELAY_MS": "5",
        "EXECBENCH_ADMIN_REFUSAL_BURST": "1000000"})  # every refusal a 401/403, no 429 throttle
    schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /api/orders/instant/execute", "PUT /admin/flags/provider_skip", "PUT /admin/provider",
        "GET /api/accounts/{user_type}/{user_id}", "GET /admin/ledger"}
    checked = {}
    # One client for the test's own reads and authed calls: httpx.get() builds a client (and an
    # SSL context) per call, which was most of this test's CPU beside the fuzzer's.
    http = httpx.Client(base_url=svc.url, timeout=30)
    for operation in operations:
        calls = []

        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def fuzz(case):
            is_put = case.method.upper() == "PUT"
            if is_put:
                mode_before = http.get("/admin/flags").json()["provider_skip"]["mode"]
            # schemathesis' own transport, `requests`: it works only while nothing in the
            # environment replaces urllib3 (grafana-client's urllib3-future once did).
            kwargs = case.as_transport_kwargs(base_url=svc.url)
            kwargs_url, kwargs_json = kwargs["url"], kwargs.get("json")
            response = case.call(base_url=svc.url, timeout=30)
            calls.append(response.status_code)  # noqa: B023 -- fuzz() runs within this iteration
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)
            assert "Traceback" not in response.text
            case.validate_response(response)
            if is_put:  # the fuzzer holds no token: every change refused
                assert response.status_code in (401, 403, 422), response.text
                assert http.get("/admin/flags").json()["provider_skip"]["mode"] == mode_before
                # With the token, a change is accepted exactly when its body is valid.
                authed = http.request("PUT", kwargs_url, headers=svc.admin_headers,
                                      json=kwargs_json)
                model = FlagChange if case.path.endswith("provider_skip") else ProviderChange
                try:
                    model.model_validate(kwargs_json)
                    valid = True
                except pydantic.ValidationError:
                    valid = False
                assert authed.status_code == (200 if valid else 422), (kwargs_json, authed.text)
            if case.method.upper() == "POST" and response.status_code == 200:
                body = case.body
                assert body["volume"] > 0 and body["user_type"] in ("live", "demo")

        fuzz()
        checked[f"{operation.method.upper()} {operation.path}"] = len(calls)
    http.close()
    print(checked)
    assert all(count > 0 for count in checked.values())
    httpx.put(f"{svc.url}/admin/provider", headers=svc.admin_headers, json={"reason": "fuzz over"})
    # Read once the provider has answered every fuzzed order (fuzzed faults can leave some waiting
    # for the provider timeout): the reconciliation is then about settled state. The ledger reads
    # orders and accounts in separate statements, one snapshot on SQLite but not on PostgreSQL.
    ledger = svc.drained_ledger()
    assert ledger["orders_nonterminal"] == 0
    assert ledger["double_releases"] == 0 and ledger["reserved_vs_open_residual_usd"] == 0


def test_schemathesis_cli_finds_no_issue_with_the_token_or_without(running_service, tmp_path):
    """What a user runs (issue 14): `schemathesis run` against the service, every default check
    (undocumented status codes, `Allow` of a 405, undeclared methods...). Without the token the
    admin operations answer 401/403 (a warning, not a failure) and an undeclared method gets
    its 405 before any token is asked for."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    svc = running_service(seed_users=5, orders_per_user=2, extra_env={
        "EXECBENCH_PROVIDER_DELAY_MS": "5", "EXECBENCH_ADMIN_REFUSAL_BURST": "1000000"})
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a dev dependency: its CLI belongs in the venv"
    for auth in (["-H", f"Authorization: Bearer {svc.admin_token}"], []):
        result = subprocess.run([cli, "run", f"{svc.url}/openapi.json", "--max-examples", "15",
                                 "--seed", "1", *auth], capture_output=True, text=True,
                                timeout=240, check=False, cwd=tmp_path)  # its .schemathesis/
        assert result.returncode == 0 and "passed" in result.stdout, result.stdout[-4000:]

    options = httpx.options(f"{svc.url}/admin/provider")  # no token
    assert options.status_code == 405 and options.headers["allow"] == "GET, PUT"
    trace = httpx.request("TRACE", f"{svc.url}/admin/flags")
    assert trace.status_code == 405 and trace.headers["allow"] == "GET"
    assert httpx.put(f"{svc.url}/admin/provider", json={"outage": True}).status_code == 401
    assert httpx.get(f"{svc.url}/admin/nowhere").status_code == 401  # unknown admin paths stay gated
