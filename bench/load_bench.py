"""`make bench`: fhir-elt's load and dbt build side by side with the floor this machine allows.

    .venv/bin/python bench/load_bench.py [--resources 100000] [--seed 7] [--reps 3]

Generates synthetic data once with the project's generator (cached under ``bench/data/``, keyed
by size and seed), then measures in the same run, each step the median of ``--reps`` runs in a
fresh process, with its peak RSS (and the peak PSS of its process tree from one more, untimed
run: sampling slows what it samples, see ``bench/measure.py``):

  a  floor: DuckDB reading the NDJSON into a table with one JSON column (bench/floor.py)
  b  ``fhir-elt load files`` into an empty warehouse (landing plus merge)
  c  the same load again, nothing changed
  d  an incremental load: new versions of 1% of the resources (bench/change_set.py)
  e  ``dbt build`` on the data of b
  f  ``dbt build`` after d, on the warehouse e built
  f0 the build of f reading no rows (``dbt build --empty``): what dbt itself costs for this
     project's ~510 nodes (start-up, compiling, DDL, a query or more per node). f does all f0
     does and reads the changed rows besides, so f0/e is the lowest f/e this project can reach
     with dbt on this machine, and f/f0 near 1 means f's data work is small
     (e, f and f0 run the scheduled workflow's command: ``dbt build --exclude-resource-type
     unit_test``, with dbt's partial-parse state kept between runs as the workflow keeps it,
     and its file log at ``info`` as the workflow sets it: ``DBT_LOG_LEVEL_FILE``)
  g  REST extraction from the local test server with a known rate limit: request rate
     achieved against the configured budget, 429s received (bench/rest_backfill.py)

Every repetition of c and d starts from a copy of the warehouse and landing zone b left; every
repetition of f and f0 from a copy of what e left, with d loaded into it (not timed). dbt runs
with its own target and log directories under the work directory, never the repository's.

Writes ``bench/results.json`` (ratios b/a, c/b, d/b, f/e, f0/e, f/f0, peak RSS, seconds, REST
figures) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.change_set import write_change_set
from bench.measure import Measurement, Sample, repeat, run_measured
from bench.report import Results, markdown_table
from loaders.synthetic import GenerateOptions, generate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA_ROOT = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results.json"
# Fixed, so the cached data is the same whatever day the benchmark runs.
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
RESOURCES_PER_PATIENT = 46.46  # measured on the generator's output
SOURCE_SYSTEM = "bench"
# What the scheduled workflow runs (.github/workflows/scheduled-load.yml), for e and f alike:
# production builds leave dbt's unit tests to `make test` / CI.
PRODUCTION_BUILD = ("build", "--exclude-resource-type", "unit_test")


def generated_data(resources: int, seed: int) -> tuple[Path, Path, int]:
    """The data set and its 1% change set for this size and seed, generated if not cached."""
    folder = DATA_ROOT / f"n{resources}-seed{seed}"
    marker = folder / "generated.json"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        patients = max(1, round(resources / RESOURCES_PER_PATIENT))
        sys.stderr.write(f"generating {patients:,} patients (about {resources:,} resources)\n")
        summary = generate(
            GenerateOptions(
                patients=patients, seed=seed, out=folder / "data", fmt="ndjson", as_of=AS_OF
            )
        )
        changed = write_change_set(
            folder / "data", folder / "change1pct", AS_OF + timedelta(hours=1)
        )
        marker.write_text(
            json.dumps({"resources": summary.total_resources, "changed": changed, "seed": seed})
        )
    facts = json.loads(marker.read_text())
    return folder / "data", folder / "change1pct", int(facts["resources"])


class Bench:
    """The work directory and the commands of one benchmark run."""

    def __init__(self, work: Path, data: Path, changes: Path, reps: int) -> None:
        self.work = work
        self.data = data
        self.changes = changes
        self.reps = reps
        self.log = work / "commands.log"

    # -- states: a warehouse file with dlt's folder beside it, and a landing zone ------------

    def state(self, name: str) -> Path:
        return self.work / name

    def reset(self, name: str, copy_of: str | None = None) -> Path:
        target = self.state(name)
        shutil.rmtree(target, ignore_errors=True)
        if copy_of is None:
            target.mkdir(parents=True)
        else:
            shutil.copytree(self.state(copy_of), target)
        return target

    def load(self, state: Path, source: Path, *, sample_tree: bool = False) -> Sample:
        return run_measured(
            [
                BIN / "fhir-elt",
                "load",
                "files",
                source,
                "--source-system",
                SOURCE_SYSTEM,
                "--warehouse",
                state / "warehouse" / "fhir.duckdb",
                "--landing",
                state / "landing",
            ],
            cwd=ROOT,
            log=self.log,
            sample_tree=sample_tree,
        )

    def dbt(self, state: Path, *command: str, sample_tree: bool = False) -> Sample:
        return run_measured(
            [
                BIN / "dbt",
                *command,
                "--target-path",
                self.work / "dbt-target",
                "--log-path",
                self.work / "dbt-logs",
            ],
            env={
                "DBT_PROFILES_DIR": str(ROOT / "profiles"),
                "FHIR_ELT_DUCKDB_PATH": str(state / "warehouse" / "fhir.duckdb"),
                # as .github/workflows/scheduled-load.yml: no SQL (nor the hash key) in the log
                "DBT_LOG_LEVEL_FILE": "info",
            },
            cwd=ROOT,
            log=self.log,
            sample_tree=sample_tree,
        )

    # -- steps -------------------------------------------------------------------------------

    def floor(self) -> Measurement:
        database = self.work / "floor.duckdb"

        def prepare(_rep: int) -> None:
            for leftover in self.work.glob("floor.duckdb*"):
                leftover.unlink()

        return repeat(
            "a floor",
            self.reps,
            prepare,
            lambda _rep, sample: run_measured(
                [sys.executable, ROOT / "bench" / "floor.py", self.data, database],
                log=self.log,
                sample_tree=sample,
            ),
        )

    def first_load(self) -> Measurement:
        measurement = repeat(
            "b load",
            self.reps,
            lambda _rep: None,
            lambda _rep, sample: self.load(self.reset("b"), self.data, sample_tree=sample),
        )
        shutil.rmtree(self.state("after-b"), ignore_errors=True)
        self.state("b").rename(self.state("after-b"))
        return measurement

    def from_after_b(self, name: str, source: Path) -> Measurement:
        return repeat(
            name,
            self.reps,
            lambda _rep: self.reset("run", "after-b"),
            lambda _rep, sample: self.load(self.state("run"), source, sample_tree=sample),
        )

    def dbt_full(self) -> Measurement:
        # One path for every dbt run, so dbt's partial parsing stays valid between them.
        self.reset("dbt", "after-b")
        self.dbt(self.state("dbt"), "parse")
        measurement = repeat(
            "e dbt build",
            self.reps,
            lambda rep: self.reset("dbt", "after-b") if rep else None,
            lambda _rep, sample: self.dbt(self.state("dbt"), *PRODUCTION_BUILD, sample_tree=sample),
        )
        shutil.rmtree(self.state("after-e"), ignore_errors=True)
        shutil.copytree(self.state("dbt"), self.state("after-e"))
        return measurement

    def after_e_with_d(self, _rep: int) -> None:
        self.reset("dbt", "after-e")
        self.load(self.state("dbt"), self.changes)

    def dbt_incremental(self) -> Measurement:
        return repeat(
            "f dbt build after d",
            self.reps,
            self.after_e_with_d,
            lambda _rep, sample: self.dbt(self.state("dbt"), *PRODUCTION_BUILD, sample_tree=sample),
        )

    def dbt_floor(self) -> Measurement:
        # --empty turns every ref and source into a zero-row subquery: each model's SQL still
        # runs and each table is still created, each test still queried, on no data.
        return repeat(
            "f0 dbt build --empty",
            self.reps,
            self.after_e_with_d,
            lambda _rep, sample: self.dbt(
                self.state("dbt"), *PRODUCTION_BUILD, "--empty", sample_tree=sample
            ),
        )


def rest_rate(reps: int, work: Path, patients: int, limit: int) -> dict[str, float]:
    """Step g: the request rate of a rate-limited sync against its budget (median of reps)."""
    from bench.rest_backfill import rate_against_budget
    from tests.fhir_server import load_ndjson_dir

    generate(GenerateOptions(patients=patients, seed=11, out=work / "rest-data", fmt="ndjson"))
    resources = load_ndjson_dir(work / "rest-data")
    fractions, http_429 = [], 0
    achieved_rates = []
    for rep in range(reps):
        achieved, budget, received = rate_against_budget(resources, limit, work / f"rest-{rep}")
        fractions.append(achieved / budget)
        achieved_rates.append(achieved)
        http_429 += received
        sys.stderr.write(
            f"  g rest rep {rep + 1}/{reps}: {achieved:.0f}/min of a {budget:.0f}/min budget, "
            f"{received} 429s\n"
        )
    fractions.sort()
    achieved_rates.sort()
    return {
        "budget_fraction": round(fractions[len(fractions) // 2], 3),
        "http_429": http_429,
        "requests_per_minute": round(achieved_rates[len(achieved_rates) // 2], 1),
        "limit_per_minute": limit,
        "budget_per_minute": round(limit * 0.6, 1),
        "reps": reps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--resources", type=int, default=int(os.environ.get("BENCH_RESOURCES", "100000"))
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rest-patients", type=int, default=40)
    parser.add_argument("--rest-limit", type=int, default=600, help="requests per minute")
    parser.add_argument(
        "--skip",
        default="",
        help="steps to leave out, any of a, c, d, e, f (with f0), g (b always runs), e.g. 'acd'",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    data, changes, resources = generated_data(args.resources, args.seed)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=DATA_ROOT))
    sys.stderr.write(f"{resources:,} resources; work directory {work}\n")
    bench = Bench(work, data, changes, args.reps)
    results = Results(resources=resources, reps=args.reps)
    try:
        if "a" not in args.skip:
            results.steps["floor"] = bench.floor()
        results.steps["load"] = bench.first_load()  # b: every later step starts from it
        if "c" not in args.skip:
            results.steps["noop"] = bench.from_after_b("c load again", data)
        if "d" not in args.skip:
            results.steps["change1pct"] = bench.from_after_b("d load 1% changed", changes)
        if "e" not in args.skip:
            results.steps["dbt_full"] = bench.dbt_full()
            if "f" not in args.skip:
                results.steps["dbt_incremental"] = bench.dbt_incremental()
                results.steps["dbt_floor"] = bench.dbt_floor()
        if "g" not in args.skip:
            results.rest = rest_rate(args.reps, work, args.rest_patients, args.rest_limit)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    document = results.as_dict()
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    sys.stdout.write(markdown_table(document) + "\n")
    sys.stdout.write(
        f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}\n"
    )


if __name__ == "__main__":
    main()
