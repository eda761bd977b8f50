"""hacs.json and the repository's layout hold to what HACS checks of an integration.

HACS validates hacs.json against its schema (unknown keys are errors) and reads the
integration's manifest for the keys it shows. Each rule is shown to reject a file breaking it.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
from pathlib import PurePosixPath
from typing import Any

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.generated.countries import COUNTRIES
import pytest
import voluptuous as vol
from voluptuous.humanize import humanize_error

from .files import INTEGRATION, ROOT, read_json

# What HACS shows of an integration, read from its manifest.
_MANIFEST_KEYS_HACS_NEEDS = [
    "codeowners",
    "documentation",
    "domain",
    "issue_tracker",
    "name",
    "version",
]


def load_hacs() -> dict[str, Any]:
    """hacs.json as it is on disk now."""
    return read_json(ROOT / "hacs.json")


def _version(value: str) -> str:
    # HACS compares it with the running Home Assistant's version.
    if AwesomeVersion(value).strategy is AwesomeVersionStrategy.UNKNOWN:
        raise vol.Invalid(f"{value!r} is not a version")
    return value


def _countries(value: str | list[str]) -> list[str]:
    codes = [value] if isinstance(value, str) else value
    for code in codes:
        if not isinstance(code, str) or code.upper() not in COUNTRIES:
            raise vol.Invalid(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return codes


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise vol.Invalid(f"{value!r} must be a path inside the integration's folder")
    return value


HACS_SCHEMA = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Optional("content_in_root"): bool,
        vol.Optional("country"): _countries,
        vol.Optional("filename"): str,
        vol.Optional("hacs"): vol.All(str, _version),
        vol.Optional("hide_default_branch"): bool,
        vol.Optional("homeassistant"): vol.All(str, _version),
        vol.Optional("persistent_directory"): vol.All(str, _relative_path),
        vol.Optional("render_readme"): bool,
        vol.Optional("zip_release"): bool,
    }
)


def hacs_problems(hacs: dict[str, Any]) -> list[str]:
    """What HACS would report about this hacs.json (empty when valid)."""
    try:
        HACS_SCHEMA(hacs)
    except vol.MultipleInvalid as err:
        return [humanize_error(hacs, error) for error in err.errors]
    if hacs.get("zip_release") and "filename" not in hacs:
        return ["zip_release needs the archive's filename"]
    return []


def test_hacs_json_passes_hacs_schema() -> None:
    assert hacs_problems(load_hacs()) == []


def test_hacs_json_is_consistent_with_the_repository() -> None:
    hacs = load_hacs()
    # The integration lives in custom_components/<domain>/, not at the repository's root.
    assert not hacs.get("content_in_root", False)
    assert [path.name for path in (ROOT / "custom_components").iterdir() if path.is_dir()] == [
        INTEGRATION.name
    ]
    # HACS shows the README as the integration's page.
    assert (ROOT / "README.md").is_file()
    # The oldest Home Assistant we claim is not newer than the one the tests run on.
    if "homeassistant" in hacs:
        assert AwesomeVersion(hacs["homeassistant"]) <= AwesomeVersion(HA_VERSION)


def test_manifest_has_what_hacs_shows() -> None:
    manifest = read_json(INTEGRATION / "manifest.json")
    assert [key for key in _MANIFEST_KEYS_HACS_NEEDS if not manifest.get(key)] == []


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda hacs: hacs.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda hacs: hacs.pop(key, None)


@pytest.mark.parametrize(
    ("breakage", "reported"),
    [
        (_drop("name"), "required key not provided @ data['name']"),
        (_set("domains", ["switch"]), "extra keys not allowed @ data['domains']"),
        (_set("homeassistant", "next year"), "'next year' is not a version"),
        (_set("country", "XX"), "'XX' is not an ISO 3166-1 alpha-2 country code"),
        (_set("country", ["CN", "ZZ"]), "'ZZ' is not an ISO 3166-1 alpha-2 country code"),
        (_set("render_readme", "yes"), "expected bool"),
        (_set("persistent_directory", "../data"), "must be a path inside"),
        (_set("zip_release", True), "zip_release needs the archive's filename"),
    ],
)
def test_each_rule_rejects_a_hacs_json_that_breaks_it(
    breakage: Callable[[dict[str, Any]], None], reported: str
) -> None:
    hacs = copy.deepcopy(load_hacs())
    breakage(hacs)
    problems = hacs_problems(hacs)
    assert any(reported in problem for problem in problems), problems
