"""Errors the user can act on; the CLI prints them in one line, the GUI in a dialog."""

from __future__ import annotations


class StudioError(Exception):
    """A problem with the user's input, explained in a sentence they can act on."""


class UntrustedPickleError(StudioError):
    """The file is a pickle that could run code; loading needs an explicit opt-in."""


class InputSpecError(StudioError):
    """The input spec text cannot be parsed."""
