"""Fault matrix row for a slow, lossy link between fhir-elt and the FHIR server.

The FHIR test server runs in its own network namespace, reached over a veth pair. The link is
shaped with ``tc netem`` (80 ms each way, 2% packet loss) when the kernel has it. When it does
not ("Specified qdisc kind is unknown", as on this project's CI VM), the veth is shaped with
``tbf`` (2 mbit/s) and a userspace relay inside the namespace
(:mod:`tests.reliability.tcp_relay`) adds 80 ms per direction and, for 2% of the response
chunks (seeded), drops the connection or stalls it past the client's read timeout. The row's
outcome says which emulation ran. The loader runs in the root namespace with realistic
timeouts (connect 5 s, read 5 s) and must land every resource exactly once.

Needs root and iproute2; otherwise the row says "skipped: needs root and iproute2".
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from tests.reliability import crash_support as support
from tests.reliability.matrix import FaultOutcome
from tests.reliability.matrix import Scenario as MatrixScenario

NAME = "slow lossy link (netns)"
DELAY_MS = 80
LOSS = 0.02
RATE = "2mbit"
SKIPPED = "skipped: needs root and iproute2"


def link_available() -> bool:
    """Whether this process may create network namespaces (root, ``ip`` and ``tc``)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("tc") is not None


def _ip(*args: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["ip", *args] if namespace is None else ["ip", "netns", "exec", namespace, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def _must(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args[:6])} failed: {result.stderr.strip()}")


class _Link:
    """A namespace and veth pair with unique names; :meth:`remove` undoes everything."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}{random.randrange(36**2):02x}"
        self.namespace = f"fheltns{tag}"
        self.outside = f"fhe{tag}a"  # interface names stay under 16 characters
        self.inside = f"fhe{tag}b"
        used = _ip("-o", "addr").stdout
        while True:
            second, third = random.randrange(200, 250), random.randrange(256)
            if f"10.{second}.{third}." not in used:
                break
        self.outside_ip = f"10.{second}.{third}.1"
        self.inside_ip = f"10.{second}.{third}.2"

    def create(self) -> None:
        _must(_ip("netns", "add", self.namespace))
        _must(_ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside))
        _must(_ip("link", "set", self.inside, "netns", self.namespace))
        _must(_ip("addr", "add", f"{self.outside_ip}/30", "dev", self.outside))
        _must(_ip("link", "set", self.outside, "up"))
        inside = self.namespace
        _must(
            _ip("ip", "addr", "add", f"{self.inside_ip}/30", "dev", self.inside, namespace=inside)
        )
        _must(_ip("ip", "link", "set", self.inside, "up", namespace=inside))
        _must(_ip("ip", "link", "set", "lo", "up", namespace=inside))

    def shape(self) -> str:
        """Shape both directions; return the emulation's description."""
        netem = ("netem", "delay", f"{DELAY_MS}ms", "loss", f"{LOSS * 100:g}%")
        outside = _tc(self.outside, netem)
        if outside.returncode == 0:
            _must(_tc(self.inside, netem, self.namespace))
            return f"netem {DELAY_MS}ms {LOSS * 100:g}% loss"
        tbf = ("tbf", "rate", RATE, "burst", "32kbit", "latency", "400ms")
        _must(_tc(self.outside, tbf))
        _must(_tc(self.inside, tbf, self.namespace))
        return f"tbf {RATE} + relay {DELAY_MS}ms, {LOSS * 100:g}% drops/stalls; kernel has no netem"

    def remove(self) -> None:
        _ip("link", "del", self.outside)  # removes its peer too
        _ip("netns", "del", self.namespace)


def _tc(
    device: str, qdisc: tuple[str, ...], namespace: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = ["tc", "qdisc", "add", "dev", device, "root", *qdisc]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def slow_lossy_link(work_dir: Path) -> FaultOutcome:
    """A REST backfill over the shaped link: 0 lost, 0 duplicated."""
    source, resources = support.seeded_data(work_dir)
    truth = support.file_truth(resources)
    if not link_available():
        return FaultOutcome(NAME, 0, len(truth), 0, 0, SKIPPED, False)
    settings = support.work_settings(work_dir)
    link = _Link()
    server: subprocess.Popen[str] | None = None
    counters: dict[str, object] = {}
    try:
        link.create()
        emulation = link.shape()
        relay_faults = not emulation.startswith("netem")
        command = [
            "ip", "netns", "exec", link.namespace,
            sys.executable, "-m", "tests.reliability.netns_server",
            "--data", str(source), "--listen", link.inside_ip,
            "--delay-ms", str(DELAY_MS if relay_faults else 0),
            "--fault-rate", str(LOSS if relay_faults else 0),
            "--forced-faults", "6:drop,14:stall" if relay_faults else "",
            "--stall-seconds", "8", "--seed", "7",
        ]  # fmt: skip
        server = subprocess.Popen(
            command,
            cwd=support.REPO,
            env=support.cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdin is not None and server.stdout is not None
        ready = orjson.loads(server.stdout.readline() or b"{}")
        if "port" not in ready:
            raise RuntimeError("the namespaced server did not start")
        base_url = f"http://{link.inside_ip}:{ready['port']}/fhir"
        code = support.resume_rest(
            settings,
            base_url,
            connect_timeout=5,
            read_timeout=5,
            retry_base_delay=0.2,
            retry_max_delay=2.0,
            max_attempts=10,
            max_elapsed_seconds=180,
        )
        server.stdin.close()
        tail = server.stdout.read().strip().splitlines()
        server.wait(timeout=30)
        counters = orjson.loads(tail[-1]) if tail else {}
        result = support.verdict(settings, truth)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        link.remove()
    relay = counters.get("relay") or {}
    assert isinstance(relay, dict)
    problems = [] if code == 0 else [f"exit {code}"]
    if counters.get("server_errors"):
        problems.append(f"{counters['server_errors']} server errors")
    text = (
        f"{emulation}: {counters.get('data_requests', '?')} requests, "
        f"{relay.get('drops', 0)} dropped + {relay.get('stalls', 0)} stalled connections; "
        f"exit {code}"
    )
    return support.outcome(NAME, 1, result, text, problems)


SCENARIOS: list[MatrixScenario] = [slow_lossy_link]


if __name__ == "__main__":  # python -m tests.reliability.faults_link
    import tempfile

    with tempfile.TemporaryDirectory() as directory, contextlib.suppress(KeyboardInterrupt):
        print(slow_lossy_link(Path(directory)))
