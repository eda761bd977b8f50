"""Where the shipped files are; each is read when a test asks for it, never cached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
INTEGRATION = ROOT / "custom_components" / "aliyun_iot_at"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file as it is on disk now."""
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data
