"""Checks of OpenAI request bodies before they reach a node, with OpenAI's precise 400s.

A node would reject most of these too, but only after the request took a rate-limit slot and
a trip across the network; and a node's message would not name the ``param`` the way OpenAI
does. The checks are cheap (no copy of the body) and return what the gateway needs next: the
model, whether to stream, and a token estimate for the limiter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleet.errors import InvalidRequest
from fleet.tables import Model

CHAT = "chat.completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MAX_N = 128
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """A valid request: what routing, limits and metering need to know about it."""

    endpoint: str
    model: Model
    stream: bool
    include_usage: bool  # the client asked for the usage chunk itself
    max_tokens: int  # asked for, or the model's default; 0 for embeddings
    prompt_estimate: int  # rough: characters / 4

    @property
    def estimated_tokens(self) -> int:
        return self.prompt_estimate + self.max_tokens


def model_name(body: Any) -> str:
    """The ``model`` field of a decoded body, or a 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    name = body.get("model")
    if name is None:
        raise InvalidRequest("you must provide a model parameter", param="model")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("model must be a non-empty string", param="model")
    return name


def check(endpoint: str, body: dict[str, Any], model: Model) -> CheckedRequest:
    """Validate ``body`` for ``endpoint`` against ``model`` (whose name it already carries)."""
    if endpoint == CHAT:
        prompt = _check_messages(body.get("messages"))
    elif endpoint == COMPLETIONS:
        prompt = _check_prompt(body.get("prompt"), "prompt")
    else:
        prompt = _check_prompt(body.get("input"), "input")
        return CheckedRequest(endpoint, model, False, False, 0, prompt)

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    include_usage = _check_stream_options(body.get("stream_options"), stream)
    _check_n(body.get("n"))
    _check_number(body, "temperature", 0.0, 2.0)
    _check_number(body, "top_p", 0.0, 1.0)
    max_tokens = _check_max_tokens(body, model)
    return CheckedRequest(endpoint, model, stream, include_usage, max_tokens, prompt)


def _estimate(text: str) -> int:
    return len(text) // _CHARS_PER_TOKEN + 1


def _check_messages(messages: Any) -> int:
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    tokens = 0
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = msg.get("role")
        if role not in _ROLES:
            raise InvalidRequest(
                f"Invalid value for 'messages[{i}].role': {role!r}; supported values are "
                + ", ".join(f"'{r}'" for r in sorted(_ROLES)),
                param=f"messages[{i}].role",
            )
        content = msg.get("content")
        if isinstance(content, str):
            tokens += _estimate(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    tokens += _estimate(part["text"])
        elif content is not None:
            raise InvalidRequest(
                f"messages[{i}].content must be a string or an array of parts",
                param=f"messages[{i}].content",
            )
        elif role not in ("assistant", "function"):
            raise InvalidRequest(
                f"Missing required parameter: 'messages[{i}].content'",
                param=f"messages[{i}].content",
            )
        tokens += _TOKENS_PER_MESSAGE
    return tokens


def _check_prompt(value: Any, param: str) -> int:
    """Strings, arrays of strings, token arrays or arrays of token arrays (as OpenAI takes)."""
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{param}'", param=param)
    if isinstance(value, str):
        return _estimate(value)
    if isinstance(value, list) and value:
        tokens = 0
        for item in value:
            if isinstance(item, str):
                tokens += _estimate(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                tokens += 1
            elif isinstance(item, list) and all(
                isinstance(t, int) and not isinstance(t, bool) for t in item
            ):
                tokens += len(item)
            else:
                raise InvalidRequest(f"Invalid type in '{param}'", param=param)
        return tokens
    raise InvalidRequest(
        f"'{param}' must be a string or a non-empty array of strings or tokens", param=param
    )


def _check_stream_options(options: Any, stream: bool) -> bool:
    if options is None:
        return False
    if not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    return bool(options.get("include_usage"))


def _check_n(n: Any) -> None:
    if n is None:
        return
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_N:
        raise InvalidRequest(
            f"Invalid 'n': {n!r}; expected an integer from 1 to {_MAX_N}", param="n"
        )


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(
            f"Invalid '{name}': {value!r}; expected a number from {low:g} to {high:g}",
            param=name,
        )


def _check_max_tokens(body: dict[str, Any], model: Model) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"Invalid '{name}': must be an integer >= 1", param=name)
        if value > model.context_length:
            raise InvalidRequest(
                f"'{name}' is too large: {value}. This model's maximum context length is "
                f"{model.context_length} tokens.",
                param=name,
                code="context_length_exceeded",
            )
        return value
    return model.default_max_tokens
