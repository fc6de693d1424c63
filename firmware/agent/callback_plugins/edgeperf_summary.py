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
            if result._task.get_name() not in host["changed_tasks"]:
                host["changed_tasks"].append(result._task.get_name())
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
            host["failure"] = {"task": result._task.get_name(), "message": message}

    def v2_runner_on_unreachable(self, result) -> None:
        host = self._host(result)
        host["unreachable"] = True
        host["failure"] = {"task": "connect", "message": _message(result._result)}

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("EDGEPERF_FLASH_SUMMARY")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.hosts, f, indent=1, default=str)


def _message(result: dict) -> str:
    """The most useful single line Ansible gives for a failure."""
    for key in ("msg", "stderr", "module_stderr", "stdout"):
        text = result.get(key)
        if isinstance(text, str) and text.strip():
            lines = [line for line in text.strip().splitlines() if line.strip()]
            return lines[-1] if key != "msg" else " ".join(lines)
    return "failed without a message"
