import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from schema.cursors import decode_cursor, encode_cursor


@given(st.integers(min_value=0, max_value=10_000_000))
def test_cursor_round_trips(offset: int) -> None:
    assert decode_cursor("subscriptions", encode_cursor("subscriptions", offset)) == offset


def test_cursor_of_another_connection_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        decode_cursor("resources", encode_cursor("subscriptions", 5))


@pytest.mark.parametrize(
    "cursor", ["", "abc", "YXJyYXljb25uZWN0aW9uOjA", "-1", "x" * 500, "Yz58MXxhYmNkZWZnaA"]
)
def test_forged_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_cursor("subscriptions", cursor)


@given(st.text(max_size=100))
def test_decoding_arbitrary_text_only_ever_refuses_cleanly(cursor: str) -> None:
    try:
        offset = decode_cursor("subscriptions", cursor)
    except InvalidRequest:
        return
    assert encode_cursor("subscriptions", offset) == cursor
