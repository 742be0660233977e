"""OpenAI request checks: the 400s name the right param, valid bodies pass with estimates."""

from __future__ import annotations

import pytest

from fleet import InvalidRequest
from fleet.tables import Model
from fleet.validation import CHAT, COMPLETIONS, EMBEDDINGS, check, model_name

MODEL = Model(name="m", context_length=1000, default_max_tokens=100)


def chat(**extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hello there"}], **extra}


def param_of(endpoint: str, body: dict) -> str | None:
    with pytest.raises(InvalidRequest) as info:
        check(endpoint, body, MODEL)
    assert info.value.status == 400
    return info.value.param


def test_valid_chat_uses_default_max_tokens_and_estimates_prompt() -> None:
    req = check(CHAT, chat(), MODEL)
    assert (req.stream, req.include_usage, req.max_tokens) == (False, False, 100)
    assert 0 < req.prompt_estimate < 20 and req.estimated_tokens == req.prompt_estimate + 100


def test_stream_with_usage_requested() -> None:
    req = check(CHAT, chat(stream=True, stream_options={"include_usage": True}), MODEL)
    assert req.stream and req.include_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (chat(max_tokens=1001), "max_tokens"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_tokens="10"), "max_tokens"),
        (chat(max_completion_tokens=5000), "max_completion_tokens"),
        (chat(n=0), "n"),
        (chat(n=129), "n"),
        (chat(n=True), "n"),
        (chat(temperature=3), "temperature"),
        (chat(top_p=-0.1), "top_p"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options={"include_usage": True}), "stream_options"),
    ],
)
def test_chat_errors_name_the_param(body: dict, param: str) -> None:
    assert param_of(CHAT, body) == param


def test_max_tokens_beyond_context_says_so() -> None:
    with pytest.raises(InvalidRequest) as info:
        check(CHAT, chat(max_tokens=5000), MODEL)
    assert info.value.code == "context_length_exceeded" and "1000" in info.value.message


def test_assistant_tool_call_message_may_omit_content() -> None:
    body = chat()
    body["messages"].append({"role": "assistant", "content": None, "tool_calls": []})
    assert check(CHAT, body, MODEL).max_tokens == 100


@pytest.mark.parametrize("prompt", ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_completion_prompts_of_every_shape(prompt: object) -> None:
    assert check(COMPLETIONS, {"model": "m", "prompt": prompt}, MODEL).prompt_estimate >= 1


@pytest.mark.parametrize("prompt", [None, [], [{"a": 1}], 3, [True]])
def test_bad_completion_prompts(prompt: object) -> None:
    assert param_of(COMPLETIONS, {"model": "m", "prompt": prompt}) == "prompt"


def test_embeddings_need_input_and_reserve_no_output() -> None:
    assert check(EMBEDDINGS, {"model": "m", "input": ["x"]}, MODEL).max_tokens == 0
    assert param_of(EMBEDDINGS, {"model": "m"}) == "input"


@pytest.mark.parametrize(("body", "param"), [([], None), ({}, "model"), ({"model": 3}, "model")])
def test_model_name_errors(body: object, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        model_name(body)
    assert info.value.param == param
