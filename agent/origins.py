"""Where an agent may download model artifacts from: the controller's origin, nothing else.

A job names its model by URL, and anyone who can publish on a device's ``jobs`` topic (a loose
broker ACL, a stray laptop on the lab network) could point the agent anywhere: at an internal
web service (the agent becomes a request forwarder), at a huge or endlessly slow download. The
sha256 check stops a substituted model from being *loaded*, not the request from being *made*.
So the agent compares the URL's origin with a short allow list before any request.

The list is the ``artifact_origins`` setting (``scheme://host[:port]``; without a port any port
on that host is allowed). When it is empty the allowed origin is the broker's host over http or
https on any port, because the controller's artifact server usually runs beside its broker; a
controller elsewhere needs ``artifact_origins``. Hosts are compared as written (lower-cased):
``localhost`` and ``127.0.0.1`` are different origins, as they are for a browser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from agent.errors import SettingsError

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """An allowed origin; ``scheme`` None allows http and https, ``port`` None allows every port."""

    scheme: str | None
    host: str  # lower case; an IPv6 literal without brackets
    port: int | None = None

    def allows(self, scheme: str, host: str, port: int) -> bool:
        return self.scheme in (None, scheme) and self.host == host and self.port in (None, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None:
            return f"{self.scheme or 'http(s)'}://{host} any port"
        return f"{self.scheme or 'http(s)'}://{host}:{self.port}"


def split_origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL, the port made explicit; None for anything doubtful.

    URLs with user info, backslashes, spaces or non-ASCII characters are refused outright: parsers
    disagree about where their host is (``http://lab\\@evil/``), and the controller never sends them.
    """
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() or c == "\\" or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def parse_origin(text: str) -> Origin:
    """``http://lab:8765``, ``https://controller.example``, ``http://[fd00::1]:8765`` (no path, no user)."""
    split = split_origin(text)
    if split is None or (parts := urlsplit(text)).path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError(f"artifact origin {text!r} is not scheme://host[:port]; write e.g. http://controller:8765")
    return Origin(split[0], split[1], parts.port)


def resolve(configured: Iterable[str], broker_host: str) -> tuple[Origin, ...]:
    """The configured origins, or by default the broker's host over http(s) on any port."""
    origins = tuple(parse_origin(text) for text in configured)
    return origins or (Origin(None, broker_host.lower()),)


def allowed(url: str, origins: Iterable[Origin]) -> bool:
    """True only if ``url`` is a plain http(s) URL on one of ``origins``."""
    split = split_origin(url)
    return split is not None and any(origin.allows(*split) for origin in origins)


def describe(origins: Iterable[Origin]) -> str:
    return ", ".join(str(o) for o in origins)


def refusal(url: str, origins: Iterable[Origin]) -> str | None:
    """The one-line reason a job's artifact URL may not be fetched, or None when it may."""
    origins = tuple(origins)
    split = split_origin(url)
    if split is None:
        redacted = re.sub(r"//[^/@]*@", "//***@", str(url)[:200])  # a password in a foreign URL is still a password
        return f"artifact URL {redacted!r} is not a plain http(s) URL; the controller sends http://host:port/artifacts/<sha256>"
    if any(origin.allows(*split) for origin in origins):
        return None
    scheme, host, port = split
    host = f"[{host}]" if ":" in host else host
    where = f"{scheme}://{host}:{port}{urlsplit(url).path[:160]}"  # no query or user info in the log
    return (
        f"artifact URL {where} is not from the controller origin (allowed: {describe(origins)}); "
        "set artifact_origins in agent.toml"
    )
