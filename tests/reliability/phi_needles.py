"""What the PHI scan looks for: planted canary identities and the run's secrets, in every form.

A canary identity is a set of values no real data or generated data holds (a family name, an
MRN, an SSN, a birth date, an address, a phone number). :func:`plant` writes them into Patient
resources; :class:`Needles` finds any of them, and any secret, in text or bytes, matching
case-insensitively and in normalised forms: an SSN with and without dashes, a birth date as
``YYYY-MM-DD`` and ``YYYYMMDD``, a phone number with and without separators, a PEM private key
whole, as its base64 body, and line by line.

A hit is reported by kind and place, never by value: the scan's own output must be safe to print.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MRN_SYSTEM = "http://hospital.example.org/mrn"  # dbt var mrn_system
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"  # dbt var ssn_system
# The shortest secret piece searched for: shorter fragments could match by chance.
MIN_SECRET_PIECE = 16


@dataclass(frozen=True, slots=True)
class CanaryIdentity:
    """One planted patient identity; every value is unlike anything the generator writes.

    The postal code is planted but not searched for: five digits also occur by chance (in
    numbers, hashes), and its first three are allowed outside the restricted schema (zip3).
    """

    given: str
    family: str
    mrn: str
    ssn: str
    birth_date: str
    address_line: str
    city: str
    postal_code: str
    phone: str

    def needles(self) -> list[tuple[str, str]]:
        """``(kind, value)`` pairs: each value and its normalised forms."""
        return [
            ("name", self.given),
            ("name", self.family),
            ("mrn", self.mrn),
            ("ssn", self.ssn),
            ("ssn", self.ssn.replace("-", "")),
            ("birth_date", self.birth_date),
            ("birth_date", self.birth_date.replace("-", "")),
            ("address", self.address_line),
            ("address", self.city),
            ("phone", self.phone),
            ("phone", "".join(ch for ch in self.phone if ch.isdigit())),
        ]


def canary_identity(index: int) -> CanaryIdentity:
    """The ``index``-th canary (0-99); distinct per index, so each patient is traceable."""
    if not 0 <= index < 100:
        raise ValueError("canary index must be 0-99")
    return CanaryIdentity(
        given=f"Zebulonia{index:02d}",
        family=f"Quackenbushcanary{index:02d}",
        mrn=f"MRN-CANARY-4242{index:02d}",
        ssn=f"987-65-43{index:02d}",
        birth_date=f"1931-02-{index % 28 + 1:02d}",
        address_line=f"{4200 + index} Canaryfeather Lane",
        city=f"Quackenbushville{index:02d}",
        postal_code=f"0{7300 + index}",
        phone=f"617-555-{9100 + index}",
    )


def plant(resource: dict[str, Any], identity: CanaryIdentity, *, mrn: str | None = None) -> None:
    """Overwrite a Patient's name, MRN, SSN, birth date, address and phone with ``identity``.

    ``mrn`` replaces the identity's MRN (two patients sharing one MRN trip ``dq_duplicate_mrn``).
    """
    resource["name"] = [{"use": "official", "family": identity.family, "given": [identity.given]}]
    resource["identifier"] = [
        {
            "use": "usual",
            "type": {"coding": [{"system": _V2_0203, "code": "MR"}]},
            "system": MRN_SYSTEM,
            "value": mrn or identity.mrn,
        },
        {
            "type": {"coding": [{"system": _V2_0203, "code": "SS"}]},
            "system": SSN_SYSTEM,
            "value": identity.ssn,
        },
    ]
    resource["birthDate"] = identity.birth_date
    resource["address"] = [
        {
            "use": "home",
            "line": [identity.address_line],
            "city": identity.city,
            "state": "MA",
            "postalCode": identity.postal_code,
            "country": "US",
        }
    ]
    resource["telecom"] = [{"system": "phone", "value": identity.phone, "use": "home"}]


_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def secret_needles(
    *,
    client_secrets: Iterable[tuple[str, str]] = (),
    private_keys: Iterable[str] = (),
    tokens: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """``(kind, value)`` pairs for secrets.

    Args:
        client_secrets: ``(client_id, secret)`` pairs; the secret and its HTTP Basic form.
        private_keys: PEM private keys: whole, the base64 body joined, and each body line.
        tokens: Access tokens as issued.
    """
    needles: list[tuple[str, str]] = []
    for client_id, secret in client_secrets:
        needles.append(("client_secret", secret))
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        needles.append(("client_secret", basic))
    for pem in private_keys:
        body = [line for line in pem.strip().splitlines() if not line.startswith("-----")]
        needles.append(("private_key", pem.strip()))
        needles.append(("private_key", "".join(body)))
        needles.extend(("private_key", line) for line in body if len(line) >= MIN_SECRET_PIECE)
    needles.extend(("access_token", token) for token in tokens)
    return needles


@dataclass(frozen=True)
class Needles:
    """Case-insensitive matcher over canary and secret needles."""

    canaries: tuple[tuple[str, bytes], ...]
    secrets: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, canaries: Iterable[tuple[str, str]], secrets: Iterable[tuple[str, str]]) -> Needles:
        """Lower-cased, de-duplicated needles (empty values dropped)."""
        return cls(_prepare(canaries), _prepare(secrets))

    def canary_hits(self, data: bytes | str) -> Counter[str]:
        """Occurrences of canary values in ``data``, by kind."""
        return _count(self.canaries, data)

    def secret_hits(self, data: bytes | str) -> Counter[str]:
        """Occurrences of secrets in ``data``, by kind."""
        return _count(self.secrets, data)


def _prepare(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, bytes], ...]:
    seen: dict[bytes, str] = {}
    for kind, value in pairs:
        if value:
            seen.setdefault(value.lower().encode(), kind)
    return tuple((kind, value) for value, kind in seen.items())


def _count(needles: tuple[tuple[str, bytes], ...], data: bytes | str) -> Counter[str]:
    haystack = (data.encode() if isinstance(data, str) else data).lower()
    hits: Counter[str] = Counter()
    for kind, needle in needles:
        found = haystack.count(needle)
        if found:
            hits[kind] += found
    return hits
