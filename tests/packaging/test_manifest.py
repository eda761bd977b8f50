"""manifest.json holds to the rules hassfest applies to a custom integration.

hassfest (Home Assistant's validator, which the hassfest and HACS GitHub actions run) is not an
installable package, so its rules for custom integrations are restated here, and each rule is
shown to reject a manifest that breaks it. The files are read when the tests run.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
import importlib
import importlib.util
import re
from typing import Any
from urllib.parse import urlparse

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
from awesomeversion.exceptions import AwesomeVersionException
from homeassistant.config_entries import HANDLERS, ConfigFlow
from packaging.requirements import InvalidRequirement, Requirement
import pytest
import voluptuous as vol
from voluptuous.humanize import humanize_error

from .files import INTEGRATION, ROOT, read_json

# The version schemes Home Assistant's loader and hassfest accept for a custom integration.
_VERSION_STRATEGIES = [
    AwesomeVersionStrategy.CALVER,
    AwesomeVersionStrategy.SEMVER,
    AwesomeVersionStrategy.SIMPLEVER,
    AwesomeVersionStrategy.BUILDVER,
    AwesomeVersionStrategy.PEP440,
]
_INTEGRATION_TYPES = ["device", "entity", "hardware", "helper", "hub", "service", "system"]
_IOT_CLASSES = [
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
]
_QUALITY_SCALES = ["internal", "bronze", "silver", "gold", "platinum"]
# Manifest keys that make Home Assistant start the config flow at the step of the same name.
_DISCOVERY_KEYS = ["bluetooth", "dhcp", "homekit", "mqtt", "ssdp", "usb", "zeroconf"]


def load_manifest() -> dict[str, Any]:
    """The manifest as it is on disk now."""
    return read_json(INTEGRATION / "manifest.json")


def _lowercase(value: str) -> str:
    # Discovery lowercases what the device reports before it matches these patterns.
    if value != value.lower():
        raise vol.Invalid(f"{value!r} must be lowercase")
    return value


def _usb_id(value: str) -> str:
    # USB discovery compares with the ids pyserial reports, printed as 4 uppercase hex digits.
    if not re.fullmatch(r"[0-9A-F]{4}", value):
        raise vol.Invalid(f"{value!r} must be 4 uppercase hex digits")
    return value


def _mac_pattern(value: str) -> str:
    if value != value.upper() or "*" not in value:
        raise vol.Invalid(f"{value!r} must be uppercase with a wildcard")
    return value


def _version(value: str) -> str:
    try:
        AwesomeVersion(value, ensure_strategy=_VERSION_STRATEGIES)
    except AwesomeVersionException as err:
        raise vol.Invalid(f"{value!r} is not a valid version") from err
    return value


def _documentation(value: str) -> str:
    url = urlparse(value)
    if url.scheme != "https":
        raise vol.Invalid("documentation must be an https URL")
    if url.netloc == "www.home-assistant.io" and not url.path.startswith("/integrations/"):
        raise vol.Invalid("documentation on home-assistant.io must be under /integrations/")
    return value


def _codeowner(value: str) -> str:
    # A GitHub user (@name) or team (@org/team): it goes into a CODEOWNERS file.
    if not re.fullmatch(r"@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9._-]+)?", value):
        raise vol.Invalid(f"{value!r} is not a GitHub @user or @org/team")
    return value


def _pinned(value: str) -> str:
    # Home Assistant installs these for the user: a range lets a new release break them.
    try:
        specifiers = list(Requirement(value).specifier)
    except InvalidRequirement as err:
        raise vol.Invalid(f"{value!r} is not a requirement") from err
    if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
        raise vol.Invalid(f"{value!r} is not pinned with ==")
    return value


_NON_EMPTY_MATCHER = vol.All(vol.Schema({}, extra=vol.ALLOW_EXTRA), vol.Length(min=1))

_USB_MATCHER = vol.All(
    vol.Schema(
        {
            vol.Optional("vid"): vol.All(str, _usb_id),
            vol.Optional("pid"): vol.All(str, _usb_id),
            vol.Optional("serial_number"): vol.All(str, _lowercase),
            vol.Optional("manufacturer"): vol.All(str, _lowercase),
            vol.Optional("description"): vol.All(str, _lowercase),
            vol.Optional("known_devices"): [str],
        }
    ),
    # An empty matcher would claim every USB device.
    vol.Length(min=1, msg="a usb matcher needs at least one field"),
)

_ZEROCONF_MATCHER = vol.Any(
    str,
    vol.Schema(
        {
            vol.Required("type"): str,
            vol.Optional("macaddress"): vol.All(str, _mac_pattern),
            vol.Optional("manufacturer"): vol.All(str, _lowercase),
            vol.Optional("model"): vol.All(str, _lowercase),
            vol.Optional("name"): vol.All(str, _lowercase),
            vol.Optional("properties"): {str: vol.All(str, _lowercase)},
        }
    ),
)

_DHCP_MATCHER = vol.Schema(
    {
        vol.Optional("macaddress"): vol.All(str, _mac_pattern),
        vol.Optional("hostname"): vol.All(str, _lowercase),
        vol.Optional("registered_devices"): bool,
    }
)

# Every key a custom integration's manifest may have; any other key is an error.
MANIFEST_SCHEMA = vol.Schema(
    {
        vol.Required("domain"): str,
        vol.Required("name"): str,
        vol.Required("codeowners"): [vol.All(str, _codeowner)],
        vol.Required("documentation"): vol.All(vol.Url(), _documentation),
        # Required for every integration not in hassfest's short list of iot-class-less ones.
        vol.Required("iot_class"): vol.In(_IOT_CLASSES),
        # Required of custom integrations only: the loader refuses one without it.
        vol.Required("version"): vol.All(str, _version),
        vol.Optional("after_dependencies"): [str],
        vol.Optional("bluetooth"): [_NON_EMPTY_MATCHER],
        vol.Optional("config_flow"): bool,
        vol.Optional("dependencies"): [str],
        vol.Optional("dhcp"): [_DHCP_MATCHER],
        vol.Optional("disabled"): str,
        vol.Optional("homekit"): {vol.Optional("models"): [str]},
        vol.Optional("import_executor"): bool,
        vol.Optional("integration_type"): vol.In(_INTEGRATION_TYPES),
        vol.Optional("issue_tracker"): vol.Url(),
        vol.Optional("loggers"): [str],
        vol.Optional("mqtt"): [str],
        vol.Optional("quality_scale"): vol.In(_QUALITY_SCALES),
        vol.Optional("requirements"): [vol.All(str, _pinned)],
        vol.Optional("single_config_entry"): bool,
        vol.Optional("ssdp"): [_NON_EMPTY_MATCHER],
        vol.Optional("usb"): [_USB_MATCHER],
        vol.Optional("zeroconf"): [_ZEROCONF_MATCHER],
    }
)


def _sort_key(key: str) -> tuple[int, str]:
    return ({"domain": 0, "name": 1}.get(key, 2), key)


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What hassfest would report about this manifest's content (empty when valid)."""
    problems: list[str] = []
    try:
        MANIFEST_SCHEMA(manifest)
    except vol.MultipleInvalid as err:
        problems += [humanize_error(manifest, error) for error in err.errors]
    if list(manifest) != sorted(manifest, key=_sort_key):
        problems.append("keys are not in order: domain, name, then alphabetical")
    return problems


