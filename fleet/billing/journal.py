"""The durable usage journal: the gateway's :class:`~fleet.usage.UsageSink`.

``record`` appends the event to this replica's journal file and returns only once the file
is on disk (``fdatasync``); the gateway awaits it before the final chunk of a stream or a
non-streamed body goes out, so usage a client received is never lost, whatever happens to
the process next. Writes are group-committed: every event that arrives while one ``fdatasync``
runs joins the next one, so thousands of requests a second share a few hundred syncs.

A background task closes the current segment every ``rotate_seconds`` (or at
``segment_events`` events) and ships closed segments to ``usage_records`` through
:class:`~fleet.billing.ledger.UsageShipper`; a segment is deleted only after its rows are
committed, and the insert skips request ids already stored, so a crash between the two
replays harmlessly.

Each process journals into its own sub-directory of ``CIC_USAGE_JOURNAL_DIR`` and holds an
exclusive ``flock`` on it. At start a process adopts the segments of every sub-directory
whose lock is free (its owner died, e.g. SIGKILL) and ships them: replicas may share one
journal volume, and a restarted replica replays what its previous life left unshipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import socket
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from fleet.billing.ledger import UsageShipper
from fleet.logs import get_logger
from fleet.usage import UsageEvent

log = get_logger("cicfleet.usage")

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(UsageEvent)
_LOCK = ".lock"
_SUFFIX = ".log"
_MAX_BACKOFF = 5.0


class UsageNotDurable(RuntimeError):
    """The journal could not write an event to disk: the request must not be answered as
    if it had been billed."""


def read_segment(path: Path) -> list[UsageEvent]:
    """The events of a segment file. A torn last line (a write cut by a crash, never
    acknowledged to a client) and undecodable lines are skipped."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    lines.pop()  # b"" after the last newline, or a torn write
    events = []
    for line in lines:
        try:
            events.append(_DECODER.decode(line))
        except msgspec.DecodeError:
            log.error("unreadable usage journal line skipped", extra={"segment": path.name})
    return events


