"""The command line (``ukbb-pipeline``, ``python -m ukbb_pipeline``, a checkout's ``python main.py``).

Hydra composes the config and runs the task; this wrapper decides how a run ends. An expected failure (inputs failed,
a refused setting, a full disk, a missing tool) ends with one line and an exit code from :mod:`ukbb_pipeline.errors`;
only an unexpected error (a bug) prints a traceback, and so does any error with ``HYDRA_FULL_ERROR=1``. The task
function never exits: in the launching process it records the code and returns, so a local multirun runs every shard
and exits with the worst code at the end; in a SLURM job it raises, so Hydra hands the error back to the launching
command, which waits for every shard and ends with the failed shards' code and reason.
``--help`` is answered from :mod:`ukbb_pipeline.config` alone, without composing or importing the science.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ukbb_pipeline.errors import EXIT_BUG, EXIT_CONFIG, EXIT_OK, exit_code_for

log = logging.getLogger("ukbb_pipeline")

PACKAGED_CONF = Path(__file__).resolve().parent / "conf"  # the copy of the checkout's conf/ that `pip install` ships
CHECKOUT_CONF = Path(__file__).resolve().parents[1] / "conf"

_launching_pid: int | None = None  # the process that parsed the command line (None inside a SLURM job)
_exit_codes: list[int] = []  # one per job run in this process
_messages: list[str] = []  # the one-line reason of each job that ended with a non-zero code
_full_error = False  # HYDRA_FULL_ERROR=1 was set by the user: let every error through with its traceback


def config_dir() -> Path:
    """The configs this command composes: the copy inside the installed package, else the checkout's ``conf/``."""
    return PACKAGED_CONF if (PACKAGED_CONF / "config.yaml").is_file() else CHECKOUT_CONF


def user_config_dir() -> Path:
    """Where an installed user keeps settings: ``$XDG_CONFIG_HOME/ukbb-pipeline`` (``~/.config/ukbb-pipeline``);
    its ``local/default.yaml`` is merged last, as a checkout's ``conf/local/default.yaml`` is."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser() / "ukbb-pipeline"


def with_user_settings(args: Sequence[str]) -> list[str]:
    """Add the user's config folder to Hydra's search path when it holds ``local/default.yaml``."""
    folder = user_config_dir()
    if not (folder / "local" / "default.yaml").is_file() or any(a.startswith("hydra.searchpath") for a in args):
        return list(args)
    return [f"hydra.searchpath=[file://{folder.resolve()}]", *args]  # before any --flag: Hydra parses them so


def quote_home_paths(args: Sequence[str]) -> list[str]:
    """Quote ``key=~/...`` values, which Hydra's override grammar cannot lex; the ``~`` is expanded later."""
    quoted = []
    for arg in args:
        match = re.fullmatch(r"([+~]{0,2}[\w.@/-]+)=(~[^'\"]*)", arg)
        quoted.append(f"{match.group(1)}='{match.group(2)}'" if match else arg)
    return quoted


def max_array_size() -> int | None:
    """The cluster's ``MaxArraySize`` (``scontrol show config``), or None without SLURM tools."""
    import shutil
    import subprocess

    if shutil.which("scontrol") is None:
        return None
    try:
        shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", shown, flags=re.MULTILINE)
    return int(match.group(1)) if match else None


def sweep_size(args: Sequence[str]) -> int:
    """How many jobs a multirun over these overrides launches (the product of the sweeps' lengths)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    size = 1
    for override in OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")]):
        if override.is_sweep_override():
            size *= len(list(override.sweep_string_iterator()))
    return size


def check_slurm_sweep(args: Sequence[str]) -> None:
    """Refuse, before anything is submitted, a SLURM sweep wider than the cluster's job arrays may be."""
    from ukbb_pipeline.errors import ConfigError

    if not ({"-m", "--multirun"} & set(args)) or "hydra/launcher=slurm" not in args:
        return
    limit = max_array_size()
    if limit is None:
        return
    jobs = sweep_size(args)
    if jobs > limit:
        raise ConfigError(f"a sweep of {jobs} jobs is wider than this cluster's MaxArraySize={limit} "
                          f"(scontrol show config): use shard.count <= {limit}; each shard then takes more inputs")


