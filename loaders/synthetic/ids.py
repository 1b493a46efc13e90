"""Identifiers derived from the random streams: resource UUIDs and unique MRN/SSN/NPI values."""

from __future__ import annotations

import random

_MASK128 = (1 << 128) - 1
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & _MASK128
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_uuid(rng: random.Random) -> str:
    """Draw a version-4 UUID string from ``rng``.

    Equivalent to ``str(uuid.UUID(int=rng.getrandbits(128), version=4))`` but about three
    times faster; never uses the system clock or ``os.urandom``.

    Args:
        rng: The random stream to draw 128 bits from.

    Returns:
        A lowercase, hyphenated UUID string.
    """
    h = f"{(rng.getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Permutation:
    """A seeded bijection of ``range(modulus)``: distinct inputs give distinct outputs.

    Used for MRN/SSN/NPI numbers so that they look random yet never collide by accident
    (for fewer than ``modulus`` patients).
    """

    __slots__ = ("_a", "_b", "_m")

    def __init__(self, rng: random.Random, modulus: int) -> None:
        """Draw the permutation parameters.

        Args:
            rng: Random stream for the multiplier and offset.
            modulus: Size of the permuted range (a power of ten here).
        """
        a = rng.randrange(modulus) | 1
        while a % 5 == 0:  # coprime with powers of ten
            a += 2
        self._a = a % modulus
        self._b = rng.randrange(modulus)
        self._m = modulus

    def __call__(self, i: int) -> int:
        """Return the image of ``i`` (inputs beyond the modulus wrap around)."""
        return (self._a * i + self._b) % self._m
