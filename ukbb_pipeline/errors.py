"""The project's own error types.

Everything that reads an input raises :class:`InputError` with a one-line reason, so a stage can record the reason in
its manifest and carry on with the other inputs.
"""

from __future__ import annotations


class InputError(Exception):
    """An input that cannot be processed; the message is the one-line reason shown in the manifest and the log."""


class StageFailed(RuntimeError):
    """Raised at the end of a stage (after its manifest is written) when some inputs failed."""


class OutputError(RuntimeError):
    """The output folder cannot be written (full disk, read-only, no permission): the run stops with this reason."""
