"""Writing a synthetic Dixon MRI zip (field 20201) and the truth about what it holds.

The zip is flat: one Part-10 DICOM per slice named ``<SOPInstanceUID>.dcm`` (24 series: in, opp, F, W of six
stations, SeriesNumbers 1-24) plus a manifest, members in random order. See ukbb-format.md 1.2-1.6.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from ukbb_pipeline.synthetic import acquisition
from ukbb_pipeline.synthetic.identity import MRI_SCANNER_SERIALS, SIEMENS_ROOT, UidFactory, visit
from ukbb_pipeline.synthetic.manifest import ManifestRow, manifest_text
from ukbb_pipeline.synthetic.mr_headers import (
    STUDY_DESCRIPTION,
    Series,
    Study,
    file_meta,
    series_dataset,
    slice_elements,
    varying_tags,
)
from ukbb_pipeline.synthetic.mri_truth import MriTruth, StationTruth, swap_region_mask
from ukbb_pipeline.synthetic.part10 import SeriesEncoder
from ukbb_pipeline.synthetic.phantom import Phantom
from ukbb_pipeline.synthetic.quirks import CHANNELS, MriQuirks
from ukbb_pipeline.synthetic.stations import N_STATIONS, StationGeometry, ds_value, station_geometries
from ukbb_pipeline.synthetic.zipout import Member, shuffled, write_zip

MRI_FIELD = 20201
REPEAT_FIRST_SERIES = 25  # a repeated station's new acquisition is numbered 25-28
REREC_FIRST_SERIES = 29  # a re-reconstruction of an acquisition is numbered 29-32
REREC_GAIN = 1.25  # a re-reconstruction is scaled differently (so that mixing two shows)
DERIVED_FIRST_SERIES = 100  # derived copies: 100 + the standard SeriesNumber
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
STATION_INTERVAL = 55.0  # s between station acquisitions
SERIES_INTERVAL = {"series": 1.0}  # s between the channel series of a station (0.35 s in the other time layouts)
SLAB_DURATION = {True: 17.0, False: 25.0}  # s a breath-hold / free-breathing slab takes (per-slice times)
SERIES_OFFSET = {"in": 0, "opp": 1, "F": 2, "W": 3}  # SeriesNumber - the station's first
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
    jitter_rng = np.random.default_rng([seed, eid, instance, MRI_FIELD, 7])
    offset = (0.0, 0.0, 0.0)
    if quirks.position_jitter:
        dx, dy, dz = (float(v) for v in jitter_rng.uniform([-1, -1, -2], [1, 1, 2]))
        offset = (dx, dy, dz)
    geometries = station_geometries(size, offset=offset, touching_seam=quirks.touching_seam)
    plan = _acquisition_plan(quirks, geometries)
    members: list[Member] = []
    rows: list[ManifestRow] = []
    kept: dict[int, StationTruth] = {}
    discarded: list[StationTruth] = []
    times: dict[int, datetime] = {}
    for order, step in enumerate(plan):
        if step.reconstruct_of is None:
            acquired = start + timedelta(seconds=90.0 + order * STATION_INTERVAL + float(rng.uniform(0.0, 8.0)))
            series_start = acquired + timedelta(seconds=12.0)
        else:  # the same acquisition reconstructed again later
            acquired = times[step.reconstruct_of]
            series_start = start + timedelta(seconds=90.0 + order * STATION_INTERVAL + 30.0)
        times[order] = acquired
        counted = 1 + (order if step.reconstruct_of is None else step.reconstruct_of)
        truth = _write_station(
            study,
            step,
            acquisition_number=counted if quirks.headers.acquisition_numbers == "counted" else 1,
            phantom=phantom,
            quirks=quirks,
            acquired=acquired,
            series_start=series_start,
            uids=uids,
            rng=rng,
            jitter_rng=jitter_rng,
            members=members,
            rows=rows,
        )
        if step.kept:
            kept[step.geometry.station] = truth
        else:
            discarded.append(truth)
    if quirks.non_image_member:
        members.append(Member(f"{uids.siemens_instance(start)}.dcm", report_member(study_uid=study.study_uid,
                                                                           patient_id=study.visit.patient_id)))
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


@dataclass(frozen=True)
class _Step:
    """One acquisition (or reconstruction) to write."""

    geometry: StationGeometry
    first_series: int
    corrupted: bool = False
    kept: bool = True  # what a correct reader uses as the station's truth
    n_slices: int | None = None  # an aborted acquisition writes only the first slices
    reconstruct_of: int | None = None  # plan index of the acquisition reconstructed again
    channels: tuple[str, ...] = CHANNELS
    gain_factor: float = 1.0


def _acquisition_plan(quirks: MriQuirks, geometries: tuple[StationGeometry, ...]) -> list[_Step]:
    """What is written, in acquisition order."""
    plan: list[_Step] = []
    index_of: dict[int, int] = {}
    order = range(1, N_STATIONS + 1)
    for station in reversed(order) if quirks.headers.patient_position == "FFS" else order:  # feet first: knees first
        if station == quirks.missing_station:
            continue
        index_of[station] = len(plan)
        plan.append(_Step(geometries[station - 1], 4 * (station - 1) + 1, corrupted=station == quirks.repeated_station,
                          kept=station != quirks.repeated_station))
    if quirks.repeated_station is not None:
        plan.append(_Step(geometries[quirks.repeated_station - 1], REPEAT_FIRST_SERIES))
    if quirks.partial_repeat is not None:
        station, fraction = quirks.partial_repeat
        geometry = geometries[station - 1]
        plan.append(_Step(geometry, REPEAT_FIRST_SERIES, kept=False,
                          n_slices=max(2, int(np.ceil(fraction * geometry.n_slices)))))
    if quirks.shifted_repeat is not None:
        station, shift = quirks.shifted_repeat
        geometry = geometries[station - 1]
        moved = dataclasses.replace(geometry, z=tuple(ds_value(z - shift) for z in geometry.z))
        plan.append(_Step(moved, REPEAT_FIRST_SERIES, kept=False))
    if quirks.rereconstructed_station is not None:
        station = quirks.rereconstructed_station
        complete = set(quirks.rereconstruction_channels) == set(CHANNELS)
        plan.append(_Step(geometries[station - 1], REREC_FIRST_SERIES, kept=complete,
                          reconstruct_of=index_of[station], channels=quirks.rereconstruction_channels,
                          gain_factor=REREC_GAIN))
        if complete:  # the newer reconstruction is the one a reader uses
            plan[index_of[station]] = dataclasses.replace(plan[index_of[station]], kept=False)
    return plan


def _write_station(
    study: Study,
    step: _Step,
    *,
    acquisition_number: int,
    phantom: Phantom,
    quirks: MriQuirks,
    acquired: datetime,
    series_start: datetime,
    uids: UidFactory,
    rng: np.random.Generator,
    jitter_rng: np.random.Generator,
    members: list[Member],
    rows: list[ManifestRow],
) -> StationTruth:
    geometry, corrupted, first_series = step.geometry, step.corrupted, step.first_series
    station = geometry.station
    factors = acquisition.edge_factors(geometry, rng=rng) if quirks.slab_edge_loss else None
    gain = quirks.gain(station) * step.gain_factor
    clean = acquisition.clean_channels(phantom, geometry, gain=gain, factors=factors, corrupted=corrupted)
    images = acquisition.acquire(clean, noise_sigma=quirks.noise_sigma, factors=factors, corrupted=corrupted, rng=rng)
    swapped = station == quirks.swapped_station and not corrupted
    if swapped:
        images["F"], images["W"] = images["W"], images["F"]
    region = None
    if quirks.swapped_region is not None and quirks.swapped_region[0] == station and not corrupted:
        _, side, top, bottom = quirks.swapped_region
        region = (side, int(np.floor(top * geometry.n_slices)), int(np.ceil(bottom * geometry.n_slices)))
        mask = swap_region_mask(geometry, region, midline=phantom.x_shift)
        images["F"], images["W"] = np.where(mask, images["W"], images["F"]), np.where(mask, images["F"], images["W"])
    shapes, dropped, numbers, times = {}, {}, {}, {}
    written = range(step.n_slices or geometry.n_slices)
    style = quirks.headers
    shared_uids: dict[int, str] = {}
    for channel in CHANNELS:
        if channel not in step.channels:
            continue
        shared = (style.echoes_in_one_series and channel in ("in", "opp")) or (
            style.fat_water_in_one_series and channel in ("F", "W"))
        offset = SERIES_OFFSET[channel] - (SERIES_OFFSET[channel] % 2 if shared else 0)  # a shared series: the first
        image = images[channel]
        if station == quirks.size_mismatch_station and channel == "W" and not corrupted:
            lost_rows, lost_columns = MISMATCH_CROP[study.size]
            image = image[:, : geometry.rows - lost_rows, : geometry.columns - lost_columns]
        skip = tuple(k for k in range(geometry.n_slices) if k not in written)
        dropping = quirks.dropped_slice is not None and quirks.dropped_slice[0] == station and not corrupted
        if dropping and quirks.dropped_slice is not None and channel in quirks.dropped_slice_channels:
            skip = (*skip, quirks.dropped_slice[1] % geometry.n_slices)
        interval = SERIES_INTERVAL.get(style.times, 0.35)
        series_time = series_start + timedelta(seconds=interval * offset)
        jitter = (tuple(float(v) for v in jitter_rng.uniform(-0.004, 0.004, 3)) if quirks.position_jitter
                  else (0.0, 0.0, 0.0))
        if offset not in shared_uids:
            shared_uids[offset] = uids.siemens_series(series_time)
        own_time = style.times == "series"  # each channel series its own AcquisitionTime too
        series = Series(
            station=station,
            channel=channel,
            number=first_series + offset,
            uid=shared_uids[offset],
            time=series_time,
            acquired=acquired + timedelta(seconds=interval * SERIES_OFFSET[channel]) if own_time else acquired,
            geometry=geometry,
            rows=image.shape[1],
            columns=image.shape[2],
            orientation=quirks.orientation,
            jitter=(jitter[0], jitter[1], jitter[2]),
            acquisition_number=acquisition_number,
            style=style,
            shared=shared,
            slice_interval=SLAB_DURATION[geometry.station in (2, 3, 4)] / geometry.n_slices,
        )
        _write_series(study, series, image, skip=skip, quirks=quirks, uids=uids, members=members, rows=rows)
        if style.phase_images and channel in ("in", "opp"):  # Philips: phase images in the magnitude's series
            phase = np.random.default_rng([series.number, station]).integers(0, 4096, image.shape, dtype=np.uint16)
            _write_series(study, dataclasses.replace(series, phase=True), phase, skip=skip, quirks=quirks, uids=uids,
                          members=members, rows=rows)
        if channel in quirks.derived_series and step.first_series <= 24 and not corrupted:
            derived_time = series_time + timedelta(seconds=2.0)
            derived = dataclasses.replace(series, number=DERIVED_FIRST_SERIES + series.number, derived=True,
                                          uid=uids.siemens_series(derived_time), time=derived_time)
            distorted = np.roll(image, image.shape[1] // 3, axis=1)  # not the body where it is: never to be used
            _write_series(study, derived, distorted, skip=skip, quirks=quirks, uids=uids, members=members, rows=rows)
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
        swapped_region=region,
        kept_slices=step.n_slices,
    )


def report_member(*, study_uid: str, patient_id: str) -> bytes:
    """A non-image DICOM object as scanners add to an exam: an encapsulated PDF report, no PixelData."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ENCAPSULATED_PDF)
    meta.MediaStorageSOPInstanceUID = UID(f"{study_uid}.99")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber = "DOC", "Patient Protocol", "99"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, f"{study_uid}.98"
    ds.PatientID = patient_id
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n% synthetic report\n%%EOF\n"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def enhanced_member(*, study_uid: str, description: str = "Dixon_noBH_W", n_frames: int = 4) -> bytes:
    """A multi-frame Enhanced MR Image Storage object, as Siemens XA scanners write one per series: geometry per
    frame in functional-group sequences, none at the top level (ukbb-format.md 1.8)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ENHANCED_MR)
    meta.MediaStorageSOPInstanceUID = UID(f"{study_uid}.77")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "DIXON", "WATER"]
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_MR, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.SeriesDescription = "MR", "SIEMENS", description
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study_uid, f"{study_uid}.76", "4"
    ds.NumberOfFrames, ds.Rows, ds.Columns = n_frames, 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    measures, orientation = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = ["2.232", "2.232"], "3"
    orientation.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared = Dataset()
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for index in range(n_frames):
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = ["-250", "-190", str(100 - 3 * index)]
        frame.PlanePositionSequence = [position]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.zeros((n_frames, 4, 4), dtype="<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


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
        varying_tags=varying_tags(series),
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
                series_description=series.description,
                modality="MR",
            )
        )
