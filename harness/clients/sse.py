"""Incremental server-sent-events parser (the WHATWG event-stream format), bytes in, events out.

Feed it whatever each socket read returned; it keeps the unfinished line between reads and returns
the events completed by this read. Lines end with LF, CRLF or CR (a CRLF split across two reads
counts once). A blank line dispatches the event; lines starting with ':' are comments (keep-alives);
`data` lines are joined with LF; `event` names the event; `id` and `retry` are read and ignored;
an event with no data is not dispatched; an unfinished event at the end of the stream is dropped.
No JSON here: `data` stays bytes for the caller's parser.
"""
from __future__ import annotations

from typing import NamedTuple


class Event(NamedTuple):
    data: bytes
    event: str | None = None  # None: the default ("message")


class SSEParser:
    __slots__ = ("_tail", "_data", "_event", "_after_cr")

    def __init__(self) -> None:
        self._tail = b""  # an unfinished line from earlier reads
        self._data: list[bytes] = []
        self._event: str | None = None
        self._after_cr = False  # the last read ended in CR: a LF opening the next one ends no line

    def feed(self, chunk: bytes) -> list[Event]:
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if b"\r" in chunk:
            self._after_cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            self._after_cr = False
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        events = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(Event(b"\n".join(self._data), self._event))
                    self._data = []
                self._event = None
            else:  # a comment (": …") has the empty field name, which no branch below takes
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace")
        return events
