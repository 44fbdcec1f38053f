"""Errors the user can act on; the CLI prints them in one line, the GUI in a dialog."""

from __future__ import annotations


class StudioError(Exception):
    """A problem with the user's input, explained in a sentence they can act on."""


class UntrustedCodeError(StudioError):
    """Loading would run code the user did not name (a pickle, a folder's own code, the Python file
    a compressed folder points to); it needs an explicit opt-in each time. `option` is the
    LoadRequest field that gives it (`trust` or `trust_remote_code`); the CLI flag is its dashed form."""

    def __init__(self, message: str, option: str = "trust") -> None:
        super().__init__(message)
        self.option = option


class UntrustedPickleError(UntrustedCodeError):
    """The file is a pickle that could run code; loading needs an explicit opt-in."""


class InputSpecError(StudioError):
    """The input spec text cannot be parsed."""
