import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.simulator import Simulator
from schema.cursors import decode_cursor, encode_cursor
from tests.support.helpers import GraphQLClient

NOT_A_CURSOR = r"^`after` is not a cursor of subscriptions$"


@given(st.integers(min_value=0, max_value=10_000_000))
def test_cursor_round_trips(offset: int) -> None:
    assert decode_cursor("subscriptions", encode_cursor("subscriptions", offset)) == offset


# Cursors live in clients across deploys and are read by every replica: a change to
# their form (the version, the separator, the checksum, the padding) breaks them.
@pytest.mark.parametrize(
    ("connection", "offset", "cursor"),
    [("subscriptions", 0, "YzF8MHxlYTRkYjhmNQ"), ("resources", 20, "YzF8MjB8NjM3ODVkZDE")],
)
def test_cursors_keep_the_form_they_were_issued_in(
    connection: str, offset: int, cursor: str
) -> None:
    assert encode_cursor(connection, offset) == cursor
    assert decode_cursor(connection, cursor) == offset


def test_cursor_of_another_connection_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^`after` is not a cursor of resources$"):
        decode_cursor("resources", encode_cursor("subscriptions", 5))


def test_an_offset_over_ten_million_is_refused_even_with_its_checksum() -> None:
    assert decode_cursor("subscriptions", encode_cursor("subscriptions", 10_000_000)) == 10_000_000
    with pytest.raises(InvalidRequest, match=NOT_A_CURSOR):
        decode_cursor("subscriptions", encode_cursor("subscriptions", 10_000_001))


def forged(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "abc",
        "YXJyYXljb25uZWN0aW9uOjA",
        "-1",
        "x" * 500,
        "Yz58MXxhYmNkZWZnaA",
        # Our form, but not what we issue: no offset, a field missing, one too many,
        # another version, the padding left on.
        forged("c1|x|y"),
        forged("c1|5"),
        forged("c1||ea4db8f5"),
        forged("c1|0|ea4db8f5|x"),
        forged("c2|0|ea4db8f5"),
        "YzF8MHxlYTRkYjhmNQ==",
    ],
)
def test_forged_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match=NOT_A_CURSOR):
        decode_cursor("subscriptions", cursor)


async def test_a_malformed_cursor_is_a_clear_error_and_no_upstream_call(
    graphql: GraphQLClient, simulator: Simulator
) -> None:
    query = "query($after: String) { subscriptions(after: $after) { totalCount } }"
    for cursor in (forged("c1|x|y"), forged("c1|5")):
        simulator.reset()
        body = await graphql.post(query, {"after": cursor})
        assert body["data"] == {"subscriptions": None}
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"] == "`after` is not a cursor of subscriptions"
        assert not simulator.calls


@given(st.text(max_size=100))
def test_decoding_arbitrary_text_only_ever_refuses_cleanly(cursor: str) -> None:
    try:
        offset = decode_cursor("subscriptions", cursor)
    except InvalidRequest:
        return
    assert encode_cursor("subscriptions", offset) == cursor
