"""Calibration of a latency profile: sequential, unloaded orders through the real app.

    python benchmarks/calibrate.py --profile seed --orders 60

Prints executor_ms p50/p95 per flow and mode (in-process ASGI, SQLite in a temp dir), next to
what the profile alone injects (its seeded draws, no clock) and the difference, the service's real
work on this machine. For the seed profile it also prints the note's targets, provider `off`
p50 = 253 ms and `skip` = 88 ms, and whether the measured p50 is within ±5 % of them.

A wall-clock figure: it depends on the machine and on what else runs on it, so it is printed here,
not asserted in the tests (tests/service/test_calibration.py checks the injected part, which a
seed makes deterministic). Run it on an idle machine, and more than once, before you change
profiles/seed.toml.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from inprocess import seeded_client, set_mode  # benchmarks/inprocess.py

from service.profiles import load_profile

MODES = ("off", "skip", "skip_reserve")
TARGETS = {("provider", "off"): 253.0, ("provider", "skip"): 88.0}  # the seed profile's, from the note
FRONT = ["config_fetch_ms", "single_margin_ms", "free_margin_ms"]
FULL = ["user_lock_ms", "orders_fetch_ms", "total_margin_ms", "persist_ms"]
SKIP = [*FRONT, "persist_ms", "provider_send_ms"]


def injected_stages(flow: str, mode: str) -> list[str]:
    """The stages the executor injects a delay for (service/executor.py), in its order."""
    if flow == "local":
        return [*FRONT, *FULL]
    return [*FRONT, *FULL, "provider_send_ms"] if mode == "off" else SKIP


def injected_median(profile_name: str, flow: str, mode: str, draws: int = 4000,
                    seed: int | None = 1) -> float:
    profile = load_profile(profile_name, seed=seed)
    stages = [s for s in injected_stages(flow, mode) if s in profile.stages]
    rng = profile._rng
    return statistics.median(sum(profile.stages[s].sample_ms(rng) for s in stages)
                             for _ in range(draws))


async def measure(profile: str, orders: int, latency_seed: int | None = None) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {}
    async with seeded_client(users=orders, run_workers=False, profile=profile,
                             latency_seed=latency_seed) as client:
        for mode in MODES:
            await set_mode(client, mode)
            for user_type, flow in (("live", "provider"), ("demo", "local")):
                for i in range(orders):
                    response = await client.post("/api/orders/instant/execute", json={
                        "user_id": i + 1, "user_type": user_type, "symbol": "EURUSD",
                        "side": "buy", "volume": 0.01})
                    response.raise_for_status()
                    results.setdefault((flow, mode), []).append(
                        response.json()["durations_ms"]["executor_ms"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="seed")
    parser.add_argument("--orders", type=int, default=60, help="orders per flow and mode")
    parser.add_argument("--latency-seed", type=int, default=1, help="fix the injected delays' draws")
    args = parser.parse_args()
    results = asyncio.run(measure(args.profile, args.orders, args.latency_seed))
    print(f"profile {args.profile}, {args.orders} sequential orders per flow and mode, "
          f"latency seed {args.latency_seed}; executor_ms in ms")
    print(f"{'flow':8} {'mode':12} {'n':>4} {'p50':>7} {'p95':>7} {'injected':>9} {'real work':>9}"
          f"  target")
    local_p50 = {}
    for (flow, mode), values in sorted(results.items()):
        p50 = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[18]
        injected = injected_median(args.profile, flow, mode, seed=args.latency_seed)
        line = (f"{flow:8} {mode:12} {len(values):4} {p50:7.1f} {p95:7.1f} {injected:9.1f} "
                f"{p50 - injected:9.1f}")
        target = TARGETS.get((flow, mode)) if args.profile == "seed" else None
        if target is not None:
            verdict = "within" if abs(p50 - target) <= 0.05 * target else "OUTSIDE"
            line += f"  {target:.0f} ±5 %: {verdict} ({(p50 - target) / target:+.1%})"
        if flow == "local":
            local_p50[mode] = p50
        print(line)
    if len(local_p50) > 1:
        spread = max(local_p50.values()) - min(local_p50.values())
        print(f"local flow p50 spread across modes: {spread:.1f} ms "
              f"({spread / local_p50['off']:.1%} of off; the profile injects the same in every mode)")


if __name__ == "__main__":
    main()
