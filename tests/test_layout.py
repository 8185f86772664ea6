"""The layout is the architecture: the shared core knows no tier, and tiers never import each other."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import ROOT

TIERS = ("firehose_proxy", "ms_aggregator", "filtered_proxy")
PACKAGES = ("common", *TIERS)


def modules(package: str) -> list:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(path) -> set[str]:
    """Top-level package names a module imports (absolute imports only; relative ones stay in their package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_the_architecture_allows(package):
    allowed_tiers = {package} if package in TIERS else set()
    for path in modules(package):
        bad = (imported_packages(path) & set(TIERS)) - allowed_tiers
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: common knows no tier, tiers not each other"


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ms_aggregator.book import BarBook\nimport filtered_proxy.routing\n")
    assert imported_packages(bad) >= {"ms_aggregator", "filtered_proxy"}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_says_what_it_is_for(package):
    for path in modules(package):
        if path.name == "__init__.py" and not path.read_text().strip():
            continue
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(ROOT)} has no module docstring"


def test_test_modules_share_helpers_through_helper_modules_only():
    """A test module is never imported by another: shared helpers live in tests/*helpers.py, conftest or the oracle."""
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad = [n for n in names if n.split(".")[-1].startswith("test_")]
            assert not bad, f"{path.relative_to(ROOT)} imports the test module {bad[0]}"
