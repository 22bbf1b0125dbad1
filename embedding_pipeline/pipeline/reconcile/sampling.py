"""What a dry run reads to calibrate its estimate (estimate.py): a records object's lines for tokens
per character, and a few documents of each kind nothing calibrates yet, counted exactly."""

from __future__ import annotations

from embedding_pipeline.errors import OutOfTime
from embedding_pipeline.outputs.lines import read_line
from embedding_pipeline.pipeline.objects import embed_object
from embedding_pipeline.pipeline.reconcile.actions import SweepRun
from embedding_pipeline.pipeline.reconcile.inventory import PageInventory
from embedding_pipeline.pipeline.reconcile.totals import Totals

_RECORDS_SAMPLE_LINES = 200


async def calibrate(run: SweepRun, inventory: PageInventory) -> None:
    """Once a sweep: the tokens a character of chunk text cost, from one records object's lines."""
    calibration = run.calibration
    if calibration.tokens_per_char is not None or not inventory.records:
        return
    storage, bucket = run.invocation.storage, run.outputs.layout.bucket
    chars = tokens = lines = 0
    async for raw in storage.iter_lines(bucket, next(iter(inventory.records.values())).key):
        record = read_line(raw)
        if record is None or record.text is None:
            continue  # damaged, or not a record
        chars += len(record.text)
        tokens += record.tokens
        lines += 1
        if lines >= _RECORDS_SAMPLE_LINES:
            break
    if chars and tokens:
        calibration.tokens_per_char = tokens / chars


async def sample(run: SweepRun, part: Totals, work: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A dry run reads a few documents of each kind nothing calibrates yet (estimate.py), and counts
    them exactly; the rest, returned, are estimated from their size."""
    rest = []
    for key, size in work:
        if not run.calibration.wants_sample(key) or not run.may_start():
            rest.append((key, size))
            continue
        try:
            result = await embed_object(run.invocation, run.bucket, key, dry_run=True)
        except OutOfTime:
            run.stopped = run.stopped or "time budget"
            rest.append((key, size))
            continue
        except Exception as exc:
            run.fail(part, key, exc)
            continue
        part.outcome(result.outcome)
        if result.outcome == "would_embed":
            tokens = run.calibration.tokens_of_text(result.text_chars or 0)
            run.calibration.learn_sample(key, size, tokens, result.ocr_pages or 0)
            part.estimated_tokens += tokens
            part.estimated_ocr_pages += result.ocr_pages or 0
    return rest
