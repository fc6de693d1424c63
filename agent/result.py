"""Writing a result document: JSON without NaN, atomically.

The document's shape is the contract's (``agent.contract.Result``, schema ``edgeperf.result/1``):
both sides check a result against it before it is sent or stored. Field names there are never
renamed; new fields may be added.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """JSON has no NaN/Infinity; write them as null rather than produce an unreadable file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(json_safe(doc), indent=2, sort_keys=False) + "\n"


def write(doc: dict[str, Any], path: Path) -> None:
    """Write atomically, so an interrupted run never leaves half a JSON file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(doc))
    tmp.replace(path)
