import re
import time
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.times import (
    format_cbc_time,
    format_iso,
    format_iso_many,
    from_epoch_ms,
    from_epoch_ms_digits,
    parse_cbc_time,
    parse_client_time,
    parse_epoch_ms,
    to_epoch_ms,
    whole_second,
)

SEED_INSTANT = datetime(2023, 3, 23, 8, 7, 34, tzinfo=UTC)


class Millis(int):
    """An int of another type (an IntEnum's member, a library's own integer)."""


@pytest.mark.parametrize(
    "value",
    [
        1679558854000,
        Millis(1679558854000),
        "1679558854000",
        " 1679558854000 ",
        # A fraction of zeros is still whole milliseconds, however it is written.
        "1679558854000.000",
        "1679558854000.",
        "+1679558854000.0",
        1679558854000.0,
    ],
)
def test_epoch_ms_as_number_or_numeric_string(value: object) -> None:
    assert parse_epoch_ms(value) == SEED_INSTANT
    assert parse_epoch_ms(value).tzinfo is UTC


def test_a_negative_numeric_string_is_before_the_epoch() -> None:
    assert parse_epoch_ms(" -5.00 ") == datetime(1969, 12, 31, 23, 59, 59, 995_000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [True, "soon", "", None, 1.5, "1679558854000.5", "1.0.0", float("nan"), 10**20, [1]],
)
def test_epoch_ms_refuses_what_is_not_a_time(value: object) -> None:
    with pytest.raises(ValueError):
        parse_epoch_ms(value)


def test_the_first_and_last_millisecond_a_datetime_holds() -> None:
    assert from_epoch_ms(-62_135_596_800_000) == datetime(1, 1, 1, tzinfo=UTC)
    assert from_epoch_ms(253_402_300_799_999) == datetime(
        9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC
    )
    for outside in (-62_135_596_800_001, 253_402_300_800_000):
        with pytest.raises(ValueError, match=f"^epoch milliseconds out of range: {outside}$"):
            from_epoch_ms(outside)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1679558854000", SEED_INSTANT), ("0", datetime(1970, 1, 1, tzinfo=UTC))],
)
def test_plain_digits_are_read_as_epoch_ms(text: str, expected: datetime) -> None:
    assert from_epoch_ms_digits(text) == expected
    assert from_epoch_ms_digits(text).tzinfo is UTC


# What OMA also sends, left to parse_epoch_ms: signs, spaces, fractions, and digits
# other than ASCII's (Arabic-Indic, fullwidth), which it reads as int() does.
@pytest.mark.parametrize(
    "text", ["", " 1", "+1", "-1", "1.0", "12a", "\u0661\u0662\u0663", "\uff11\uff12"]
)
def test_anything_but_plain_ascii_digits_is_left_to_the_general_reader(text: str) -> None:
    with pytest.raises(ValueError, match=f"^not plain digits: {re.escape(repr(text))}$"):
        from_epoch_ms_digits(text)


@given(st.from_regex(r"[0-9]{1,16}", fullmatch=True))
def test_plain_digits_read_as_the_general_reader_reads_them(text: str) -> None:
    try:
        expected = parse_epoch_ms(text)
    except ValueError:
        with pytest.raises(ValueError, match=r"^epoch milliseconds out of range"):
            from_epoch_ms_digits(text)
    else:
        assert from_epoch_ms_digits(text) == expected


def test_cbc_time_round_trip() -> None:
    moment = parse_cbc_time("2020-05-03T09:11:10Z")
    assert moment == datetime(2020, 5, 3, 9, 11, 10, tzinfo=UTC)
    assert format_cbc_time(moment) == "2020-05-03T09:11:10Z"


@pytest.mark.parametrize(
    "value", ["2020-05-03 09:11:10", "2020-05-03T09:11:10+08:00", 1588497070000, None]
)
def test_cbc_time_refuses_other_forms(value: object) -> None:
    with pytest.raises(ValueError):
        parse_cbc_time(value)


def test_cbc_format_converts_offsets_to_utc() -> None:
    eastern = datetime(2021, 9, 1, 16, 5, 1, tzinfo=timezone(timedelta(hours=8)))
    assert format_cbc_time(eastern) == "2021-09-01T08:05:01Z"


