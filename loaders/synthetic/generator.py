"""The :func:`generate` entry point: wires the pool, the per-patient records, the defects and
the writers together, streaming one patient at a time."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime

from loaders.synthetic.clock import from_epoch, to_epoch
from loaders.synthetic.defects import MANIFEST_NAME, DefectManifest, DefectPlanter
from loaders.synthetic.meta import MetaStamper
from loaders.synthetic.options import GenerateOptions, GenerationSummary
from loaders.synthetic.people import IdentifierFactory
from loaders.synthetic.providers import build_provider_pool
from loaders.synthetic.record import RunContext, build_record
from loaders.synthetic.writers import RESOURCE_TYPES, BundleWriter, NdjsonWriter, Writer

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 10_000


def resolve_as_of(as_of: datetime | None) -> int:
    """Epoch seconds of ``as_of`` (now, UTC, when ``None``), truncated to the second."""
    return to_epoch(as_of if as_of is not None else datetime.now(UTC))


def generate(options: GenerateOptions) -> GenerationSummary:
    """Generate synthetic FHIR R4 data and write it to ``options.out``.

    The output is byte-identical for the same seed, ``as_of`` and options. Memory use does
    not grow with the number of patients (apart from the returned list of file paths in
    bundle format): each patient's record is built, damaged if defects were asked for,
    written, and dropped.

    Args:
        options: What to generate.

    Returns:
        Counts, files written and defects planted.
    """
    started = time.perf_counter()
    as_of = resolve_as_of(options.as_of)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    bundle = options.fmt == "bundle"
    logger.info(
        "generating %d patients (seed=%d, as_of=%s, fmt=%s, defect_rate=%s) into %s",
        options.patients,
        options.seed,
        from_epoch(as_of).isoformat(),
        options.fmt,
        options.defect_rate,
        out,
    )

    master = random.Random(options.seed)
    stamper = MetaStamper(as_of)
    pool = build_provider_pool(
        random.Random(master.getrandbits(64)), options.patients, as_of, stamper
    )
    ids = IdentifierFactory(random.Random(master.getrandbits(64)))
    run = RunContext(as_of=as_of, stamper=stamper, pool=pool, ids=ids, bundle=bundle)

    planter: DefectPlanter | None = None
    manifest: DefectManifest | None = None
    if options.defect_rate > 0:
        planter = DefectPlanter(options.defect_rate, options.seed, as_of)
        manifest = DefectManifest(out)
    else:
        stale = out / MANIFEST_NAME
        if stale.exists():
            logger.info("removing stale %s from an earlier run", stale)
            stale.unlink()

    counts = dict.fromkeys(RESOURCE_TYPES, 0)
    writer: Writer = BundleWriter(out) if bundle else NdjsonWriter(out)
    try:
        writer.write_shared(pool.organizations, pool.locations, pool.practitioners)
        counts["Organization"] = len(pool.organizations)
        counts["Location"] = len(pool.locations)
        counts["Practitioner"] = len(pool.practitioners)
        for i in range(options.patients):
            resources = build_record(random.Random(master.getrandbits(64)), i, run)
            if planter is not None and manifest is not None:
                manifest.extend(planter.plant(resources))
            for r in resources:
                counts[r["resourceType"]] += 1
            writer.write_patient(resources)
            if (i + 1) % _PROGRESS_EVERY == 0:
                logger.info(
                    "%d/%d patients, %d resources", i + 1, options.patients, sum(counts.values())
                )
    except BaseException:
        writer.close()
        if manifest is not None:
            manifest.abort()
        raise
    files = writer.close()

    manifest_path = None
    defects: dict[str, int] = {}
    if planter is not None and manifest is not None:
        defects = dict(planter.counts)
        manifest_path = manifest.finish(options.seed, as_of, options.defect_rate, defects)

    total = sum(counts.values())
    seconds = time.perf_counter() - started
    logger.info("wrote %d resources in %.1fs (%.0f/s)", total, seconds, total / max(seconds, 1e-9))
    return GenerationSummary(
        counts_by_type=counts,
        total_resources=total,
        files=files,
        defects_by_kind=defects,
        defects_manifest=manifest_path,
        seconds=seconds,
    )
