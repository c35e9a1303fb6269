"""Writing a synthetic Dixon MRI zip (field 20201) and the truth about what it holds.

The zip is flat: one Part-10 DICOM per slice named ``<SOPInstanceUID>.dcm`` (24 series: in, opp, F, W of six
stations, SeriesNumbers 1-24) plus a manifest, members in random order. See ukbb-format.md 1.2-1.6.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ukbb_pipeline.synthetic import acquisition
from ukbb_pipeline.synthetic.identity import MRI_SCANNER_SERIALS, SIEMENS_ROOT, UidFactory, visit
from ukbb_pipeline.synthetic.manifest import ManifestRow, manifest_text
from ukbb_pipeline.synthetic.mr_headers import (
    STUDY_DESCRIPTION,
    VARYING_TAGS,
    Series,
    Study,
    file_meta,
    series_dataset,
    series_description,
    slice_elements,
)
from ukbb_pipeline.synthetic.mri_truth import MriTruth, StationTruth
from ukbb_pipeline.synthetic.part10 import SeriesEncoder
from ukbb_pipeline.synthetic.phantom import Phantom
from ukbb_pipeline.synthetic.quirks import CHANNELS, MriQuirks
from ukbb_pipeline.synthetic.stations import N_STATIONS, StationGeometry, station_geometries
from ukbb_pipeline.synthetic.zipout import Member, shuffled, write_zip

MRI_FIELD = 20201
REPEAT_FIRST_SERIES = 25  # a repeated station's new acquisition is numbered 25-28
STATION_INTERVAL = 55.0  # s between station acquisitions
MISMATCH_CROP = {"full": (6, 8), "small": (2, 2)}  # rows, columns the W series lacks in a size mismatch


def mri_zip_name(eid: int, instance: int = 2) -> str:
    return f"{eid}_{MRI_FIELD}_{instance}_0.zip"


def write_mri_zip(
    path: str | Path,
    *,
    eid: int,
    instance: int = 2,
    phantom: Phantom,
    size: str = "small",
    quirks: MriQuirks = MriQuirks(),  # noqa: B008 (frozen, so a shared default is safe)
    seed: int = 0,
) -> MriTruth:
    """Write a synthetic ``<eid>_20201_<instance>_0.zip`` to ``path`` and return its truth."""
    path = Path(path)
    rng = np.random.default_rng([seed, eid, instance, MRI_FIELD])
    who = visit(eid=eid, instance=instance, seed=seed)
    serial = MRI_SCANNER_SERIALS[who.centre]
    uids = UidFactory(f"{SIEMENS_ROOT}.{serial}", rng=rng)
    start = who.at(float(rng.uniform(0.0, 8.5 * 3600.0)))
    study = Study(
        visit=who,
        scanner_serial=serial,
        study_uid=uids.siemens_study(start),
        frame_of_reference_uid=uids.siemens_frame_of_reference(start),
        start=start,
        size=size,
    )
    geometries = station_geometries(size)
    plan = _acquisition_plan(quirks)
    members: list[Member] = []
    rows: list[ManifestRow] = []
    kept: dict[int, StationTruth] = {}
    discarded: list[StationTruth] = []
    for order, (station, corrupted, first_series) in enumerate(plan):
        acquired = start + timedelta(seconds=90.0 + order * STATION_INTERVAL + float(rng.uniform(0.0, 8.0)))
        truth = _write_station(
            study,
            geometries[station - 1],
            phantom=phantom,
            quirks=quirks,
            corrupted=corrupted,
            first_series=first_series,
            acquired=acquired,
            uids=uids,
            rng=rng,
            members=members,
            rows=rows,
        )
        if corrupted:
            discarded.append(truth)
        else:
            kept[station] = truth
    if quirks.manifest_name is not None:
        text = manifest_text(rows, malformed=quirks.manifest_malformed, rng=rng)
        members.append(Member(quirks.manifest_name, text.encode("ascii")))
    if quirks.shuffle_members:
        members = shuffled(members, rng=rng)
    write_zip(path, members, when=start)
    return MriTruth(
        path=path,
        eid=eid,
        instance=instance,
        size=size,
        seed=seed,
        phantom=phantom,
        quirks=quirks,
        visit=who,
        study_uid=study.study_uid,
        stations=tuple(kept[s] for s in sorted(kept)),
        discarded=tuple(discarded),
        members=tuple(m.name for m in members),
    )


def _acquisition_plan(quirks: MriQuirks) -> list[tuple[int, bool, int]]:
    """(station, corrupted, first SeriesNumber) in acquisition order."""
    plan = []
    for station in range(1, N_STATIONS + 1):
        if station == quirks.missing_station:
            continue
        plan.append((station, station == quirks.repeated_station, 4 * (station - 1) + 1))
    if quirks.repeated_station is not None:
        plan.append((quirks.repeated_station, False, REPEAT_FIRST_SERIES))
    return plan


def _write_station(
    study: Study,
    geometry: StationGeometry,
    *,
    phantom: Phantom,
    quirks: MriQuirks,
    corrupted: bool,
    first_series: int,
    acquired: datetime,
    uids: UidFactory,
    rng: np.random.Generator,
    members: list[Member],
    rows: list[ManifestRow],
) -> StationTruth:
    station = geometry.station
    factors = acquisition.edge_factors(geometry, rng=rng) if quirks.slab_edge_loss else None
    gain = quirks.gain(station)
    clean = acquisition.clean_channels(phantom, geometry, gain=gain, factors=factors, corrupted=corrupted)
    images = acquisition.acquire(clean, noise_sigma=quirks.noise_sigma, factors=factors, corrupted=corrupted, rng=rng)
    swapped = station == quirks.swapped_station and not corrupted
    if swapped:
        images["F"], images["W"] = images["W"], images["F"]
    shapes, dropped, numbers, times = {}, {}, {}, {}
    for offset, channel in enumerate(CHANNELS):
        image = images[channel]
        if station == quirks.size_mismatch_station and channel == "W" and not corrupted:
            lost_rows, lost_columns = MISMATCH_CROP[study.size]
            image = image[:, : geometry.rows - lost_rows, : geometry.columns - lost_columns]
        skip: tuple[int, ...] = ()
        dropping = quirks.dropped_slice is not None and quirks.dropped_slice[0] == station and not corrupted
        if dropping and channel in quirks.dropped_slice_channels:
            skip = (quirks.dropped_slice[1] % geometry.n_slices,)
        series_time = acquired + timedelta(seconds=12.0 + 0.35 * offset)
        series = Series(
            station=station,
            channel=channel,
            number=first_series + offset,
            uid=uids.siemens_series(series_time),
            time=series_time,
            acquired=acquired,
            geometry=geometry,
            rows=image.shape[1],
            columns=image.shape[2],
        )
        _write_series(study, series, image, skip=skip, quirks=quirks, uids=uids, members=members, rows=rows)
        shapes[channel] = image.shape
        dropped[channel] = skip
        numbers[channel] = series.number
        times[channel] = series_time.strftime("%H%M%S.%f")
    return StationTruth(
        station=station,
        geometry=geometry,
        series_numbers=numbers,
        series_times=times,
        gain=gain,
        edge_factors=tuple(float(f) for f in factors) if factors is not None else (1.0,) * geometry.n_slices,
        swapped=swapped,
        corrupted=corrupted,
        shapes=shapes,
        dropped=dropped,
        phantom=phantom,
    )


def _write_series(
    study: Study,
    series: Series,
    image: np.ndarray,
    *,
    skip: tuple[int, ...],
    quirks: MriQuirks,
    uids: UidFactory,
    members: list[Member],
    rows: list[ManifestRow],
) -> None:
    encoder = SeriesEncoder(
        shared=series_dataset(study, series),
        file_meta=file_meta(quirks.transfer_syntax),
        varying_tags=VARYING_TAGS,
    )
    for index in range(image.shape[0]):
        if index in skip:
            continue
        sop = uids.siemens_instance(series.time + timedelta(milliseconds=index))
        own = slice_elements(
            study, series, index=index, sop_instance_uid=sop, image=image[index], transfer_syntax=quirks.transfer_syntax
        )
        name = f"{sop}.dcm"
        members.append(Member(name, encoder.encode(own, sop_instance_uid=sop)))
        rows.append(
            ManifestRow(
                filename=name,
                patient_id=study.visit.patient_id,
                study_uid=study.study_uid,
                study_description=STUDY_DESCRIPTION,
                when=study.start,
                series_uid=series.uid,
                series_description=series_description(series.station, series.channel),
                modality="MR",
            )
        )
