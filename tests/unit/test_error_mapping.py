"""Every error of the one tree renders as OpenAI's body with a status the official client maps
to the exception OpenAI itself would raise. A new subclass with an unmapped status fails here."""

from __future__ import annotations

import httpx
import msgspec
import openai
import pytest

import fleet.errors as errors
from api.errors import handle_cic_error
from fleet import CicError

EXPECTED = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    413: openai.APIStatusError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    502: openai.InternalServerError,
    503: openai.InternalServerError,
    504: openai.InternalServerError,
}


def subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        if sub.__module__ == errors.__name__:
            out += [sub, *subclasses(sub)]
    return out


ALL = [CicError, *subclasses(CicError)]


def test_tree_is_walked() -> None:
    assert len(ALL) >= 15


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_renders_as_openai_error(cls: type[CicError]) -> None:
    err = cls("something is off", param="p")
    resp = handle_cic_error(None, err)  # type: ignore[arg-type]
    body = msgspec.json.decode(resp.content)
    assert resp.status_code == cls.status
    assert body == {
        "error": {"message": "something is off", "type": cls.type, "param": "p", "code": cls.code}
    }
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:1/v1")
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    raised = client._make_status_error_from_response(
        httpx.Response(cls.status, content=resp.content, headers=resp.headers, request=request)
    )
    assert type(raised) is EXPECTED[cls.status] or (
        EXPECTED[cls.status] is openai.APIStatusError and isinstance(raised, openai.APIStatusError)
    )
    assert raised.code == cls.code


@pytest.mark.parametrize(
    "cls", [c for c in ALL if issubclass(c, errors.RateLimited | errors.NoCapacity)]
)
def test_retry_later_errors_carry_retry_after(cls: type[CicError]) -> None:
    resp = handle_cic_error(None, cls("later", retry_after=2.2))  # type: ignore[arg-type,call-arg]
    assert resp.headers["retry-after"] == "3"
