"""Server-sent events as OpenAI and vLLM stream them: splitting a byte stream into events and
reading the usage chunk.

Each event is forwarded whole and unchanged as soon as it is complete; only events that
mention ``"usage"`` are decoded, so the common chunk costs one ``find`` and one ``in``.
"""

from __future__ import annotations

import msgspec

DONE = b"data: [DONE]\n\n"
_SEP = b"\n\n"


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Chunk(msgspec.Struct):
    choices: list[msgspec.Raw] = []
    usage: _Usage | None = None


class _Body(msgspec.Struct):
    usage: _Usage | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)
_BODY = msgspec.json.Decoder(_Body)


class EventSplitter:
    """Cuts a stream of byte chunks into complete SSE events (each ending in a blank line)."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._rest + data if self._rest else data
        events = []
        start = 0
        while (end := buf.find(_SEP, start)) >= 0:
            events.append(buf[start : end + 2])
            start = end + 2
        self._rest = buf[start:]
        return events

    @property
    def rest(self) -> bytes:
        """Bytes after the last complete event (an unterminated final event, if any)."""
        return self._rest


def is_done(event: bytes) -> bool:
    return event.startswith(b"data:") and event[5:].strip() == b"[DONE]"


def chunk_usage(event: bytes) -> tuple[int, int, bool] | None:
    """``(prompt_tokens, completion_tokens, has_choices)`` of an event carrying usage, else
    None. The usage-only chunk has no choices; vLLM's per-chunk usage stats come with them."""
    if b'"usage"' not in event or not event.startswith(b"data:"):
        return None
    try:
        chunk = _CHUNK.decode(event[5:].strip())
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if chunk.usage is None:
        return None
    return chunk.usage.prompt_tokens, chunk.usage.completion_tokens, bool(chunk.choices)


def body_usage(body: bytes) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` of a non-streamed answer, if it says."""
    try:
        usage = _BODY.decode(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if usage is None:
        return None
    return usage.prompt_tokens, usage.completion_tokens
