"""Ansible callback: a per-host JSON summary of a flash or status run for ``edgeperf fleet``.

The controller prints its own table from this file instead of parsing Ansible's text output:
counts per host, the names of tasks that changed (the drift, in check mode), the first failure
with its message, and the ``edgeperf_report`` fact the role sets at its end. Results of tasks
marked ``no_log`` are never looked at, so a key's content cannot reach the summary.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: edgeperf_summary
    type: aggregate
    short_description: per-host JSON summary for edgeperf fleet
    description: Writes the summary to the file named by EDGEPERF_FLASH_SUMMARY when the playbook ends.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgeperf_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, dict] = {}

    def _host(self, result) -> dict:
        name = result._host.get_name()
        return self.hosts.setdefault(name, {"ok": 0, "changed": 0, "failed": 0, "unreachable": False,
                                            "changed_tasks": [], "failure": None, "report": None})

    def v2_runner_on_ok(self, result) -> None:
        host = self._host(result)
        host["ok"] += 1
        if result._result.get("changed"):
            host["changed"] += 1
            if _name(result) not in host["changed_tasks"]:
                host["changed_tasks"].append(_name(result))
        if not result._task.no_log:
            report = result._result.get("ansible_facts", {}).get("edgeperf_report")
            if report is not None:
                host["report"] = report

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        if ignore_errors:
            return
        host = self._host(result)
        host["failed"] += 1
        if host["failure"] is None:
            message = "output hidden (no_log)" if result._task.no_log else _message(result._result)
            host["failure"] = {"task": _name(result), "message": message}

    def v2_runner_on_unreachable(self, result) -> None:
        host = self._host(result)
        host["unreachable"] = True
        host["failure"] = {"task": "connect", "message": _message(result._result)}

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("EDGEPERF_FLASH_SUMMARY")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.hosts, f, indent=1, default=str)


def _name(result) -> str:
    """The task's own name, without the "edgeperf_agent : " role prefix Ansible puts in its output."""
    return result._task.name or result._task.get_name()


def _message(result: dict) -> str:
    """The most useful single line Ansible gives for a failure: its message and the last line of stderr.

    A module that could not even start (a wrong ``python:``) is reported by ``setup`` as
    "the following modules failed", with the shell's own error inside ``failed_modules``.
    """
    failed = result.get("failed_modules")
    if isinstance(failed, dict) and failed:
        name, inner = next(iter(failed.items()))
        return f"{name}: {_message(inner)}"
    msg = " ".join(line.strip() for line in str(result.get("msg") or "").splitlines() if line.strip())
    detail = ""
    for key in ("module_stderr", "stderr", "module_stdout", "stdout"):
        lines = [line.strip() for line in str(result.get(key) or "").splitlines() if line.strip()]
        if lines:
            detail = lines[-1]
            break
    return ": ".join(part for part in (msg, detail) if part) or "failed without a message"
