"""Persisted operations: automatic persisted queries (APQ) and trusted documents, as a
client sees them (status, code, message, data) and what they cost upstream."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import ConfigError, PersistedSettings, Settings
from gateway.server.app import create_app
from gateway.simulator import Simulator
from tests.conftest import GatewayFactory
from tests.support.helpers import OTHER_TOKEN, TOKEN, batching_settings, settings_for_tests
from tests.support.redis_server import RedisServer

QUERY = "query Few { subscriptions(first: 2) { totalCount nodes { id } } }"
OTHER_QUERY = "query Fewer { subscriptions(first: 1) { nodes { id } } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(query: str | None, digest: str | None = None, **more: Any) -> dict[str, Any]:
    """An APQ request: the hash of ``query`` (or ``digest``), with the document or without."""
    body: dict[str, Any] = {
        "extensions": {
            "persistedQuery": {"version": 1, "sha256Hash": digest or sha256(query or "")}
        },
        **more,
    }
    if query is not None:
        body["query"] = query
    return body


def with_persisted(settings: Settings | None = None, **changes: Any) -> Settings:
    settings = settings or settings_for_tests()
    return settings.replace(persisted=dataclasses.replace(settings.persisted, **changes))


@pytest.fixture
async def connect(make_gateway: GatewayFactory) -> AsyncIterator[Any]:
    """``await connect(settings)``: a client of a new gateway app with those settings."""
    clients: list[httpx.AsyncClient] = []

    async def make(settings: Settings | None = None) -> httpx.AsyncClient:
        app = create_app(make_gateway(settings or settings_for_tests()))
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"X-Auth-Token": TOKEN},
        )
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    (error,) = response.json()["errors"]
    assert "data" not in response.json()
    return response.status_code, error["extensions"]["code"], error["message"]


def subscription_ids(simulator: Simulator, token: str = TOKEN, first: int = 2) -> list[str]:
    return [s["id"] for s in simulator.dataset(token).subscriptions[:first]]


# --- automatic persisted queries --------------------------------------------------------------


async def test_a_hash_the_gateway_does_not_know_is_persisted_query_not_found_without_a_call(
    connect: Any, simulator: Simulator
) -> None:
    http = await connect()
    simulator.reset()
    response = await http.post("/graphql", json=apq(None, sha256(QUERY)))
    # What Apollo Client and urql match to send the document: the message, exactly.
    assert refusal(response) == (404, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "private, no-store"
    assert simulator.counts() == {}


async def test_the_document_sent_with_its_hash_runs_and_then_its_hash_alone_does(
    connect: Any, simulator: Simulator
) -> None:
    http = await connect()
    registered = await http.post("/graphql", json=apq(QUERY))
    assert registered.status_code == 200
    nodes = registered.json()["data"]["subscriptions"]["nodes"]
    assert [n["id"] for n in nodes] == subscription_ids(simulator)
    simulator.reset()
    by_hash = await http.post("/graphql", json=apq(None, sha256(QUERY)))
    assert by_hash.status_code == 200
    assert by_hash.json() == registered.json()
    assert simulator.counts() == {}  # the page was cached; the document came from the store


async def test_variables_and_the_operation_name_go_with_a_hash(connect: Any) -> None:
    http = await connect()
    query = "query A($n: Int) { subscriptions(first: $n) { nodes { id } } } query B { __typename }"
    await http.post("/graphql", json=apq(query, operationName="A", variables={"n": 3}))
    body = (await http.post("/graphql", json=apq(None, sha256(query), operationName="B"))).json()
    assert body == {"data": {"__typename": "Query"}}
    body = (
        await http.post(
            "/graphql", json=apq(None, sha256(query), operationName="A", variables={"n": 1})
        )
    ).json()
    assert len(body["data"]["subscriptions"]["nodes"]) == 1


async def test_a_hash_that_is_not_the_documents_is_refused_and_nothing_is_kept(
    connect: Any, simulator: Simulator
) -> None:
    http = await connect()
    simulator.reset()
    planted = await http.post("/graphql", json=apq(OTHER_QUERY, sha256(QUERY)))
    assert refusal(planted) == (
        400,
        "PERSISTED_QUERY_HASH_MISMATCH",
        "provided sha does not match query",
    )
    assert simulator.counts() == {}
    for digest in (sha256(QUERY), sha256(OTHER_QUERY)):
        missing = await http.post("/graphql", json=apq(None, digest))
        assert refusal(missing)[1] == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_hash_in_capitals_is_the_same_hash(connect: Any) -> None:
    http = await connect()
    await http.post("/graphql", json=apq(QUERY, sha256(QUERY).upper()))
    assert (await http.post("/graphql", json=apq(None, sha256(QUERY)))).status_code == 200


async def test_one_callers_documents_are_never_anothers(connect: Any, simulator: Simulator) -> None:
    http = await connect()
    assert (await http.post("/graphql", json=apq(QUERY))).status_code == 200
    # Another tenant asking by the same hash learns nothing of what this one sent.
    other = {"X-Auth-Token": OTHER_TOKEN}
    missing = await http.post("/graphql", json=apq(None, sha256(QUERY)), headers=other)
    assert refusal(missing)[1] == "PERSISTED_QUERY_NOT_FOUND"
    await http.post("/graphql", json=apq(QUERY), headers=other)
    found = await http.post("/graphql", json=apq(None, sha256(QUERY)), headers=other)
    ids = [n["id"] for n in found.json()["data"]["subscriptions"]["nodes"]]
    assert ids == subscription_ids(simulator, OTHER_TOKEN)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Auth-Token": "invented-never-sent-upstream"}],
    ids=["no token", "a token no upstream answered"],
)
async def test_a_caller_no_upstream_has_answered_keeps_no_document(
    connect: Any, headers: dict[str, str]
) -> None:
    http = await connect()
    http.headers.pop("X-Auth-Token")
    query = "{ __typename }"  # answered without an upstream call: nobody vouches for the caller
    ran = await http.post("/graphql", json=apq(query), headers=headers)
    assert ran.json() == {"data": {"__typename": "Query"}}
    missing = await http.post("/graphql", json=apq(None, sha256(query)), headers=headers)
    assert refusal(missing)[1] == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_document_that_does_not_validate_is_not_kept(connect: Any) -> None:
    http = await connect()
    query = "{ nope }"
    invalid = await http.post("/graphql", json=apq(query))
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    missing = await http.post("/graphql", json=apq(None, sha256(query)))
    assert refusal(missing)[1] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ({"version": 2, "sha256Hash": sha256(QUERY)}, "Unsupported persisted query version"),
        ({"sha256Hash": sha256(QUERY)}, "Unsupported persisted query version"),
        ("v1", "Unsupported persisted query version"),
        ({"version": 1}, "`persistedQuery.sha256Hash` is 64 hexadecimal digits"),
        ({"version": 1, "sha256Hash": "abc"}, "`persistedQuery.sha256Hash` is 64"),
        ({"version": 1, "sha256Hash": "g" * 64}, "`persistedQuery.sha256Hash` is 64"),
        ({"version": 1, "sha256Hash": 5}, "`persistedQuery.sha256Hash` is 64"),
    ],
)
async def test_a_malformed_persisted_query_extension_is_refused_without_a_call(
    connect: Any, simulator: Simulator, extension: object, message: str
) -> None:
    http = await connect()
    simulator.reset()
    response = await http.post(
        "/graphql", json={"query": QUERY, "extensions": {"persistedQuery": extension}}
    )
    status, code, said = refusal(response)
    assert (status, code) == (400, "INVALID_GRAPHQL_REQUEST")
    assert said.startswith(message)
    assert simulator.counts() == {}


async def test_apq_over_get(connect: Any, simulator: Simulator) -> None:
    http = await connect()
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha256(QUERY)}})
    missing = await http.get("/graphql", params={"extensions": extensions})
    assert refusal(missing)[:2] == (404, "PERSISTED_QUERY_NOT_FOUND")
    registered = await http.get("/graphql", params={"query": QUERY, "extensions": extensions})
    assert registered.status_code == 200
    found = await http.get(
        "/graphql", params={"extensions": extensions}, headers={"Accept": "text/html"}
    )
    # A browser's Accept does not make it GraphiQL: the request names a document.
    assert found.status_code == 200 and found.json() == registered.json()


async def test_with_apq_off_a_hash_is_persisted_query_not_supported(
    connect: Any, simulator: Simulator
) -> None:
    http = await connect(with_persisted(apq_enabled=False))
    simulator.reset()
    for body in (apq(QUERY), apq(None, sha256(QUERY))):
        response = await http.post("/graphql", json=body)
        # Apollo Client and urql then stop hashing and send every document whole.
        assert refusal(response) == (
            400,
            "PERSISTED_QUERY_NOT_SUPPORTED",
            "PersistedQueryNotSupported",
        )
    assert simulator.counts() == {}
    assert (await http.post("/graphql", json={"query": QUERY})).status_code == 200


async def test_a_document_over_the_bound_runs_but_is_not_kept(connect: Any) -> None:
    http = await connect(with_persisted(apq_max_document_bytes=len(QUERY) - 1))
    assert (await http.post("/graphql", json=apq(QUERY))).status_code == 200
    assert refusal(await http.post("/graphql", json=apq(None, sha256(QUERY))))[0] == 404
    assert (await http.post("/graphql", json=apq(OTHER_QUERY))).status_code == 200
    assert (await http.post("/graphql", json=apq(None, sha256(OTHER_QUERY)))).status_code == 200


async def test_the_memory_store_keeps_the_most_recently_used_documents_only(
    connect: Any,
) -> None:
    http = await connect(with_persisted(apq_max_entries=2))
    queries = [f"query Q{i} {{ subscriptions(first: {i + 1}) {{ totalCount }} }}" for i in range(3)]
    await http.post("/graphql", json=apq(queries[0]))
    await http.post("/graphql", json=apq(queries[1]))
    # Used again: now the most recent, so the third document evicts the second.
    assert (await http.post("/graphql", json=apq(None, sha256(queries[0])))).status_code == 200
    await http.post("/graphql", json=apq(queries[2]))
    found = [(await http.post("/graphql", json=apq(None, sha256(q)))).status_code for q in queries]
    assert found == [200, 404, 200]
    store = http._transport.app.state.persisted.store  # type: ignore[attr-defined]
    assert len(store) == 2


async def test_a_batch_is_refused_whole_before_any_call_when_one_hash_is_unknown(
    connect: Any, simulator: Simulator
) -> None:
    http = await connect(batching_settings())
    simulator.reset()
    response = await http.post("/graphql", json=[{"query": QUERY}, apq(None, sha256(OTHER_QUERY))])
    assert refusal(response) == (404, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
    assert simulator.counts() == {}


# --- in Redis ---------------------------------------------------------------------------------


def redis_settings(url: str, **changes: Any) -> Settings:
    settings = settings_for_tests()
    settings = settings.replace(cache=dataclasses.replace(settings.cache, url=url))
    return with_persisted(settings, **changes)


def document_slots(redis_server: RedisServer) -> list[str]:
    """The keys of the documents' slots in Redis."""
    reply = redis_server.command("KEYS", "gw:v1:documents:*")
    return [line.decode() for line in reply.split(b"\r\n") if line.startswith(b"gw:")]


