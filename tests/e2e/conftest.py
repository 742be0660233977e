"""Helpers to run real cicfleet processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

BIN = Path(sys.executable).parent


@dataclass
class ControlPlane:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(BIN / "cicfleet"), *args], env=self.env, text=True, capture_output=True, timeout=60
        )
        if check and out.returncode != 0:
            raise AssertionError(f"cicfleet {' '.join(args)} failed: {out.stderr}")
        return out


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"process exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not up in {timeout}s:\n{log.read_text()[-3000:]}")


def start_control_plane(
    tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None
) -> ControlPlane:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
    env.update(
        {
            "CIC_HOME": str(tmp_path / "home"),
            "CIC_PORT": str(port),
            "CIC_HOST": "127.0.0.1",
            "CIC_LOG_FORMAT": "json",
        }
    )
    env.update(extra_env or {})
    log = tmp_path / f"serve-{port}.log"
    proc = subprocess.Popen(
        [str(BIN / "cicfleet"), "serve", *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    env["CIC_URL"] = url
    wait_http(f"{url}/health", proc, log)
    return ControlPlane(url=url, env=env, proc=proc, log=log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path)
    yield cp
    stop(cp.proc)
