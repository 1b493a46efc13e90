"""Load ids made without dlt: dlt's format (unix time as text), strictly increasing."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

from dlt.common.storages.load_package import create_load_id

from loaders.runs import new_load_id


def test_load_ids_have_dlts_format_and_order() -> None:
    before = create_load_id()
    ours = new_load_id()
    after = create_load_id()
    assert float(before) <= float(ours) <= float(after)
    assert ours == str(float(ours))  # the text of a float, as dlt writes it
    assert abs(float(ours) - time.time()) < 60


def test_load_ids_strictly_increase_even_within_a_microsecond() -> None:
    in_order = [float(new_load_id()) for _ in range(20_000)]  # many share a microsecond
    assert all(a < b for a, b in itertools.pairwise(in_order))
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _n: new_load_id(), range(20_000)))
    assert len(set(ids)) == len(ids)
