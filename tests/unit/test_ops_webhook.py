"""The alert webhook: a Slack-compatible payload rebuilt from validated fields, with no PHI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loaders.ops.webhook import Alert, alerts_payload, notice_payload, post, summary_line

# Values a tampered or buggy alert row could carry; none may reach the payload.
CANARIES = (
    "999-12-3456",
    "Jane Canary",
    "jane.canary@example.org",
    "MRN-00012345",
    "Patient/8f14e45f-ea8e-4a5c-9e1a-1c2b3d4e5f60",
    "https://ehr.example/fhir/Patient?name=Canary",
)


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/secret", handler
    finally:
        server.shutdown()
        server.server_close()


def _good() -> Alert:
    return Alert("freshness_gap", "epic_prod", "Observation", None, 30.25, 3.0, "Observation late")


def _tampered() -> Alert:
    return Alert(
        alert_kind=f"freshness_gap {CANARIES[0]}",
        source_system=CANARIES[1],
        resource_type=CANARIES[4],
        run_id=CANARIES[3],
        observed_value=float("nan"),
        threshold=None,
        message=" ".join(CANARIES),
    )


def test_payload_is_slack_compatible_and_structured() -> None:
    payload = alerts_payload(
        [_good()],
        {"workflow": "scheduled-load", "run_url": "https://github.com/o/r/actions/runs/1"},
    )
    assert payload["text"].startswith(
        "fhir-elt alerts: 1 open: freshness_gap Observation@epic_prod"
    )
    assert "run_url=https://github.com/o/r/actions/runs/1" in payload["text"]
    assert payload["blocks"][0]["type"] == "section"
    assert payload["blocks"][1]["text"]["text"] == (
        "freshness_gap: Observation from epic_prod: 30.25 h since the last successful sync "
        "(SLA 3 h)"
    )
    (alert,) = payload["fhir_elt"]["alerts"]
    assert alert == {
        "kind": "freshness_gap",
        "source_system": "epic_prod",
        "resource_type": "Observation",
        "run_id": None,
        "observed_value": 30.25,
        "threshold": 3.0,
    }


def test_summary_is_one_line_and_bounded() -> None:
    alerts = [
        Alert("no_new_rows", "epic", rtype, "20261122T040000Z-abcdef", 0, 0.9)
        for rtype in ("Patient", "Encounter", "Observation", "Condition", "Procedure", "Location")
    ]
    line = summary_line(alerts)
    assert "\n" not in line and line.startswith("fhir-elt alerts: 6 open: ")
    assert line.endswith("and 1 more")
    assert summary_line([]) == "fhir-elt alerts: none open"


def test_posted_payload_carries_no_phi_from_a_tampered_row(receiver) -> None:
    url, handler = receiver
    context = {"workflow": "load", "step": f"load {CANARIES[0]}", CANARIES[1]: "x"}

    assert post(url, alerts_payload([_good(), _tampered()], context)) is None
    assert post(url, notice_payload(f"load failed for {CANARIES[2]} {CANARIES[0]}")) is None

    assert len(handler.bodies) == 2
    for body in handler.bodies:
        text = body.decode()
        json.loads(text)
        for canary in CANARIES:
            assert canary not in text, canary
            assert canary.split("/")[-1] not in text, canary
    alerts = json.loads(handler.bodies[0])["fhir_elt"]["alerts"]
    assert alerts[1] == {
        "kind": "(unknown alert)",
        "source_system": "(invalid source)",
        "resource_type": "(invalid type)",
        "run_id": None,
        "observed_value": None,
        "threshold": None,
    }
    assert json.loads(handler.bodies[1])["text"].startswith("load failed for [REDACTED EMAIL]")


def test_a_failed_post_is_reported_without_the_url(receiver) -> None:
    url, handler = receiver
    handler.status = 404
    problem = post(url, notice_payload("x"), attempts=2)
    assert problem is not None and problem.startswith("HTTP 404 from 127.0.0.1")
    assert "secret" not in problem and "hooks" not in problem
    assert len(handler.bodies) == 1  # a 4xx is not retried
