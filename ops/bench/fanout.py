"""Alert fan-out: N subscribers on two corpgraph processes, filings ingested one by one.

    python ops/bench/fanout.py [--subscribers 100,1000] [--filings 50]

Each subscriber (the npm graphql-ws client, tests/clients/fanout.mjs) asks for every filing of
one company; each filing carries its send time in its title, so every delivery has a latency:
from the ingest request leaving here to the event arriving at the subscriber. Prints p50/p99
latency, the share of events delivered, and the servers' memory per connection (their resident
memory with the subscribers connected, minus before, over N). Asserts nothing.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from db.apikeys import create_key  # noqa: E402
from db.engine import create_engine  # noqa: E402
from graph.cli.embedded import embedded_servers  # noqa: E402
from graph.cli.prepare import prepare_database  # noqa: E402
from graph.settings import Settings  # noqa: E402
from tests.servers import corpgraph_processes  # noqa: E402

CLIENTS = REPO / "tests" / "clients"
INGEST = """mutation($input: IngestFilingInput!) { ingestFiling(input: $input) { ingestCursor } }"""


async def writer_key(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        return (await create_key(engine, "enterprise", ["filings:write"]))[1]
    finally:
        await engine.dispose()


def resident_bytes(hosts: list[str]) -> int:
    ports = {int(host.rsplit(":", 1)[1]) for host in hosts}
    total = 0
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "serve" in cmdline and any(str(port) in cmdline for port in ports):
            total += sum(p.memory_info().rss for p in [process, *process.children(True)])
    return total


def run(hosts: list[str], key: str, subscribers: int, filings: int, series: int) -> str:
    before = resident_bytes(hosts)
    filters = json.dumps([{"tickers": ["AAPL"]}] * subscribers)
    urls = ",".join(f"ws://{host}/graphql" for host in hosts)
    fanout = subprocess.Popen(
        ["node", str(CLIENTS / "fanout.mjs"), urls, filters],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert fanout.stdout is not None and fanout.stdin is not None
    ready = json.loads(fanout.stdout.readline())
    assert ready == {"ready": subscribers}, ready
    per_connection = (resident_bytes(hosts) - before) / subscribers
    with httpx.Client(timeout=30) as client:
        for number in range(filings):
            filing = {
                "ticker": "AAPL", "formType": "8-K", "filedAt": "2026-11-06T13:00:00Z",
                "accessionNumber": f"0000320193-26-{series:02d}{number:04d}",
                "title": f"bench sentAt={int(time.time() * 1000)}",
            }  # fmt: skip
            body = {"query": INGEST, "variables": {"input": filing}}
            client.post(f"http://{hosts[number % 2]}/graphql", json=body,
                        headers={"authorization": f"Bearer {key}"})  # fmt: skip
            time.sleep(0.02)
    time.sleep(3)
    fanout.stdin.write("done\n")
    fanout.stdin.flush()
    result = json.loads(fanout.stdout.readline())
    fanout.wait(30)
    latencies = sorted(result["latencies"])
    delivered = len(latencies) / (subscribers * filings)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return (
        f"{subscribers:>6} subscribers  {filings} filings  delivered {delivered:6.1%}  "
        f"p50 {p50:6.0f} ms  p99 {p99:6.0f} ms  {per_connection / 1024:7.1f} KiB/connection"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", default="100,1000")
    parser.add_argument("--filings", type=int, default=50)
    args = parser.parse_args()
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENTS, check=True)
    data_dir = Path(tempfile.mkdtemp(prefix="corpgraph-fanout-"))
    try:
        with embedded_servers(data_dir, print, with_redis=True) as embedded:
            assert embedded.redis_url is not None
            asyncio.run(prepare_database(Settings(database_url=embedded.database_url), "small"))
            key = asyncio.run(writer_key(embedded.database_url))
            roomy = {"anonymous": {"ceiling": 10**6, "capacity": 10**9, "restore_rate": 10**6}}
            settings = {
                "tiers": json.dumps(roomy),
                "max_subscriptions": "10000",
                # every subscriber is one client here (this machine)
                "max_connections_per_client": "100000",
                "max_subscriptions_per_client": "100000",
            }
            with corpgraph_processes(2, embedded.database_url, embedded.redis_url,
                                     **settings) as hosts:  # fmt: skip
                for series, count in enumerate(int(n) for n in args.subscribers.split(",")):
                    print(run(hosts, key, count, args.filings, series + 10), flush=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
