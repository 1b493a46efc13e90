"""Run the FHIR test server behind a :class:`~tests.reliability.tcp_relay.TcpRelay`.

Started by ``faults_link.py`` inside a network namespace::

    ip netns exec NS python -m tests.reliability.netns_server --data DIR --listen 10.x.y.2 \\
        [--delay-ms 80 --fault-rate 0.02 --forced-faults 6:drop,14:stall --stall-seconds 8]

The server listens on the namespace's loopback; the relay listens on ``--listen`` (the
namespace's end of the veth pair) and forwards to it. Links in the server's Bundles point at
the relay's address, so a client outside follows them through the link. Prints one JSON line
``{"port": P}`` once serving, runs until its standard input closes, then prints the relay's
counters and the server's as a JSON line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from tests.fhir_server import FhirTestServer, load_ndjson_dir
from tests.reliability.tcp_relay import TcpRelay


class _RelayedServer(FhirTestServer):
    """The test server, with its public address (in links and ``base_url``) set from outside."""

    public_origin = ""

    @property
    def origin(self) -> str:
        return self.public_origin


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of NDJSON resources")
    parser.add_argument("--listen", required=True, help="address the relay listens on")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--stall-seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--forced-faults", default="", help="e.g. 6:drop,14:stall (by response chunk number)"
    )
    args = parser.parse_args(argv)
    server = _RelayedServer(load_ndjson_dir(args.data)).start()
    relay = TcpRelay(
        (args.listen, 0),
        ("127.0.0.1", server.port),
        delay=args.delay_ms / 1000,
        fault_rate=args.fault_rate,
        stall_seconds=args.stall_seconds,
        seed=args.seed,
        forced={
            int(number): kind
            for number, _, kind in (item.partition(":") for item in args.forced_faults.split(","))
            if number
        },
    ).start()
    server.public_origin = f"http://{args.listen}:{relay.port}"
    sys.stdout.write(orjson.dumps({"port": relay.port}).decode() + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()
    finally:
        relay.stop()
        server.stop()
    counters = {
        "relay": relay.stats.as_dict(),
        "data_requests": server.stats.data_requests,
        "server_errors": len(server.errors),
    }
    sys.stdout.write(orjson.dumps(counters).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
