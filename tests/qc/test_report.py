"""The run report: one self-contained HTML page, checked by what headless Chromium shows."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ukbb_pipeline.qc.report import write_report
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import ManifestRow, ManifestWriter

RED = (230, 20, 20)


def _rows(stage: str, folder: Path, rows: list[ManifestRow]) -> None:
    writer = ManifestWriter(StageFolders(folder, stage).meta, stage=stage, shard_index=0, shard_count=1)
    for row in rows:
        writer.add(row)
    writer.flush()


def _row(eid: int, stem_field: int, status: str = "ok", reason: str = "", **qc) -> ManifestRow:
    return ManifestRow(input=f"/data/raw/{eid}_{stem_field}_2_0.zip", status=status, eid=eid, instance=2,
                       reason=reason, qc=qc)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root as the stages leave it: manifests with failures, flags, swaps and seam figures; a contact sheet."""
    root = tmp_path / "data"
    _rows("unzip_dxa", root / "dxas-processed", [
        _row(1000001, 20158),
        _row(1000002, 20158, reason="redone: settings changed since the previous output"),
        _row(1000003, 20158, reason="4 Total Body images: used the most recent pair"),
        _row(1000004, 20158, "failed", "1 'Total Body' image(s) in the zip, 2 needed (tissue and bone)"),
    ])
    _rows("unzip_mri", root / "mris-processed", [
        _row(1000001, 20201, swapped_stations="", seam_mismatch=[0.02, 0.03, 0.01, 0.02, 0.04]),
        _row(1000002, 20201, swapped_stations="3", seam_mismatch=[0.02, 0.61, 0.01, 0.02, 0.03]),
        _row(1000003, 20201, swapped_stations="", seam_mismatch=[0.05, 0.04, 0.33, 0.02, 0.01]),
        _row(1000004, 20201, "failed", "station 4 missing (stations 1, 2, 3, 5, 6 found)"),
    ])
    qc = StageFolders(root / "mri-mid-corr-slices", "extract_slices").qc
    qc.mkdir(parents=True)
    sheet = np.full((120, 200, 3), 255, np.uint8)
    sheet[20:100, 40:160] = RED
    Image.fromarray(sheet).save(qc / "contact-sheet-000.png")
    (qc / "subjects").mkdir()
    Image.fromarray(sheet[:10, :10]).save(qc / "subjects" / "1000001_20201_2_0.png")  # counted, not embedded
    _rows("extract_slices", root / "mri-mid-corr-slices", [_row(1000001, 20201), _row(1000002, 20201)])
    return root


def _report(root: Path) -> Path:
    stage_dirs = {"download": root / "raw", "unzip_dxa": root / "dxas-processed", "unzip_mri": root / "mris-processed",
                  "extract_slices": root / "mri-mid-corr-slices", "collect": root / "collection"}
    return write_report(stage_dirs, output_dir=root / "pipeline-report", root=root)


