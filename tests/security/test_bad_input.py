"""Attack 3: hostile bodies, unauthenticated, against a real `execbench serve`.

Each kind used to be a 500 with a 7 KB traceback in the log (nesting >= 300, integers over
64 bits, a lone surrogate, a 400-digit volume), a silently coerced order (`"volume": true` was a
1-lot order, `"2"` two lots), or a 400 for a chunked body over the limit. Now: a 4xx with the
field, nothing written, one log line per rejection (rate-limited), no traceback.
"""

import httpx
import pytest

pytestmark = pytest.mark.slow
ORDER = "/api/orders/instant/execute"
GOOD = {"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": 0.01}


def raw(body: str) -> bytes:
    return body.encode("utf-8", "surrogatepass")


NESTED = '[' * 300 + ']' * 300
CASES = {  # name: (raw JSON body, expected status, field the detail must name)
    "volume true": (raw('{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": true}'),
                    422, "volume"),
    "volume string": (raw('{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": "2"}'),
                      422, "volume"),
    "user_id true": (raw('{"user_id": true, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": 1}'),
                     422, "user_id"),
    "nesting 300 in a field": (raw('{"user_id": 1, "user_type": "live", "symbol": ' + NESTED
                                   + ', "side": "buy", "volume": 0.01}'), 422, "symbol"),
    "nesting 5000": (raw('[' * 5000 + ']' * 5000), 422, None),
    "integer over 64 bits": (raw('{"user_id": ' + str(2**70) + ', "user_type": "live", "symbol": "EURUSD", '
                                 '"side": "buy", "volume": 0.01}'), 422, None),
    "400-digit volume": (raw('{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", '
                             '"volume": ' + "9" * 400 + '}'), 422, None),
    "lone surrogate": (raw('{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", '
                           '"volume": 0.01, "client_order_id": "\\ud800"}'), 422, "client_order_id"),
    "raw lone surrogate bytes": (raw('{"user_id": 1, "user_type": "live", "symbol": "EUR\ud800", "side": "buy", '
                                     '"volume": 0.01}'), 422, None),
    "NaN": (raw('{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": NaN}'),
            422, None),
    "not JSON": (b'{"user_id": 1,', 422, None),
}


def detail_names(response, field):
    if field is None:
        return True
    return any(field in [str(x) for x in error["loc"]] for error in response.json()["detail"])


def test_hostile_bodies_get_a_4xx_and_change_nothing(running_service, database_url):
    svc = running_service(database_url=database_url, seed_users=2)
    before = svc.drained_ledger()
    answers: dict[str, list[int]] = {}
    tries = 20
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for name, (body, status, field) in CASES.items():
            for _ in range(tries):
                response = client.post(ORDER, content=body, headers={"content-type": "application/json"})
                answers.setdefault(name, []).append(response.status_code)
            assert response.status_code == status, (name, response.status_code, response.text[:300])
            assert detail_names(response, field), (name, response.text[:300])
            assert "Traceback" not in response.text
        # over the limit, declared or chunked: 413 either way
        big = b'{"pad": "' + b"x" * 20_000 + b'"}'
        declared = client.post(ORDER, content=big, headers={"content-type": "application/json"})

        def chunks():
            for i in range(0, len(big), 4096):
                yield big[i:i + 4096]

        chunked = client.post(ORDER, content=chunks(), headers={"content-type": "application/json"})
        assert declared.status_code == 413 and chunked.status_code == 413, (declared, chunked.text)
        # an admin change with a lone surrogate in its reason: 422 before anything is written
        flip = client.put("/admin/flags/provider_skip", headers=svc.admin_headers,
                          content=raw('{"mode": "skip", "reason": "\\udfff"}'))
        assert flip.status_code == 422 and detail_names(flip, "reason"), flip.text
        assert client.get("/admin/flags").json()["provider_skip"]["mode"] == "off"
        assert client.post(ORDER, json=GOOD).status_code == 200  # the service is fine
    assert all(s < 500 for statuses in answers.values() for s in statuses), answers
    after = svc.drained_ledger()
    assert after["orders_total"] == before["orders_total"] + 1
    log = svc.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if "rejected POST" in line]
    # one line per rejection at most (rate-limited: floods are summarized), never more
    assert 0 < len(lines) <= tries * len(CASES) + 2
