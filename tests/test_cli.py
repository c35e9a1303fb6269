"""The command line as a user meets it (through main.py, output to a pipe, never a terminal): one line and a documented
exit code for every expected failure, no traceback; `--help` fast and complete; rejected runs leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ukbb_pipeline.synthetic import Phantom, write_dxa_zip

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "scipy", "h5py", "matplotlib", "pydicom")


def _main(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python main.py ARGS`` from ``cwd``, with Hydra's run folder where Hydra puts it by default (cwd/outputs)."""
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines, result.stdout[-2000:]
    return lines[-1]


@pytest.fixture
def dxa_root(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "raw" / "dxas"
    raw.mkdir(parents=True)
    for eid in (1000001, 1000002):
        write_dxa_zip(raw / f"{eid}_20158_2_0.zip", eid=eid, phantom=Phantom.random(eid))
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["stage=extract_slices", "paths.root=/d", "stage.n_neighbours=-1"], 2,
         "stage.n_neighbours=-1 is refused: must be >= 0"),
        (["n_jobs=0"], 2, "n_jobs=0 is refused"),
        (["shard.index=5"], 2, "shard.index=5 is refused: must be in [0, shard.count=1)"),
        (["stage=extract_slices", "paths.root=/d", "stage.n_neighbors=3"], 2,
         "unknown key stage.n_neighbors (did you mean stage.n_neighbours?)"),
        (["stage=extract_slices", "paths.root=/d", "+stage.n_neighbors=3"], 2,
         "unknown key stage.n_neighbors (did you mean stage.n_neighbours?)"),
        (["+stage.n_neighbors=3"], 2, "did you mean stage.extract_slices.n_neighbours?"),  # the demo's sub-stage
        (["stage=unzip_mri_schema"], 2, "Could not find 'stage/unzip_mri_schema'"),
        (["stage=unzip_dxa", "paths.root=/nonexistent/ukbb"], 2, "input folder /nonexistent/ukbb/raw/dxas does not "
                                                                 "exist"),
        (["stage=withdraw", "paths.root=/d"], 2, "stage=withdraw needs exclude_eids_file"),
        (["stage=download", "paths.root=/d", "stage.eids_file=/nonexistent/eids.txt"], 2,
         "/nonexistent/eids.txt does not exist"),
        (["stage=unzip_mri"], 2, "stage=unzip_mri needs paths.root=<your data folder> (or stage.input_dir and "
                                 "stage.output_dir): only the demo has a default folder (outputs/demo)"),
        (["stage=unzip_mri", "paths.root=/d", "stage.eids_file=eids.txt"], 2,
         "unknown key stage.eids_file (did you mean eids_file=...? it is a top-level key, not a stage option)"),
        (["stage=extract_slices", "paths.root=/nonexistent/ukbb"], 2, "input folder /nonexistent/ukbb/mris-processed "
         "does not exist: stage=unzip_mri makes it (run that stage first with the same paths.root, or set "
         "stage.input_dir=<the folder>)"),
        (["stage=collect", "paths.root=/nonexistent/ukbb", "stage.input_dir=."], 2, "input folder "
         "/nonexistent/ukbb/dxas-processed does not exist: stage=unzip_dxa makes it (run that stage first with the "
         "same paths.root, or set stage.dxa_dir=<the folder>)"),
        (["stage=report", "paths.root=/nonexistent/ukbb"], 2, "/nonexistent/ukbb"),
    ],
)
def test_a_refused_setting_is_one_line_exit_2_and_leaves_no_run_folder(tmp_path, main_in_process, args, code, says):
    result = main_in_process(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr[-2000:]
    last = _last_line(result)
    assert says in last and last.endswith(f"[exit {code}]"), last
    assert not (tmp_path / "outputs").exists(), "a rejected run leaves no outputs/runs/... folder"


def test_failed_inputs_end_with_one_line_and_exit_1(dxa_root):
    (dxa_root / "raw" / "dxas" / "1000003_20158_2_0.zip").write_bytes(b"<html>not a zip</html>")
    result = _main("stage=unzip_dxa", f"paths.root={dxa_root}", cwd=dxa_root.parent)
    assert result.returncode == 1
    last = _last_line(result)
    assert "1 input(s) failed (unzip_dxa: 1000003_20158_2_0.zip)" in last and last.endswith("[exit 1]")
    assert "not a zip" in result.stdout, "the reason is in the log"
    assert len(list((dxa_root / "dxas-processed").glob("*.h5"))) == 2, "the good inputs were processed"
    allowed = _main("stage=unzip_dxa", f"paths.root={dxa_root}", "allow_failures=true", cwd=dxa_root.parent)
    assert allowed.returncode == 0


def test_an_output_folder_that_cannot_be_written_is_exit_3(dxa_root):
    (dxa_root / "a-file").write_text("")
    result = _main("stage=unzip_dxa", f"paths.root={dxa_root}", f"stage.output_dir={dxa_root / 'a-file' / 'out'}",
                   cwd=dxa_root.parent)
    assert result.returncode == 3
    assert _last_line(result).endswith(f"unzip_dxa: cannot write to {dxa_root / 'a-file' / 'out'}: Not a directory "
                                       "[exit 3]")


def test_a_missing_ukbfetch_is_exit_3_and_a_bad_key_file_exit_2(tmp_path):
    eids = tmp_path / "eids.txt"
    eids.write_text("1000001\n")
    key = tmp_path / ".ukbkey"
    key.write_text("12345\n" + "x" * 64 + "\n")
    key.chmod(0o600)
    common = [f"paths.root={tmp_path / 'data'}", "stage=download", f"stage.eids_file={eids}"]
    missing_tool = _main(*common, f"stage.key_file={key}", "stage.ukbfetch=no-such-ukbfetch", cwd=tmp_path)
    assert missing_tool.returncode == 3
    assert "no-such-ukbfetch not found on PATH" in _last_line(missing_tool)
    fake = tmp_path / "ukbfetch"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    bad_key = _main(*common, f"stage.key_file={tmp_path / 'missing.ukbkey'}", f"stage.ukbfetch={fake}", cwd=tmp_path)
    assert bad_key.returncode == 2
    assert "key file" in _last_line(bad_key) and "missing.ukbkey" in _last_line(bad_key)


def test_a_home_path_works_unquoted(tmp_path, dxa_root):
    home = dxa_root.parent
    result = _main("stage=unzip_dxa", "paths.root=~/data", cwd=tmp_path, env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((dxa_root / "dxas-processed").glob("*.h5"))) == 2
    by_variable = _main("stage=unzip_dxa", "paths.root=$UKBB_TEST_ROOT", cwd=tmp_path,
                        env={"UKBB_TEST_ROOT": str(dxa_root)})
    assert by_variable.returncode == 0, by_variable.stderr[-2000:]


def test_a_bug_still_shows_its_traceback_and_full_error_shows_every_one(tmp_path):
    full = _main("n_jobs=0", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode != 0
    assert "Traceback" in full.stderr and "ConfigError" in full.stderr


def test_help_lists_every_stage_and_its_options_and_hides_the_schemas(tmp_path, main_in_process):
    from ukbb_pipeline import registry

    started = time.perf_counter()
    result = main_in_process("--help", cwd=tmp_path)
    took = time.perf_counter() - started
    assert result.returncode == 0
    text = result.stdout
    for name in registry.STAGE_NAMES:
        assert f"Options of stage={name}:" in text
        assert f"\n  {name} " in text
    assert "_schema" not in text and "schema/" not in text
    for option in ("stage.n_neighbours=5", "stage.scaling=physical", "stage.channels=[F,W]", "stage.parallel=10",
                   "shard.count=1", "paths.root=null", "writer.compression_level=1"):
        assert option in text
    line = next(line for line in text.splitlines() if "stage.n_neighbours=5" in line)
    assert "mid-coronal" in line, "each option has its one-line meaning"
    assert "Exit codes" in text
    assert not (tmp_path / "outputs").exists()
    assert took < 10, "a sanity bound only; the start-up time is measured by hand (README)"


def test_help_and_a_refused_setting_import_none_of_the_science(tmp_path):
    for args in (["--help"], ["n_jobs=0"]):
        result = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "main.py"), *args], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert not imported & set(HEAVY), (args, imported & set(HEAVY))


