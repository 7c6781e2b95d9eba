"""The CBC client against httpx mock transports: parsing, validation, errors, chunking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.caller import Caller
from gateway.errors import ErrorKind, InvalidRequest, UpstreamError
from gateway.upstreams import cbc as cbc_module
from gateway.upstreams.cbc import (
    _RESOURCE_FIELDS,
    MAX_PAGE_SIZE,
    PATH,
    RESOURCES_QUERY,
    ResourceQuery,
    ResourceRecord,
    parse_resource,
)
from gateway.upstreams.clients import Upstreams
from gateway.upstreams.fields import TEXT, record_version
from tests.support.helpers import load_fixture
from tests.support.json_answers import answer_bodies, json_values, mostly, outcome, with_odd_parts
from tests.support.upstream_mocks import Recorder

SEED_QUERY = ResourceQuery(
    resource_ids=("0A063A********BC8548E65D0089A905",),
    order_id="CS1905251035OA***",
    only_main_resource=True,
    statuses=(2,),
    offset=0,
    limit=10,
    expire_from=datetime(2021, 9, 1, 8, 5, 1, tzinfo=UTC),
    expire_to=datetime(2021, 9, 3, 8, 5, 1, tzinfo=UTC),
)


def example_response(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=load_fixture("cbc_example_response.json"))


async def test_seed_example_request_and_response(make_upstreams: Callable[..., Upstreams]) -> None:
    recorder = Recorder(example_response)
    cbc = make_upstreams(recorder).cbc
    page = await cbc.fetch_resource_page(Caller("t"), SEED_QUERY)
    (body,) = recorder.bodies()
    assert body == load_fixture("cbc_example_request.json")
    assert recorder.requests[0].url.path == PATH
    assert page.total == 1
    (record,) = page.records
    assert record.id == "01154-54600027-0"
    assert record.resource_id == "0A063A11905F42BC8548E65D0089A905"
    assert record.is_main_resource is True
    assert record.parent_resource_id == "9ad02e1ad3394d1bb3da48890fbc4c06"
    assert record.effective_at == datetime(2020, 5, 3, 9, 11, 10, tzinfo=UTC)
    assert record.expires_at == datetime(2020, 6, 3, 9, 11, 10, tzinfo=UTC)
    assert record.expire_policy == 0 and record.status == 2
    assert record.spec_code == "SSD" and record.region_code == "cn-south-1"


async def test_an_expiry_window_is_sent_as_the_whole_seconds_it_holds(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    """CBC stores whole seconds: a window from 01.5 s to 03.5 s holds 02 and 03, and one
    within a single second holds none, so CBC is not asked."""
    recorder = Recorder(example_response)
    cbc = make_upstreams(recorder).cbc
    minute = datetime(2021, 9, 1, 8, 5, tzinfo=UTC)
    await cbc.fetch_resource_page(
        Caller("t"),
        ResourceQuery(
            expire_from=minute.replace(second=1, microsecond=500_000),
            expire_to=minute.replace(second=3, microsecond=500_000),
        ),
    )
    await cbc.fetch_resource_page(
        Caller("t"),
        ResourceQuery(expire_from=minute.replace(second=1, microsecond=1)),
    )
    for query in (
        ResourceQuery(
            expire_from=minute.replace(second=1, microsecond=200_000),
            expire_to=minute.replace(second=1, microsecond=800_000),
        ),
        ResourceQuery(expire_from=datetime.max.replace(tzinfo=UTC)),
    ):
        page = await cbc.fetch_resource_page(Caller("t"), query)
        assert page.records == () and page.total == 0
    assert [(b.get("expire_time_begin"), b.get("expire_time_end")) for b in recorder.bodies()] == [
        ("2021-09-01T08:05:02Z", "2021-09-01T08:05:03Z"),
        ("2021-09-01T08:05:02Z", None),
    ]


@pytest.mark.parametrize(
    "query",
    [
        ResourceQuery(limit=0),
        ResourceQuery(limit=501),
        ResourceQuery(offset=-1),
        ResourceQuery(resource_ids=tuple(f"r{i}" for i in range(51))),
        ResourceQuery(resource_ids=("",)),
        ResourceQuery(order_id="x" * 65),
        ResourceQuery(order_id=""),
        # Lone surrogates have no UTF-8 form: a JSON body cannot carry them.
        ResourceQuery(order_id="CS\ud800"),
        ResourceQuery(resource_ids=("r1", "\udfff")),
        ResourceQuery(statuses=(2, 4, 5, 2, 4, 5, 2, 4, 5, 2, 4)),
        ResourceQuery(statuses=(3,)),
        ResourceQuery(
            expire_from=datetime(2021, 9, 3, tzinfo=UTC), expire_to=datetime(2021, 9, 1, tzinfo=UTC)
        ),
    ],
)
async def test_invalid_queries_are_refused_without_a_call(
    make_upstreams: Callable[..., Upstreams], query: ResourceQuery
) -> None:
    recorder = Recorder(example_response)
    cbc = make_upstreams(recorder).cbc
    with pytest.raises(InvalidRequest) as caught:
        await cbc.fetch_resource_page(Caller("t"), query)
    assert caught.value.upstream == "cbc"
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "CBC.0100", ErrorKind.BAD_REQUEST),
        (401, "APIGW.0301", ErrorKind.UNAUTHENTICATED),
        (403, "CBC.0151", ErrorKind.FORBIDDEN),
        (429, "APIG.0308", ErrorKind.THROTTLED),
        (500, "CBC.0999", ErrorKind.UNAVAILABLE),
    ],
)
async def test_documented_errors_keep_status_and_code(
    make_upstreams: Callable[..., Upstreams], status: int, code: str, kind: ErrorKind
) -> None:
    recorder = Recorder(
        lambda _: httpx.Response(status, json={"error_code": code, "error_msg": "documented"})
    )
    cbc = make_upstreams(recorder).cbc
    with pytest.raises(UpstreamError) as caught:
        await cbc.fetch_resource_page(Caller("t"), ResourceQuery())
    assert caught.value.kind is kind
    assert caught.value.status == status and caught.value.upstream_code == code


async def test_empty_answer_without_data_is_an_empty_page(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    cbc = make_upstreams(Recorder(lambda _: httpx.Response(200, json={"total_count": 0}))).cbc
    page = await cbc.fetch_resource_page(Caller("t"), ResourceQuery())
    assert page.records == () and page.total == 0


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        ("CBC.0100", ErrorKind.BAD_REQUEST, 400),
        ("CBC.0151", ErrorKind.FORBIDDEN, 403),
        ("CBC.0999", ErrorKind.UNAVAILABLE, 500),
        ("CBC.4242", ErrorKind.BAD_RESPONSE, 200),
    ],
)
@pytest.mark.parametrize("with_data", [False, True])
async def test_a_200_with_an_error_code_is_that_failure_even_with_data(
    make_upstreams: Callable[..., Upstreams],
    code: str,
    kind: ErrorKind,
    status: int,
    with_data: bool,
) -> None:
    """error_code is set "on failure": data beside it is not an answer to trust."""
    body: dict[str, object] = {"error_code": code, "error_msg": "x"}
    if with_data:
        body.update(load_fixture("cbc_example_response.json"))
    cbc = make_upstreams(Recorder(lambda _: httpx.Response(200, json=body)), max_retries=0).cbc
    with pytest.raises(UpstreamError) as caught:
        await cbc.fetch_resource_page(Caller("t"), ResourceQuery())
    assert caught.value.kind is kind
    assert caught.value.upstream_code == code and caught.value.status == status


@pytest.mark.parametrize("code", [None, "", 0, "0", "CBC.0000"])
async def test_an_empty_or_success_error_code_is_an_answer(
    make_upstreams: Callable[..., Upstreams], code: str | int | None
) -> None:
    body = {**load_fixture("cbc_example_response.json"), "error_code": code, "error_msg": "ok"}
    cbc = make_upstreams(Recorder(lambda _: httpx.Response(200, json=body))).cbc
    page = await cbc.fetch_resource_page(Caller("t"), ResourceQuery())
    assert page.total == 1 and len(page.records) == 1


async def test_ids_are_fetched_in_chunks_of_fifty_all_at_once(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    def by_ids(request: httpx.Request) -> httpx.Response:
        ids = orjson.loads(request.content)["resource_ids"]
        data = [{"id": i, "resource_id": i, "is_main_resource": 1} for i in ids]
        return httpx.Response(200, json={"data": data, "total_count": len(data)})

    recorder = Recorder(by_ids)
    cbc = make_upstreams(recorder).cbc
    ids = [f"res-{i}" for i in range(120)] + ["res-0"]  # a duplicate costs nothing
    answers = await cbc.fetch_resources_by_ids(Caller("t"), ids, only_main_resource=False)
    sizes = sorted(len(b["resource_ids"]) for b in recorder.bodies())
    assert sizes == [20, 50, 50]
    assert all(b["only_main_resource"] == 0 for b in recorder.bodies())
    assert sum(len(a) for a in answers) == 120


def pages_of_600(request: httpx.Request) -> httpx.Response:
    """An order of 600 resources: two pages of at most 500."""
    body = orjson.loads(request.content)
    offset, limit = body["offset"], body["limit"]
    template = load_fixture("cbc_example_response.json")["data"][0]
    data = [
        {**template, "id": f"p{n}", "resource_id": f"r{n}"}
        for n in range(offset, min(offset + limit, 600))
    ]
    return httpx.Response(200, json={"data": data, "total_count": 600})


async def test_a_warm_order_is_answered_from_the_cache_with_no_call(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(pages_of_600)
    cbc = make_upstreams(recorder).cbc
    query = ResourceQuery(order_id="CS1905251035OA***")
    alice = Caller("alice")
    assert cbc.cached_all_resources(alice, query) is None  # cold: no answer, and no call
    assert recorder.requests == []

    fetched = await cbc.fetch_all_resources(alice, query)
    assert [r.resource_id for r in fetched.records] == [f"r{n}" for n in range(600)]
    assert len(recorder.requests) == 2

    warm = cbc.cached_all_resources(alice, query)
    assert warm == fetched and alice.stats.cache_hits == 2
    # Another caller's pages are not theirs; a caller asking for fresh data gets none.
    assert cbc.cached_all_resources(Caller("bob"), query) is None
    assert cbc.cached_all_resources(Caller("alice", fresh=True), query) is None
    # A query the API would refuse has no cached answer either (fetch says why).
    assert cbc.cached_all_resources(alice, ResourceQuery(order_id="x" * 65)) is None
    assert len(recorder.requests) == 2


async def test_pages_cached_by_a_build_declaring_the_record_otherwise_are_not_read(
    make_upstreams: Callable[..., Upstreams], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records' version is in every page's cache key: after a deploy that changes
    ResourceRecord, its pages in a shared cache are fetched anew, never misread."""
    recorder = Recorder(example_response)
    cbc = make_upstreams(recorder).cbc
    await cbc.fetch_resource_page(Caller("alice"), SEED_QUERY)
    monkeypatch.setattr(cbc_module, "_RECORDS_VERSION", "0123456789abcdef")
    await cbc.fetch_resource_page(Caller("alice"), SEED_QUERY)
    await cbc.fetch_resource_page(Caller("alice"), SEED_QUERY)
    assert len(recorder.requests) == 2
    monkeypatch.undo()
    await cbc.fetch_resource_page(Caller("alice"), SEED_QUERY)  # the first build's page
    assert len(recorder.requests) == 2
    params = RESOURCES_QUERY.cache_params(SEED_QUERY)
    assert ("records", record_version(ResourceRecord)) in params


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # No id: the resource_id is the id; no parent, not a main resource.
        ({"resource_id": "r1"}, ("r1", None, False)),
        # An empty parent id is none, not a resource named "".
        (
            {"resource_id": "r1", "id": "", "parent_resource_id": "", "is_main_resource": "1"},
            ("r1", None, True),
        ),
        (
            {"resource_id": "r1", "id": "i1", "parent_resource_id": "p1", "is_main_resource": 0},
            ("i1", "p1", False),
        ),
        ({"resource_id": "r1", "is_main_resource": 2}, ("r1", None, False)),
    ],
)
async def test_a_resources_ids_and_flag_are_what_cbc_means_by_them(
    make_upstreams: Callable[..., Upstreams], raw: dict[str, object], expected: tuple[object, ...]
) -> None:
    answer = {"data": [raw], "total_count": 1}
    cbc = make_upstreams(Recorder(lambda _: httpx.Response(200, json=answer))).cbc
    (record,) = (await cbc.fetch_resource_page(Caller("t"), ResourceQuery())).records
    assert (record.id, record.parent_resource_id, record.is_main_resource) == expected
    assert parse_resource(raw) == record


