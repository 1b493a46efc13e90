"""bench/report.py: the ratios `make bench` writes to results.json and the table it prints."""

from __future__ import annotations

from bench.measure import Measurement, Sample
from bench.report import Results, markdown_table


def _step(name: str, *seconds: float, rss: float = 100.0) -> Measurement:
    measurement = Measurement(name, [Sample(value, rss) for value in seconds])
    measurement.memory = Sample(seconds[0], rss, peak_tree_pss_mb=rss + 10)
    return measurement


def _results(**steps: Measurement) -> dict:
    results = Results(resources=1000, reps=3)
    results.steps.update(steps)
    return results.as_dict()


def test_ratios_are_medians_side_by_side_including_the_dbt_floor() -> None:
    document = _results(
        floor=_step("a", 4.0, 5.0, 4.5),
        load=_step("b", 12.0, 13.0, 14.0, rss=800.0),
        dbt_full=_step("e", 40.0, 30.0, 35.0),
        dbt_incremental=_step("f", 14.0, 16.0, 15.0),
        dbt_floor=_step("f0", 12.0, 12.5, 13.0),
    )

    assert document["ratios"] == {
        "load_vs_floor": round(13.0 / 4.5, 3),
        "dbt_incremental_vs_full": round(15.0 / 35.0, 3),
        "dbt_floor_vs_full": round(12.5 / 35.0, 3),
        "dbt_incremental_vs_floor": round(15.0 / 12.5, 3),
    }
    assert document["seconds"]["dbt_floor"] == 12.5
    assert document["peak_rss_mb"]["load"] == 800.0
    assert document["peak_tree_pss_mb"]["load"] == 810.0


def test_table_judges_targets_and_leaves_the_floor_ratios_unjudged() -> None:
    table = markdown_table(
        _results(
            floor=_step("a", 4.0, 4.0, 4.0),
            load=_step("b", 11.0, 11.0, 11.0, rss=2000.0),
            dbt_full=_step("e", 36.0, 36.0, 36.0),
            dbt_incremental=_step("f", 18.0, 18.0, 18.0),
            dbt_floor=_step("f0", 15.0, 15.0, 15.0),
        )
    )
    rows = {line.split(" (")[0]: line for line in table.splitlines() if line.startswith("| ")}

    assert rows["| b/a load vs floor"].endswith("| 2.750 | <= 3 | ok |")
    assert rows["| f/e dbt after d vs full"].endswith("| 0.500 | <= 0.25 | MISSED |")
    assert rows["| f0/e dbt --empty vs full: f/e's floor"].endswith("| 0.417 |  |  |")
    assert rows["| f/f0 after d vs --empty"].endswith("| 1.200 |  |  |")
    # the tree's PSS (2010 MB) is over 1 GiB: the memory target is missed
    assert "| 2000 / 2010 MB | <= 1024 MB | MISSED |" in table
    assert "| peak RSS of dbt_floor | 100 MB | | |" in table


def test_ratios_of_steps_left_out_are_absent() -> None:
    document = _results(load=_step("b", 10.0, 10.0, 10.0), dbt_full=_step("e", 30.0, 30.0, 30.0))

    assert document["ratios"] == {}
    assert "f0/e" not in markdown_table(document)
