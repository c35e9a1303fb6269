#!/usr/bin/env python3
"""A drop-in fake of dx-toolkit's ``dx`` client and of the platform behind it, for tests without the platform.

Written from dx-toolkit's own source and docs (github dnanexus/dx-toolkit, ``src/python/dxpy/scripts/dx.py``,
``cli/parsers.py``, ``cli/exec_io.py``, ``bindings/dxjob.py``, ``utils/describe.py``, ``utils/exec_utils.py``) and
dnanexus/dxfuse (``README.md``, ``doc/Internals.md``, ``prefetch.go``), not from the launcher's code:

- ``dx build DIR --destination P:/folder/name``: reads ``DIR/dxapp.json`` and prints ``{"id": "applet-..."}`` (as
  ``dx_build_app`` does when not asked for the object dump).
- ``dx run APPLET -iNAME=VALUE ... [--destination P:/f] [--instance-type T] [--priority low|normal|high]
  [--cost-limit N] [--name N] [--tag T] [--property K=V] [-y] [--brief]``: an input named twice in an ``array:``
  input appends (``exec_io.ExecutableInputs.add``); ``--brief`` prints the job id only. The job starts at once.
- ``dx describe --json ID``: a job's ``id, class, state, try, name, tags, properties, priority, instanceType,
  folder, project, failureReason, failureMessage, created, startedRunning, stoppedRunning``; a file's ``id, class,
  project, folder, name, state, size, properties, tags, created``. Job states: idle, runnable, running, done,
  failed, terminated, restartable.
- ``dx wait JOB...``: polls until every job is done; a failed job ends it with exit 3 and
  ``Job has failed because of <failureReason>: <failureMessage>`` (``DXJob.wait_on_done``, ``err_exit``).
- ``dx upload FILE --path P:/folder/[name] [--parents] [--property K=V] [--tag T] [--brief] [--no-progress]``: a
  new immutable, closed file object every time; several files may share one folder and name.
- ``dx find data [--class file] [--property K=V] [--name N [--name-mode exact|glob]] [--path P:/folder]
  [--norecurse] [--json|--brief]``: ``--json`` gives ``[{"project", "id", "describe": {id, class, folder, length?,
  modified, name, project, size, state}}]`` (``get_ls_l_desc_fields``: no properties).
- ``dx download ID|P:ID|P:/path -o OUT [-f] [--no-progress]``, ``dx rm [-a] ID...``, ``dx terminate JOB...``.

Jobs run as local processes: a bash applet is sourced and its ``main`` called, with each input as a shell variable
(an ``array:`` input as a bash array) and ``job_input.json``, ``DX_JOB_ID``, ``DX_PROJECT_CONTEXT_ID``,
``DX_WORKSPACE_ID`` and ``HOME`` set, in a fresh working folder. Each try sees a read-only snapshot of the project
as it was when the try started, laid out as dxfuse lays it out (a second file of one name at ``1/<name>``, a third
at ``2/<name>``). Its path is fixed on the platform (``/mnt/project``) but cannot be here: it is given to the job in
``UKBB_RAP_PROJECT_MOUNT``, the one variable the real platform does not set. Tests run as root, so the snapshot's
modes do not stop writes: a job that changed its snapshot fails, naming the path, as it would with EROFS.

Spot interruptions: with ``{"interrupt_after_uploads": N}`` in ``<store>/config.json``, the first try of a
``--priority low`` job is killed after its N-th upload and, when its dxapp.json says
``executionPolicy.restartOn.SpotInstanceInterruption``, restarted as try 1 (state ``restartable`` in between).

The store is the folder in ``FAKE_DX_STORE``: objects/<id>.json, blobs/<id>, jobs/<id>.json, jobs/<id>/ (the job's
home, snapshot and log).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ALPHABET = "0123456789BFGJKPQVXYZbfgjkpqvxyz"  # the characters of platform object ids
TERMINAL = ("done", "failed", "terminated")


def store() -> Path:
    return Path(os.environ["FAKE_DX_STORE"])


def new_id(kind: str) -> str:
    return f"{kind}-" + "".join(random.choice(ALPHABET) for _ in range(24))


def now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.contextmanager
def locked():
    fd = os.open(store() / "lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def objects() -> list[dict]:
    return sorted((read_json(p) for p in (store() / "objects").glob("*.json")), key=lambda o: o["created"])


def fail(message: str, code: int = 3) -> int:
    print(message, file=sys.stderr)
    return code


def default_project() -> str:
    return os.environ.get("DX_PROJECT_CONTEXT_ID") or read_json(store() / "config.json")["project"]


def split_path(text: str) -> tuple[str, str]:
    """``project:/folder/name`` (or ``/folder/name``) -> (project, path)."""
    if ":" in text and text.split(":", 1)[0].startswith("project-"):
        project, path = text.split(":", 1)
        return project, path or "/"
    return default_project(), text


def resolve(text: str) -> dict | None:
    """An object by id (``file-...``, ``project-...:file-...``, a ``$dnanexus_link``) or by path (the newest of
    that name)."""
    if text.startswith("{"):
        text = json.loads(text)["$dnanexus_link"]
        text = text if isinstance(text, str) else text["id"]
    project, path = split_path(text)
    if "-" in path and path.split("-", 1)[0] in ("file", "applet", "record"):
        found = store() / "objects" / f"{path}.json"
        return read_json(found) if found.exists() else None
    folder, name = path.rsplit("/", 1)
    matches = [o for o in objects() if o["project"] == project and o["folder"] == (folder or "/") and o["name"] == name]
    return matches[-1] if matches else None


def add_object(kind: str, *, project: str, folder: str, name: str, source: Path | None,
               properties: dict, tags: list, extra: dict | None = None) -> dict:
    obj = {"id": new_id(kind), "class": kind, "project": project, "folder": folder.rstrip("/") or "/", "name": name,
           "state": "closed", "properties": properties, "tags": tags, "created": now_ms(), "modified": now_ms(),
           **(extra or {})}
    blob = store() / "blobs" / obj["id"]
    blob.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copyfile(source, blob)
        blob.chmod(0o444)  # immutable
        obj["size"] = blob.stat().st_size
    with locked():
        write_json(store() / "objects" / f"{obj['id']}.json", obj)
    return obj


def key_values(pairs: list[str] | None) -> dict:
    return dict(pair.split("=", 1) for pair in pairs or [])


# --- data commands ------------------------------------------------------------------------------------------------

def cmd_upload(args: argparse.Namespace) -> int:
    for filename in args.filename:
        project, path = split_path(args.path or "/")
        folder, name = (path, Path(filename).name) if path.endswith("/") else path.rsplit("/", 1)
        obj = add_object("file", project=project, folder=folder, name=name, source=Path(filename),
                         properties=key_values(args.property), tags=args.tag or [])
        print(obj["id"] if args.brief else json.dumps(obj), flush=True)
        spot_interruption_check()
    return 0


def cmd_find_data(args: argparse.Namespace) -> int:
    project, folder = split_path(args.path or "/")
    wanted = key_values(args.property)
    found = []
    for obj in objects():
        inside = obj["folder"] == folder.rstrip("/") or (not args.norecurse and (
            folder in ("/", "") or obj["folder"].startswith(folder.rstrip("/") + "/")))
        if obj["project"] != project or not inside or (args.classname and obj["class"] != args.classname):
            continue
        if any(obj["properties"].get(key) != value for key, value in wanted.items()):
            continue
        if args.name and not (obj["name"] == args.name if args.name_mode == "exact"
                              else Path(obj["name"]).match(args.name)):
            continue
        fields = ("id", "class", "folder", "modified", "name", "project", "size", "state")
        found.append({"project": obj["project"], "id": obj["id"],
                      "describe": {key: obj[key] for key in fields if key in obj}})
    if args.json:
        print(json.dumps(found, indent=4))
    else:
        for item in found:
            print(f"{item['project']}:{item['id']}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    for path in args.paths:
        obj = resolve(path)
        if obj is None or obj["class"] != "file":
            return fail(f'dxpy.utils.resolver.ResolutionError: Unable to resolve "{path}" to a data object')
        target = Path(args.output or obj["name"])
        if target.is_dir():
            target = target / obj["name"]
        if target.exists() and not args.overwrite:
            return fail(f"Error: path {target} already exists but -f/--overwrite was not set")
        shutil.copyfile(store() / "blobs" / obj["id"], target)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    for path in args.paths:
        obj = resolve(path)
        if obj is None:
            return fail(f'dxpy.utils.resolver.ResolutionError: Unable to resolve "{path}"')
        with locked():
            (store() / "objects" / f"{obj['id']}.json").unlink()
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    if args.path.startswith("job-"):
        path = store() / "jobs" / f"{args.path}.json"
        if not path.exists():
            return fail(f'dxpy.exceptions.ResourceNotFound: "{args.path}" is not a recognized ID')
        desc = read_json(path)
    else:
        desc = resolve(args.path)
        if desc is None:
            return fail(f'dxpy.utils.resolver.ResolutionError: Unable to resolve "{args.path}"')
    print(json.dumps(desc, indent=4) if args.json else "\n".join(f"{k}  {v}" for k, v in desc.items()))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    source = Path(args.src_dir)
    spec = json.loads((source / "dxapp.json").read_text())
    project, path = split_path(args.destination or f"/{spec['name']}")
    folder, name = path.rsplit("/", 1) if not path.endswith("/") else (path, spec["name"])
    obj = add_object("applet", project=project, folder=folder, name=name or spec["name"], source=None,
                     properties={}, tags=[], extra={"spec": spec})
    shutil.copytree(source, store() / "blobs" / obj["id"], dirs_exist_ok=True)
    print(json.dumps({"id": obj["id"]}))
    return 0


# --- jobs -------------------------------------------------------------------------------------------------------

def job_path(job_id: str) -> Path:
    return store() / "jobs" / f"{job_id}.json"


def update_job(job_id: str, **changes) -> dict:
    with locked():
        job = read_json(job_path(job_id))
        job.update(changes)
        write_json(job_path(job_id), job)
    return job


def cmd_run(args: argparse.Namespace) -> int:
    applet = resolve(args.executable)
    if applet is None or applet["class"] != "applet":
        return fail(f'dxpy.utils.resolver.ResolutionError: Unable to resolve "{args.executable}"')
    spec = {item["name"]: item for item in applet["spec"].get("inputSpec", [])}
    inputs: dict = {}
    for keyeqval in args.input or []:
        name, value = keyeqval.split("=", 1)
        if name not in spec:
            return fail(f'Input field called "{name}" was not found in the input spec')
        kind = spec[name]["class"]
        if kind.startswith("array:"):
            inputs.setdefault(name, []).append(value)
        elif kind == "file":
            obj = resolve(value)
            if obj is None:
                return fail(f'Unable to resolve "{value}" to a data object')
            inputs[name] = {"$dnanexus_link": obj["id"]}
        elif kind in ("int", "float"):
            inputs[name] = json.loads(value)
        elif kind == "boolean":
            inputs[name] = value.lower() in ("true", "t", "yes", "1")
        else:
            inputs[name] = value
    missing = [n for n, item in spec.items() if not item.get("optional") and n not in inputs and "default" not in item]
    if missing:
        return fail(f"Some inputs ({', '.join(missing)}) are missing, and interactive mode is not available")
    project, folder = split_path(args.folder or "/")
    job_id = new_id("job")
    job = {"id": job_id, "class": "job", "state": "idle", "try": 0, "name": args.name or applet["name"],
           "executable": applet["id"], "applet": applet["id"], "project": project, "folder": folder.rstrip("/") or "/",
           "tags": args.tag or [], "properties": key_values(args.property), "priority": args.priority or "normal",
           "instanceType": args.instance_type, "costLimit": args.cost_limit, "input": inputs,
           "created": now_ms()}
    write_json(job_path(job_id), job)
    subprocess.Popen([sys.executable, __file__, "_supervise", job_id], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job_id if args.brief else f"Job ID: {job_id}")
    return 0


def snapshot(project: str, mount: Path) -> dict[str, tuple[int, int]]:
    """The project's files as dxfuse shows them, hard-linked (files are immutable); returns what it laid out."""
    seen: dict[tuple[str, str], int] = {}
    for obj in objects():
        if obj["project"] != project or obj["class"] != "file":
            continue
        copies = seen.get((obj["folder"], obj["name"]), 0)
        seen[obj["folder"], obj["name"]] = copies + 1
        folder = mount / obj["folder"].lstrip("/") / (str(copies) if copies else "")
        folder.mkdir(parents=True, exist_ok=True)
        os.link(store() / "blobs" / obj["id"], folder / obj["name"])
    return listing(mount)


