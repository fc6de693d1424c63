"""User-facing errors and the exit codes the CLIs map them to.

Every mistake a user can make (a missing model, a runtime that is not installed, a dataset that
does not fit the model) raises one of these with a message that names the problem and the fix.
The CLIs print that one line and exit with ``exit_code``; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from devices.errors import EXIT_INTERNAL, EXIT_INVALID_RUN, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EdgeperfError

__all__ = ["EXIT_INTERNAL", "EXIT_INVALID_RUN", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "EdgeperfError"]


class ModelError(EdgeperfError):
    """The model file is missing, unreadable, corrupt or of an unknown kind."""


class RuntimeMissing(EdgeperfError):
    """The runtime a model needs is not installed; the message names the extra to install."""


class PlatformUnsupported(EdgeperfError):
    """The runtime exists but cannot run on this operating system (Core ML on Linux)."""


class DatasetError(EdgeperfError):
    """The dataset is unknown, unavailable, or does not fit the model's inputs."""


class SettingsError(EdgeperfError):
    """An unknown scenario, mode, profile or engine, or contradictory run settings."""


class InferenceError(EdgeperfError):
    """The model failed while running on the inputs it was given (a Reshape that does not fit them,
    a value a graph branch cannot take): the run cannot measure it, and no retry will help."""