@pytest.mark.redis
async def test_replicas_sharing_redis_know_the_documents_any_of_them_was_sent(
    connect: Any, redis_server: RedisServer
) -> None:
    first = await connect(redis_settings(redis_server.url))
    second = await connect(redis_settings(redis_server.url))
    registered = await first.post("/graphql", json=apq(QUERY))
    found = await second.post("/graphql", json=apq(None, sha256(QUERY)))
    assert found.status_code == 200 and found.json() == registered.json()
    (slot,) = document_slots(redis_server)
    ttl = int(redis_server.command("PTTL", slot).strip(b":\r\n"))
    assert 86_000_000 < ttl <= 86_400_000  # a day, then Redis lets it go


@pytest.mark.redis
async def test_in_redis_no_more_documents_than_slots_whatever_is_sent(
    connect: Any, redis_server: RedisServer
) -> None:
    http = await connect(redis_settings(redis_server.url, apq_max_entries=4))
    queries = [f"query Q{i} {{ __typename a{i}: __typename }}" for i in range(40)]
    for token in ("tenant-a", "tenant-b"):
        http.headers["X-Auth-Token"] = token
        await http.post("/graphql", json={"query": "{ subscriptions(first: 1) { totalCount } }"})
        for query in queries:
            assert (await http.post("/graphql", json=apq(query))).status_code == 200
    assert len(document_slots(redis_server)) <= 4
    # Whatever shares a slot with a later document is a miss, never that document.
    found = 0
    for index, query in enumerate(queries):
        response = await http.post("/graphql", json=apq(None, sha256(query)))
        if response.status_code == 200:
            found += 1
            assert response.json() == {"data": {"__typename": "Query", f"a{index}": "Query"}}
        else:
            assert refusal(response)[1] == "PERSISTED_QUERY_NOT_FOUND"
    assert 1 <= found <= 4