def test_manifest_passes_hassfest_rules() -> None:
    assert manifest_problems(load_manifest()) == []


def test_domain_is_the_folder_and_no_core_integration() -> None:
    domain = load_manifest()["domain"]
    assert domain == INTEGRATION.name
    # A custom integration with a core integration's domain replaces it.
    assert importlib.util.find_spec(f"homeassistant.components.{domain}") is None


def test_dependencies_are_home_assistant_integrations() -> None:
    manifest = load_manifest()
    for name in manifest.get("dependencies", []) + manifest.get("after_dependencies", []):
        assert importlib.util.find_spec(f"homeassistant.components.{name}"), name


def test_requirements_are_the_runtime_requirements_file() -> None:
    pinned = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text("utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert sorted(load_manifest().get("requirements", [])) == sorted(pinned)


def test_config_flow_handles_every_discovery_the_manifest_declares() -> None:
    manifest = load_manifest()
    assert manifest.get("config_flow") is True
    importlib.import_module(f"custom_components.{manifest['domain']}.config_flow")
    flow = HANDLERS[manifest["domain"]]
    for key in _DISCOVERY_KEYS:
        if key in manifest:
            step = f"async_step_{key}"
            # ConfigFlow's own step only aborts: the flow must have its own.
            assert getattr(flow, step) is not getattr(ConfigFlow, step), step


def test_gold_and_above_have_diagnostics_and_owners() -> None:
    manifest = load_manifest()
    if _QUALITY_SCALES.index(manifest.get("quality_scale", "bronze")) >= 3:
        assert (INTEGRATION / "diagnostics.py").is_file()
        assert manifest["codeowners"]


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest.pop(key, None)


def _name_first(manifest: dict[str, Any]) -> None:
    reordered = {"name": manifest.pop("name"), **manifest}
    manifest.clear()
    manifest.update(reordered)


def _last_key_first_after_name(manifest: dict[str, Any]) -> None:
    last = list(manifest)[-1]
    head = {key: manifest.pop(key) for key in ("domain", "name")}
    reordered = {**head, last: manifest.pop(last), **manifest}
    manifest.clear()
    manifest.update(reordered)


@pytest.mark.parametrize(
    ("breakage", "reported"),
    [
        (_drop("version"), "required key not provided @ data['version']"),
        (_set("version", "soon"), "'soon' is not a valid version"),
        (_drop("codeowners"), "required key not provided @ data['codeowners']"),
        (_set("codeowners", ["aliyun-iot-at"]), "is not a GitHub @user or @org/team"),
        (_drop("iot_class"), "required key not provided @ data['iot_class']"),
        (_set("iot_class", "cloud"), "value must be one of"),
        (_set("integration_type", "gadget"), "value must be one of"),
        (_set("config_flow", "yes"), "expected bool"),
        (_set("documentation", "http://example.com/docs"), "must be an https URL"),
        (_set("homepage", "https://example.com"), "extra keys not allowed @ data['homepage']"),
        (_set("requirements", ["pyserial-asyncio-fast>=0.16"]), "is not pinned with =="),
        (_set("requirements", ["pyserial-asyncio-fast"]), "is not pinned with =="),
        (_set("usb", [{"vid": "2c7c", "pid": "0125"}]), "'2c7c' must be 4 uppercase hex digits"),
        (_set("usb", [{"vid": "1A86", "description": "*CH340*"}]), "'*CH340*' must be lowercase"),
        (_set("usb", [{"manufacturer": "Quectel*"}]), "'Quectel*' must be lowercase"),
        (_set("usb", [{}]), "a usb matcher needs at least one field"),
        (_set("usb", [{"vid": "2C7C", "product": "x"}]), "extra keys not allowed"),
        (_name_first, "keys are not in order"),
        (_last_key_first_after_name, "keys are not in order"),
    ],
)
def test_each_rule_rejects_a_manifest_that_breaks_it(
    breakage: Callable[[dict[str, Any]], None], reported: str
) -> None:
    manifest = copy.deepcopy(load_manifest())
    breakage(manifest)
    problems = manifest_problems(manifest)
    assert any(reported in problem for problem in problems), problems
