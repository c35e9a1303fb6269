"""The project's own error types, and the exit code each kind of failure ends a run with.

Everything that reads an input raises :class:`InputError` with a one-line reason, so a stage can record the reason in
its manifest and carry on with the other inputs. What stops a whole run is one of the other types here; the command
line turns each into one line and an exit code (:func:`exit_code_for`) that scripts can tell apart.
"""

from __future__ import annotations

# Exit codes of ``ukbb-pipeline`` / ``python main.py`` (documented in the README, "Exit codes").
EXIT_OK = 0
EXIT_INPUTS_FAILED = 1  # the run finished, some inputs failed (their reasons are in the manifest)
EXIT_CONFIG = 2  # bad configuration or usage: nothing was processed
EXIT_ENVIRONMENT = 3  # the output folder or the machine: a full disk, no permission, a missing tool or package
EXIT_BUG = 4  # an unexpected error: a bug (the traceback is printed; please report it)


class InputError(Exception):
    """An input that cannot be processed; the message is the one-line reason shown in the manifest and the log."""


class StageFailed(RuntimeError):
    """Raised at the end of a stage (after its manifest is written) when some inputs failed."""


class OutputError(RuntimeError):
    """The output folder cannot be written (full disk, read-only, no permission): the run stops with this reason."""


class ConfigError(ValueError):
    """A setting that cannot work (out of range, unknown key, missing folder or file): refused before any work."""


class EnvironmentProblem(RuntimeError):
    """Something the machine lacks (a tool, an optional package): the message says how to get it."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT (scancel, the end of a job's time, Ctrl-C): the run stops, its manifest flushed.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` takes it for one input's failure. The
    run ends with exit code 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as shells report it.
    """

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        self.name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code_for(error: BaseException) -> int | None:
    """The exit code for an error that ends a run with one line, or None for an unexpected error (a bug).

    A ``ValueError`` that reaches the top is a refused setting (the stages check theirs with ``ValueError`` before any
    work), a ``FileNotFoundError`` a path that does not exist; a missing tool (``ToolNotFound``) is the machine's.
    """
    if isinstance(error, StageFailed):
        return EXIT_INPUTS_FAILED
    if isinstance(error, (OutputError, EnvironmentProblem, ImportError)) or type(error).__name__ == "ToolNotFound":
        return EXIT_ENVIRONMENT
    if isinstance(error, (ConfigError, ValueError, FileNotFoundError, InputError)):  # InputError here: an EID list
        return EXIT_CONFIG
    return None