@pytest.mark.redis
async def test_with_redis_down_a_hash_is_not_found_and_a_document_still_runs(
    connect: Any, redis_server: RedisServer
) -> None:
    http = await connect(redis_settings(redis_server.url))
    redis_server.stop()
    missing = await http.post("/graphql", json=apq(None, sha256(QUERY)))
    assert refusal(missing)[:2] == (404, "PERSISTED_QUERY_NOT_FOUND")
    ran = await http.post("/graphql", json=apq(QUERY))
    assert ran.status_code == 200 and ran.json()["data"]["subscriptions"]["totalCount"] == 301


# --- trusted documents ------------------------------------------------------------------------

LISTED = "query Listed { subscriptions(first: 2) { totalCount } }"
LISTED_TOO = "query ListedToo($n: Int) { subscriptions(first: $n) { nodes { id } } }"
SHA1_ID = hashlib.sha1(LISTED_TOO.encode()).hexdigest()  # graphql-codegen's default id


def codegen_manifest(tmp_path: Path) -> Path:
    """graphql-codegen's persisted-documents.json: id (here SHA-256 and SHA-1) to document."""
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({sha256(LISTED): LISTED, SHA1_ID: LISTED_TOO}))
    return path


def apollo_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "persisted-query-manifest.json"
    operations = [
        {"id": sha256(body), "name": name, "type": "query", "body": body}
        for name, body in (("Listed", LISTED), ("ListedToo", LISTED_TOO))
    ]
    manifest = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("manifest", [codegen_manifest, apollo_manifest])