@pytest.mark.parametrize(
    "raw", [{"id": "i1"}, {"id": "i1", "resource_id": ""}, {"resource_id": None}]
)
async def test_a_resource_without_its_id_fails_the_page_in_the_gateways_words(
    make_upstreams: Callable[..., Upstreams], raw: dict[str, object]
) -> None:
    seed = load_fixture("cbc_example_response.json")
    answer = {**seed, "data": [*seed["data"], raw]}
    cbc = make_upstreams(Recorder(lambda _: httpx.Response(200, json=answer))).cbc
    with pytest.raises(UpstreamError) as caught:
        await cbc.fetch_resource_page(Caller("t"), ResourceQuery())
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    assert caught.value.message == "a resource record without resource_id"
    with pytest.raises(ValueError, match=r"^a resource record without resource_id$"):
        parse_resource(raw)


def test_a_pages_key_holds_its_query_immutable_and_apart_from_others() -> None:
    params = RESOURCES_QUERY.cache_params(SEED_QUERY)
    hash(params)  # tuples all through, never a list (CacheKey's parameters are immutable)
    assert dict(params)["resource_ids"] == ("0A063A********BC8548E65D0089A905",)
    assert dict(params)["status_list"] == (2,)
    other_ids = RESOURCES_QUERY.cache_params(replace(SEED_QUERY, resource_ids=("other",)))
    other_statuses = RESOURCES_QUERY.cache_params(replace(SEED_QUERY, statuses=(4,)))
    assert len({params, other_ids, other_statuses}) == 3


