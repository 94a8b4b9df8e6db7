"""Every runnable example in the docstrings of ``mlwarden`` stays true.

The modules are found, not listed: any module whose source holds a ``>>>`` example is run
here, so a new module's examples are checked from the day they are written. Each runs in a
temporary directory, so an example that writes a file writes nothing into the repository.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import mlwarden

PACKAGE = Path(mlwarden.__file__).parent


def modules_with_examples() -> list[str]:
    """Dotted names of the package's modules whose source holds a ``>>>`` example."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = modules_with_examples()


def test_examples_are_found_across_the_package() -> None:
    assert len(MODULES) >= 50
    assert {"mlwarden.paths", "mlwarden.clock", "mlwarden.detect.statistics"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module)
    # an example outside a docstring (a comment, a plain string) would never run
    assert result.attempted > 0, f"{name} has a '>>> ' that doctest does not run"
    assert result.failed == 0
