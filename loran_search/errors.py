"""The one base of every error loran-search shows to a user, and the exit codes.

Every domain error (a bad study file, an unknown asset, a storage that cannot be opened, a
training run that cannot start, ...) derives from :class:`LoranSearchError`. It carries the exit
code the command line returns for it and, optionally, a ``fix``: one sentence saying what to do.
The command layer (:mod:`loran_search.cli`) maps errors to exit codes in one place and prints
them without a traceback; nothing below it needs to know about exit codes beyond the class it
raises.

The :mod:`activations` package stays independent of ``loran_search`` (the registry knows no
training), so its :class:`activations.ActivationError` is not a subclass; the command layer maps
it to :data:`EXIT_BAD_INPUT` beside this hierarchy.

This module imports only the standard library: the CLI imports it at start-up.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # a run-time failure: an outage, a crash of the trainer, a failed build
EXIT_BAD_INPUT = 2  # usage, configuration or validation errors: fix the input and re-run
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)


class LoranSearchError(Exception):
    """An error to show the user without a traceback.

    Args:
        message: What is wrong and where (a file and line, a key, a URL with its password
            masked).
        fix: What to do about it, in one sentence; appended to the message when shown.
        exit_code: The process exit code for this error; defaults to the class's
            ``exit_code`` (:data:`EXIT_BAD_INPUT` unless a subclass says otherwise).
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str = "", *, fix: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def code(self) -> int:
        """Alias of :attr:`exit_code` (the name the first release's ``CliError`` used)."""
        return self.exit_code

    def __str__(self) -> str:
        message = super().__str__()
        if self.fix and self.fix not in message:
            return f"{message} {self.fix}" if message else self.fix
        return message


class UsageError(LoranSearchError):
    """Bad command-line usage or input that is not a study file (exit 2)."""


class RuntimeFailure(LoranSearchError):
    """Something failed while running, not because of the input (exit 1)."""

    exit_code = EXIT_FAILURE


class Interrupted(LoranSearchError):
    """The user stopped the command (Ctrl-C or SIGTERM); the work done so far is kept."""

    exit_code = EXIT_INTERRUPTED
