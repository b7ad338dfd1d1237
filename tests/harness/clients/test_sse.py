"""The lean SSE parser under OpenAIClient: events split across reads at every byte, every line
ending, comments/keep-alives, multi-line data, named events, fields it ignores, unfinished events."""
import pytest

from m1bench.harness.clients.sse import Event, SSEParser

STREAM = (b": keep-alive\n\n"
          b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
          b"event: error\ndata: {\"error\": {\"message\": \"boom\"}}\n\n"
          b"id: 7\nretry: 100\ndata: first\ndata:second\n\n"
          b": ping\n"
          b"data: [DONE]\n\n")
EVENTS = [Event(b'{"choices": [{"delta": {"content": "a"}}]}'), Event(b'{"error": {"message": "boom"}}', "error"),
          Event(b"first\nsecond"), Event(b"[DONE]")]


def parse(pieces) -> list[Event]:
    p = SSEParser()
    return [ev for piece in pieces for ev in p.feed(piece)]


def test_one_read():
    assert parse([STREAM]) == EVENTS


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_endings(eol):
    assert parse([STREAM.replace(b"\n", eol)]) == EVENTS


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_split_at_every_byte_boundary(eol):
    stream = STREAM.replace(b"\n", eol)
    for i in range(len(stream) + 1):
        assert parse([stream[:i], stream[i:]]) == EVENTS, f"split at {i}: {stream[:i][-10:]!r} | {stream[i:][:10]!r}"
    assert parse([stream[i:i + 1] for i in range(len(stream))]) == EVENTS  # one byte per read


def test_crlf_split_between_reads_ends_one_line_not_two():
    # "data: a" CR | LF "data: b" CRLF CRLF is one event with two data lines; a LF counted as its own
    # line end would dispatch "a" alone
    assert parse([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [Event(b"a\nb")]


def test_unfinished_event_is_dropped_and_empty_events_are_not_dispatched():
    assert parse([b"\n\n: only a comment\n\nevent: x\n\ndata: cut off"]) == []


def test_event_name_is_reset_after_dispatch_and_field_without_colon():
    assert parse([b"event: error\ndata: 1\n\ndata: 2\n\ndata\n\n"]) == [Event(b"1", "error"), Event(b"2"), Event(b"")]


def test_only_one_space_after_the_colon_is_dropped_and_utf8_bytes_stay_intact():
    text = "données ✓".encode()
    assert parse([b"data:  two spaces\n\n", b"data: " + text[:3], text[3:] + b"\n\n"]) == [
        Event(b" two spaces"), Event(text)]
