"""GraphiQL, opening on a worked example. Assets from a CDN, or self-hosted by a setting."""

import html
import json

from graph.settings import Settings

CDN = {
    "react": "https://cdn.jsdelivr.net/npm/react@18.3.1/umd/react.production.min.js",
    "react_dom": "https://cdn.jsdelivr.net/npm/react-dom@18.3.1/umd/react-dom.production.min.js",
    "graphiql_js": "https://cdn.jsdelivr.net/npm/graphiql@3.8.3/graphiql.min.js",
    "graphiql_css": "https://cdn.jsdelivr.net/npm/graphiql@3.8.3/graphiql.min.css",
}
SELF_HOSTED = {
    "react": "react.production.min.js",
    "react_dom": "react-dom.production.min.js",
    "graphiql_js": "graphiql.min.js",
    "graphiql_css": "graphiql.min.css",
}

EXAMPLE_QUERY = """# Welcome to corpgraph: companies, SEC filings, reported metrics and prices.
# Press the play button (or Ctrl-Enter). Open "Docs" on the left for every type and field.

query CompanyOverview($ticker: String!) {
  company(ticker: $ticker) {
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
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="{graphiql_css}">
  <script crossorigin src="{react}"></script>
  <script crossorigin src="{react_dom}"></script>
  <script crossorigin src="{graphiql_js}"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script>
    const fetcher = GraphiQL.createFetcher({{ url: window.location.pathname }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {query},
        defaultVariables: {variables},
        defaultEditorToolsVisibility: true,
        shouldPersistHeaders: false,
      }})
    );
  </script>
</body>
</html>
"""


def js_string(value: str) -> str:
    """A JavaScript string literal that is also safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def graphiql_html(settings: Settings) -> str:
    if settings.graphiql_assets_url:
        base = settings.graphiql_assets_url.rstrip("/")
        assets = {name: f"{base}/{file}" for name, file in SELF_HOSTED.items()}
    else:
        assets = CDN
    escaped = {name: html.escape(url, quote=True) for name, url in assets.items()}
    return PAGE.format(
        **escaped, query=js_string(EXAMPLE_QUERY), variables=js_string(EXAMPLE_VARIABLES)
    )
