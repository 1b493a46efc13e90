"""A userspace TCP relay that adds latency and, with a seeded probability, breaks connections.

Stands in for ``tc netem`` on kernels without it (see ``faults_link.py``). Each accepted
connection is forwarded to a target address by two pumps, one per direction. A pump reads
chunks as they come and delivers each ``delay`` seconds after it arrived (a delay line, so
latency does not cut throughput). For every chunk the target sends back, with probability
``fault_rate`` (from ``Random(seed)``), the relay either drops the connection on the spot (the
client sees a reset or a short body) or stalls it: nothing more is forwarded, and the connection
is closed only after ``stall_seconds`` (the client's read timeout should fire first).
``forced`` breaks given response chunks (numbered from 1 over the relay's life) whatever the
dice say, so a short run still meets both faults.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 16 * 1024


@dataclass
class RelayStats:
    """What the relay did (thread-safe through ``lock``)."""

    connections: int = 0
    chunks: int = 0
    drops: int = 0
    stalls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {
                "connections": self.connections,
                "chunks": self.chunks,
                "drops": self.drops,
                "stalls": self.stalls,
            }


class TcpRelay:
    """Listens on ``listen`` and relays every connection to ``target``.

    Args:
        listen: ``(host, port)`` to bind (port 0: a free one).
        target: ``(host, port)`` to forward to.
        delay: One-way latency added to each chunk, in seconds.
        fault_rate: Probability, per chunk from the target, of breaking the connection.
        stall_seconds: How long a stalled connection is held before it is closed.
        seed: Seed of the fault decisions.
        forced: Response chunk number -> ``"drop"`` or ``"stall"``, applied in any case.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        *,
        delay: float = 0.0,
        fault_rate: float = 0.0,
        stall_seconds: float = 10.0,
        seed: int = 0,
        forced: dict[int, str] | None = None,
    ) -> None:
        self.target = target
        self.delay = delay
        self.fault_rate = fault_rate
        self.stall_seconds = stall_seconds
        self.stats = RelayStats()
        self.forced = dict(forced or {})
        self._response_chunks = 0
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._listener = socket.create_server(listen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._listener.getsockname()[1])

    def start(self) -> TcpRelay:
        """Accept connections in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting (open connections end with the process)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.stats.add("connections")
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        link = _Link(client, upstream)
        _Pump(self, client, upstream, link, faults=False).start()
        _Pump(self, upstream, client, link, faults=True).start()

    def fault(self) -> str | None:
        """``"drop"``, ``"stall"`` or None for the next response chunk (forced, else seeded)."""
        with self._random_lock:
            self._response_chunks += 1
            if self._response_chunks in self.forced:
                return self.forced[self._response_chunks]
            if self._random.random() >= self.fault_rate:
                return None
            return "drop" if self._random.random() < 0.5 else "stall"


class _Link:
    """The two sockets of one relayed connection; closed when both directions ended."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.closed = threading.Event()
        self._ended = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def direction_ended(self) -> None:
        with self._lock:
            self._ended += 1
            both = self._ended == 2
        if both:
            self.close()


class _Pump:
    """Moves one direction of a connection through a delay line, with faults if asked."""

    def __init__(
        self,
        relay: TcpRelay,
        source: socket.socket,
        sink: socket.socket,
        link: _Link,
        *,
        faults: bool,
    ) -> None:
        self.relay = relay
        self.source = source
        self.sink = sink
        self.link = link
        self.closed = link.closed
        self.faults = faults
        self.line: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _close(self) -> None:
        self.link.close()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                chunk = self.source.recv(CHUNK)
            except OSError:
                chunk = b""
            self.line.put((time.monotonic() + self.relay.delay, chunk))
            if not chunk:
                return

    def _write(self) -> None:
        while not self.closed.is_set():
            due, chunk = self.line.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not chunk:
                with contextlib.suppress(OSError):
                    self.sink.shutdown(socket.SHUT_WR)
                self.link.direction_ended()
                return
            self.relay.stats.add("chunks")
            fault = self.relay.fault() if self.faults else None
            if fault == "drop":
                self.relay.stats.add("drops")
                self._close()
                return
            if fault == "stall":
                self.relay.stats.add("stalls")
                self.closed.wait(self.relay.stall_seconds)
                self._close()
                return
            try:
                self.sink.sendall(chunk)
            except OSError:
                self._close()
                return