def check_sweep_settings(args: Sequence[str]) -> None:
    """Refuse, before any job starts, a multirun whose jobs vary a stage's settings: every point would write into
    the same output folder (Hydra sweeps are products, so sweeping the folder alongside cannot pair them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ukbb_pipeline.config import PATH_FIELDS
    from ukbb_pipeline.errors import ConfigError

    if not ({"-m", "--multirun"} & set(args)):
        return
    for override in OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")]):
        key = override.key_or_group
        varies_settings = key == "experiment" or (
            key.startswith(("stage.", "writer.")) and key.rpartition(".")[2] not in PATH_FIELDS)
        if override.is_sweep_override() and varies_settings:
            raise ConfigError(
                f"a sweep over {key} would write every value's outputs into one output folder: run one command "
                f"per value, each with its own paths.root=... or stage.output_dir=... (sweep shards, not settings)")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def _remove_run_dir() -> None:
    """Remove the run folder Hydra made for a refused run, if it holds only what Hydra wrote (``.hydra/``, a log)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        folder = Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # no Hydra context (called from Python): nothing to remove
        return
    if not folder.is_dir() or folder.resolve() == Path.cwd().resolve():
        return
    entries = list(folder.iterdir())
    if not all(entry.name == ".hydra" or (entry.is_file() and entry.suffix == ".log") for entry in entries):
        return
    hydra_dir = folder / ".hydra"
    if hydra_dir.is_dir():
        if any(not entry.is_file() for entry in hydra_dir.iterdir()):
            return
        for entry in hydra_dir.iterdir():
            entry.unlink()
        hydra_dir.rmdir()
    for entry in entries:
        if entry.is_file():
            entry.unlink()
    folder.rmdir()
    outputs = Path.cwd().resolve() / "outputs"
    for parent in (outputs / "runs", outputs / "multirun", outputs):  # Hydra's default folders, when left empty
        if folder.resolve().is_relative_to(parent):
            with contextlib.suppress(OSError):
                parent.rmdir()


def task(cfg: Any) -> None:
    """Hydra's task: run the stage; an expected failure is logged as one line and recorded, never an exit."""
    from ukbb_pipeline.config import pipeline_config
    from ukbb_pipeline.errors import Interrupted
    from ukbb_pipeline.runtime.cells import escape_log_records
    from ukbb_pipeline.runtime.stopping import stop_on_signals

    escape_log_records()  # text from files (names, DICOM strings) never starts a log line of its own
    try:
        with stop_on_signals():  # SIGTERM, SIGINT: the manifest flushed, one line, exit 128 + the signal
            config = pipeline_config(cfg)  # refused settings end here, before the science is imported
            from ukbb_pipeline.stages import run_configured

            run_configured(config)
    except Interrupted as stop:
        log.error("%s [exit %d]", interrupted_message(stop), stop.exit_code)
        raise
    except Exception as error:
        code = exit_code_for(error)
        if code is None or _full_error:
            raise
        log.error("%s [exit %d]", _one_line(error), code)
        if code == EXIT_CONFIG:
            _remove_run_dir()
        if _launching_pid != os.getpid():
            if "SLURM_JOB_ID" in os.environ:
                _exit_with_at_end(code)  # so that sacct shows the shard FAILED, once submitit has saved the result
            raise  # a job on a cluster: Hydra returns the error to the launching command
        _exit_codes.append(code)
        _messages.append(f"{_one_line(error)} [exit {code}]")
        return
    _exit_codes.append(EXIT_OK)


def interrupted_message(stop: BaseException) -> str:
    """The one line of a run stopped by a signal."""
    return (f"{stop}: the inputs finished so far are in the manifest; a re-run does the rest"
            if not _full_error else str(stop))


def _exit_with_at_end(code: int) -> None:
    """End this process with ``code`` after everything else (submitit writes the job's result pickle before the
    interpreter exits): Hydra's launcher returns a failed job as a value, which would leave the job COMPLETED."""
    import atexit

    atexit.register(os._exit, code)


