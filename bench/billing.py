"""Metering figures: the usage ledger's rows/s into PostgreSQL, and what metering costs the
gateway in requests/s.

1. Ledger alone: ``--events`` usage events recorded through the durable journal by 2,048
   concurrent writers (group-committed fdatasync), then shipped to ``usage_records`` by COPY.
   Baseline in the same run: the same rows written as one multi-row INSERT per 2,000
   (executemany, what the previous batching recorder did).
2. Gateway under load (wrk, streamed and unary, PostgreSQL store): requests/s with metering on
   (journal + shipping) against metering off (events dropped), and the usage rows/s that
   reached PostgreSQL meanwhile.

    .venv/bin/python bench/billing.py [--pg postgresql://postgres@127.0.0.1:5432/test]
        [--events 200000] [--duration 5] [--clients 64]

Needs PostgreSQL and ``wrk`` (apt-get install -y wrk). The machine may be shared: compare
the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gateway_overhead as go  # noqa: E402  (the fake node, wrk driver, process helpers)

# Concurrent requests recording usage: ~50k req/s x ~50 ms in flight on a busy fleet.
WRITERS = 2048


async def _fresh_db(admin: str) -> str:
    import asyncpg

    name = f"cic_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return admin.rsplit("/", 1)[0] + "/" + name


async def _drop_db(admin: str, url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


async def _count(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM usage_records"))
    finally:
        await conn.close()


def _events(n: int, tag: str) -> list:
    from fleet.usage import UsageEvent

    now = time.time()
    return [
        UsageEvent(
            request_id=f"{tag}-{i}",
            tenant_id="ten_bench",
            environment_id="env_bench",
            key_id=f"key_{i % 8}",
            model="bench-llm",
            endpoint="chat.completions",
            stream=True,
            status=200,
            prompt_tokens=100 + i % 50,
            completion_tokens=200 + i % 70,
            latency_ms=120.0,
            created_at=now,
            ttft_ms=20.0,
            node_id="node_bench",
            node_concurrency=8,
        )
        for i in range(n)
    ]


async def ledger_alone(admin: str, n: int, tmp: Path) -> None:
    from decimal import Decimal

    from fleet.billing.journal import UsageJournal
    from fleet.billing.ledger import UsageShipper
    from fleet.billing.pricing import Pricer
    from fleet.db import create_engine, session_factory, upgrade
    from fleet.tables import UsageRecord

    url = (await _fresh_db(admin)).replace("postgresql://", "postgresql+asyncpg://")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        from fleet.catalog import CatalogService

        await CatalogService(sessions).create_model(
            "bench-llm", input_per_1m=Decimal("0.15"), output_per_1m=Decimal("0.60"), actor="b"
        )
        # Baseline: executemany, 2,000 rows a statement.
        from sqlalchemy.dialects.postgresql import insert

        from fleet.billing.ledger import COLUMNS

        pricer = Pricer(sessions)
        shipper = UsageShipper(engine, pricer)
        await pricer.load()
        base_events = _events(n, "base")
        stmt = insert(UsageRecord.__table__).on_conflict_do_nothing(index_elements=["request_id"])
        t0 = time.perf_counter()
        for i in range(0, n, 2000):
            batch = base_events[i : i + 2000]
            rows = [dict(zip(COLUMNS, shipper._row(e), strict=True)) for e in batch]
            async with engine.begin() as conn:
                await conn.execute(stmt, rows)
        base_rate = n / (time.perf_counter() - t0)

        # The ledger: durable record by many writers, then COPY shipping.
        events = _events(n, "ledger")
        journal = UsageJournal(
            tmp / "journal", shipper, rotate_seconds=0.5, segment_events=20_000, ship_batch=50_000
        )
        await journal.start()
        queue = iter(events)

        async def writer() -> None:
            for e in queue:
                await journal.record(e)

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        recorded = time.perf_counter() - t0
        while await _count(dsn) < 2 * n:
            await asyncio.sleep(0.05)
        end_to_end = time.perf_counter() - t0
        await journal.close()
        # Shipping alone: a fresh batch of journaled segments, timed from ship to commit.
        ship_events = _events(n, "ship")
        t0 = time.perf_counter()
        for i in range(0, n, 50_000):
            await shipper.ship(ship_events[i : i + 50_000])
        ship_rate = n / (time.perf_counter() - t0)
        assert await _count(dsn) == 3 * n
    finally:
        await engine.dispose()
        await _drop_db(admin, dsn)
    print(f"\n== ledger alone, {n:,} usage events, PostgreSQL")
    print(f"baseline executemany (2,000/statement): {base_rate:>10,.0f} rows/s")
    print(
        f"journal record (fdatasync, {WRITERS} writers): {n / recorded:>10,.0f} events/s durable "
        f"({n / recorded / base_rate:.2f}x baseline)"
    )
    print(
        f"journal -> usage_records end to end:     {n / end_to_end:>10,.0f} rows/s "
        f"({n / end_to_end / base_rate:.2f}x baseline)"
    )
    print(
        f"shipping (COPY into usage_records):      {ship_rate:>10,.0f} rows/s "
        f"({ship_rate / base_rate:.2f}x baseline)"
    )


def gateway(admin: str, args: argparse.Namespace, node_url: str, tmp: Path) -> None:
    print(f"\n== gateway, wrk {args.clients} clients x {args.duration:.0f} s, PostgreSQL store")
    print(
        f"{'mode':<7}| {'metering off rps':>16} | {'metering on rps':>15} "
        f"{'rows/s to PG':>13} | ratio"
    )
    for stream in (False, True):
        results = {}
        for metering in ("off", "on"):
            url = asyncio.run(_fresh_db(admin))
            dsn = url
            home = tmp / f"{metering}-{int(stream)}"
            port = go.free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
            env.update(
                CIC_HOME=str(home),
                CIC_DATABASE_URL=url,
                CIC_ADMIN_TOKEN="bench-admin-token-0123456789",
                CIC_LOG_LEVEL="WARNING",
                BENCH_METERING=metering,
            )
            key = asyncio.run(go.seed(env, node_url))
            argv = [
                str(go.BIN / "python"), "-m", "uvicorn", "--factory", "billing_app:app",
                "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--ws", "none", "--no-access-log",
                "--log-level", "warning", "--lifespan", "on",
            ]  # fmt: skip
            env["PYTHONPATH"] = str(ROOT)
            proxy = subprocess.Popen(go.pinned(go.PROXY_CPU, argv), cwd=ROOT, env=env)
            try:
                go.wait_port(port, proxy)
                proxy_url = f"http://127.0.0.1:{port}"
                go.wrk(proxy_url, key, clients=8, seconds=1, stream=stream, tmp=tmp)  # warm-up
                time.sleep(1.5)
                before = asyncio.run(_count(dsn))
                r = go.wrk(
                    proxy_url, key, clients=args.clients, seconds=args.duration, stream=stream,
                    tmp=tmp, pid=proxy.pid,
                )  # fmt: skip
                time.sleep(1.5)  # the last rotation ships
                rows = asyncio.run(_count(dsn)) - before
                results[metering] = (r["rps"], rows / args.duration, r["errors"])
            finally:
                proxy.send_signal(signal.SIGTERM)
                try:
                    proxy.wait(15)
                except subprocess.TimeoutExpired:
                    proxy.kill()
                asyncio.run(_drop_db(admin, url))
        off, on = results["off"], results["on"]
        bad = f"  ({on[2] + off[2]} non-2xx)" if on[2] + off[2] else ""
        print(
            f"{'stream' if stream else 'unary':<7}| {off[0]:>16,.0f} | {on[0]:>15,.0f} "
            f"{on[1]:>13,.0f} | {on[0] / off[0]:.3f}{bad}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--skip-gateway", action="store_true")
    args = parser.parse_args()
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(ledger_alone(args.pg, args.events, Path(tmp)))
        if args.skip_gateway:
            return
        node_port = go.free_port()
        node_argv = [sys.executable, str(ROOT / "bench" / "gateway_overhead.py")]
        node_argv += ["--node", str(node_port)]
        node = subprocess.Popen(go.pinned(go.LOAD_CPU, node_argv), cwd=ROOT)
        try:
            go.wait_port(node_port, node)
            gateway(args.pg, args, f"http://127.0.0.1:{node_port}", Path(tmp))
        finally:
            node.kill()


if __name__ == "__main__":
    main()
