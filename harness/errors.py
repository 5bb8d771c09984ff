"""What users see when something is wrong: a message that says what and what to do."""

from __future__ import annotations

import warnings


class HarnessError(Exception):
    """An error whose message is meant for the user, shown without a traceback by the CLI."""


class HarnessWarning(UserWarning):
    """Something the user should know that does not stop the work (a tracker that is off)."""


_python_format = warnings.formatwarning


def _format(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, HarnessWarning):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


def one_line_warnings() -> None:
    """Show ``HarnessWarning``s as one ``warning: ...`` line, without Python's source line.

    Other warnings keep Python's format: they are for developers, and their source matters.
    """
    warnings.formatwarning = _format
