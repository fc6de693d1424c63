"""The root of edgeperf's user-facing errors, at the bottom layer so every layer can raise them.

``devices`` imports nothing from ``agent`` or ``controller``; ``agent.errors`` re-exports these, so
a CLI that catches ``EdgeperfError`` catches a power meter's error as well as a bad model's.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INVALID_RUN = 4


class EdgeperfError(Exception):
    """Base of all errors that are the user's to fix: the message names the problem and the fix."""

    exit_code = EXIT_USAGE
