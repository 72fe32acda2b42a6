"""The compiled executor's plans are kept within a byte bound: a plan holds its operation's
nodes, and they the whole text of the document, so counting plans alone let large documents
(a long comment around `{ __typename }`) grow a worker by hundreds of MB."""

from graphql import parse
from graphql.execution.executor import Executor

from graph.execution.compiled import PlanCache
from schema.schema import build_schema

SCHEMA = build_schema()._schema


def test_plans_of_large_documents_are_kept_within_the_byte_bound() -> None:
    plans = PlanCache(max_bytes=1_000_000)
    kept = []
    for n in range(100):  # 100 documents of ~60 KB: 6 MB of text if all were kept
        document = parse(f"# {n} {'x' * 60_000}\n{{ __typename }}")
        executor = Executor.build(SCHEMA, document)
        assert isinstance(executor, Executor)
        plans.plan(executor)
        kept.append(document)  # alive here: only the cache's bound may drop its plan
    assert 0 < plans.bytes <= 1_000_000


def test_a_kept_plan_is_found_again() -> None:
    plans = PlanCache()
    executor = Executor.build(SCHEMA, parse('{ company(ticker: "AAPL") { name } }'))
    assert isinstance(executor, Executor)
    first = plans.plan(executor)
    assert first is not None and plans.plan(executor) is first