def listing(mount: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in mount.rglob("*") if p.is_file()}


def bash_inputs(inputs: dict) -> str:
    lines = []
    for name, value in inputs.items():
        if isinstance(value, list):
            lines.append(f"{name}=({' '.join(shlex.quote(str(v)) for v in value)})")
        else:
            lines.append(f"{name}={shlex.quote(json.dumps(value) if isinstance(value, dict) else str(value))}")
    return "\n".join(lines)


def supervise(job_id: str) -> int:
    """Run the job's tries, one after another, recording its states."""
    update_job(job_id, state="runnable")
    while True:
        job = read_json(job_path(job_id))
        applet = read_json(store() / "objects" / f"{job['applet']}.json")
        home = store() / "jobs" / job_id / f"try{job['try']}" / "home"
        mount = home.parent / "mnt" / "project"
        home.mkdir(parents=True)
        mount.mkdir(parents=True)
        before = snapshot(job["project"], mount)
        (home / "job_input.json").write_text(json.dumps(job["input"]))
        source = store() / "blobs" / applet["id"]
        script = applet["spec"]["runSpec"]["file"]
        env = {**os.environ, "HOME": str(home), "DX_JOB_ID": job_id, "DX_PROJECT_CONTEXT_ID": job["project"],
               "DX_WORKSPACE_ID": new_id("container"), "UKBB_RAP_PROJECT_MOUNT": str(mount),
               "DX_RESOURCES_ID": applet["id"]}
        command = f"set -e\n{bash_inputs(job['input'])}\nsource {shlex.quote(str(source / script))}\nmain\n"
        with open(home.parent / "log", "w") as log:
            process = subprocess.Popen(["bash", "-c", command], cwd=home, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            update_job(job_id, state="running", startedRunning=now_ms(), pgid=process.pid)
            code = process.wait()
        job = read_json(job_path(job_id))
        if job.get("interrupted"):
            restarts = applet["spec"].get("executionPolicy", {}).get("restartOn", {})
            if job["try"] < (restarts.get("SpotInstanceInterruption") or restarts.get("*") or 0):
                update_job(job_id, state="restartable", interrupted=False, **{"try": job["try"] + 1})
                continue
            update_job(job_id, state="failed", failureReason="SpotInstanceInterruption",
                       failureMessage="The spot instance was interrupted", stoppedRunning=now_ms())
            return 0
        if job["state"] == "terminated":
            return 0
        changed = sorted(set(listing(mount).items()) ^ set(before.items()))
        if changed:
            update_job(job_id, state="failed", failureReason="AppError", stoppedRunning=now_ms(),
                       failureMessage=f"wrote to the read-only project mount: {changed[0][0]}")
        elif code == 0:
            update_job(job_id, state="done", stoppedRunning=now_ms())
        else:
            error = home / "job_error.json"
            reason, message = ("AppInternalError", "Error while running the command (refer to the job log for "
                               "more information)")
            if error.exists():
                found = json.loads(error.read_text())["error"]
                reason, message = found["type"], found["message"]
            update_job(job_id, state="failed", failureReason=reason, failureMessage=message, stoppedRunning=now_ms())
        return 0


def spot_interruption_check() -> None:
    """Inside a job's first try at low priority: after the configured number of uploads, the instance is lost."""
    job_id = os.environ.get("DX_JOB_ID")
    config = read_json(store() / "config.json")
    after = config.get("interrupt_after_uploads")
    if not job_id or not after:
        return
    job = read_json(job_path(job_id))
    if job["priority"] != "low" or job["try"] != 0:
        return
    count = job.get("uploads", 0) + 1
    job = update_job(job_id, uploads=count, interrupted=count >= after)
    if count >= after:
        os.killpg(job["pgid"], signal.SIGKILL)


def cmd_wait(args: argparse.Namespace) -> int:
    for job_id in args.path:
        print(f"Waiting for {job_id} to finish running...")
        while (job := read_json(job_path(job_id)))["state"] not in TERMINAL:
            time.sleep(0.2)
        if job["state"] == "failed":
            return fail(f"dxpy.exceptions.DXJobFailureError: Job has failed because of {job['failureReason']}: "
                        f"{job['failureMessage']}")
        if job["state"] == "terminated":
            return fail("dxpy.exceptions.DXJobFailureError: Job was terminated.")
        print("Done")
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    for job_id in args.jobid:
        job = update_job(job_id, state="terminated", failureReason="Terminated", stoppedRunning=now_ms())
        with contextlib.suppress(KeyError, ProcessLookupError):
            os.killpg(job["pgid"], signal.SIGTERM)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dx")
    commands = top.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload")
    upload.add_argument("filename", nargs="+")
    upload.add_argument("--path", "--destination")
    upload.add_argument("-p", "--parents", action="store_true")
    upload.add_argument("--property", action="append")
    upload.add_argument("--tag", action="append")
    upload.add_argument("--brief", action="store_true")
    upload.add_argument("--wait", action="store_true")
    upload.add_argument("--no-progress", action="store_true")
    upload.set_defaults(func=cmd_upload)
    find = commands.add_parser("find").add_subparsers(dest="what", required=True).add_parser("data")
    find.add_argument("--class", dest="classname")
    find.add_argument("--property", action="append")
    find.add_argument("--name")
    find.add_argument("--name-mode", default="glob", choices=["glob", "exact", "regexp"])
    find.add_argument("--path")
    find.add_argument("--norecurse", action="store_true")
    find.add_argument("--json", action="store_true")
    find.add_argument("--brief", action="store_true")
    find.set_defaults(func=cmd_find_data)
    download = commands.add_parser("download")
    download.add_argument("paths", nargs="+")
    download.add_argument("-o", "--output")
    download.add_argument("-f", "--overwrite", action="store_true")
    download.add_argument("--no-progress", action="store_true")
    download.set_defaults(func=cmd_download)
    rm = commands.add_parser("rm")
    rm.add_argument("paths", nargs="+")
    rm.add_argument("-a", "--all", action="store_true")
    rm.add_argument("-r", "--recursive", action="store_true")
    rm.set_defaults(func=cmd_rm)
    describe = commands.add_parser("describe")
    describe.add_argument("path")
    describe.add_argument("--json", action="store_true")
    describe.set_defaults(func=cmd_describe)
    build = commands.add_parser("build")
    build.add_argument("src_dir")
    build.add_argument("-d", "--destination")
    build.add_argument("-f", "--overwrite", action="store_true")
    build.set_defaults(func=cmd_build)
    run = commands.add_parser("run")
    run.add_argument("executable")
    run.add_argument("-i", "--input", action="append")
    run.add_argument("--destination", "--folder", dest="folder")
    run.add_argument("--instance-type")
    run.add_argument("--priority", choices=["low", "normal", "high"])
    run.add_argument("--cost-limit", type=float)
    run.add_argument("--name")
    run.add_argument("--tag", action="append")
    run.add_argument("--property", action="append")
    run.add_argument("-y", "--yes", action="store_true")
    run.add_argument("--brief", action="store_true")
    run.set_defaults(func=cmd_run)
    wait = commands.add_parser("wait")
    wait.add_argument("path", nargs="+")
    wait.set_defaults(func=cmd_wait)
    terminate = commands.add_parser("terminate")
    terminate.add_argument("jobid", nargs="+")
    terminate.set_defaults(func=cmd_terminate)
    return top


def main(argv: list[str]) -> int:
    if argv[:1] == ["_supervise"]:
        return supervise(argv[1])
    args = parser().parse_args(argv)
    return args.func(args)


# --- for the tests ----------------------------------------------------------------------------------------------

class FakePlatform:
    """The fake's store, its ``dx`` on PATH, and what tests ask of it."""

    def __init__(self, root: Path, *, project: str = "project-Gk1Q0Xj0ZpB4ZfK2p8YbQ3V7"):
        self.root, self.project = root, project
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(exist_ok=True)
        (root / "jobs").mkdir(exist_ok=True)
        write_json(root / "config.json", {"project": project})
        dx = self.bin / "dx"
        dx.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                      "import fake_dx\nsys.exit(fake_dx.main(sys.argv[1:]))\n")
        dx.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {"FAKE_DX_STORE": str(self.root), "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    def configure(self, **settings) -> None:
        write_json(self.root / "config.json", {"project": self.project, **settings})

    def seed(self, local: Path, folder: str, properties=lambda path: {}) -> None:
        """Import a local folder's files under ``folder`` (as UK Biobank dispenses bulk files)."""
        os.environ["FAKE_DX_STORE"] = str(self.root)
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.parent.relative_to(local).as_posix()
            add_object("file", project=self.project, folder=f"{folder.rstrip('/')}/{relative}".replace("/.", ""),
                       name=path.name, source=path, properties=properties(path), tags=[])

    def files(self, under: str = "/") -> list[dict]:
        os.environ["FAKE_DX_STORE"] = str(self.root)
        prefix = under.rstrip("/") + "/"
        return [o for o in objects() if o["class"] == "file" and (o["folder"] + "/").startswith(prefix)]

    def read(self, obj: dict) -> bytes:
        return (self.root / "blobs" / obj["id"]).read_bytes()

    def jobs(self) -> list[dict]:
        return sorted((read_json(p) for p in (self.root / "jobs").glob("*.json")), key=lambda j: j["created"])

    def log(self, job_id: str) -> str:
        return "\n".join(p.read_text() for p in sorted((self.root / "jobs" / job_id).glob("try*/log")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
