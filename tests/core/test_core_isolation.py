"""The protocol core stands alone: it imports nothing from Home Assistant."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).parents[2]
CORE = ROOT / "custom_components" / "aliyun_iot_at" / "core"

PROBE = """
import importlib, importlib.util, pkgutil, sys
spec = importlib.util.spec_from_file_location(
    "standalone", sys.argv[1] + "/__init__.py", submodule_search_locations=[sys.argv[1]]
)
package = importlib.util.module_from_spec(spec)
sys.modules["standalone"] = package
spec.loader.exec_module(package)
names = [m.name for m in pkgutil.walk_packages(package.__path__, "standalone.")]
for name in names:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] == "homeassistant")
print(len(names), leaked)
"""


def test_core_imports_without_home_assistant() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(CORE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    count, leaked = result.stdout.split(" ", 1)
    assert int(count) >= 15  # every module of the core was imported
    assert leaked.strip() == "[]"


def test_modem_cli_runs_standalone() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "modem"), "connect", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "--device-secret" in result.stdout