def test_iso_output_has_milliseconds_only_when_not_zero() -> None:
    assert format_iso(from_epoch_ms(1679558854123)) == "2023-03-23T08:07:34.123Z"
    assert format_iso(from_epoch_ms(1679558854000)) == "2023-03-23T08:07:34Z"
    # The boundary: one whole millisecond is written, anything under it is dropped.
    assert format_iso(SEED_INSTANT + timedelta(microseconds=1000)) == "2023-03-23T08:07:34.001Z"
    assert format_iso(SEED_INSTANT + timedelta(microseconds=999)) == "2023-03-23T08:07:34Z"


@pytest.mark.parametrize(
    "value",
    [
        1679558854000,
        "1679558854000",
        "2023-03-23T08:07:34Z",
        "2023-03-23T08:07:34z",
        "2023-03-23T08:07:34.000Z",
        "2023-03-23T16:07:34+08:00",
        "2023-03-23T03:07:34-05:00",
    ],
)
def test_client_time_accepts_every_documented_form(value: object) -> None:
    assert parse_client_time(value) == SEED_INSTANT


# A client reads these (schema.scalars puts "DateTime: " before them).
NEEDS_ALL = "an ISO-8601 time needs a date, a time and an offset"
REFUSED_CLIENT_TIMES = [
    ("2023-03-23T08:07:34", f"{NEEDS_ALL}: '2023-03-23T08:07:34'"),
    ("2023-03-23", f"{NEEDS_ALL}: '2023-03-23'"),
    ("2023-03-23Z", f"{NEEDS_ALL}: '2023-03-23Z'"),
    ("yesterday", "not an ISO-8601 time: 'yesterday'"),
    ("", "not an ISO-8601 time"),
    ("   ", "not an ISO-8601 time"),
    ("2023-03-23T08:07:34." + "0" * 44 + "Z", "not an ISO-8601 time"),  # 65 characters
    ("0001-01-01T00:00:00+01:00", "time out of range: '0001-01-01T00:00:00+01:00'"),
    (True, "a boolean is not a time"),
    (None, "not a time: None"),
    ({"ms": 1}, "not a time: {'ms': 1}"),
    (1.5, "not whole epoch milliseconds: 1.5"),
    ("9" * 80, f"epoch milliseconds out of range: {'9' * 80}"),
]


@pytest.mark.parametrize(("value", "message"), REFUSED_CLIENT_TIMES)
def test_client_time_refuses_ambiguous_or_garbage_and_says_why(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_client_time(value)


def test_client_time_reads_up_to_64_characters() -> None:
    longest = " 2023-03-23T08:07:34." + "0" * 43 + "Z "  # 64 once stripped
    assert parse_client_time(longest) == SEED_INSTANT


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_epoch_ms_round_trips(ms: int) -> None:
    assert to_epoch_ms(from_epoch_ms(ms)) == ms
    assert parse_client_time(ms) == from_epoch_ms(ms)
    assert parse_client_time(format_iso(from_epoch_ms(ms))) == from_epoch_ms(ms)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    )
)
def test_rounding_to_milliseconds_and_seconds_brackets_the_instant(moment: datetime) -> None:
    down, up = to_epoch_ms(moment), to_epoch_ms(moment, round_up=True)
    assert from_epoch_ms(down) <= moment
    assert up - down == (0 if moment.microsecond % 1000 == 0 else 1)
    if up <= 253_402_300_799_999:  # the last millisecond a datetime holds
        assert moment <= from_epoch_ms(up)
    second = whole_second(moment)
    assert second is not None and second.tzinfo is UTC
    assert second <= moment < second + timedelta(seconds=1)
    later = whole_second(moment, round_up=True)
    if later is None:
        assert moment > datetime.max.replace(microsecond=0, tzinfo=UTC)
    else:
        assert later.tzinfo is UTC
        assert later >= moment and later.microsecond == 0
        assert later - moment < timedelta(seconds=1)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLOAT_EXACT_MS = 2**32 * 1000  # where from_epoch_ms goes through a float


