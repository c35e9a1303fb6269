"""Stage ``collect``: MRI slabs and DXA images of the same visit, paired, in one training-ready HDF5 file per shard.

Reads what ``extract_slices`` and ``unzip_dxa`` wrote (in any format), pairs them on (eid, instance), fits each pair
to the paper's geometry (:mod:`ukbb_pipeline.pairs.fit`) and writes ``collection-shard<i>of<n>.h5``
(:mod:`ukbb_pipeline.formats.collection`) atomically, one manifest row per pair. A shard's pairs are those whose MRI
slab's stem hashes to the shard. Pairs whose MRI has an unfixed fat/water swap or a failed seam check are left out
(``skipped``, with the reason) unless ``stage.keep_flagged=true``. The shard file is rebuilt whole when its pairs,
their content or the settings changed (or a pair failed before); otherwise the run skips it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline import __version__
from ukbb_pipeline.config import CollectConfig
from ukbb_pipeline.formats import Hdf5Writer, Writer, collection
from ukbb_pipeline.formats.chunks import ChunkCodec
from ukbb_pipeline.formats.outputs import find_outputs
from ukbb_pipeline.pairs import fit
from ukbb_pipeline.qc import pair_pictures
from ukbb_pipeline.registry import output_version
from ukbb_pipeline.runtime.fingerprint import input_signature, settings_fingerprint
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, read_manifests
from ukbb_pipeline.runtime.runner import (
    Result,
    RunOptions,
    Sink,
    Stage,
    StageSummary,
    Task,
    Unit,
    draw_pictures,
    run_units,
    select_units,
)
from ukbb_pipeline.stages.collect import shard

log = logging.getLogger(__name__)

DONE = "done earlier with the same inputs and settings"


@dataclass(frozen=True)
class ShardPlan:
    """What this run does with its shard file, decided once from the shard's pairs before any work."""

    final: Path  # collection-shard<i>of<n>.h5
    content: str  # the content fingerprint of the shard's pairs, made with these settings
    rebuild: bool  # False: the file holds exactly that content, with no failed pair: every pair is skipped
    redo: str = ""  # why it is rebuilt, when the file there was made with other settings (refused by the runner)