async def test_an_order_id_with_special_characters_is_sent_url_encoded(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(example_response)
    cbc = make_upstreams(recorder).cbc
    await cbc.fetch_resource_page(Caller("t"), ResourceQuery(order_id="CS19 05%25+1/*"))
    (body,) = recorder.bodies()
    # As the table's note asks, "%" as "%25"; letters, digits and "*" as they are.
    assert body["order_id"] == "CS19+05%2525%2B1%2F*"


def test_a_query_for_one_page_is_itself_when_it_asks_for_that_page() -> None:
    whole_order = ResourceQuery(order_id="CS1", limit=MAX_PAGE_SIZE)
    assert whole_order.page(0, MAX_PAGE_SIZE) is whole_order
    second = whole_order.page(MAX_PAGE_SIZE, 20)
    assert (second.order_id, second.offset, second.limit) == ("CS1", MAX_PAGE_SIZE, 20)
    assert (whole_order.offset, whole_order.limit) == (0, MAX_PAGE_SIZE)


@settings(max_examples=300)
@given(
    answer_bodies(
        "data",
        _RESOURCE_FIELDS.names,
        {
            "error_code": st.sampled_from(["", "0", "CBC.0000", "CBC.0100", None, 0]),
            "error_msg": mostly(st.text(max_size=8), json_values, one_in=4),
            "total_count": mostly(st.integers(0, 2000), json_values, one_in=4),
        },
        texts=[name for name, kind in _RESOURCE_FIELDS.fields if kind is TEXT],
        identifying=["resource_id"],
    )
)
def test_an_answer_decoded_the_quick_way_is_what_general_json_makes_of_it(body: bytes) -> None:
    assert outcome(RESOURCES_QUERY, body, quick=True) == outcome(RESOURCES_QUERY, body, quick=False)


def test_the_documented_example_takes_the_quick_way() -> None:
    body = orjson.dumps(load_fixture("cbc_example_response.json"))
    assert RESOURCES_QUERY.decode(body) is not None
    assert outcome(RESOURCES_QUERY, body, quick=True) == outcome(RESOURCES_QUERY, body, quick=False)


@pytest.mark.parametrize("body", with_odd_parts("data", "resource_id"))
def test_an_odd_part_anywhere_is_decoded_as_general_json_decodes_it(body: bytes) -> None:
    assert RESOURCES_QUERY.decode(body) is None
    assert outcome(RESOURCES_QUERY, body, quick=True) == outcome(RESOURCES_QUERY, body, quick=False)