@given(
    st.one_of(
        st.integers(min_value=-FLOAT_EXACT_MS - 5, max_value=FLOAT_EXACT_MS + 5),
        # The largest instants it reads through a float, where a float is least precise.
        st.integers(min_value=FLOAT_EXACT_MS - 10**9, max_value=FLOAT_EXACT_MS + 5),
        st.integers(min_value=-FLOAT_EXACT_MS - 5, max_value=-FLOAT_EXACT_MS + 10**9),
    )
)
def test_epoch_ms_is_the_exact_millisecond_in_utc(ms: int) -> None:
    moment = from_epoch_ms(ms)
    assert moment == EPOCH + timedelta(milliseconds=ms)
    assert moment.tzinfo is UTC and moment.microsecond % 1000 == 0


@given(st.one_of(st.text(max_size=80), st.integers(), st.floats(), st.booleans(), st.none()))
def test_client_time_never_raises_anything_but_value_error(value: object) -> None:
    try:
        moment = parse_client_time(value)
    except ValueError:
        return
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_cbc_time_reads_every_documented_time_as_strptime_does(moment: datetime) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment.year >= 1000 else None
    if text is None:  # strftime does not pad years below 1000 everywhere
        text = f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%SZ")
    expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert parse_cbc_time(text) == expected
    assert parse_cbc_time(text).tzinfo is UTC


@pytest.mark.parametrize(
    "value", ["2023-02-30T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01T24:00:00Z"]
)
def test_cbc_time_refuses_impossible_dates(value: str) -> None:
    with pytest.raises(ValueError):
        parse_cbc_time(value)


def test_cbc_time_still_reads_unpadded_fields() -> None:
    assert parse_cbc_time("2023-3-5T8:07:04Z") == datetime(2023, 3, 5, 8, 7, 4, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(0))]),
    )
)
def test_iso_output_is_isoformat_in_utc_to_the_millisecond(moment: datetime) -> None:
    # The formatter is orjson's; the contract is the stdlib's ISO-8601, cut after the
    # seconds or the milliseconds.
    text = moment.astimezone(UTC).isoformat()
    expected = (text[:23] if moment.microsecond >= 1000 else text[:19]) + "Z"
    assert format_iso(moment) == expected


# Mostly what upstreams hold (whole seconds and milliseconds at UTC), with the values
# that must go the per-value way: other offsets, naive times, sub-millisecond digits.
UPSTREAM_TIMES = st.builds(
    lambda ms, micro: from_epoch_ms(ms) + timedelta(microseconds=micro),
    st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_000),
    st.sampled_from([0, 0, 0, 1, 999]),
)
ANY_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [
            UTC,
            timezone(timedelta(hours=8)),
            timezone(timedelta(0)),
            zoneinfo.ZoneInfo("Europe/London"),
            # Offsets under a second, which orjson writes as Z.
            timezone(timedelta(milliseconds=500)),
            timezone(timedelta(microseconds=-1)),
        ]
    ),
)


@given(st.lists(st.one_of(UPSTREAM_TIMES, UPSTREAM_TIMES, ANY_TIMES, st.none()), max_size=12))
def test_a_column_is_formatted_as_each_of_its_times(moments: list[datetime | None]) -> None:
    expected = [None if moment is None else format_iso(moment) for moment in moments]
    assert format_iso_many(moments) == expected


class NoOffset(tzinfo):
    def utcoffset(self, moment: datetime | None) -> timedelta | None:
        return None


class BrokenOffset(tzinfo):
    def utcoffset(self, moment: datetime | None) -> timedelta | None:
        raise ValueError("no offset today")


def test_a_column_with_an_odd_time_zone_is_formatted_as_each_value_is() -> None:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    # utcoffset() None: a local time to format_iso, which orjson would write as UTC.
    local = datetime(2020, 1, 1, tzinfo=NoOffset())
    assert format_iso_many([at, local]) == [format_iso(at), format_iso(local)]
    # utcoffset() raising: format_iso's error, where orjson would crash the process.
    with pytest.raises(ValueError, match="no offset today"):
        format_iso_many([at, datetime(2020, 1, 1, tzinfo=BrokenOffset())])


