"""Benchmark: what metering adds to a provider call. The same request to the Databento stub on
loopback, through the same pooled client, with and without the metering layer (usage event
written to PostgreSQL, error classification, validation), interleaved so both see the same noise.

Target (issue 3): metering adds ≤ 1 ms (median).

Run: make bench
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402

CALLS = 2_000


def main() -> int:
    setup_django()
    import httpx
    from django.core.management import call_command

    from apps.integrations import http
    from tests.stubs.databento import GOOD_KEY, DatabentoStub

    call_command("migrate", verbosity=0)
    stub = DatabentoStub().start()
    url = stub.url + "/v0/metadata.list_datasets"
    client = http._shared_client()
    raw, metered = [], []
    try:
        for i in range(CALLS + 200):
            t0 = time.perf_counter()
            response = client.get(url, auth=(GOOD_KEY, ""), timeout=httpx.Timeout(5))
            response.json()
            t1 = time.perf_counter()
            http.call(provider="databento", operation="bench", method="GET", url=url, auth=(GOOD_KEY, ""))
            t2 = time.perf_counter()
            if i >= 200:  # warm-up
                raw.append((t1 - t0) * 1000)
                metered.append((t2 - t1) * 1000)
    finally:
        stub.stop()
    raw_p50, metered_p50 = statistics.median(raw), statistics.median(metered)
    overhead = metered_p50 - raw_p50
    print(f"\n{CALLS:,} calls each to a loopback Databento stub, interleaved, same pooled client\n")
    print(f"{'path':<42}{'p50 ms':>10}{'p95 ms':>10}")
    for name, values in (
        ("without metering (peer: plain httpx)", raw),
        ("with metering (apps.integrations.http)", metered),
    ):
        values = sorted(values)
        print(f"{name:<42}{statistics.median(values):>10.3f}{values[int(len(values) * 0.95)]:>10.3f}")
    print(f"\nmetering adds {overhead:.3f} ms at the median (target ≤ 1 ms: {'met' if overhead <= 1 else 'MISSED'})")
    return 0 if overhead <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