class _Group:
    """Events that share one write and one fdatasync."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.error: Exception | None = None


class UsageJournal:
    """Group-committed append-only usage journal, shipped to the database in batches."""

    def __init__(
        self,
        root: Path,
        shipper: UsageShipper,
        *,
        rotate_seconds: float = 0.5,
        segment_events: int = 2000,
        ship_batch: int = 20_000,
        fsync: bool = True,
        commit_interval: float = 0.005,
    ) -> None:
        self._root = root
        self._shipper = shipper
        self._rotate_seconds = rotate_seconds
        self._segment_events = segment_events
        self._ship_batch = max(ship_batch, segment_events)
        self._fsync = fsync
        self._commit_interval = commit_interval
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="usage-journal")
        self._dir: Path | None = None
        self._lock_fd: int | None = None
        self._seq = 0
        self._fd: int | None = None
        self._count = 0
        self._sealed: deque[Path] = deque()
        self._buf: list[bytes] = []
        self._group: _Group | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._io = asyncio.Lock()
        self._ship_lock = asyncio.Lock()
        self._sealed_ready = asyncio.Event()
        self._stopping = False
        self._writer: asyncio.Task[None] | None = None
        self._shipping: asyncio.Task[None] | None = None
        self.shipped = 0
        self.syncs = 0  # groups written (and synced): events / syncs is the group size

    @property
    def directory(self) -> Path | None:
        """This process's own journal directory (set by :meth:`start`)."""
        return self._dir

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        # Created under a dot-name and renamed once locked, so no other process can see the
        # directory unlocked and adopt it.
        tmp = self._root / f".{name}"
        tmp.mkdir()
        fd = os.open(tmp / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._dir = self._root / name
        tmp.rename(self._dir)
        self._lock_fd = fd
        adopted = self._adopt_orphans()
        if adopted:
            log.info("replaying unshipped usage segments", extra={"segments": adopted})
            self._sealed_ready.set()
        self._writer = asyncio.create_task(self._write_loop())
        self._shipping = asyncio.create_task(self._ship_loop())

    async def close(self) -> None:
        """Write what is buffered, ship everything (a few attempts), release the directory.
        Segments the database did not take stay on disk for the next start to replay."""
        await self._drain_writes()
        if self._shipping is not None:
            # Let a shipment in progress end rather than cancel it mid-query (a cut database
            # call leaves its connection to be terminated after the engine is gone).
            self._stopping = True
            self._sealed_ready.set()
            await self._shipping
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._shipping = self._writer = None
        for attempt in range(5):
            try:
                await self._ship_all()
                break
            except Exception as exc:
                log.warning(
                    "usage ship at shutdown failed",
                    extra={"error": type(exc).__name__, "attempt": attempt + 1},
                )
                await asyncio.sleep(0.2 * (attempt + 1))
        else:
            log.error(
                "usage segments left for the next start", extra={"segments": len(self._sealed)}
            )
        self._close_segment()
        if self._dir is not None and not any(self._dir.glob(f"*{_SUFFIX}")):
            with contextlib.suppress(OSError):
                (self._dir / _LOCK).unlink()
                self._dir.rmdir()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._executor.shutdown(wait=False)

    # -- UsageSink -------------------------------------------------------------------------
    async def record(self, event: UsageEvent) -> None:
        """Return once ``event`` is on disk; raises :class:`UsageNotDurable` if it cannot be."""
        self._buf.append(_ENCODER.encode(event))
        group = self._group
        if group is None:
            group = self._group = _Group()
            self._idle.clear()
            self._wake.set()
        # Each waiter waits on its own future inside the event: a client that goes away
        # cancels only its own wait, never the sync the others wait on.
        await group.done.wait()
        if group.error is not None:
            raise group.error

    async def flush(self) -> None:
        """Ship everything recorded so far to the database now."""
        await self._drain_writes()
        await self._ship_all()

    # -- writing ---------------------------------------------------------------------------
    async def _drain_writes(self) -> None:
        if self._writer is not None and not self._writer.done():
            await self._idle.wait()

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Start syncs at most every commit_interval: on a fast disk a sync ends before the
            # next request does, and without a pause each group would hold one event (one
            # thread hop and one fdatasync per request, ~50 us of CPU each, measured).
            pause = last + self._commit_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            last = loop.time()
            if not self._buf:
                self._idle.set()
                continue
            buf, group = self._buf, self._group
            self._buf, self._group = [], None
            try:
                async with self._io:
                    await loop.run_in_executor(self._executor, self._append, buf)
            except Exception as exc:
                log.error("usage journal write failed", extra={"error": type(exc).__name__})
                if group is not None:
                    group.error = UsageNotDurable(f"usage journal write failed: {exc}")
            if group is not None:
                group.done.set()
            if self._buf:
                self._wake.set()
            else:
                self._idle.set()

    def _append(self, lines: list[bytes]) -> None:
        """Append lines to the open segment and sync them (runs in a worker thread)."""
        if self._fd is None:
            path = self._next_path()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fd_path = path
            if self._fsync:
                _sync_dir(path.parent)  # the new file's name is durable too
        data = b"\n".join(lines) + b"\n"
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self._fsync:
            os.fdatasync(self._fd)
        self.syncs += 1
        self._count += len(lines)
        if self._count >= self._segment_events:
            self._seal()
            self._sealed_ready.set()

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._sealed.append(self._fd_path)
            self._count = 0

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _next_path(self) -> Path:
        assert self._dir is not None
        self._seq += 1
        return self._dir / f"{self._seq:012d}{_SUFFIX}"

    def _adopt_orphans(self) -> int:
        """Move segments of directories whose owner died into ours; returns how many."""
        moved = 0
        for sub in sorted(self._root.iterdir()):
            if not sub.is_dir() or sub.name.startswith(".") or sub == self._dir:
                continue
            try:
                fd = os.open(sub / _LOCK, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live replica's directory
                for seg in sorted(sub.glob(f"*{_SUFFIX}")):
                    target = self._next_path()
                    os.replace(seg, target)
                    self._sealed.append(target)
                    moved += 1
                (sub / _LOCK).unlink()
                sub.rmdir()
            except OSError as exc:
                log.warning("could not adopt a usage journal", extra={"error": str(exc)})
            finally:
                os.close(fd)
        if moved and self._fsync and self._dir is not None:
            _sync_dir(self._dir)
        return moved

    # -- shipping --------------------------------------------------------------------------
    async def _ship_loop(self) -> None:
        delay = self._rotate_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sealed_ready.wait(), delay)
            self._sealed_ready.clear()
            if self._stopping:
                return
            try:
                await self._ship_all()
                delay = self._rotate_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(max(delay * 2, 0.1), _MAX_BACKOFF)
                log.warning(
                    "usage ship failed; will retry",
                    extra={"error": type(exc).__name__, "segments": len(self._sealed)},
                )

    async def _ship_all(self) -> None:
        """Close the open segment and ship every closed one, oldest first."""
        async with self._ship_lock:
            async with self._io:
                if self._count:
                    self._seal()
            while self._sealed:
                paths, events = await asyncio.to_thread(self._take_batch)
                await self._shipper.ship(events)
                for path in paths:
                    path.unlink(missing_ok=True)
                    self._sealed.popleft()
                self.shipped += len(events)

    def _take_batch(self) -> tuple[list[Path], list[UsageEvent]]:
        paths: list[Path] = []
        events: list[UsageEvent] = []
        for path in _head(self._sealed):
            events.extend(read_segment(path) if path.exists() else [])
            paths.append(path)
            if len(events) >= self._ship_batch:
                break
        return paths, events


def _head(queue: deque[Path]) -> Iterator[Path]:
    yield from list(queue)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