class PosingAsUtc(tzinfo):
    """Equal to UTC, and hashed as it is, but half a second off (or raising)."""

    def __init__(self, offset: timedelta | None) -> None:
        self.offset = offset

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash(UTC)

    def utcoffset(self, moment: datetime | None) -> timedelta | None:
        if self.offset is None:
            raise ValueError("no offset today")
        return self.offset


def test_a_zone_that_only_says_it_is_utc_is_formatted_as_each_value_is() -> None:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    posing = datetime(2024, 1, 1, tzinfo=PosingAsUtc(timedelta(microseconds=500_000)))
    assert format_iso_many([at, posing]) == ["2020-01-01T00:00:00Z", "2023-12-31T23:59:59.500Z"]
    # orjson would crash the process on this one.
    with pytest.raises(ValueError, match="no offset today"):
        format_iso_many([at, datetime(2020, 1, 1, tzinfo=PosingAsUtc(None))])


def test_a_column_of_whole_milliseconds_takes_one_call_of_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.times as times

    calls: list[datetime] = []
    real = times.format_iso
    monkeypatch.setattr(times, "format_iso", lambda moment: calls.append(moment) or real(moment))
    moments = [from_epoch_ms(1679558854000 + step * 37) for step in range(500)]
    assert format_iso_many(moments)[:2] == ["2023-03-23T08:07:34Z", "2023-03-23T08:07:34.037Z"]
    assert calls == []
    odd = [*moments, moments[0] + timedelta(microseconds=1)]
    assert format_iso_many(odd)[-1] == "2023-03-23T08:07:34Z"
    assert len(calls) == len(odd)  # one odd value: all of them the per-value way


def test_the_first_whole_second_clamps_a_moment_before_it() -> None:
    # 0001-01-01T00:30+01:00 is 23:30 UTC on the last day of year 0: no UTC datetime.
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    for round_up in (False, True):
        first = whole_second(early, round_up=round_up)
        assert first == datetime.min.replace(tzinfo=UTC)
        assert first is not None and first.tzinfo is UTC


def test_a_whole_second_is_found_in_utc_across_a_dst_change() -> None:
    # 01:59:59.5 EDT, just before New York's clocks went back: 05:59:59.5 UTC.
    eastern = datetime(2023, 11, 5, 5, 59, 59, 500_000, tzinfo=UTC).astimezone(
        zoneinfo.ZoneInfo("America/New_York")
    )
    assert whole_second(eastern, round_up=True) == datetime(2023, 11, 5, 6, 0, 0, tzinfo=UTC)
    assert whole_second(eastern) == datetime(2023, 11, 5, 5, 59, 59, tzinfo=UTC)
    # Past the last UTC second from another zone: nothing after it, everything before it.
    late = datetime(9999, 12, 31, 23, 59, 59, 500_000, tzinfo=timezone(-timedelta(hours=1)))
    assert whole_second(late, round_up=True) is None
    assert whole_second(late) == datetime.max.replace(microsecond=0, tzinfo=UTC)


@pytest.fixture
def clock_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time nine hours ahead of UTC (what ``astimezone()`` with no
    zone converts to), put back afterwards: on a UTC machine a conversion to local time
    and one to UTC cannot be told apart."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("clock_in_tokyo")
def test_times_are_converted_to_utc_never_to_the_servers_local_time() -> None:
    assert datetime(2023, 3, 23, 8, 7, 34).astimezone().utcoffset() == timedelta(hours=9)
    eastern = SEED_INSTANT.astimezone(timezone(timedelta(hours=8)))
    assert format_iso(eastern) == "2023-03-23T08:07:34Z"
    assert format_iso(eastern + timedelta(milliseconds=5)) == "2023-03-23T08:07:34.005Z"
    assert format_cbc_time(eastern) == "2023-03-23T08:07:34Z"
    parsed = parse_client_time("2023-03-23T16:07:34+08:00")
    assert parsed == SEED_INSTANT and parsed.tzinfo is UTC
    assert format_iso(parsed) == "2023-03-23T08:07:34Z"
    # The last instant a datetime holds: in local time it would be past year 9999.
    last = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    assert to_epoch_ms(last) == 253_402_300_799_999
    assert to_epoch_ms(eastern) == 1679558854000
