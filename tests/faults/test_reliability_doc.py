"""``docs/reliability.md``, the fault matrix and the tests agree: the page is what
``scripts/reliability-table`` renders, every test the matrix or the page names exists, and
each fault test takes its cases from the row that names it. Light: the test files are read
as syntax trees, nothing is run or connected.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from . import reliability
from .matrix import BY_KEY, DIALECTS, FAULTS, Fault

# The fault tests: every one of them that takes ``cases(key)`` must be in the matrix.
FAULT_TEST_FILES = sorted(reliability.HERE.glob("test_*.py"))


def _cases_of(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, bool] | None:
    """The fault key and the ``ha`` flag of the ``cases(...)`` a test is parametrized with."""
    for decorator in function.decorator_list:
        for node in ast.walk(decorator):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "cases"
                and node.args
                and isinstance(key := node.args[0], ast.Constant)
                and isinstance(key.value, str)
            ):
                ha = any(
                    kw.arg == "ha" and isinstance(kw.value, ast.Constant) and kw.value.value
                    for kw in node.keywords
                )
                return key.value, ha
    return None


def matrix_tests_in(path: Path) -> dict[str, tuple[str, bool]]:
    """``file.py::test``: (fault key, through Home Assistant) of each test in ``path`` that
    takes its cases from the matrix."""
    found: dict[str, tuple[str, bool]] = {}
    for node in ast.parse(path.read_text("utf-8"), str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (used := _cases_of(node)):
            found[f"{path.name}::{node.name}"] = used
    return found


def test_the_page_is_what_the_generator_renders() -> None:
    doc = reliability.DOC.read_text("utf-8") if reliability.DOC.is_file() else ""
    rendered = reliability.render()
    assert doc == rendered, reliability.problems(doc, rendered)[0]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.key)
def test_every_test_a_row_names_exists(fault: Fault) -> None:
    refs = [(path, name or None) for path, _, name in (t.partition("::") for t in fault.tests)]
    assert refs, "a row without a test"
    assert reliability.missing(refs) == []


def test_every_test_the_page_names_exists() -> None:
    refs = list(reliability.references(reliability.render()))
    assert len(refs) > len(FAULTS)
    assert reliability.missing(refs) == []


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.key)
def test_each_row_covers_every_dialect_once(fault: Fault) -> None:
    assert fault.key in BY_KEY
    assert not set(fault.outcomes) & set(fault.not_applicable)
    assert sorted({*fault.outcomes, *fault.not_applicable}) == sorted(DIALECTS)
    assert set(fault.through_ha) <= set(fault.outcomes)
    for dialect in DIALECTS:
        assert reliability.dialect_cell(fault, dialect)


def test_the_rows_and_the_fault_tests_agree() -> None:
    """A row names exactly the tests that take its cases, and runs through Home Assistant
    exactly when one of them does."""
    used: dict[str, tuple[str, bool]] = {}
    for path in FAULT_TEST_FILES:
        used |= matrix_tests_in(path)
    named = {test: fault.key for fault in FAULTS for test in fault.tests}
    assert {test: key for test, (key, _) in used.items()} == named
    for fault in FAULTS:
        ha = any(flag for test, (key, flag) in used.items() if key == fault.key)
        assert ha == bool(fault.through_ha), fault.key


# --- the checks can fail ------------------------------------------------------------------------


def test_a_renamed_or_removed_test_is_caught() -> None:
    text = (
        "`test_link_faults.py::test_cloud_kick` `test_link_faults.py::test_cloud_kicked` "
        "`tests/core/test_outbox.py::test_nothing_at_all` `test_gone.py::test_x` "
        "`tests/conftest.py::secret_log_check` `tests/conftest.py::SecretsInUse::add`"
    )
    assert reliability.missing(reliability.references(text)) == [
        "test_link_faults.py::test_cloud_kicked",
        "tests/core/test_outbox.py::test_nothing_at_all",
        "test_gone.py::test_x",
    ]


def test_a_page_edited_by_hand_is_caught() -> None:
    rendered = reliability.render()
    edited = rendered.replace("dropped, session kept", "session lost", 1)
    assert edited != rendered
    problem = reliability.problems(edited, rendered)[0]
    assert problem.startswith("docs/reliability.md is not what scripts/reliability-table renders")
    assert "-| Noise bytes" in problem
    assert "+| Noise bytes" in problem


def test_a_test_taking_another_rows_cases_is_caught(tmp_path: Path) -> None:
    moved = tmp_path / "test_moved.py"
    moved.write_text(
        '@pytest.mark.parametrize("case", cases("noise", ha=True))\n'
        "async def test_moved(case): ...\n"
    )
    assert matrix_tests_in(moved) == {"test_moved.py::test_moved": ("noise", True)}
