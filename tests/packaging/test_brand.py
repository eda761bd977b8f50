"""The brand images in the integration's brand/ folder follow Home Assistant's brand rules.

Home Assistant reads a custom integration's icon and logo from that folder (2026.3 on); HACS
wants at least the icon. The rules are those of Home Assistant's brands repository: PNG, the
icon square at 256 px (512 px for @2x), a logo's shortest side 128-256 px (256-512 for @2x),
a @2x image the double of its plain one, a dark_ variant only beside its light image.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
import pytest

from .files import INTEGRATION

BRAND = INTEGRATION / "brand"
REQUIRED = ("icon.png", "icon@2x.png")
ALLOWED = {
    f"{dark}{kind}{scale}.png"
    for dark in ("", "dark_")
    for kind in ("icon", "logo")
    for scale in ("", "@2x")
}


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        if image.format != "PNG":
            raise ValueError(f"{path.name} is {image.format}, not PNG")
        width, height = image.size
        return width, height


def brand_problems(folder: Path) -> list[str]:
    """What breaks the brand rules in this folder (empty when nothing does)."""
    names = {path.name for path in folder.iterdir()}
    problems = [f"{name} is missing" for name in REQUIRED if name not in names]
    problems += [f"{name} is not a brand image name" for name in sorted(names - ALLOWED)]
    sizes: dict[str, tuple[int, int]] = {}
    for name in sorted(names & ALLOWED):
        try:
            sizes[name] = _png_size(folder / name)
        except (OSError, ValueError) as err:
            problems.append(f"{name}: {err}")
    for name, (width, height) in sizes.items():
        hidpi = name.endswith("@2x.png")
        if name.startswith("dark_") and name.removeprefix("dark_") not in names:
            problems.append(f"{name} has no light {name.removeprefix('dark_')}")
        if "icon" in name:
            side = 512 if hidpi else 256
            if (width, height) != (side, side):
                problems.append(f"{name} is {width}x{height}, not {side}x{side}")
        else:
            low, high = (256, 512) if hidpi else (128, 256)
            if not low <= min(width, height) <= high:
                problems.append(f"{name}'s shortest side is not {low}-{high} px")
        plain = name.replace("@2x", "")
        if hidpi and plain in sizes and sizes[plain] != (width // 2, height // 2):
            problems.append(f"{name} is not twice {plain}")
    return problems


def test_brand_folder_follows_the_rules() -> None:
    assert brand_problems(BRAND) == []


def _image(folder: Path, name: str, size: tuple[int, int], kind: str = "PNG") -> None:
    Image.new("RGBA" if kind == "PNG" else "RGB", size).save(folder / name, kind)


def _good_folder(folder: Path) -> Path:
    _image(folder, "icon.png", (256, 256))
    _image(folder, "icon@2x.png", (512, 512))
    _image(folder, "logo.png", (400, 128))
    _image(folder, "logo@2x.png", (800, 256))
    _image(folder, "dark_logo.png", (400, 128))
    return folder


def test_a_folder_following_the_rules_passes(tmp_path: Path) -> None:
    assert brand_problems(_good_folder(tmp_path)) == []


@pytest.mark.parametrize(
    ("name", "size", "kind", "reported"),
    [
        ("icon.png", (255, 256), "PNG", "icon.png is 255x256, not 256x256"),
        ("icon@2x.png", (256, 256), "PNG", "icon@2x.png is 256x256, not 512x512"),
        ("icon.png", (256, 256), "JPEG", "icon.png: icon.png is JPEG, not PNG"),
        ("logo.png", (400, 100), "PNG", "logo.png's shortest side is not 128-256 px"),
        ("logo@2x.png", (1200, 600), "PNG", "logo@2x.png's shortest side is not 256-512 px"),
        ("logo@2x.png", (900, 256), "PNG", "logo@2x.png is not twice logo.png"),
        ("Icon.png", (256, 256), "PNG", "Icon.png is not a brand image name"),
    ],
)
def test_each_rule_rejects_an_image_that_breaks_it(
    tmp_path: Path, name: str, size: tuple[int, int], kind: str, reported: str
) -> None:
    _image(_good_folder(tmp_path), name, size, kind)
    assert reported in brand_problems(tmp_path)


def test_missing_icons_and_lone_dark_variants_are_reported(tmp_path: Path) -> None:
    _image(tmp_path, "dark_logo.png", (400, 128))
    assert brand_problems(tmp_path) == [
        "icon.png is missing",
        "icon@2x.png is missing",
        "dark_logo.png has no light logo.png",
    ]
