"""What a point of cost buys in server time: for each document of a body (the conformance
documents of tests/conformance.yaml, the benchmark's LIGHT and HEAVY, the persisted operations
of ops/operations, and a few wide but valid shapes), the server CPU per request of one
corpgraph worker divided by the request's actual cost.

    python ops/bench/cost_per_point.py [--requests 100] [--seed-size small|default]

Cost is rate control only while a point stands for about the same work whatever the document:
this prints ms per point for each, whole (its CPU over its cost, at least 1) and marginal (less
the CPU of `{ __typename }`, which every request spends, for documents of 10 points or more:
what the weights should track), their medians, the worst, and the worst against the median
(the aim: within 5x). Documents refused or answered with errors are listed apart. Nothing is
asserted: the machines are shared and noisy, so only ratios from one run compare.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from run import HEAVY, LIGHT, ROOMY, cpu_seconds, start_corpgraph, wait_up  # noqa: E402

from graph.embedded import embedded_servers  # noqa: E402
from graph.prepare import prepare_database  # noqa: E402
from graph.settings import Settings  # noqa: E402

MARGINAL_FROM = 10  # points
WIDE = {
    "repeated scalars": '{ company(ticker: "AAPL") { ' + "name " * 200 + "} }",
    "repeated nested fields": '{ company(ticker: "AAPL") { filings(first: 10) { nodes { '
    + "title formType filedAt " * 30
    + "} } } }",
    "aliased companies": "{ "
    + " ".join(f'c{i}: company(ticker: "AAPL") {{ name }}' for i in range(25))
    + " }",
    "every metric of 5 companies": "{ companies(first: 5) { nodes { metrics { value } } } }",
}  # fmt: skip


def documents() -> dict[str, tuple[str, dict[str, Any] | None]]:
    body: dict[str, tuple[str, dict[str, Any] | None]] = {
        "LIGHT": (LIGHT, None),
        "HEAVY": (HEAVY, None),
    }
    for path in sorted((REPO / "ops" / "operations").glob("*.graphql")):
        if not path.read_text().lstrip("# ").split("\n", 1)[-1].startswith("subscription"):
            body[path.stem] = (path.read_text(), None)
    for index, case in enumerate(yaml.safe_load((REPO / "tests" / "conformance.yaml").read_text())):
        body[f"conformance {index}"] = (case["query"], case.get("variables"))
    body |= {name: (query, None) for name, query in WIDE.items()}
    return body


def variables_for(query: str, variables: dict[str, Any] | None) -> dict[str, Any] | None:
    """The persisted operations take variables: the demo data's usual ones."""
    if variables is not None or "$" not in query:
        return variables
    return {"ticker": "AAPL", "names": ["revenue", "net_income"], "sector": "Energy"}


def measure(url: str, pid: int, query: str, variables: Any, requests: int) -> tuple[float, int]:
    """(ms of server CPU per request, actual cost) of one document."""
    body = {"query": query, "variables": variables}
    with httpx.Client(timeout=60) as client:
        answer = client.post(url, json=body).json()
        if "errors" in answer:
            raise ValueError(answer["errors"][0].get("extensions", {}).get("code", "error"))
        actual = int(answer["extensions"]["cost"]["actualQueryCost"])
        before = cpu_seconds(pid)
        for _ in range(requests):
            client.post(url, json=body).raise_for_status()
        return (cpu_seconds(pid) - before) / requests * 1000, actual


def report(url: str, pid: int, requests: int) -> None:
    """ms/point of each document: whole (its CPU over its cost, at least 1) and marginal
    (over the CPU of `{ __typename }`, what every request costs, for documents of 10 points
    or more: what the weights should track)."""
    base, _ = measure(url, pid, "{ __typename }", None, requests)
    whole: dict[str, float] = {}
    marginal: dict[str, float] = {}
    print(f"every request: {base:.2f} ms of server CPU ({{ __typename }})\n")
    print(f"{'document':<32}{'ms/request':>11}{'cost':>7}{'ms/point':>10}{'marginal':>10}")
    for name, (query, variables) in documents().items():
        try:
            ms, actual = measure(url, pid, query, variables_for(query, variables), requests)
        except ValueError as refused:
            print(f"{name:<32}{'answered ' + str(refused):>28}")
            continue
        whole[name] = ms / max(1, actual)
        extra = ""
        if actual >= MARGINAL_FROM:
            marginal[name] = max(0.0, ms - base) / actual
            extra = f"{marginal[name]:>10.3f}"
        print(f"{name:<32}{ms:>11.2f}{actual:>7}{whole[name]:>10.3f}{extra}")
    for label, figures in (("whole", whole), ("marginal", marginal)):
        median = statistics.median(figures.values())
        worst = max(figures, key=lambda name: figures[name])
        print(f"{label}: median {median:.3f} ms/point; worst {worst!r} {figures[worst]:.3f}, "
              f"{figures[worst] / median:.1f}x the median (aim: within 5x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seed-size", choices=("small", "default"), default="default")
    args = parser.parse_args()
    with embedded_servers(
        Path(tempfile.mkdtemp(prefix="corpgraph-bench-")), print, with_redis=True
    ) as embedded:
        assert embedded.redis_url is not None
        settings = Settings(database_url=embedded.database_url)
        asyncio.run(prepare_database(settings, args.seed_size))
        env = {**os.environ, "CORPGRAPH_DATABASE_URL": embedded.database_url,
               "CORPGRAPH_REDIS_URL": embedded.redis_url, "CORPGRAPH_RESPONSE_CACHE": "false",
               "CORPGRAPH_TIERS": json.dumps({"anonymous": ROOMY})}  # fmt: skip
        server = start_corpgraph(env, 1)
        url = server.urls["LIGHT"]
        try:
            wait_up(url)
            report(url, server.process.pid, args.requests)
        finally:
            server.process.terminate()
            server.process.wait(30)


if __name__ == "__main__":
    main()
