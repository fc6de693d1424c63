"""The adb device emulator's "stream gone" signal, shared by the transport (``adb_device``) and the
services it runs on a stream (``adb_sync``, ``adb_shell``).

Why a module of its own: the transport imports the services to serve them, and the services must
raise and catch this when the host hangs up mid-transfer or mid-command; defined here, neither has
to import the other's module back.
"""

from __future__ import annotations

__all__ = ["Closed"]


class Closed(Exception):
    """The stream or the whole connection is gone."""