def test_python_dash_m_is_the_same_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ukbb_pipeline", "shard.index=5"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                str(REPO), os.environ.get("PYTHONPATH", "")]))})
    assert result.returncode == 2
    assert "shard.index=5 is refused" in _last_line(result)
    help_text = subprocess.run([sys.executable, "-m", "ukbb_pipeline", "--help"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "usage: python -m ukbb_pipeline" in help_text.stdout


def test_a_slurm_sweep_wider_than_max_array_size_is_refused_before_submitting(tmp_path, main_in_process):
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize            = 4'\n")
    (tools / "scontrol").chmod(0o755)
    (tools / "sbatch").write_text(f"#!/bin/sh\ntouch {tmp_path / 'submitted'}\nexit 1\n")
    (tools / "sbatch").chmod(0o755)
    env = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    result = main_in_process("-m", "stage=unzip_dxa", "shard.count=5", "shard.index=range(5)", "hydra/launcher=slurm",
                             cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "a sweep of 5 jobs is wider than this cluster's MaxArraySize=4" in _last_line(result)
    assert not (tmp_path / "submitted").exists()


@pytest.mark.slow
def test_run_local_resolves_paths_from_the_callers_folder_and_runs_the_whole_chain(tmp_path):
    from ukbb_pipeline.synthetic import write_mri_zip

    caller = tmp_path / "somewhere"
    root = caller / "r2"
    (root / "raw" / "dxas").mkdir(parents=True)
    (root / "raw" / "mris").mkdir(parents=True)
    for eid in (1000001, 1000002):
        phantom = Phantom.random(eid)
        write_dxa_zip(root / "raw" / "dxas" / f"{eid}_20158_2_0.zip", eid=eid, phantom=phantom)
        write_mri_zip(root / "raw" / "mris" / f"{eid}_20201_2_0.zip", eid=eid, phantom=phantom)
    (root / "raw" / "dxas" / "1000003_20158_2_0.zip").write_bytes(b"a download cut short")
    result = subprocess.run(["bash", str(REPO / "launchers" / "run-local.sh"), "r2", "n_jobs=1"], cwd=caller,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "some inputs failed in: stage=unzip_dxa" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(list((root / "mri-mid-corr-slices").glob("*.h5"))) == 2
    assert (root / "collection" / "collection-shard0of1.h5").is_file(), "collect ran after the failed input"
    assert list((root / "pipeline-report").glob("report-*.html")), "and the report"
    assert not (REPO / "r2").exists()


def test_version_is_the_packages(tmp_path):
    from ukbb_pipeline import __version__

    result = _main("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"ukbb-pipeline {__version__}\n")


@pytest.mark.parametrize("header", ["", "# @package _global_\n"])
def test_an_installed_users_settings_are_merged_with_or_without_the_package_header(tmp_path, header):
    settings = tmp_path / "xdg" / "ukbb-pipeline" / "local" / "default.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(f"{header}paths:\n  root: /data/ukbb\nn_jobs: 3\n")
    result = _main("stage=unzip_mri", "--cfg", "job", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert result.returncode == 0, result.stderr
    assert "  root: /data/ukbb\n" in result.stdout and "\nn_jobs: 3\n" in result.stdout
    assert "stage.n_jobs" not in result.stdout


def test_a_bad_key_in_the_settings_file_names_the_key_and_the_file(tmp_path):
    settings = tmp_path / "xdg" / "ukbb-pipeline" / "local" / "default.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text("paths:\n  rot: /data/ukbb\n")
    result = _main("stage=unzip_mri", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert result.returncode == 2
    assert _last_line(result) == ("python main.py: In 'local/default': ConfigKeyError raised while composing config: "
                                  "Key 'rot' not in 'PathsConfig'; `--help` lists the stages and options [exit 2]")


def test_a_checkouts_conf_local_is_merged_last(tmp_path):
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text("paths:\n  root: /data/ukbb\nn_jobs: 16\n")
    code = ("from pathlib import Path; from ukbb_pipeline.cli import main; "
            f"main(['stage=collect', '--cfg', 'job'], conf=Path({str(conf)!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert "  root: /data/ukbb\n" in result.stdout and "\nn_jobs: 16\n" in result.stdout
