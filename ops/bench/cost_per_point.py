"""What a point of cost buys in server time: for each document of a body (the conformance
documents of tests/conformance.yaml, the benchmark's LIGHT and HEAVY, the persisted operations
of ops/operations, a few wide but valid shapes, and two metric series of 60 tickers each), the
server CPU per request of one corpgraph worker divided by the request's actual cost, beside the
cost it requested.

    python ops/bench/cost_per_point.py [--requests 100] [--seed-size small|default]

Cost is rate control only while a point stands for about the same work whatever the document:
this prints ms per point for each, whole (its CPU over its cost, at least 1) and marginal (less
the CPU of `{ __typename }`, which every request spends, for documents of 10 points or more:
what the weights should track), their medians, the worst, and the worst against the median
(the aim: within 5x), the marginal figure again with PostgreSQL's CPU added (a similarity
search spends most of its time there), and the documents whose actual cost exceeded the
requested one. Every
document is sent a few times before anything is measured (the first requests of a process pay
for its warming up). Documents refused or answered with errors are listed apart. Nothing is
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
from typing import Any, NamedTuple

import httpx2 as httpx
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from run import HEAVY, LIGHT, ROOMY, cpu_seconds, start_corpgraph, wait_up  # noqa: E402

from graph.cli.embedded import embedded_servers  # noqa: E402
from graph.cli.prepare import prepare_database  # noqa: E402
from graph.settings import Settings  # noqa: E402

MARGINAL_FROM = 10  # points
WARM_UP = 5  # requests of each document before any is measured
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
# the review's underestimate: two series of 60 tickers each (the small data set's every company)
SERIES = (
    'query($t: [String!]!) { q: metricSeries(tickers: $t, metric: "revenue", interval: QUARTER) '
    '{ points { value } } y: metricSeries(tickers: $t, metric: "net_income", interval: YEAR) '
    "{ points { value } } }"
)
SERIES_TICKERS = 60


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


def with_series(url: str) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """The documents, and the 60-ticker series with the first tickers the server knows."""
    query = f"{{ companies(first: {SERIES_TICKERS}) {{ nodes {{ ticker }} }} }}"
    listed = httpx.post(url, json={"query": query}, timeout=60).json()
    tickers = [company["ticker"] for company in listed["data"]["companies"]["nodes"]]
    body = documents()
    body[f"metricSeries x2, {len(tickers)} tickers"] = (SERIES, {"t": tickers})
    return body


def variables_for(query: str, variables: dict[str, Any] | None) -> dict[str, Any] | None:
    """The persisted operations take variables: the demo data's usual ones."""
    if variables is not None or "$" not in query:
        return variables
    return {"ticker": "AAPL", "names": ["revenue", "net_income"], "sector": "Energy"}


class Measured(NamedTuple):
    ms: float  # corpgraph's CPU per request
    database_ms: float  # PostgreSQL's
    requested: int
    actual: int


def warm_up(url: str, body: dict[str, tuple[str, dict[str, Any] | None]]) -> None:
    with httpx.Client(timeout=60) as client:
        for query, variables in body.values():
            payload = {"query": query, "variables": variables_for(query, variables)}
            for _ in range(WARM_UP):
                client.post(url, json=payload)


def measure(url: str, pids: tuple[int, int], query: str, variables: Any, requests: int) -> Measured:
    """CPU per request (of corpgraph's worker, of PostgreSQL) and costs of one document."""
    body = {"query": query, "variables": variables}
    with httpx.Client(timeout=60) as client:
        answer = client.post(url, json=body).json()
        if "errors" in answer:
            raise ValueError(answer["errors"][0].get("extensions", {}).get("code", "error"))
        cost = answer["extensions"]["cost"]
        before = [cpu_seconds(pid) for pid in pids]
        for _ in range(requests):
            client.post(url, json=body).raise_for_status()
        ms, database_ms = (
            (cpu_seconds(p) - b) / requests * 1000 for p, b in zip(pids, before, strict=True)
        )
        return Measured(ms, database_ms, cost["requestedQueryCost"], cost["actualQueryCost"])


def summary(label: str, figures: dict[str, float]) -> str:
    median = statistics.median(figures.values())
    worst = max(figures, key=lambda name: figures[name])
    return (f"{label}: median {median:.3f} ms/point; worst {worst!r} {figures[worst]:.3f}, "
            f"{figures[worst] / median:.1f}x the median")  # fmt: skip


def measure_all(
    url: str, pids: tuple[int, int], requests: int
) -> tuple[float, dict[str, Measured | str]]:
    """What every request costs (`{ __typename }`, before and after the others: the mean), and
    each document measured, or the code of the error it was answered with."""
    body = with_series(url)
    warm_up(url, body)
    before = measure(url, pids, "{ __typename }", None, requests)
    measured: dict[str, Measured | str] = {}
    for name, (query, variables) in body.items():
        try:
            measured[name] = measure(url, pids, query, variables_for(query, variables), requests)
        except ValueError as refused:
            measured[name] = str(refused)
    after = measure(url, pids, "{ __typename }", None, requests)
    return (before.ms + after.ms) / 2, measured


def report(url: str, pids: tuple[int, int], requests: int) -> None:
    """ms/point of each document: whole (its CPU over its cost, at least 1) and marginal
    (over the CPU of `{ __typename }`, what every request costs, for documents of 10 points
    or more: what the weights should track); the same with PostgreSQL's CPU added."""
    base, measured = measure_all(url, pids, requests)
    figures: dict[str, dict[str, float]] = {"whole": {}, "marginal": {}, "with PostgreSQL": {}}
    under: dict[str, float] = {}  # actual over requested, where the estimate fell short
    print(f"every request: {base:.2f} ms of corpgraph's CPU ({{ __typename }})\n")
    print(f"{'document':<32}{'ms/request':>11}{'PostgreSQL':>11}{'requested':>10}{'cost':>7}"
          f"{'ms/point':>10}{'marginal':>10}")  # fmt: skip
    for name, one in measured.items():
        if isinstance(one, str):
            print(f"{name:<32}{'answered ' + one:>28}")
            continue
        figures["whole"][name] = one.ms / max(1, one.actual)
        if one.actual > one.requested:
            under[name] = one.actual / max(1, one.requested)
        extra = ""
        if one.actual >= MARGINAL_FROM:
            spent = one.ms - base
            figures["marginal"][name] = max(0.0, spent) / one.actual
            figures["with PostgreSQL"][name] = max(0.0, spent + one.database_ms) / one.actual
            extra = f"{figures['marginal'][name]:>10.3f}"
        print(f"{name:<32}{one.ms:>11.2f}{one.database_ms:>11.2f}{one.requested:>10}"
              f"{one.actual:>7}{figures['whole'][name]:>10.3f}{extra}")  # fmt: skip
    for label, found in figures.items():
        aim = " (aim: within 5x)" if label != "with PostgreSQL" else " (marginal)"
        print(summary(label, found) + aim)
    short = max(under, key=lambda name: under[name]) if under else None
    print(f"actual over requested: {len(under)} documents"
          + (f"; worst {short!r} {under[short]:.2f}x" if short else ""))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seed-size", choices=("small", "default"), default="default")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="corpgraph-bench-"))
    with embedded_servers(folder, print, with_redis=True) as embedded:
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
            postmaster = int((folder / "postgres" / "postmaster.pid").read_text().split()[0])
            report(url, (server.process.pid, postmaster), args.requests)
        finally:
            server.process.terminate()
            server.process.wait(30)


if __name__ == "__main__":
    main()
