"""Every setting is documented where it is declared and read somewhere: a tunable nobody reads
is a promise the code does not keep."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from liverec.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("liverec", "distributed", "stream", "web", "online_models", "producers",
            "evaluation", "simulation")


def declared() -> list[tuple[str, bool]]:
    """(field, whether a docstring follows it) for every field of :class:`Settings`."""
    tree = ast.parse((REPO / "liverec" / "settings.py").read_text())
    body = next(node for node in tree.body
                if isinstance(node, ast.ClassDef) and node.name == "Settings").body
    fields = []
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            following = body[i + 1] if i + 1 < len(body) else None
            documented = (isinstance(following, ast.Expr)
                          and isinstance(following.value, ast.Constant)
                          and isinstance(following.value.value, str))
            fields.append((node.target.id, documented))
    return fields


def test_the_parser_sees_every_field() -> None:
    assert sorted(name for name, _ in declared()) == sorted(Settings.model_fields)


@pytest.mark.parametrize(("name", "documented"), declared())
def test_each_setting_has_a_docstring_and_a_reader(name: str, documented: bool) -> None:
    assert documented, f"Settings.{name} has no docstring"
    code = "\n".join(path.read_text() for package in PACKAGES
                     for path in (REPO / package).rglob("*.py")
                     if path != REPO / "liverec" / "settings.py")
    assert re.search(rf"\.{name}\b", code), f"Settings.{name} is read nowhere"


def test_the_readme_names_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name, _ in declared() if f"LIVEREC_{name.upper()}" not in readme]
    assert not missing, f"README.md does not list {missing}"


def test_a_bad_setting_is_refused_with_its_field(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every command reads the log level first, so a junk value stops it with the field
    named, before anything runs."""
    from liverec.cli import main

    monkeypatch.setenv("LIVEREC_LOG_LEVEL", "loud")
    assert main(["generate", "--sessions", "1", "--items", "5", "--out", "/dev/null"]) == 2
    assert "log_level" in capsys.readouterr().err
