"""The OMA client against httpx mock transports: parsing, validation, errors, paging."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.caller import Caller
from gateway.errors import ErrorKind, InvalidRequest, UpstreamError
from gateway.upstreams import oma as oma_module
from gateway.upstreams.clients import Upstreams
from gateway.upstreams.fields import TEXT, record_version
from gateway.upstreams.oma import (
    _SUBSCRIPTION_FIELDS,
    PATH,
    QUERY_RESOURCE,
    SubscriptionQuery,
    SubscriptionRecord,
    parse_subscription,
)
from tests.support.helpers import load_fixture
from tests.support.json_answers import answer_bodies, json_values, mostly, outcome, with_odd_parts
from tests.support.upstream_mocks import Recorder, example_oma_response


async def test_seed_example_parses_into_a_typed_record(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder).oma
    page = await oma.fetch_subscription_page(
        Caller("t"),
        SubscriptionQuery(
            limit=10,
            offset=0,
            start=datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC),
            end=datetime(2023, 3, 23, 8, 7, 34, 1000, tzinfo=UTC),
        ),
    )
    assert page.total == 1
    (record,) = page.records
    assert record.id == "1638814724192780290"
    assert record.order_id == "251679538126441114"
    assert record.modified_at == datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC)
    assert record.created_at == datetime(2023, 3, 23, 8, 7, 33, tzinfo=UTC)
    assert record.expires_at is not None and record.expires_at.tzinfo is UTC
    assert record.charging_mode == "monthly"  # procutName, sic
    assert record.quantity == 1 and record.period_number == 2  # strings in the example
    assert record.remark is None  # null although "mandatory"
    assert record.status is None and record.trial is None and record.cec_feature_type is None
    # The request is the seed's, with numbers as the table documents them.
    (body,) = recorder.bodies()
    assert body == {"limit": 10, "offset": 0, "startDate": 1679558854000, "endDate": 1679558854001}
    assert recorder.requests[0].url.path == PATH
    assert recorder.requests[0].headers["X-Auth-Token"] == "t"


async def test_tolerant_parsing(
    make_upstreams: Callable[..., Upstreams], caplog: pytest.LogCaptureFixture
) -> None:
    record = dict(load_fixture("oma_example_response.json")["result"][0])
    record.update(
        {
            "amount": 3,  # a number where a string is documented
            "orderAmount": 36000,
            "modifyTime": "1679558854000",  # a numeric string
            "createTime": "last tuesday",  # unparseable: null and a warning
            "trialFlag": "1",
            "status": "8",
            "somethingNew": {"ignored": True},
        }
    )
    del record["skuName"]
    recorder = Recorder(
        lambda _: httpx.Response(200, json={"result": [record], "count": "1", "returnCode": "0"})
    )
    oma = make_upstreams(recorder).oma
    with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
        page = await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=5))
    (parsed,) = page.records
    assert parsed.quantity == 3 and parsed.order_amount == "36000"
    assert parsed.modified_at == datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC)
    assert parsed.created_at is None
    assert parsed.trial is True and parsed.status == 8
    assert parsed.sku_name is None
    assert page.total == 1
    assert "unparseable time" in caplog.text


@pytest.mark.parametrize(
    ("flag", "trial"), [(0, False), ("0", False), (1, True), ("1", True), (None, None), ("x", None)]
)
def test_the_trial_flag_is_read_as_a_bool(flag: object, trial: bool | None) -> None:
    assert parse_subscription({"id": "s1", "orderId": "o1", "trialFlag": flag}).trial is trial


@pytest.mark.parametrize(
    "raw",
    [{"orderId": "o1"}, {"id": "s1"}, {"id": "", "orderId": "o1"}, {"id": "s1", "orderId": ""}],
)
async def test_a_subscription_without_its_ids_fails_the_page_in_the_gateways_words(
    make_upstreams: Callable[..., Upstreams], raw: dict[str, object]
) -> None:
    seed = load_fixture("oma_example_response.json")
    answer = {**seed, "result": [*seed["result"], raw]}
    oma = make_upstreams(Recorder(lambda _: httpx.Response(200, json=answer))).oma
    with pytest.raises(UpstreamError) as caught:
        await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    assert caught.value.message == "a subscription record without id or orderId"
    with pytest.raises(ValueError, match=r"^a subscription record without id or orderId$"):
        parse_subscription(raw)


async def test_one_record_is_parsed_as_in_its_page(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    oma = make_upstreams(Recorder(example_oma_response)).oma
    (record,) = (
        await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    ).records
    assert parse_subscription(load_fixture("oma_example_response.json")["result"][0]) == record


@pytest.mark.parametrize(
    "query",
    [
        SubscriptionQuery(limit=0),
        SubscriptionQuery(limit=100),
        SubscriptionQuery(limit=10, offset=-1),
        SubscriptionQuery(
            limit=10,
            start=datetime(2024, 1, 2, tzinfo=UTC),
            end=datetime(2024, 1, 1, tzinfo=UTC),
        ),
    ],
)
async def test_invalid_queries_are_refused_without_a_call(
    make_upstreams: Callable[..., Upstreams], query: SubscriptionQuery
) -> None:
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder).oma
    with pytest.raises(InvalidRequest):
        await oma.fetch_subscription_page(Caller("t"), query)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("response", "kind", "calls"),
    [
        (
            httpx.Response(401, json={"schema": "Unauthorized operation."}),
            ErrorKind.UNAUTHENTICATED,
            1,
        ),
        (httpx.Response(403, json={"schema": "Forbidden"}), ErrorKind.FORBIDDEN, 1),
        # No body, or only whitespace: the status says what went wrong.
        (httpx.Response(401), ErrorKind.UNAUTHENTICATED, 1),
        (httpx.Response(401, content=b" \r\n\t"), ErrorKind.UNAUTHENTICATED, 1),
        (httpx.Response(502, json={"schema": "Business failure"}), ErrorKind.UNAVAILABLE, 3),
        (httpx.Response(503, text="<html>down</html>"), ErrorKind.UNAVAILABLE, 3),
        # A refusal in HTML (a proxy's or a login page) is still a refusal.
        (httpx.Response(401, text="<html>sign in</html>"), ErrorKind.UNAUTHENTICATED, 1),
        (httpx.Response(403, text="<html>denied</html>"), ErrorKind.FORBIDDEN, 1),
        (
            httpx.Response(429, json={"error_code": "APIG.0308"}, headers={"Retry-After": "0"}),
            ErrorKind.THROTTLED,
            3,
        ),
        (
            httpx.Response(
                200, json={"result": [], "count": 0, "returnCode": "1", "description": "no"}
            ),
            ErrorKind.REFUSED,
            1,
        ),
        # No returnCode at all is no answer OMA documents.
        (httpx.Response(200, json={"result": [], "count": 0}), ErrorKind.BAD_RESPONSE, 1),
        (httpx.Response(200, text="<html>login</html>"), ErrorKind.BAD_RESPONSE, 1),
        (httpx.Response(200, json={"rows": []}), ErrorKind.BAD_RESPONSE, 1),
        (
            httpx.Response(200, json={"result": [{"orderId": "1"}], "returnCode": "0"}),
            ErrorKind.BAD_RESPONSE,
            1,
        ),
        (
            httpx.Response(307, headers={"Location": "http://elsewhere.example/steal"}),
            ErrorKind.BAD_RESPONSE,
            1,
        ),
    ],
)
async def test_errors_are_classified_and_only_transient_ones_retried(
    make_upstreams: Callable[..., Upstreams], response: httpx.Response, kind: ErrorKind, calls: int
) -> None:
    recorder = Recorder(lambda _: response)
    oma = make_upstreams(recorder, max_retries=2, retry_backoff=0.001, breaker_threshold=100).oma
    with pytest.raises(UpstreamError) as caught:
        await oma.fetch_subscription_page(Caller("secret-token"), SubscriptionQuery(limit=10))
    assert caught.value.kind is kind
    assert caught.value.upstream == "oma"
    assert len(recorder.requests) == calls
    # A redirect is never followed: the only host that saw the token is the upstream.
    assert {r.url.host for r in recorder.requests} == {"simulator"}
    assert "secret-token" not in repr(caught.value) and "secret-token" not in str(caught.value)


async def test_a_failure_without_a_result_list_keeps_its_code_and_logs_its_description(
    make_upstreams: Callable[..., Upstreams], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(
        lambda _: httpx.Response(
            200, json={"returnCode": "1", "description": "token expired at db01.internal:5432"}
        )
    )
    oma = make_upstreams(recorder).oma
    with caplog.at_level(logging.INFO, logger="gateway.upstream"):
        with pytest.raises(UpstreamError) as caught:
            await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    assert caught.value.kind is ErrorKind.REFUSED
    assert caught.value.upstream_code == "1"
    # The caller reads the gateway's words; what OMA wrote is for the operators' log.
    assert caught.value.message == "OMA refused the request (returnCode 1)"
    logged = [r for r in caplog.records if getattr(r, "upstream_text", None)]
    assert [r.upstream_text for r in logged] == ["token expired at db01.internal:5432"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            401,
            {"schema": "Unauthorized operation. 1. Check..."},
            ErrorKind.UNAUTHENTICATED,
            "OMA did not accept the token (401)",
        ),
        (
            502,
            {"schema": "Business failure at com.huawei.oma.Service.query(Service.java:88)"},
            ErrorKind.UNAVAILABLE,
            "OMA failed to answer (502)",
        ),
        (
            429,
            {"error_code": "APIG.0308", "error_msg": "The request is throttled by db01"},
            ErrorKind.THROTTLED,
            "OMA is throttling the gateway's calls (429, APIG.0308)",
        ),
        (
            431,
            {"error_code": "APIG.0201", "error_msg": "Request header too large"},
            ErrorKind.REFUSED,
            "OMA refused the request (431, APIG.0201)",
        ),
        (
            400,
            {"error_code": "<script>", "error_msg": "bad"},
            ErrorKind.BAD_REQUEST,
            "OMA refused the request as invalid (400)",
        ),
    ],
)
async def test_failures_carry_the_gateways_words_and_a_well_formed_code_only(
    make_upstreams: Callable[..., Upstreams],
    status: int,
    body: dict[str, str],
    kind: ErrorKind,
    message: str,
) -> None:
    oma = make_upstreams(Recorder(lambda _: httpx.Response(status, json=body))).oma
    with pytest.raises(UpstreamError) as caught:
        await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    assert caught.value.kind is kind
    assert caught.value.message == message
    code = body.get("error_code")
    assert caught.value.upstream_code == (
        code if code and code[0].isalpha() and "." in code else None
    )


async def test_refusals_never_open_the_breaker_for_other_callers(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["X-Auth-Token"] == "refused":
            return httpx.Response(200, json={"returnCode": "1", "description": "not allowed"})
        return example_oma_response(request)

    recorder = Recorder(answer)
    oma = make_upstreams(recorder, breaker_threshold=2, cache_ttl=0).oma
    for _ in range(5):
        with pytest.raises(UpstreamError) as caught:
            await oma.fetch_subscription_page(Caller("refused"), SubscriptionQuery(limit=10))
        assert caught.value.kind is ErrorKind.REFUSED
    page = await oma.fetch_subscription_page(Caller("another"), SubscriptionQuery(limit=10))
    assert page.total == 1
    # Each refusal was one call: not retried, and the breaker stayed closed.
    assert len(recorder.requests) == 6


async def test_a_window_reaching_before_1970_is_sent_from_epoch_zero(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder).oma
    await oma.fetch_subscription_page(
        Caller("t"),
        SubscriptionQuery(
            limit=10,
            start=datetime(1960, 1, 1, tzinfo=UTC),
            end=datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC),
        ),
    )
    # A window that ends before 1970 holds no subscription: answered empty, not asked.
    page = await oma.fetch_subscription_page(
        Caller("t"),
        SubscriptionQuery(
            limit=10, start=datetime(1950, 1, 1, tzinfo=UTC), end=datetime(1960, 1, 1, tzinfo=UTC)
        ),
    )
    assert page.records == () and page.total == 0
    assert [(b["startDate"], b["endDate"]) for b in recorder.bodies()] == [(0, 1679558854000)]
    # One ending at 1970's first millisecond holds it: OMA is asked.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10, end=epoch))
    assert recorder.bodies()[-1] == {"limit": 10, "offset": 0, "endDate": 0}


async def test_a_window_is_sent_as_the_milliseconds_it_holds(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    """OMA stores milliseconds: a window from 34.0005 s to 34.9999 s holds 34.001 to 34.999,
    and one within a single millisecond holds none, so OMA is not asked."""
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder).oma
    second = datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC)
    await oma.fetch_subscription_page(
        Caller("t"),
        SubscriptionQuery(
            limit=10, start=second.replace(microsecond=500), end=second.replace(microsecond=999_900)
        ),
    )
    await oma.fetch_subscription_page(
        Caller("t"), SubscriptionQuery(limit=10, start=second, end=second)
    )
    page = await oma.fetch_subscription_page(
        Caller("t"),
        SubscriptionQuery(
            limit=10, start=second.replace(microsecond=200), end=second.replace(microsecond=800)
        ),
    )
    assert page.records == () and page.total == 0
    assert [(b["startDate"], b["endDate"]) for b in recorder.bodies()] == [
        (1679558854001, 1679558854999),
        (1679558854000, 1679558854000),
    ]


async def test_connection_failures_are_unavailable(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    oma = make_upstreams(Recorder(refuse), max_retries=0).oma
    with pytest.raises(UpstreamError) as caught:
        await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    assert caught.value.kind is ErrorKind.UNAVAILABLE


async def test_errors_are_not_cached(make_upstreams: Callable[..., Upstreams]) -> None:
    responses = [httpx.Response(502, json={"schema": "Business failure"}), None]

    def flaky(request: httpx.Request) -> httpx.Response:
        first = responses.pop(0)
        return first if first is not None else example_oma_response(request)

    recorder = Recorder(flaky)
    oma = make_upstreams(recorder, max_retries=0).oma
    with pytest.raises(UpstreamError):
        await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    page = await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    assert page.total == 1
    assert len(recorder.requests) == 2


async def test_a_refused_token_is_refused_again_without_a_call_for_a_while(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(lambda _: httpx.Response(401, json={"schema": "Unauthorized"}))
    upstreams = make_upstreams(recorder, security={"rejected_ttl": 0.2})
    for _ in range(5):
        with pytest.raises(UpstreamError) as caught:
            await upstreams.oma.fetch_subscription_page(Caller("revoked"), SubscriptionQuery(10))
        assert caught.value.kind is ErrorKind.UNAUTHENTICATED
    assert len(recorder.requests) == 1  # the four repeats cost no call
    # Another token is asked as usual; the refusal is forgotten after its time.
    with pytest.raises(UpstreamError):
        await upstreams.oma.fetch_subscription_page(Caller("other"), SubscriptionQuery(10))
    assert len(recorder.requests) == 2
    await asyncio.sleep(0.25)
    with pytest.raises(UpstreamError):
        await upstreams.oma.fetch_subscription_page(Caller("revoked"), SubscriptionQuery(10))
    assert len(recorder.requests) == 3


async def test_a_token_once_answered_is_verified_until_it_is_refused(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    answers = [example_oma_response, lambda _: httpx.Response(401, json={"schema": "expired"})]
    recorder = Recorder(lambda request: answers[0](request))
    upstreams = make_upstreams(recorder, cache_ttl=0)
    book = upstreams.books["oma"]
    caller = Caller("alice")
    assert not book.verified_here(caller.fingerprint)
    await upstreams.oma.fetch_subscription_page(caller, SubscriptionQuery(10))
    assert book.verified_here(caller.fingerprint)
    assert not upstreams.books["cbc"].verified_here(caller.fingerprint)  # per upstream
    answers.pop(0)  # the token expires
    with pytest.raises(UpstreamError):
        await upstreams.oma.fetch_subscription_page(caller, SubscriptionQuery(10))
    assert not book.verified_here(caller.fingerprint)


async def test_pages_are_cached_per_token(make_upstreams: Callable[..., Upstreams]) -> None:
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder).oma
    for _ in range(3):
        await oma.fetch_subscription_page(Caller("alice"), SubscriptionQuery(limit=10))
    assert len(recorder.requests) == 1
    await oma.fetch_subscription_page(Caller("bob"), SubscriptionQuery(limit=10))
    assert [r.headers["X-Auth-Token"] for r in recorder.requests] == ["alice", "bob"]
    await oma.fetch_subscription_page(Caller("alice", fresh=True), SubscriptionQuery(limit=10))
    assert len(recorder.requests) == 3


async def test_pages_cached_by_a_build_declaring_the_record_otherwise_are_not_read(
    make_upstreams: Callable[..., Upstreams], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records' version is in every page's cache key: after a deploy that changes
    SubscriptionRecord, its pages in a shared cache are fetched anew, never misread."""
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder).oma
    query = SubscriptionQuery(limit=10)
    await oma.fetch_subscription_page(Caller("alice"), query)
    monkeypatch.setattr(oma_module, "_RECORDS_VERSION", "0123456789abcdef")
    await oma.fetch_subscription_page(Caller("alice"), query)
    await oma.fetch_subscription_page(Caller("alice"), query)
    assert len(recorder.requests) == 2
    monkeypatch.undo()
    await oma.fetch_subscription_page(Caller("alice"), query)  # the first build's page
    assert len(recorder.requests) == 2
    assert ("records", record_version(SubscriptionRecord)) in QUERY_RESOURCE.cache_params(query)


