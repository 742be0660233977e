from pathlib import Path

import pytest

from fleet import SettingsError, load_settings


def test_defaults_use_sqlite_in_home(cic_home: Path) -> None:
    s = load_settings()
    assert s.home == cic_home
    assert s.effective_database_url == f"sqlite+aiosqlite:///{cic_home / 'cicfleet.db'}"
    assert s.redis_url is None
    assert s.effective_url == "http://127.0.0.1:8080"


def test_postgres_url_gets_async_driver(cic_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIC_DATABASE_URL", "postgresql://u@db:5432/cic")
    assert load_settings().effective_database_url == "postgresql+asyncpg://u@db:5432/cic"


def test_every_bad_value_is_named(cic_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIC_PORT", "99999")
    monkeypatch.setenv("CIC_DATABASE_URL", "mysql://x")
    monkeypatch.setenv("CIC_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = info.value.message
    assert "CIC_PORT" in text and "99999" in text
    assert "CIC_DATABASE_URL" in text
    assert "CIC_LOG_LEVEL" in text


def test_cors_origins_comma_separated(cic_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIC_CORS_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().cors_origins == ["https://a.example", "https://b.example"]
