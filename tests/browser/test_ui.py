"""A person adds the module in Home Assistant's UI and switches it, from both sides.

Everything is real: Home Assistant with its frontend (from scripts/demo), the emulated module
on a pseudo-terminal, the local Aliyun-like cloud, and Chromium. Screenshots of each step are
what the README shows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from .conftest import ENABLED, INTEGRATION
from .demo_process import DemoProcess

if TYPE_CHECKING:
    from .ui import UI

pytestmark = [
    pytest.mark.skipif(
        not ENABLED, reason="runs from scripts/browser-test: a real Chromium on scripts/demo"
    ),
    pytest.mark.timeout(900),
]

BUTTONS = "mwc-button, ha-button, ha-progress-button"
POWER = "PowerSwitch"


def _integration_name() -> str:
    name: str = json.loads((INTEGRATION / "manifest.json").read_text("utf-8"))["name"]
    return name


def _icon_shown(ui: UI) -> bool:
    """Whether the integration's brand icon is on the page, loaded."""
    return any(
        ui.script("return arguments[0].naturalWidth", image) > 0
        for image in ui.find(f'img[src*="/{INTEGRATION.name}/"]')
    )


def _switch_checked(ui: UI) -> bool | None:
    """The device page's switch: on, off, or None while its state is unknown."""
    toggle = ui.element("ha-entity-toggle").shadow_root
    switches = toggle.find_elements("css selector", "ha-switch")
    return bool(switches[0].get_property("checked")) if switches else None


def _turn_on_button(ui: UI) -> bool:
    """Click the entity row's 'Turn … on' button (shown while the state is unknown)."""
    toggle = ui.element("ha-entity-toggle").shadow_root
    for button in toggle.find_elements("css selector", "ha-icon-button"):
        if (button.get_attribute("label") or "").endswith(" on"):
            button.click()
            return True
    return False


def _posted(demo: DemoProcess, before: int, value: int) -> bool:
    posts = demo.property_posts()
    return len(posts) > before and posts[-1].get(POWER) == value


def test_add_the_module_and_switch_it_from_the_ui_and_from_the_cloud(
    ui: UI, demo: DemoProcess
) -> None:
    ready = demo.ready
    name = _integration_name()

    # Log in with the owner the demo created.
    ui.open(ready["url"])
    ui.element('input[name="username"]').send_keys(ready["username"])
    ui.element('input[name="password"]').send_keys(ready["password"])
    ui.screenshot("01-login")
    ui.click(BUTTONS, "log in")

    # Settings → Devices & services → Add integration, search "Aliyun".
    ui.click('a[href="/config"]')
    ui.click("ha-list-item", "Devices & services")
    ui.click("ha-fab", "Add integration")
    ui.fill("Search for a brand name", "Aliyun")
    found = ui.wait_for("the search result", lambda: ui.find("ha-integration-list-item"))
    assert [item.text for item in found] == [name]
    ui.wait_for("the integration's icon", lambda: _icon_shown(ui))
    ui.screenshot("02-add-integration")
    found[0].click()

    # The port, typed: the module on the demo's pseudo-terminal.
    ui.fill("Serial port", ready["port"])
    assert ui.field("Baud rate").get_attribute("value") == "115200"
    ui.screenshot("03-flow-port")
    ui.click(BUTTONS, "submit")

    # The module was asked who it is; its dialect is proposed.
    ui.wait_for("the module's answer", lambda: "Proposed dialect" in ui.dialog_text())
    assert "Quectel EC600S" in ui.dialog_text()
    quectel = ui.element("ha-formfield", "Quectel")
    assert ui.script("return arguments[0].querySelector('ha-radio').checked", quectel)
    ui.screenshot("04-flow-module")
    ui.click(BUTTONS, "submit")

    # The device triple; the region is the default (the demo's cloud plays every region).
    ui.fill("ProductKey", ready["product_key"])
    ui.fill("DeviceName", ready["device_name"])
    ui.fill("DeviceSecret", ready["device_secret"])
    ui.screenshot("05-flow-credentials")
    ui.click(BUTTONS, "submit")

    # The thing model: left empty for the standard power switch.
    ui.field("Thing model (TSL JSON)")
    ui.click(BUTTONS, "submit")
    ui.wait_for("the created entry", lambda: "Success!" in ui.dialog_text())
    assert ready["device_name"] in ui.dialog_text()
    ui.screenshot("06-flow-created")
    ui.click(BUTTONS, "finish")

    # The device page: its switch, and the cloud link up.
    ui.click("a", "1 device")
    ui.wait_for("the cloud link up", lambda: ui.find("hui-generic-entity-row", "Connected"))
    assert _switch_checked(ui) is None

    # Switched on in the UI: the cloud receives the property post.
    before = len(demo.property_posts())
    ui.wait_for("the turn-on button", lambda: _turn_on_button(ui))
    ui.wait_for("the cloud to get PowerSwitch 1", lambda: _posted(demo, before, 1), timeout=15)
    ui.wait_for("the switch on", lambda: _switch_checked(ui) is True)
    ui.screenshot("07-switched-on-in-ui")

    # Switched off from the cloud: the device replies and the UI follows.
    assert demo.set_property(POWER, 0)["code"] == 200
    ui.wait_for("the switch off", lambda: _switch_checked(ui) is False, timeout=15)
    ui.screenshot("08-switched-off-by-cloud")

    # And toggled back on in the UI.
    before = len(demo.property_posts())
    switch = ui.element("ha-entity-toggle").shadow_root.find_element("css selector", "ha-switch")
    switch.click()
    ui.wait_for("the cloud to get PowerSwitch 1 again", lambda: _posted(demo, before, 1))

    # Home Assistant reported nothing about the integration on the way (its first real start:
    # the unit tests import everything up front and never see, say, an import in the loop).
    problems = demo.problems_logged(INTEGRATION.name)
    assert not problems, "Home Assistant logged:\n" + "\n".join(problems)
