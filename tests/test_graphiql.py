"""GraphiQL's page and its assets: shipped in the package, served from corpgraph's own origin,
versions pinned in ops/graphiql only; its worked example runs within the anonymous ceiling.
In a real browser: tests/test_graphiql_browser.py."""

import json
import re
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from graph.app import create_app
from graph.settings import Settings
from graph.transports.graphiql import EXAMPLE_QUERY, EXAMPLE_VARIABLES, STATIC

PINS = Path(__file__).parent.parent / "ops" / "graphiql"
HTML = {"accept": "text/html"}


def page_urls(page: str) -> list[str]:
    return re.findall(r'<(?:script|link rel="stylesheet") (?:src|href)="([^"]+)"', page)


def shipped() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((STATIC / "graphiql.json").read_text())
    return manifest


def test_page_loads_every_asset_from_its_own_origin(client: TestClient) -> None:
    page = client.get("/graphql", headers=HTML).text
    urls = page_urls(page)
    assert sorted(urls) == sorted(f"graphiql/{path}" for path in shipped()["paths"].values())
    assert "crossorigin" not in page and "//" not in "".join(urls)
    for url in urls:
        asset = client.get(f"/{url}", headers={"accept-encoding": "identity"})
        assert asset.status_code == 200, url
        assert asset.content == (STATIC / url).read_bytes()
        kind = "javascript" if url.endswith(".js") else "css"
        assert asset.headers["content-type"] == f"text/{kind}; charset=utf-8"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_assets_are_compressed_when_the_browser_accepts_it(client: TestClient) -> None:
    url = "/graphiql/" + shipped()["paths"]["graphiql_js"]
    asset = client.get(url, headers={"accept-encoding": "gzip"})
    assert asset.headers["content-encoding"] == "gzip"
    assert asset.content == (STATIC / "graphiql" / shipped()["paths"]["graphiql_js"]).read_bytes()
    assert asset.num_bytes_downloaded < len(asset.content) / 2


def test_a_cdn_gets_the_versions_of_the_package(settings: Settings) -> None:
    cdn = settings.replace(graphiql_assets_url="https://cdn.jsdelivr.net/npm/")
    with TestClient(create_app(cdn)) as client:
        page = client.get("/graphql", headers=HTML).text
        assert client.get("/graphiql/" + shipped()["paths"]["react"]).status_code == 404
    versions = pinned()
    expected = {
        f"https://cdn.jsdelivr.net/npm/graphiql@{versions['graphiql']}/graphiql.min.js",
        f"https://cdn.jsdelivr.net/npm/react@{versions['react']}/umd/react.production.min.js",
    }
    assert expected <= set(page_urls(page))


def pinned() -> dict[str, str]:
    """ops/graphiql/package.json's exact versions, the one place they are chosen."""
    dependencies: dict[str, str] = json.loads((PINS / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in dependencies.values())
    return dependencies


def test_the_shipped_files_are_those_pinned() -> None:
    versions, manifest = pinned(), shipped()
    locked = json.loads((PINS / "package-lock.json").read_text())["packages"]
    for name, version in manifest["packages"].items():
        assert versions[name] == version == locked[f"node_modules/{name}"]["version"], name
    for path in manifest["paths"].values():
        folder = re.match(r"(@?[^@]+)@([\d.]+)/", path)
        assert folder and manifest["packages"][folder[1]] == folder[2], path
        assert (STATIC / "graphiql" / path).is_file()


def test_the_example_runs_within_the_anonymous_ceiling(
    client: TestClient, settings: Settings
) -> None:
    body = {"query": EXAMPLE_QUERY, "variables": json.loads(EXAMPLE_VARIABLES)}
    answer = client.post("/graphql", json=body).json()
    assert "errors" not in answer
    company = answer["data"]["company"]
    assert (company["ticker"], company["name"]) == ("AAPL", "Apple Inc.")
    assert len(company["filings"]["nodes"]) == 3
    cost = answer["extensions"]["cost"]["requestedQueryCost"]
    assert cost <= settings.tiers["anonymous"].ceiling


def test_the_page_embeds_the_example_safely(client: TestClient) -> None:
    page = client.get("/graphql", headers=HTML).text
    assert json.dumps(EXAMPLE_QUERY) in page and json.dumps(EXAMPLE_VARIABLES) in page
    assert page.count("</script>") == page.count("<script")