def _composition_message(error: BaseException) -> str:
    """One line for an error Hydra raises while composing the config (an unknown key, an unknown choice, ...)."""
    from omegaconf.errors import OmegaConfBaseException

    from ukbb_pipeline.config import schema_keys, unknown_key_message

    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException) and "not in" in str(cause) and getattr(cause, "full_key", None):
        return unknown_key_message(str(cause.full_key), schema_keys(getattr(cause, "object_type", None)))
    override = getattr(error, "override", None)  # OverrideParseException: name the argument
    if override is not None:
        reason = str(error).splitlines()[0]
        return (f"cannot read the argument {override!r} ({reason}); quote values with special characters, "
                "e.g. 'key=\"a b\"'; `--help` lists the stages and options")
    text = str(error).split("\n")
    first = re.sub(r"\s*To append to your config use \S+", "", text[0])
    if first.endswith(":") and len(text) > 1:  # "In 'local/default': ConfigKeyError raised while composing config:"
        first = f"{first} {text[1].strip()}"
    if "Could not find" in first:  # an unknown choice: name the choices, not Hydra's search path
        start = next((i for i, line in enumerate(text) if line.startswith("Available options")), len(text))
        choices = []
        for line in text[start + 1:]:
            if not line.startswith(("\t", " ")):
                break
            choices.append(line.strip())
        first += f" (choices: {', '.join(choice for choice in choices if choice)})" if choices else ""
    if cause is not None and str(cause).split("\n")[0] not in first:
        first += f": {str(cause).splitlines()[0]}"
    return " ".join(first.split()) + "; `--help` lists the stages and options"