class CollectStage(Stage):
    """The collect stage of one run: its settings, its pairs as units and its shard's plan, all fixed at the start."""

    name = "collect"
    unit_name = "pair"

    def __init__(self, config: CollectConfig, *, writer: Writer, options: RunOptions, pairs: list[fit.Pair]):
        self.params = shard.make_params(config, seam_mismatch_limit=options.seam_mismatch_limit)
        self.split_of, split = shard.split_assigner(config)
        self.hdf5 = writer if isinstance(writer, Hdf5Writer) else Hdf5Writer()
        self.codec = ChunkCodec(compression=self.hdf5.compression, level=self.hdf5.compression_level,
                                shuffle=self.hdf5.shuffle)
        self.folders = StageFolders(output=Path(config.output_dir), stage="collect")
        self.settings = {"version": output_version("collect"), **self.params.__dict__, "split": split}
        self.attrs = shard.collection_attrs(self.params, split)
        self.source = f"MRI slabs in {config.input_dir} paired with DXA outputs in {config.dxa_dir}"
        # Each pair's split is decided here, in the main process, so that the split lists never travel to workers.
        self.all_units = [Unit(key=p.mri.stem, input=str(p.mri.path), eid=p.eid, instance=p.instance,
                               item=(p, self.split_of(p.eid))) for p in pairs]
        final = self.folders.output / collection.shard_file_name(options.shard_index, options.shard_count)
        self.plan = self._plan(final, select_units(self.all_units, options), overwrite=options.overwrite)

    def __getstate__(self) -> dict[str, object]:  # workers need neither the split function (nor its EID lists)
        return {key: value for key, value in self.__dict__.items() if key not in ("split_of", "all_units")}

    def _plan(self, final: Path, units: list[Unit], *, overwrite: bool) -> ShardPlan:
        """All or nothing: the shard file is rebuilt unless it holds exactly these pairs' content, made the same way
        and without a failed pair."""
        signatures = [[u.item[0].mri.path.name, _signature(u.item[0].mri.path), u.item[0].dxa.path.name,
                       _signature(u.item[0].dxa.path), u.item[1]] for u in units]
        content = settings_fingerprint({"settings": self.fingerprint(), "pairs": signatures})
        stored = None if overwrite else collection.stored_attrs(final, locking=self.hdf5.file_locking)
        unchanged = stored is not None and stored.get("content_fingerprint") == content and \
            int(stored.get("n_failed", 1)) == 0
        redo = ""
        made_with = None if stored is None else stored.get("settings_fingerprint")
        if not unchanged and made_with not in (None, self.fingerprint()):
            redo = self.settings_change(str(made_with))  # other settings, or a raised output version
        return ShardPlan(final=final, content=content, rebuild=not unchanged, redo=redo)

    @property
    def final(self) -> Path:
        return self.plan.final

    def check_done(self, units: list[Unit], *, fingerprint: str, overwrite: bool) -> Iterator[Task | Result]:
        """Every pair to do when the plan rebuilds the shard file; else every pair skipped, as the file holds it."""
        if self.plan.rebuild:
            yield from (Task(unit, "redone: overwrite=true" if overwrite else self.plan.redo, fingerprint)
                        for unit in units)
            return
        held = collection.stored_visits(self.final, locking=self.hdf5.file_locking)
        earlier = {row["input"]: row["reason"] for row in read_manifests(self.folders.meta)
                   if row.get("reason", "").startswith("left out")} if len(held) < len(units) else {}
        for unit in units:
            qc = {"dxa_input": str(unit.item[0].dxa.path), "split": unit.item[1]}
            if (unit.eid, unit.instance) in held:
                yield Result(unit, SKIPPED, reason=DONE, fingerprint=fingerprint, output=str(self.final), qc=qc)
            else:  # left out for its flags when the shard was built
                reason = earlier.get(unit.input, shard.left_out_reason(["flagged when the shard was built"]))
                yield Result(unit, SKIPPED, reason=reason, fingerprint=fingerprint, qc=qc)

    def process(self, task: Task) -> Result:
        pair, split = task.unit.item
        record, qc, problems = shard.fit_pair(pair, split, params=self.params, codec=self.codec)
        if record is None:
            return Result(task.unit, SKIPPED, reason=shard.left_out_reason(problems), fingerprint=task.fingerprint,
                          qc=qc)
        return Result(task.unit, OK, output=str(self.final), fingerprint=task.fingerprint, qc=qc, payload=record)

    def open_sink(self, tasks: list[Task], options: RunOptions) -> Sink:
        if not self.plan.rebuild:
            return Sink()
        attrs = {**self.attrs, "shard_index": options.shard_index, "shard_count": options.shard_count,
                 "settings_fingerprint": self.fingerprint(), "content_fingerprint": self.plan.content,
                 "pipeline_version": __version__}
        return shard.CollectSink(self.final, tasks, params=self.params, codec=self.codec,
                                 scratch_dir=self.folders.scratch, attrs=attrs, locking=self.hdf5.file_locking)


def _signature(path: Path) -> str:
    """The content signature of an upstream output ("unreadable" when it vanished: its pair will fail with why)."""
    try:
        return input_signature(path)
    except OSError:
        return "unreadable"


def run(config: CollectConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    if not isinstance(writer, Hdf5Writer):
        log.info("collect: the collection is always HDF5 (writer=%s only applies to the other stages)", writer.name)
    pairing = fit.pair_by_visit(find_outputs(Path(config.input_dir), made_by="extract_slices"),
                                find_outputs(Path(config.dxa_dir), made_by="unzip_dxa", key="stage.dxa_dir"))
    shard.log_unpaired(pairing)
    stage = CollectStage(config, writer=writer, options=options, pairs=pairing.pairs)
    shard.warn_other_shard_counts(stage.folders.output, options.shard_count)
    summary = run_units(stage, stage.all_units, options)
    log.info("collect: %d pairs collected, %d left out for their flags, %d failed; collection: %s",
             summary.counts.get(OK, 0), sum(1 for r in summary.rows if r.reason.startswith("left out")),
             summary.counts.get(FAILED, 0), stage.final)
    if qc:
        _draw_pair_sheets(stage, summary)
    return [summary]


def _draw_pair_sheets(stage: CollectStage, summary: StageSummary) -> None:
    """The shard's pair pictures (redrawn when the shard file changed); a picture never fails the run."""
    draw_pictures(lambda: pair_pictures.update_pair_sheets(
        stage.final, folders=stage.folders,
        n_left_out=sum(1 for row in summary.rows if row.reason.startswith("left out"))),
        stage="collect", what="pair picture(s)", folder=stage.folders.qc)
