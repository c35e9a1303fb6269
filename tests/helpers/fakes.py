"""Drop-in fakes of ``ukbfetch`` and ``dx`` for the download tests, written as executable Python scripts.

They behave like the real programs as far as the download stage can tell: ukbfetch takes its flags glued to their
values (``-a<key> -b<batch> -s<first line> -m<count>``), refuses more than 1000 files per call, checks the key file's
shape, writes ``<eid>_<field>_<instance>_<array>.zip`` into its current directory through a
``ukb<eid>_<field>_<instance>.tmp_bulk`` file renamed on success, prints "Fetched n/m datafiles" and writes a ``.lis``
file; ``dx download <path> -o <out>`` resolves the path in a project tree (``/Bulk/<Category>/<group>/<NN>/<name>``).
Both serve synthetic zips and can be told, per EID or per file stem, to fail transiently N times (a partial file left
behind and a non-zero exit), to serve a truncated file N times, or to miss the file. Each call appends its start and
end times to a log, from which a test computes the peak number of simultaneous calls.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

DX_FOLDERS = {20201: "/Bulk/Whole Body MRI/Dixon", 20158: "/Bulk/Whole Body DXA/DXA"}
PASSWORD = "Zq7" + "x" * 29 + "K9pL" * 8  # 64 characters, distinctive enough to search every output for

_COMMON = r'''
import json, os, sys, time
from pathlib import Path

STATE = Path(__STATE__)
TOOL = __TOOL__


def behaviour():
    path = STATE / "behaviour.json"
    return json.loads(path.read_text()) if path.exists() else {}


def fault(kind, eid, stem, rules):
    """True while this file has been asked for fewer times than the number of faults of this kind set for it."""
    limit = max(rules.get(kind, {}).get(key, 0) for key in (str(eid), stem))
    if limit <= 0:
        return False
    counter = STATE / "attempts" / f"{kind}-{stem}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    with open(counter, "a") as handle:
        handle.write(".")
    return counter.stat().st_size <= limit


def log_call(started, requested, outcome):
    record = {"tool": TOOL, "pid": os.getpid(), "start": started, "end": time.time(), "argv": sys.argv[1:],
              "cwd": os.getcwd(), "requested": requested, "outcome": outcome}
    with open(STATE / "calls.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
'''

_UKBFETCH = r'''
SERVED = Path(__SERVED__)
GLUED = "abdemos"  # flags that take a value, which ukbfetch wants glued to the flag: -a.ukbkey, not -a .ukbkey


def main(argv):
    started = time.time()
    rules = behaviour()
    options = {}
    for arg in argv:
        if len(arg) < 2 or arg[0] != "-":
            print(f"Unrecognised argument {arg!r}"); return 1
        flag, value = arg[1], arg[2:]
        if flag in GLUED and not value:
            print(f"Option -{flag} needs a value glued to it"); return 1
        options[flag] = value
    key = Path(options.get("a", ".ukbkey"))
    if not key.is_file():
        print(f"Unable to open authentication file {key}"); return 1
    key_lines = key.read_text().split()
    if len(key_lines) < 2 or len(key_lines[1]) not in (24, 64):
        print("Authentication string must be 24 or 64 characters"); return 1
    if rules.get("leak_key"):  # a misbehaving build that prints the key, last, where a reason would pick it up
        import atexit
        atexit.register(lambda: print(f"Authenticated {key_lines[0]} with {key_lines[1]}", file=sys.stderr))
    if "b" in options:
        first, count = int(options.get("s", "1")), int(options.get("m", "1000"))
        if count > 1000:
            print("Maximum-datafiles cannot exceed 1000"); return 1
        lines = [line.split() for line in Path(options["b"]).read_text().splitlines() if line.strip()]
        selected = lines[first - 1:first - 1 + count]
    else:
        selected = [[options.get("e", ""), options.get("d", "")]]
    requested = ["_".join(parts) for parts in selected]
    fetched = []
    for eid, datafile in selected:
        if not eid.isdigit():
            print("Invalid Encoded ID"); log_call(started, requested, "bad batch file"); return 1
        if datafile.count("_") != 2:
            print("Missing underscore/dot after Instance index")
            log_call(started, requested, "bad batch file")
            return 1
        stem = f"{eid}_{datafile}"
        time.sleep(rules.get("sleep_per_file", 0.0))
        source = SERVED / f"{stem}.zip"
        if stem in rules.get("missing", []) or eid in rules.get("missing", []) or not source.exists():
            print(f"Datafile {eid} {datafile} is not available")
            continue
        data = source.read_bytes()
        field, instance = datafile.split("_")[:2]
        tmp = Path(f"ukb{eid}_{field}_{instance}.tmp_bulk")
        if fault("transient", eid, stem, rules):
            tmp.write_bytes(data[: len(data) // 2])
            print(f"Error fetching {eid} {datafile}: connection reset by peer")
            log_call(started, requested, "transient error")
            return 2
        served = data[: len(data) // 2] if fault("truncate", eid, stem, rules) else data
        tmp.write_bytes(served)
        os.replace(tmp, f"{stem}.zip")
        fetched.append(stem)
    Path(options.get("o", "fetched") + ".lis").write_text("".join(f"{stem}.zip\n" for stem in fetched))
    print(f"Fetched {len(fetched)}/{len(selected)} datafiles")
    print("Download has been logged against IP address 127.0.0.1")
    log_call(started, requested, "ok")
    return 0


sys.exit(main(sys.argv[1:]))
'''

_DX = r'''
PROJECT = Path(__PROJECT__)


def main(argv):
    started = time.time()
    rules = behaviour()
    if not argv or argv[0] != "download":
        print("usage: dx download [-h] [-o OUTPUT] [-f] [--no-progress] path [path ...]", file=sys.stderr); return 2
    paths, output, overwrite, rest = [], None, False, argv[1:]
    while rest:
        arg = rest.pop(0)
        if arg in ("-o", "--output"):
            output = rest.pop(0)
        elif arg in ("-f", "--overwrite"):
            overwrite = True
        elif arg == "--no-progress":
            pass
        elif arg.startswith("-"):
            print(f"dx download: error: unrecognized arguments: {arg}", file=sys.stderr); return 2
        else:
            paths.append(arg)
    if len(paths) != 1:
        print("this fake fetches one path per call", file=sys.stderr); return 2
    remote = paths[0].split(":", 1)[-1]
    name = remote.rsplit("/", 1)[-1]
    stem = name.split(".")[0]
    eid = stem.split("_")[0]
    log_requested = [stem]
    time.sleep(rules.get("sleep_per_file", 0.0))
    source = PROJECT / remote.lstrip("/")
    if stem in rules.get("missing", []) or eid in rules.get("missing", []) or not source.is_file():
        print(f'dxpy.utils.resolver.ResolutionError: Unable to resolve "{paths[0]}" to a data object', file=sys.stderr)
        log_call(started, log_requested, "missing"); return 3
    target = Path(output or name)
    if target.is_dir():
        target = target / name
    if target.exists() and not overwrite:
        print(f'Error: path "{target}" already exists but -f/--overwrite was not set', file=sys.stderr); return 3
    data = source.read_bytes()
    if fault("transient", eid, stem, rules):
        target.write_bytes(data[: len(data) // 3])
        print("dxpy.exceptions.DXHTTPError: connection reset while downloading", file=sys.stderr)
        log_call(started, log_requested, "transient error"); return 1
    target.write_bytes(data[: len(data) // 2] if fault("truncate", eid, stem, rules) else data)
    log_call(started, log_requested, "ok")
    return 0


sys.exit(main(sys.argv[1:]))
'''


def synthetic_zip(stem: str, *, kilobytes: int = 24) -> bytes:
    """A small zip shaped like a bulk file (DICOM-named members and a ``manifest.cvs``), different for every stem."""
    generator = random.Random(stem)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.cvs", f"filename,patientid\n{stem}.dcm,{stem.split('_')[0]}\n")
        for index in range(3):
            archive.writestr(f"1.2.840.{index}.dcm", generator.randbytes(kilobytes * 1024 // 3))
    return buffer.getvalue()


def _script(tool: str, body: str, **paths: Path) -> str:
    text = f"#!{sys.executable}\n" + _COMMON + body
    text = text.replace("__STATE__", repr(str(paths.pop("state")))).replace("__TOOL__", repr(tool))
    for name, path in paths.items():
        text = text.replace(f"__{name.upper()}__", repr(str(path)))
    return text


@dataclass
class FakeTools:
    """Fake ``ukbfetch`` and ``dx`` in ``bin_dir`` (put it first on PATH), the files they serve, and their log."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def served(self) -> Path:
        return self.root / "served"

    @property
    def project(self) -> Path:
        return self.root / "project"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def install(self) -> FakeTools:
        for folder in (self.bin_dir, self.served, self.project, self.state):
            folder.mkdir(parents=True, exist_ok=True)
        scripts = {
            "ukbfetch": _script("ukbfetch", _UKBFETCH, state=self.state, served=self.served),
            "dx": _script("dx", _DX, state=self.state, project=self.project),
        }
        for name, text in scripts.items():
            path = self.bin_dir / name
            path.write_text(text)
            path.chmod(0o755)
        return self

    def publish(self, stems: Iterable[str], *, dx_folders: Mapping[int, str] = DX_FOLDERS) -> dict[str, bytes]:
        """Serve a synthetic zip for each stem, flat for ukbfetch and in the project tree for dx."""
        served = {}
        for stem in stems:
            data = synthetic_zip(stem)
            (self.served / f"{stem}.zip").write_bytes(data)
            field = int(stem.split("_")[1])
            if field in dx_folders:
                folder = self.project / dx_folders[field].lstrip("/") / stem[:2]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{stem}.zip").write_bytes(data)
            served[stem] = data
        return served

    def behave(
        self,
        *,
        sleep_per_file: float = 0.0,
        transient: Mapping[str | int, int] | None = None,
        truncate: Mapping[str | int, int] | None = None,
        missing: Iterable[str | int] = (),
        leak_key: bool = False,
    ) -> None:
        """Set the faults (keys are EIDs or stems; values how many requests of that file fail that way)."""
        rules = {
            "sleep_per_file": sleep_per_file,
            "transient": {str(key): n for key, n in (transient or {}).items()},
            "truncate": {str(key): n for key, n in (truncate or {}).items()},
            "missing": [str(key) for key in missing],
            "leak_key": leak_key,
        }
        (self.state / "behaviour.json").write_text(json.dumps(rules))

    def calls(self, tool: str | None = None) -> list[dict]:
        log = self.state / "calls.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [record for record in records if tool is None or record["tool"] == tool]

    def requested(self, tool: str | None = None) -> list[str]:
        """Every stem asked for, in call order, once per call that asked."""
        return [stem for record in self.calls(tool) for stem in record["requested"]]

    def peak_concurrency(self, tool: str | None = None) -> int:
        """The largest number of calls that ran at the same time."""
        events = sorted(
            [(call["start"], 1) for call in self.calls(tool)] + [(call["end"], -1) for call in self.calls(tool)],
            key=lambda event: (event[0], event[1]),  # an end before a start at the same instant
        )
        running = peak = 0
        for _, change in events:
            running += change
            peak = max(peak, running)
        return peak

    def path_with_fakes_first(self) -> str:
        return os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")])


def write_key_file(path: Path, *, application: str = "12345", password: str = PASSWORD, mode: int = 0o600) -> Path:
    path.write_text(f"{application}\n{password}\n")
    path.chmod(mode)
    return path
