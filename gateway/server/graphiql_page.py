"""GraphiQL served by the gateway itself, so it works with no internet.

The assets are built from npm by ``.ci/build-graphiql`` into ``static/graphiql``
(never committed). The page loads only those files, and its Content Security
Policy lets it load or call nothing else.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent.parent / "static" / "graphiql"
ASSET_FILES = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "graphiql.min.css",
    "init.js",
)
BUILD_COMMAND = "bash .ci/build-graphiql"

# style-src needs 'unsafe-inline': GraphiQL and CodeMirror set inline styles on
# elements they create. Fonts come as data: URLs inside GraphiQL's CSS.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

DEFAULT_QUERY = """\
# The gateway joins OMA subscriptions and CBC resources.
# Put your token in the Headers tab: {"X-Auth-Token": "..."}
query Subscriptions {
  subscriptions(first: 5) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      skuName
      status
      createdAt
      expiresAt
      resources {
        resourceId
        name
        status
        expiresAt
        attachedResources { resourceId name }
      }
    }
  }
}
"""
DEFAULT_HEADERS = '{"X-Auth-Token": "demo-token"}'


def assets_built() -> bool:
    return all((ASSETS_DIR / name).is_file() for name in ASSET_FILES)


def graphiql_html(
    endpoint: str = "/graphql",
    assets_prefix: str = "/graphiql-assets",
    default_headers: str = DEFAULT_HEADERS,
) -> str:
    def asset(name: str) -> str:
        return html.escape(f"{assets_prefix}/{name}", quote=True)

    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>GraphiQL · OMA + CBC gateway</title>
  <link rel="stylesheet" href="{asset("graphiql.min.css")}">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
  <div id="graphiql"
       data-endpoint="{html.escape(endpoint, quote=True)}"
       data-default-query="{html.escape(DEFAULT_QUERY, quote=True)}"
       data-default-headers="{html.escape(default_headers, quote=True)}">Loading GraphiQL…</div>
  <script src="{asset("react.production.min.js")}"></script>
  <script src="{asset("react-dom.production.min.js")}"></script>
  <script src="{asset("graphiql.min.js")}"></script>
  <script src="{asset("init.js")}"></script>
</body>
</html>
"""


def graphiql_assets_app() -> StaticFiles:
    if not assets_built():
        raise RuntimeError(f"GraphiQL assets are missing in {ASSETS_DIR}: run {BUILD_COMMAND}")
    return StaticFiles(directory=ASSETS_DIR)