async def test_a_listed_document_runs_by_its_document_id_or_its_hash(
    connect: Any, simulator: Simulator, tmp_path: Path, manifest: Any
) -> None:
    http = await connect(with_persisted(documents_path=str(manifest(tmp_path))))
    by_id = await http.post("/graphql", json={"documentId": f"sha256:{sha256(LISTED)}"})
    assert by_id.json() == {"data": {"subscriptions": {"totalCount": 301}}}
    # By the APQ hash, for a caller that never sent the document: the list has it.
    by_hash = await http.post("/graphql", json=apq(None, sha256(LISTED_TOO), variables={"n": 2}))
    ids = [n["id"] for n in by_hash.json()["data"]["subscriptions"]["nodes"]]
    assert ids == subscription_ids(simulator)
    by_get = await http.get(
        "/graphql",
        params={"documentId": f"sha256:{sha256(LISTED_TOO)}", "variables": '{"n": 1}'},
    )
    assert len(by_get.json()["data"]["subscriptions"]["nodes"]) == 1


async def test_a_manifest_id_of_its_own_names_its_document(connect: Any, tmp_path: Path) -> None:
    http = await connect(with_persisted(documents_path=str(codegen_manifest(tmp_path))))
    response = await http.post("/graphql", json={"documentId": SHA1_ID, "variables": {"n": 1}})
    assert len(response.json()["data"]["subscriptions"]["nodes"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {"documentId": f"sha256:{sha256(OTHER_QUERY)}"},
            404,
            "PERSISTED_QUERY_NOT_FOUND",
            f"Persisted document 'sha256:{sha256(OTHER_QUERY)}' not found",
        ),
        (
            {"documentId": "sha256:ABC"},
            400,
            "INVALID_GRAPHQL_REQUEST",
            "A `documentId` of prefix sha256: is 64 lower-case hexadecimal digits",
        ),
        (
            {"documentId": "md5:abc"},
            400,
            "INVALID_GRAPHQL_REQUEST",
            "Unsupported `documentId` prefix 'md5': use sha256:",
        ),
        (
            {"documentId": f"sha256:{sha256(LISTED)}", "query": LISTED},
            400,
            "INVALID_GRAPHQL_REQUEST",
            "A request names its document once: `documentId`, `query` or the "
            "`persistedQuery` extension",
        ),
        (
            {"documentId": 5},
            400,
            "INVALID_GRAPHQL_REQUEST",
            "The request has a `documentId` that is not a string",
        ),
    ],
)
async def test_a_document_id_the_gateway_cannot_use_is_refused_without_a_call(
    connect: Any,
    simulator: Simulator,
    tmp_path: Path,
    body: dict[str, Any],
    status: int,
    code: str,
    message: str,
) -> None:
    http = await connect(with_persisted(documents_path=str(codegen_manifest(tmp_path))))
    simulator.reset()
    assert refusal(await http.post("/graphql", json=body)) == (status, code, message)
    assert simulator.counts() == {}


async def test_a_document_id_finds_a_document_kept_by_apq(connect: Any) -> None:
    http = await connect()
    await http.post("/graphql", json=apq(QUERY))
    response = await http.post("/graphql", json={"documentId": f"sha256:{sha256(QUERY)}"})
    assert response.json()["data"]["subscriptions"]["totalCount"] == 301


@pytest.fixture
async def only_listed(connect: Any, tmp_path: Path) -> httpx.AsyncClient:
    settings = with_persisted(
        batching_settings(), documents_path=str(codegen_manifest(tmp_path)), documents_only=True
    )
    client: httpx.AsyncClient = await connect(settings)
    return client


