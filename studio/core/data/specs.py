"""The data specs the studio understands, listed once: the CLI's help, the window's combo boxes
and the error messages all read this (no torch here: the window lists them before torch loads)."""

from __future__ import annotations

# The forms a user types; ":PATH" takes a file or folder, "[:N]" an optional count.
SPEC_FORMS = ("sample", "digits", "random[:N]", "imagefolder:PATH", "csv:PATH", "tensors:PATH", "text:PATH")
DATA_SPECS = ", ".join(SPEC_FORMS)


def spec_choices() -> tuple[str, ...]:
    """The forms as a combo box offers them: "imagefolder:…" waits for a path."""
    return tuple(form.removesuffix("[:N]").replace(":PATH", ":…") for form in SPEC_FORMS)

