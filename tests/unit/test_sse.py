"""SSE splitting and usage-chunk reading, as the proxy applies them to node streams."""

from __future__ import annotations

import json

from api.sse import DONE, EventSplitter, body_usage, chunk_usage, is_done


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_events_are_cut_whatever_the_chunking() -> None:
    stream = event({"choices": [{"delta": {"content": "a"}}]}) + event({"choices": []}) + DONE
    for size in (1, 3, 7, len(stream)):
        splitter = EventSplitter()
        out = []
        for i in range(0, len(stream), size):
            out.extend(splitter.feed(stream[i : i + size]))
        assert b"".join(out) == stream and len(out) == 3 and splitter.rest == b""


def test_usage_only_chunk_is_recognised() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert chunk_usage(event({"choices": [], "usage": usage})) == (7, 3, False)


def test_usage_with_choices_is_not_the_usage_only_chunk() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 1}
    assert chunk_usage(event({"choices": [{"delta": {}}], "usage": usage})) == (7, 1, True)


def test_plain_chunks_and_null_usage_are_not_usage() -> None:
    assert chunk_usage(event({"choices": [{"delta": {"content": "usage"}}]})) is None
    assert chunk_usage(event({"choices": [{"delta": {}}], "usage": None})) is None
    assert chunk_usage(b'data: {"usage": broken\n\n') is None


def test_done_marker() -> None:
    assert is_done(DONE) and is_done(b"data:[DONE]\n\n") and not is_done(event({}))


def test_body_usage() -> None:
    assert body_usage(b'{"usage": {"prompt_tokens": 2, "completion_tokens": 5}}') == (2, 5)
    assert body_usage(b'{"choices": []}') is None and body_usage(b"<html>") is None