async def test_only_listed_documents_run_when_the_list_is_all(
    only_listed: httpx.AsyncClient, simulator: Simulator
) -> None:
    simulator.reset()
    refused = await only_listed.post("/graphql", json={"query": QUERY})
    assert refusal(refused) == (
        400,
        "PERSISTED_QUERY_ID_REQUIRED",
        "Only persisted documents run here: name one by `documentId` "
        "(or the `persistedQuery` extension)",
    )
    unknown = await only_listed.post("/graphql", json={"documentId": f"sha256:{sha256(QUERY)}"})
    assert refusal(unknown)[:2] == (404, "PERSISTED_QUERY_NOT_IN_LIST")
    # An APQ client's hash and its document: not in the list, so not run and not kept; the
    # code is not PERSISTED_QUERY_NOT_FOUND, so the client does not send the document again.
    for body in (apq(None, sha256(QUERY)), apq(QUERY), apq(None, sha256(QUERY))):
        response = await only_listed.post("/graphql", json=body)
        assert refusal(response) == (
            404,
            "PERSISTED_QUERY_NOT_IN_LIST",
            f"Persisted query '{sha256(QUERY)}' is not in the list of persisted documents",
        )
    batch = await only_listed.post(
        "/graphql", json=[{"documentId": f"sha256:{sha256(LISTED)}"}, {"query": QUERY}]
    )
    assert refusal(batch)[1] == "PERSISTED_QUERY_ID_REQUIRED"
    assert simulator.counts() == {}
    store = only_listed._transport.app.state.persisted.store  # type: ignore[attr-defined]
    assert len(store) == 0
    # The listed documents run, by id, by hash, and sent whole word for word.
    for body in (
        {"documentId": f"sha256:{sha256(LISTED)}"},
        apq(None, sha256(LISTED)),
        apq(LISTED),
        {"query": LISTED},
    ):
        response = await only_listed.post("/graphql", json=body)
        assert response.json() == {"data": {"subscriptions": {"totalCount": 301}}}, body


def write(tmp_path: Path, content: str) -> str:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "Expecting property name"),
        ("[]", "is neither a map of id to document"),
        ('{"a": 5}', "is neither a map of id to document"),
        (
            '{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}',
            "apollo-persisted-query-manifest version 2 is not 1",
        ),
        (
            '{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "x"}]}',
            "operation 0 has no string `id` and `body`",
        ),
        ('{"x": "{ subscriptions "}', "document 'x' does not parse: Syntax Error"),
        (
            '{"x": "{ subscriptionz { totalCount } }"}',
            "document 'x' does not validate: Cannot query field 'subscriptionz'",
        ),
        (
            json.dumps({sha256(QUERY): LISTED}),
            f"document '{sha256(QUERY)}' is named by a SHA-256 that is not its own",
        ),
        (
            json.dumps(
                {
                    "format": "apollo-persisted-query-manifest",
                    "version": 1,
                    "operations": [{"id": "a", "body": LISTED}, {"id": "a", "body": QUERY}],
                }
            ),
            "document 'a' names two different documents",
        ),
        (
            json.dumps({"deep": "{ " + "resource(resourceId: 1) { parent { " * 12 + "}" * 25}),
            "document 'deep' does not",
        ),
    ],
)
def test_a_manifest_the_gateway_cannot_use_stops_it_from_starting(
    make_gateway: GatewayFactory, tmp_path: Path, content: str, problem: str
) -> None:
    path = write(tmp_path, content)
    gateway = make_gateway(with_persisted(documents_path=path))
    with pytest.raises(ConfigError) as refused:
        create_app(gateway)
    assert any(
        p.startswith(f"GATEWAY_PERSISTED_DOCUMENTS={path!r}: ") and problem in p
        for p in refused.value.problems
    ), refused.value.problems


def test_a_manifest_that_cannot_be_read_stops_the_gateway_from_starting(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = str(tmp_path / "absent.json")
    with pytest.raises(ConfigError) as refused:
        create_app(make_gateway(with_persisted(documents_path=path)))
    (problem,) = refused.value.problems
    assert problem.startswith(f"GATEWAY_PERSISTED_DOCUMENTS={path!r}: cannot be read")


def test_the_settings_defaults_keep_apq_bounded() -> None:
    defaults = PersistedSettings()
    assert defaults.apq_enabled and not defaults.documents_only
    assert defaults.apq_max_entries * defaults.apq_max_document_bytes <= 32 * 2**20