def numbered_pages(request: httpx.Request) -> httpx.Response:
    body = orjson.loads(request.content)
    total = 250
    start, limit = body["offset"], body["limit"]
    records = [
        {"id": str(i), "orderId": f"order-{i}", "createTime": 1679558853000 + i}
        for i in range(start, min(start + limit, total))
    ]
    return httpx.Response(200, json={"result": records, "count": total, "returnCode": "0"})


async def test_a_range_spanning_pages_is_fetched_at_once_and_in_order(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(numbered_pages)
    oma = make_upstreams(recorder).oma
    page = await oma.fetch_subscription_range(Caller("t"), offset=0, count=250)
    assert [r.id for r in page.records] == [str(i) for i in range(250)]
    assert page.total == 250
    assert sorted((b["offset"], b["limit"]) for b in recorder.bodies()) == [
        (0, 99),
        (99, 99),
        (198, 52),
    ]


async def test_ranges_and_whole_lists_ask_every_page_for_the_window(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(numbered_pages)
    oma = make_upstreams(recorder).oma
    start, end = datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 2, tzinfo=UTC)
    window = (1677628800000, 1677715200000)
    ranged = await oma.fetch_subscription_range(
        Caller("t"), offset=0, count=150, start=start, end=end
    )
    whole = await oma.fetch_all_subscriptions(Caller("t"), start=start, end=end)
    assert (len(ranged.records), ranged.total, len(whole.records), whole.total) == (
        150,
        250,
        250,
        250,
    )
    assert {(b["startDate"], b["endDate"]) for b in recorder.bodies()} == {window}


async def test_everything_follows_the_first_page_total(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    recorder = Recorder(numbered_pages)
    oma = make_upstreams(recorder).oma
    page = await oma.fetch_all_subscriptions(Caller("t"))
    assert len(page.records) == 250
    assert len({r.id for r in page.records}) == 250
    first = recorder.bodies()[0]
    assert (first["offset"], first["limit"]) == (0, 99)
    assert len(recorder.requests) == 3


async def test_a_page_with_items_that_are_not_objects_keeps_the_records(
    make_upstreams: Callable[..., Upstreams],
) -> None:
    seed = load_fixture("oma_example_response.json")
    body = {**seed, "result": [7, *seed["result"], None, "x"]}
    oma = make_upstreams(Recorder(lambda _: httpx.Response(200, json=body))).oma
    page = await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    assert [record.id for record in page.records] == ["1638814724192780290"]


@pytest.mark.parametrize(
    ("deadline", "read", "connect"),
    [(10.0, 5.0, 2.0), (3.0, 3.0, 2.0), (1.5, 1.5, 1.5)],
)
async def test_a_try_never_outlasts_the_calls_deadline(
    make_upstreams: Callable[..., Upstreams], deadline: float, read: float, connect: float
) -> None:
    """Each try gets the configured timeouts, cut to what is left of the deadline."""
    recorder = Recorder(example_oma_response)
    oma = make_upstreams(recorder, read_timeout=5.0, connect_timeout=2.0, deadline=deadline).oma
    await oma.fetch_subscription_page(Caller("t"), SubscriptionQuery(limit=10))
    timeout = recorder.requests[0].extensions["timeout"]
    assert timeout["read"] == pytest.approx(read, abs=0.05)
    assert timeout["connect"] == pytest.approx(connect, abs=0.05)


@settings(max_examples=300)
@given(
    answer_bodies(
        "result",
        _SUBSCRIPTION_FIELDS.names,
        {
            "returnCode": st.sampled_from(["0", 0, "1", None, ""]),
            "description": mostly(st.text(max_size=8), json_values, one_in=4),
            "count": mostly(st.integers(0, 2000), json_values, one_in=4),
        },
        texts=[name for name, kind in _SUBSCRIPTION_FIELDS.fields if kind is TEXT],
        identifying=["id", "orderId"],
    )
)
def test_an_answer_decoded_the_quick_way_is_what_general_json_makes_of_it(body: bytes) -> None:
    assert outcome(QUERY_RESOURCE, body, quick=True) == outcome(QUERY_RESOURCE, body, quick=False)


def test_the_documented_example_takes_the_quick_way() -> None:
    body = orjson.dumps(load_fixture("oma_example_response.json"))
    assert QUERY_RESOURCE.decode(body) is not None
    assert outcome(QUERY_RESOURCE, body, quick=True) == outcome(QUERY_RESOURCE, body, quick=False)


@pytest.mark.parametrize("body", with_odd_parts("result", "id"))
def test_an_odd_part_anywhere_is_decoded_as_general_json_decodes_it(body: bytes) -> None:
    assert QUERY_RESOURCE.decode(body) is None
    assert outcome(QUERY_RESOURCE, body, quick=True) == outcome(QUERY_RESOURCE, body, quick=False)
