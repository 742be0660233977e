"""The official ``openai`` client against a running control plane and simulated nodes."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import MODEL, Plane

pytestmark = pytest.mark.e2e


def client(plane: Plane, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=plane.base_url, api_key=key or plane.key, max_retries=0)


def test_lists_models(plane: Plane) -> None:
    models = client(plane).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client(plane).models.retrieve(MODEL).id == MODEL


def test_chat_without_stream(plane: Plane) -> None:
    out = client(plane).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=5
    )
    assert "simulated" in out.choices[0].message.content
    assert out.usage.completion_tokens == 5


def test_chat_stream_without_usage_has_no_usage_chunk(plane: Plane) -> None:
    chunks = list(
        client(plane).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("This is a simulated")
    assert all(c.choices and c.usage is None for c in chunks)


def test_chat_stream_with_usage_ends_with_usage(plane: Plane) -> None:
    chunks = list(
        client(plane).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


def test_completions(plane: Plane) -> None:
    out = client(plane).completions.create(model=MODEL, prompt="Say hi", max_tokens=3)
    assert out.choices[0].text and out.usage.completion_tokens == 3


def test_completions_stream(plane: Plane) -> None:
    chunks = list(
        client(plane).completions.create(model=MODEL, prompt="Say hi", max_tokens=3, stream=True)
    )
    assert len(chunks) == 3 and all(c.usage is None for c in chunks)


def test_embeddings(plane: Plane) -> None:
    out = client(plane).embeddings.create(model=MODEL, input=["one", "two"])
    assert len(out.data) == 2 and out.usage.prompt_tokens > 0


def test_bad_key_is_an_authentication_error(plane: Plane) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client(plane, "sk-cic-nope").models.list()
    assert info.value.code == "invalid_api_key"


def test_suspended_tenant_is_denied(plane: Plane) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client(plane, plane.suspended_key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )


def test_unknown_model_is_not_found(plane: Plane) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(plane).chat.completions.create(
            model="gpt-nothing", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "model_not_found"


def test_bad_body_is_a_bad_request(plane: Plane) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(plane).chat.completions.create(
            model=MODEL, messages=[{"role": "wizard", "content": "hi"}]
        )
    assert info.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError):
        client(plane).chat.completions.create(model=MODEL, messages=[], max_tokens=5)
    with pytest.raises(openai.BadRequestError) as info:
        client(plane).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
        )
    assert info.value.param == "max_tokens"


def test_request_id_is_echoed(plane: Plane) -> None:
    raw = client(plane).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=1,
        extra_headers={"x-request-id": "trace-me-42"},
    )
    assert raw.headers["x-request-id"] == "trace-me-42"


def test_usage_rows_reach_the_database(plane: Plane) -> None:
    import sqlite3
    import time

    c = client(plane)
    c.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count me"}],
        max_tokens=2,
        extra_headers={"x-request-id": "usage-row-1"},
    )
    list(
        c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "count me too"}],
            max_tokens=3,
            stream=True,
            extra_headers={"x-request-id": "usage-row-2"},
        )
    )
    path = plane.database_url.split("///", 1)[1]
    deadline = time.monotonic() + 10
    rows: list[tuple] = []
    while time.monotonic() < deadline and len(rows) < 2:
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT request_id, completion_tokens, stream, status, node_id FROM usage_records"
                " WHERE request_id LIKE 'usage-row-%' ORDER BY request_id"
            ).fetchall()
        time.sleep(0.05)
    assert [(r[0], r[1], bool(r[2]), r[3]) for r in rows] == [
        ("usage-row-1", 2, False, 200),
        ("usage-row-2", 3, True, 200),
    ]
    assert all(r[4] for r in rows)
