"""GraphiQL with its explorer plugin, opening on a worked example.

Its assets ship inside this package (graph/static/graphiql, copied there by ops/graphiql from
the versions pinned in its package.json) and are served from corpgraph's own origin, so the
page works offline. `graphiql_assets_url` points the page at a host laid out like npm instead
(`<package>@<version>/<file>`: a CDN's npm path, or a copy of graph/static/graphiql)."""

import html
import json
import os
from functools import cache
from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import ASGIApp, Scope

from graph.settings import Settings

STATIC = Path(__file__).parents[1] / "static"
ASSETS_PATH = "/graphiql"  # where the assets are mounted; the page names them relative to it
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# each URL names its package's version, so a browser may keep what it fetched for good
IMMUTABLE = "public, max-age=31536000, immutable"

EXAMPLE_QUERY = """# Welcome to corpgraph: companies,
# their SEC filings, reported metrics
# and prices.
#
# Press the play button (Ctrl-Enter)
# to run this query for the company
# named in Variables below. Tick
# fields in the Explorer on the left
# to build your own; the top-left
# icon opens the Docs.

query CompanyOverview($ticker: String!) {
  company(ticker: $ticker) {
    ticker
    name
    sector
    industry
    filings(first: 3, formTypes: ["10-K", "10-Q"]) {
      totalCount
      nodes {
        accessionNumber
        formType
        filedAt
        fiscalPeriod
        metrics(names: ["revenue", "net_income", "eps_diluted"]) {
          name
          value
          unit
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
EXAMPLE_VARIABLES = '{\n  "ticker": "AAPL"\n}'

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>corpgraph</title>
  <link rel="icon" href="data:,">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <style>
    body {{ margin: 0; height: 100vh; }}
    #graphiql {{ height: 100vh; }}
    #problem {{ margin: 2em; font: 16px/1.5 system-ui, sans-serif; white-space: pre-line; }}
  </style>
  <script>
    const failed = [];
    function assetFailed(element) {{
      failed.push(element.src || element.href);
      if (document.getElementById("problem")) showFailed();
    }}
    function showFailed() {{
      report("GraphiQL could not load:\\n" + failed.join("\\n") + "\\n\\ncorpgraph serves "
        + "these files itself unless CORPGRAPH_GRAPHIQL_ASSETS_URL names another host, which "
        + "this browser must then reach.");
    }}
    function report(text) {{
      const problem = document.getElementById("problem");
      problem.textContent = text;
      problem.hidden = false;
      document.getElementById("graphiql").hidden = true;
    }}
  </script>
  <link rel="stylesheet" href="{graphiql_css}" onerror="assetFailed(this)">
  <link rel="stylesheet" href="{explorer_css}" onerror="assetFailed(this)">
</head>
<body>
  <div id="problem" role="alert" hidden></div>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="{react}" onerror="assetFailed(this)"></script>
  <script src="{react_dom}" onerror="assetFailed(this)"></script>
  <script src="{graphiql_js}" onerror="assetFailed(this)"></script>
  <script src="{explorer_js}" onerror="assetFailed(this)"></script>
  <script>
    // GraphiQL 4.1 leaves a default tab's variables out of the editor, and stores variables
    // only once they are typed (a reload would lose them): on a first visit, with nothing of
    // GraphiQL's stored yet, the example goes in as the editors' contents, its variables
    // stored as if typed
    function example() {{
      const example = {{ query: {query}, variables: {variables} }};
      try {{
        if (localStorage.getItem("graphiql:tabState")) return {{}};
        localStorage.setItem("graphiql:variables", example.variables);
      }} catch {{}}
      return example;
    }}
    // GraphiQL 4.1 keeps the plugin pane shut when no plugin was open on its first render
    // (its visiblePlugin prop arrives too late), so the explorer is opened as a visitor would
    function openExplorer(root) {{
      const observer = new MutationObserver(() => {{
        const button = root.querySelector('[aria-label="Show GraphiQL Explorer"]');
        if (button) {{
          observer.disconnect();
          button.click();
        }}
      }});
      observer.observe(root, {{ childList: true, subtree: true }});
    }}
    // _entities and _service serve the federation gateway, not people: GraphiQL's explorer
    // and docs leave them out (they still answer a query that names them)
    function forPeople(fetcher) {{
      return async (params, options) => {{
        const result = await fetcher(params, options);
        const schema = result && result.data && result.data.__schema;
        if (schema && schema.queryType) {{
          const query = schema.types.find(type => type.name === schema.queryType.name);
          query.fields = query.fields.filter(field => !field.name.startsWith("_"));
        }}
        return result;
      }};
    }}
    function render(root) {{
      const explorer = GraphiQLPluginExplorer.explorerPlugin({{ showAttribution: false }});
      const url = window.location.pathname;
      const socket = new URL(url, window.location.href);  // subscriptions: ws:, or wss:
      socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
      openExplorer(root);
      ReactDOM.createRoot(root).render(
        React.createElement(GraphiQL, {{
          fetcher: forPeople(GraphiQL.createFetcher({{ url, subscriptionUrl: socket.href }})),
          plugins: [explorer],
          defaultEditorToolsVisibility: "variables",
          shouldPersistHeaders: false,
          ...example(),
        }})
      );
    }}
    if (failed.length) {{
      showFailed();
    }} else {{
      try {{
        render(document.getElementById("graphiql"));
      }} catch (error) {{
        report("GraphiQL could not start: " + error);
      }}
    }}
  </script>
</body>
</html>
"""


@cache
def asset_paths() -> dict[str, str]:
    """Each asset's path under the assets root, e.g. `graphiql@4.1.2/graphiql.min.js`."""
    manifest = json.loads((STATIC / "graphiql.json").read_text())
    paths: dict[str, str] = manifest["paths"]
    return paths


def asset_urls(settings: Settings) -> dict[str, str]:
    # relative to the page on /graphql, so a proxy's path prefix is kept
    base = (settings.graphiql_assets_url or ASSETS_PATH.lstrip("/")).rstrip("/")
    return {name: f"{base}/{path}" for name, path in asset_paths().items()}


def js_string(value: str) -> str:
    """A JavaScript string literal that is also safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def graphiql_html(settings: Settings) -> str:
    escaped = {name: html.escape(url, quote=True) for name, url in asset_urls(settings).items()}
    return PAGE.format(
        **escaped, query=js_string(EXAMPLE_QUERY), variables=js_string(EXAMPLE_VARIABLES)
    )


class AssetFiles(StaticFiles):
    """The shipped assets, with their media types and kept by browsers for good."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = IMMUTABLE
        response.headers["x-content-type-options"] = "nosniff"
        media_type = MEDIA_TYPES.get(Path(full_path).suffix)
        if media_type:
            response.headers["content-type"] = media_type
        return response


def graphiql_assets() -> ASGIApp:
    """The app mounted on ASSETS_PATH: 1.7 MB of JavaScript and CSS, gzipped on the way."""
    return GZipMiddleware(AssetFiles(directory=STATIC / "graphiql"), minimum_size=1024)