def chromium() -> str:
    """The Chromium binary; skips (or fails under CI=true) when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (Debian: apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _browse(page: Path, tmp_path: Path, *action: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([chromium(), *flags, *action, page.as_uri()], capture_output=True, text=True, timeout=120,
                          check=True)


def _text(dom: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


def test_the_page_shows_counts_failures_flags_swaps_and_seams(root, tmp_path):
    page = _report(root)
    assert page.parent == root / "pipeline-report"
    assert re.fullmatch(r"report-\d{8}-\d{6}\.html", page.name)
    text = html.unescape(_text(page.read_text()))

    # counts per stage: stage, done, failed, flagged, with notes, inputs (flags and notes counted as status counts)
    assert "unzip_dxa 3 1 0 1 4" in text
    assert "unzip_mri 3 1 1 0 4" in text
    assert "extract_slices 2 0 0 0 2" in text
    assert "collect 0 0 0 0 0 not run" in text
    # failures with their reasons
    assert "2 failed input(s)" in text
    assert "1000004 2 1000004_20158_2_0.zip 1 'Total Body' image(s) in the zip, 2 needed" in text
    assert "station 4 missing (stations 1, 2, 3, 5, 6 found)" in text
    # flagged (a swap) and notes (a repeat chosen) apart; a mere redo is neither
    flagged = text[text.index("Flagged subjects"):text.index("Notes")]
    assert "1 input(s) done with a flag" in flagged and "1000002_20201_2_0.zip swapped station 3" in flagged
    notes = text[text.index("Notes"):text.index("Fat/water swaps")]
    assert "1 input(s) done with notes only" in notes
    assert "1000003_20158_2_0.zip 4 Total Body images: used the most recent pair" in notes
    assert "settings changed" not in text
    # the swap table and the seam table, worst seam first
    assert "1 of 3 checked input(s) have swapped stations" in text
    seams = text[text.index("Seam mismatch"):]
    assert seams.index("1000002_20201_2_0.zip") < seams.index("1000003_20201_2_0.zip") < seams.index(
        "1000001_20201_2_0.zip")


def test_the_contact_sheet_is_embedded_and_rendered(root, tmp_path):
    page = _report(root)
    html = page.read_text()
    assert "data:image/png;base64," in html
    assert "<script" not in html
    assert "http://" not in html
    assert "https://" not in html
    shutil.rmtree(root / "mri-mid-corr-slices")  # the page must not need the picture files any more

    probe = tmp_path / "probe.html"  # the report plus a probe that counts decoded pictures
    probe.write_text(html.replace("</body>", "<script>addEventListener('load', () => document.body.setAttribute("
                                  "'data-decoded', [...document.images].filter(i => i.naturalWidth === 200).length))"
                                  "</script></body>"))
    dom = _browse(probe, tmp_path, "--dump-dom").stdout
    assert 'data-decoded="1"' in dom
    assert "1 per-subject picture(s) in sub-folders" in _text(dom)

    shot = tmp_path / "shot.png"
    _browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,3000")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red = (np.abs(pixels - RED).sum(axis=2) < 40).sum()
    assert red > 0.8 * 80 * 120  # the sheet's red square is on screen (at least at its natural size)


def test_many_pictures_and_rows_are_capped(root, tmp_path):
    qc = StageFolders(root / "mri-mid-corr-slices", "extract_slices").qc
    for index in range(1, 5):
        shutil.copy(qc / "contact-sheet-000.png", qc / f"contact-sheet-{index:03d}.png")
    stage_dirs = {"unzip_dxa": root / "dxas-processed", "unzip_mri": root / "mris-processed",
                  "extract_slices": root / "mri-mid-corr-slices"}
    page = write_report(stage_dirs, output_dir=tmp_path / "out", root=root, max_pictures=2, max_rows=1)
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "3 more picture(s) not embedded" in html
    assert "Showing 1 of 2 rows" in html  # two failures, one shown
    assert "Showing 1 of 3 rows" in html  # three unzip_mri rows with seam figures


@pytest.mark.slow
def test_stage_report_through_main(root, run_main):
    result = run_main("stage=report", f"paths.root={root}")
    assert result.returncode == 0, result.stderr
    pages = list((root / "pipeline-report").glob("report-*.html"))
    assert len(pages) == 1
    assert "station 4 missing" in pages[0].read_text()
    assert str(pages[0]) in result.stdout + result.stderr


def test_the_report_and_status_count_flags_and_notes_alike(root):
    from ukbb_pipeline.qc.status import cohort_status

    text = html.unescape(_text(_report(root).read_text()))
    for status in cohort_status(root):
        flagged = len({v for visits in status.flagged.values() for v in visits})
        assert f"{status.stage} {status.done} " in text
        assert re.search(rf"{status.stage} {status.done} \d+ {flagged} {status.noted} ", text), status


def test_failures_are_grouped_by_kind_and_an_apostrophe_is_not_a_quote():
    from ukbb_pipeline.qc.status import reason_group

    one = ("1 greyscale 'Total Body' image(s) of the exam's participant, 2 needed (tissue and bone): "
           "'1.2.840.1.dcm' (InstanceNumber 11, 791x272) Total Body")
    other = one.replace("1.2.840.1.dcm", "9.9.dcm").replace("791x272", "787x277")
    assert reason_group(one) == reason_group(other) == (
        "N greyscale '...' image(s) of the exam's participant, N needed (tissue and bone): '...' "
        "(InstanceNumber N, NxN) Total Body")
