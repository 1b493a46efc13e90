"""Measure f/e: `dbt build` after a load that changed 1% of resources, against a full build.

    .venv/bin/python bench/dbt_incremental.py [--patients 1000] [--change-rate 0.01] [--keep DIR]

Generates the synthetic demo data, loads it (`fhir-elt load files`) into a fresh DuckDB
warehouse under a temporary directory and builds it (`dbt build`, first build). Then writes
new versions of `--change-rate` of every resource type (meta.versionId + 1, meta.lastUpdated
now, one element changed) as extra NDJSON, loads them, and times on two copies of that
warehouse:

* f: `dbt build` (incremental models read only the changed rows);
* e: `dbt build --full-refresh` (everything rebuilt from the raw tables).

Both leave out unit tests, as the scheduled workflow does (they run in `make test`).

Every build runs with the same partial-parse state (a `dbt parse` first), so the difference is
the work done, not the parsing. Prints both times, f/e, and the time per node type of each.
Never touches warehouse/fhir.duckdb or target/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from loaders.synthetic import GenerateOptions, generate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The scheduled workflow's build (.github/workflows/scheduled-load.yml): unit tests run in CI.
BUILD = ["build", "--exclude-resource-type", "unit_test"]


def write_change_set(data: Path, out: Path, rate: float, now: datetime) -> int:
    """New versions of every ``1/rate``-th resource of each NDJSON file; returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    step = max(1, round(1 / rate))
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    written = 0
    for path in sorted(data.glob("*.ndjson")):
        lines = []
        for number, line in enumerate(path.read_bytes().splitlines()):
            if number % step:
                continue
            resource = orjson.loads(line)
            meta = resource.setdefault("meta", {})
            meta["versionId"] = str(int(meta.get("versionId", "1")) + 1)
            meta["lastUpdated"] = stamp
            # a real change besides meta: the narrative status (present on every type)
            resource["text"] = {"status": "generated", "div": "<div>changed</div>"}
            lines.append(orjson.dumps(resource))
        (out / path.name).write_bytes(b"\n".join(lines) + b"\n")
        written += len(lines)
    return written


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _env(warehouse: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(f"  (exit {result.returncode}: {' '.join(command[1:3])})\n")
        sys.stderr.write(result.stdout[-2000:] + "\n")
    return seconds


def _dbt(args: list[str], warehouse: Path, target: Path) -> float:
    command = [str(BIN / "dbt"), *args, "--target-path", str(target)]
    command += ["--log-path", str(target / "logs"), "--quiet"]
    return _run(command, _env(warehouse))


def _load(path: Path, warehouse: Path, landing: Path) -> None:
    command = [str(BIN / "fhir-elt"), "load", "files", str(path), "--source-system", "demo"]
    command += ["--warehouse", str(warehouse), "--landing", str(landing)]
    _run(command, _env(warehouse))


def _by_type(target: Path, keep_as: str) -> str:
    """Seconds per node type of the last build; its run_results.json is kept as ``keep_as``."""
    shutil.copy(target / "run_results.json", target / keep_as)
    results = json.loads((target / keep_as).read_text())["results"]
    seconds: Counter[str] = Counter()
    for result in results:
        kind = result["unique_id"].split(".")[0]
        if kind == "model" and ".stg_" in result["unique_id"]:
            kind = "staging model"
        seconds[kind] += result["execution_time"]
    return ", ".join(f"{kind} {value:.1f} s" for kind, value in seconds.most_common())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--change-rate", type=float, default=0.01)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="fhir_elt_bench_dbt_"))
    try:
        generate(GenerateOptions(patients=args.patients, seed=42, out=root / "data"))
        incremental, full = root / "incremental" / "fhir.duckdb", root / "full" / "fhir.duckdb"
        incremental.parent.mkdir(parents=True)
        target = root / "target"
        _load(root / "data", incremental, root / "landing")
        _dbt(["parse"], incremental, target)
        first = _dbt(BUILD, incremental, target)
        idle = _dbt(BUILD, incremental, target)
        changed = write_change_set(
            root / "data", root / "changes", args.change_rate, datetime.now(UTC)
        )
        _load(root / "changes", incremental, root / "landing")
        shutil.copytree(incremental.parent, full.parent)
        f = _dbt(BUILD, incremental, target)
        f_nodes = _by_type(target, "run_results_incremental.json")
        e = _dbt([*BUILD, "--full-refresh"], full, target)
        e_nodes = _by_type(target, "run_results_full_refresh.json")
        _say(f"{args.patients} patients; change set: {changed} resources ({args.change_rate:.1%})")
        _say(f"first dbt build:             {first:6.1f} s")
        _say(f"   dbt build, nothing loaded: {idle:6.1f} s   (the floor: startup, tests, seeds)")
        _say(f"e  dbt build --full-refresh: {e:6.1f} s   ({e_nodes})")
        _say(f"f  dbt build (incremental):  {f:6.1f} s   ({f_nodes})")
        _say(f"f/e = {f / e:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