def main(argv: Sequence[str] | None = None, *, conf: Path | None = None, prog: str = "ukbb-pipeline") -> NoReturn:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and exit with the documented code."""
    global _launching_pid, _full_error
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        sys.stdout.write(help_text(prog=prog))
        sys.exit(EXIT_OK)
    if "--version" in args:  # the package's, not Hydra's
        from ukbb_pipeline import __version__

        sys.stdout.write(f"ukbb-pipeline {__version__}\n")
        sys.exit(EXIT_OK)
    full_error = _full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    _launching_pid = os.getpid()
    _exit_codes.clear()
    _messages.clear()

    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ukbb_pipeline.config import register_configs

    register_configs()
    config_path = str((conf or config_dir()).resolve())
    run = hydra.main(version_base="1.3", config_path=config_path, config_name="config")(task)
    sys.argv = [prog, *quote_home_paths(with_user_settings(args))]
    try:
        check_sweep_settings(args)
        check_slurm_sweep(args)
    except Exception as error:
        if full_error:
            raise
        if isinstance(error, HydraException):  # an override Hydra cannot parse: its own report follows below
            pass
        else:
            sys.stderr.write(f"{prog}: {_one_line(error)} [exit {EXIT_CONFIG}]\n")
            sys.exit(EXIT_CONFIG)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own report; we print ours
    from ukbb_pipeline.errors import Interrupted
    from ukbb_pipeline.runtime.stopping import stop_on_signals

    try:
        with stop_on_signals():  # also while Hydra composes and sets up, before the task
            run()
    except SystemExit as stop:  # --cfg, --hydra-help, --info and Hydra's own usage errors
        raise stop from None
    except Interrupted as stop:  # SIGTERM or SIGINT: the run flushed its manifest on the way out
        if full_error:
            raise
        sys.stderr.write(f"{prog}: {interrupted_message(stop)} [exit {stop.exit_code}]\n")
        sys.exit(stop.exit_code)
    except Exception as error:
        if full_error:
            raise
        code = exit_code_for(error)
        if isinstance(error, (HydraException, OmegaConfBaseException)):
            sys.stderr.write(f"{prog}: {_composition_message(error)} [exit {EXIT_CONFIG}]\n")
            sys.exit(EXIT_CONFIG)
        if code is None and type(error).__name__ == "FailedJobError":  # a SLURM job that died (killed, out of memory)
            sys.stderr.write(f"{prog}: a job failed: {_one_line(error)[:2000]} [exit {EXIT_BUG}]\n")
            sys.exit(EXIT_BUG)
        if code is None:
            import traceback

            traceback.print_exception(error)
            sys.stderr.write(f"{prog}: unexpected error (a bug: please report it with the traceback above) "
                             f"[exit {EXIT_BUG}]\n")
            sys.exit(EXIT_BUG)
        sys.stderr.write(f"{prog}: {_one_line(error)} [exit {code}]\n")  # a cluster job's expected failure
        sys.exit(code)
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    code = max(_exit_codes, default=EXIT_OK)
    if code != EXIT_OK:  # the log (stdout and the run's log file) has each line; stderr gets the end of the run
        if len(_exit_codes) > 1:
            sys.stderr.write(f"{prog}: {len(_messages)} of {len(_exit_codes)} jobs ended with an error:\n")
        for message in _messages:
            sys.stderr.write(f"{prog}: {message}\n")
    sys.exit(code)


# ---- --help: generated from the schemas in config.py (their docstrings and field comments are the one home) ----


def _field_comments() -> dict[tuple[str, str], str]:
    """``(class, field) -> comment`` from config.py's source: the comment on a field's line is its meaning."""
    import ast
    import io
    import tokenize

    from ukbb_pipeline import config

    source = Path(config.__file__).read_text(encoding="utf-8")
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    found: dict[tuple[str, str], str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    lines = range(item.lineno, (item.end_lineno or item.lineno) + 1)
                    text = next((comments[line] for line in lines if line in comments), "")
                    found[(node.name, item.target.id)] = text
    return found


def _default_text(value: Any) -> str:
    from enum import Enum

    if isinstance(value, Enum):
        return str(value.name)
    if isinstance(value, list):
        return "[" + ",".join(_default_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _options(schema: type, prefix: str, comments: dict[tuple[str, str], str], skip: Sequence[str] = ()) -> list[str]:
    """One line per option of ``schema``: ``prefix.key=default  meaning`` (nested schemas as ``prefix.key.*``)."""
    import dataclasses

    from ukbb_pipeline.config import StageConfig

    lines = []
    instance = schema()
    for item in dataclasses.fields(schema):
        if item.name in skip:
            continue
        meaning = next((comments.get((base.__name__, item.name), "") for base in schema.__mro__
                        if comments.get((base.__name__, item.name))), "")
        value = getattr(instance, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, StageConfig):
            lines.extend(_options(type(value), f"{prefix}{item.name}.", comments))
            continue
        shown = f"{prefix}{item.name}" + (".*" if isinstance(value, StageConfig) else f"={_default_text(value)}")
        lines.append(f"  {shown:<44} {meaning}".rstrip() if len(shown) < 44 else f"  {shown}  {meaning}".rstrip())
    return lines


def _first_line(schema: type) -> str:
    return (schema.__doc__ or "").strip().splitlines()[0].replace("``", "")


def help_text(prog: str = "ukbb-pipeline") -> str:
    """The ``--help`` page: usage, the stages and each one's options, the writers, the exit codes."""
    from ukbb_pipeline import config, registry

    comments = _field_comments()
    out = [
        f"usage: {prog} [stage=NAME] [KEY=VALUE ...]",
        f"       {prog} -m stage=NAME shard.count=N 'shard.index=range(N)' [hydra/launcher=slurm]   (a sweep)",
        "",
        "UK Biobank DXA (field 20158) and Dixon MRI (field 20201) bulk zips to training-ready data.",
        "With no arguments: the demo (a small synthetic cohort through every stage, under ./outputs/demo).",
        "",
        "Stages (stage=NAME):",
    ]
    stages = [(entry.name, entry.schema) for entry in registry.STAGES]
    for name, schema in stages:
        out.append(f"  {name:<16} {_first_line(schema)}")
    out += ["", "Options of every run:"]
    out += _options(config.PipelineConfig, "", comments, skip=("stage", "writer", "paths"))
    out += _options(config.PathsConfig, "paths.", comments)
    for name, schema in stages:
        out += ["", f"Options of stage={name}:"]
        out += _options(schema, "stage.", comments, skip=("name",))
    out += ["", "Writers (writer=NAME):"]
    for entry in registry.WRITERS:
        out.append(f"  {entry.name:<16} {_first_line(entry.schema)}")
        out += [f"  {line}" for line in _options(entry.schema, "writer.", comments, skip=("name",))]
    out += [
        "",
        "Experiments: experiment=paper (the paper's settings for every stage it touches). Your settings:",
        "~/.config/ukbb-pipeline/local/default.yaml (conf/local/default.yaml in a checkout). Paths take ~ and $VARS.",
        "--cfg job prints the composed config;",
        "--hydra-help shows Hydra's own options. HYDRA_FULL_ERROR=1 prints a traceback with any error.",
        "--version prints the package's version.",
        "",
        "Exit codes: 0 done; 1 some inputs failed (reasons in the manifest); 2 bad configuration or usage (nothing",
        "processed); 3 the output folder or the machine (full disk, no permission, a missing tool or package);",
        "4 an unexpected error (a bug: please report it); 130 / 143 stopped by SIGINT / SIGTERM (Ctrl-C, scancel):",
        "the inputs finished so far are in the manifest, a re-run does the rest.",
        "",
    ]
    return "\n".join(out)
