"""GraphiQL works offline: served by the gateway, driven in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.server.app import create_app
from gateway.server.graphiql_page import CONTENT_SECURITY_POLICY, assets_built, graphiql_html
from gateway.server.runtime import Gateway
from tests.support.browser import chromium
from tests.support.live_server import serve


def test_the_page_loads_only_local_assets() -> None:
    page = graphiql_html()
    assert "http://" not in page and "https://" not in page
    assert "/graphiql-assets/graphiql.min.js" in page
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY
        and "connect-src 'self'" in CONTENT_SECURITY_POLICY
    )
    assert assets_built(), "run .ci/build-graphiql"


async def test_graphiql_page_is_served_with_its_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    script = await client.get("/graphiql-assets/graphiql.min.js")
    assert script.status_code == 200 and len(script.content) > 100_000


@pytest.mark.browser
async def test_a_person_runs_a_query_in_graphiql(gateway: Gateway, tmp_path: Path) -> None:
    async with serve(create_app(gateway)) as base, chromium() as browser:
        page = await browser.new_page()
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or ""))
        await page.goto(f"{base}/graphql")
        await page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=15_000)
        # The page opens with a sample query and the demo token in the Headers tab: run it.
        await page.click(".graphiql-execute-button")
        await page.wait_for_function(
            "() => (document.querySelector('.result-window')?.innerText || '').includes('totalCount')",
            timeout=15_000,
        )
        result = await page.inner_text(".result-window")
        await page.screenshot(path=str(tmp_path / "graphiql.png"))
        assert '"totalCount": 301' in result
        assert '"attachedResources"' in result and '"errors"' not in result
        assert hosts == {"127.0.0.1"}
