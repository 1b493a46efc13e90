"""The load benchmark's results: ``bench/results.json`` and the markdown table it prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.measure import Measurement

# ratio key -> (numerator step, denominator step, target or None, label)
RATIOS: dict[str, tuple[str, str, float | None, str]] = {
    "load_vs_floor": ("load", "floor", 3.0, "b/a load vs floor"),
    "noop_vs_load": ("noop", "load", 0.1, "c/b same load again"),
    "change1pct_vs_load": ("change1pct", "load", 0.15, "d/b 1% changed"),
    "dbt_incremental_vs_full": ("dbt_incremental", "dbt_full", 0.25, "f/e dbt after d vs full"),
    # f0 (dbt build --empty) is f without its data work: f/e cannot go below f0/e
    "dbt_floor_vs_full": ("dbt_floor", "dbt_full", None, "f0/e dbt --empty vs full: f/e's floor"),
    "dbt_incremental_vs_floor": ("dbt_incremental", "dbt_floor", None, "f/f0 after d vs --empty"),
}
RSS_TARGET_MB = 1024.0


@dataclass(slots=True)
class Results:
    """Every step measured in one run."""

    resources: int
    reps: int
    steps: dict[str, Measurement] = field(default_factory=dict)
    rest: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        seconds = {name: round(step.seconds, 3) for name, step in self.steps.items()}
        ratios = {
            key: round(self.steps[top].seconds / self.steps[bottom].seconds, 3)
            for key, (top, bottom, _, _) in RATIOS.items()
            if top in self.steps and bottom in self.steps
        }
        rss = {
            "load": round(self.steps["load"].peak_rss_mb, 1) if "load" in self.steps else None,
            "dbt_build": (
                round(self.steps["dbt_full"].peak_rss_mb, 1) if "dbt_full" in self.steps else None
            ),
            **{
                name: round(step.peak_rss_mb, 1)
                for name, step in self.steps.items()
                if name not in ("load", "dbt_full")
            },
        }
        return {
            "resources": self.resources,
            "reps": self.reps,
            "ratios": ratios,
            "peak_rss_mb": rss,
            # the whole process tree (the loader's parse workers included), sampled
            "peak_tree_pss_mb": {
                name: round(step.peak_tree_pss_mb, 1) for name, step in self.steps.items()
            },
            "rest": self.rest,
            "seconds": seconds,
            "steps": {name: step.as_dict() for name, step in self.steps.items()},
        }


def markdown_table(results: dict[str, Any]) -> str:
    """The ratios against their targets, the peak RSS figures and the REST figures."""
    lines = [
        f"{results['resources']:,} resources, median of {results['reps']} runs",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
    ]
    seconds = results["seconds"]
    for key, (top, bottom, target, label) in RATIOS.items():
        value = results["ratios"].get(key)
        if value is None:
            continue
        if target is None:
            bound, verdict = "", ""
        else:
            bound, verdict = f"<= {target:g}", "ok" if value <= target else "MISSED"
        lines.append(
            f"| {label} ({seconds[top]:.1f} s / {seconds[bottom]:.1f} s) | {value:.3f} "
            f"| {bound} | {verdict} |"
        )
    rss = results["peak_rss_mb"]
    tree = results.get("peak_tree_pss_mb") or {}
    if rss.get("load") is not None:
        # judged on the larger of the largest process's RSS and the whole tree's PSS
        load_mb = max(rss["load"], tree.get("load") or 0.0)
        verdict = "ok" if load_mb <= RSS_TARGET_MB else "MISSED"
        lines.append(
            f"| peak memory of b (load): largest process RSS / whole tree PSS "
            f"| {rss['load']:.0f} / {tree.get('load') or 0:.0f} MB | <= 1024 MB | {verdict} |"
        )
    if rss.get("dbt_build") is not None:
        lines.append(f"| peak RSS of e (dbt build) | {rss['dbt_build']:.0f} MB | | |")
    for name in ("floor", "noop", "change1pct", "dbt_incremental", "dbt_floor"):
        if rss.get(name) is not None:
            lines.append(f"| peak RSS of {name} | {rss[name]:.0f} MB | | |")
    rest = results.get("rest")
    if rest:
        verdict = "ok" if rest["budget_fraction"] >= 0.9 and rest["http_429"] == 0 else "MISSED"
        lines.append(
            f"| g REST rate / budget ({rest['requests_per_minute']:.0f} of "
            f"{rest['budget_per_minute']:.0f}/min), 429s | {rest['budget_fraction']:.2f}, "
            f"{rest['http_429']} | >= 0.9, 0 | {verdict} |"
        )
    return "\n".join(lines)
