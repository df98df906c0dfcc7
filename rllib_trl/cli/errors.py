"""Bad input on the command line: one clear line, exit code 2."""

from __future__ import annotations


class UsageError(Exception):
    """Raised for bad user input; the CLI prints ``rllib-trl: error: <message>`` and exits 2."""
