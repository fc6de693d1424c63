"""The artifact origin rule: a job may send the agent only to the controller's origin."""

from __future__ import annotations

import pytest

from agent import origins
from agent.errors import SettingsError
from agent.origins import Origin, allowed, parse_origin, refusal, resolve


def test_an_origin_without_a_port_allows_every_port_on_that_host_and_scheme():
    rule = [parse_origin("http://lab")]
    assert allowed("http://lab/artifacts/x", rule)
    assert allowed("http://lab:8765/artifacts/x", rule)
    assert allowed("http://LAB:1/artifacts/x", rule)  # host names are case-insensitive
    assert not allowed("https://lab:8765/artifacts/x", rule)  # the scheme is part of the origin
    assert not allowed("http://lab.evil:8765/artifacts/x", rule)
    assert not allowed("http://evil/lab", rule)


def test_an_origin_with_a_port_allows_only_that_port_and_default_ports_count():
    rule = [parse_origin("http://lab:8765"), parse_origin("https://store.example")]
    assert allowed("http://lab:8765/artifacts/x", rule)
    assert not allowed("http://lab:8766/artifacts/x", rule)
    assert not allowed("http://lab/artifacts/x", rule)  # port 80, not 8765
    assert allowed("http://lab:80/x", [parse_origin("http://lab:80")]) and allowed("http://lab/x", [parse_origin("http://lab:80")])
    assert allowed("https://store.example:443/m", [parse_origin("https://store.example:443")])
    assert allowed("https://store.example/m", rule)


def test_ipv6_literals():
    rule = [parse_origin("http://[fd00::1]:8765")]
    assert rule[0] == Origin("http", "fd00::1", 8765)
    assert allowed("http://[fd00::1]:8765/artifacts/x", rule)
    assert allowed("http://[FD00::1]:8765/artifacts/x", rule)
    assert not allowed("http://[fd00::2]:8765/artifacts/x", rule)
    assert not allowed("http://[fd00::1]:8766/artifacts/x", rule)
    assert str(rule[0]) == "http://[fd00::1]:8765"
    assert resolve([], "::1") == (Origin(None, "::1"),)
    assert allowed("https://[::1]:9/x", resolve([], "::1"))


def test_the_default_is_the_brokers_host_over_http_or_https_on_any_port():
    rule = resolve([], "Lab.local")
    assert rule == (Origin(None, "lab.local", None),)
    assert str(rule[0]) == "http(s)://lab.local any port"
    assert allowed("http://lab.local:8765/artifacts/x", rule) and allowed("https://lab.local/artifacts/x", rule)
    assert not allowed("http://127.0.0.1:8765/artifacts/x", rule)  # origins compare as written, like a browser
    assert not allowed("ftp://lab.local/x", rule)
    assert resolve(["http://other:1"], "lab.local") == (Origin("http", "other", 1),)  # configured origins replace it


@pytest.mark.parametrize(
    "url",
    [
        "http://lab@evil/artifacts/x",  # user info: "lab" is not the host
        "http://lab:pw@lab/artifacts/x",  # no credentials in artifact URLs at all
        "http://evil\\@lab/artifacts/x",  # parsers disagree on where this host is
        "http://lab/arti facts",
        "http://lab\n.evil/x",
        "http://låb/x",
        "http://lab:99999/x",
        "file:///etc/passwd",
        "lab/artifacts/x",
        "",
    ],
)
def test_doubtful_urls_are_never_allowed(url):
    rule = resolve([], "lab")
    assert not allowed(url, rule)
    reason = refusal(url, rule)
    assert reason and "not a plain http(s) URL" in reason and "pw@" not in reason and "\n" not in reason


def test_the_refusal_is_one_line_naming_the_url_the_rule_and_the_fix():
    rule = resolve([], "lab")
    assert refusal("http://lab:8765/artifacts/abc", rule) is None
    assert refusal("http://evil/artifacts/abc?secret=1", rule) == (
        "artifact URL http://evil:80/artifacts/abc is not from the controller origin (allowed: http(s)://lab any port); "
        "set artifact_origins in agent.toml"
    )
    two = [parse_origin("http://lab:8765"), parse_origin("https://[::1]")]
    assert "(allowed: http://lab:8765, https://[::1] any port)" in refusal("http://evil/x", two)
    assert origins.describe(two) == "http://lab:8765, https://[::1] any port"


@pytest.mark.parametrize(
    "text", ["lab:8765", "ftp://lab", "http://lab/artifacts", "http://user@lab", "http://lab?x=1", "http://", "http://lab:x", ""]
)
def test_a_bad_origin_setting_is_one_line_with_an_example(text):
    with pytest.raises(SettingsError) as info:
        parse_origin(text)
    assert str(info.value) == f"artifact origin {text!r} is not scheme://host[:port]; write e.g. http://controller:8765"
