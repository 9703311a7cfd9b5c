"""The peer of `loadgen_bench.py capacity`: plain Locust, one FastHttpUser class posting the
same order body to the same trivial target at a fixed per-user throughput.

    locust -f benchmarks/locust_peer.py --headless -u USERS -r USERS -t SECONDS --host URL

Each user sends PEER_RATE_PER_USER requests a second (`constant_throughput`), so USERS x that is
the offered rate; Locust's closed loop means a slow answer lowers it (which the trivial target
never gives). No execbench import: this is what a user gets from Locust alone.
"""

from __future__ import annotations

import os

from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

RATE_PER_USER = float(os.environ.get("PEER_RATE_PER_USER", "10"))
BODY = (b'{"user_id": 17, "user_type": "live", "symbol": "EURUSD", "side": "buy", '
        b'"volume": 0.01}')


class PlainOrderUser(FastHttpUser):
    wait_time = constant_throughput(RATE_PER_USER)

    @task
    def order(self) -> None:
        self.client.post("/api/orders/instant/execute", data=BODY,
                         headers={"content-type": "application/json"}, name="order")
