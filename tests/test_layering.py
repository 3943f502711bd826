"""Dependencies point one way: cryodiff may import recon and generative; those
two never import each other or cryodiff (checked on the imported modules, and
on the source text so lazy imports inside functions count too)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"recon": ("generative", "cryodiff"), "generative": ("recon", "cryodiff")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_stands_alone(package):
    forbidden = FORBIDDEN[package]
    code = (
        f"import sys, pkgutil, importlib, {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'): importlib.import_module(m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(forbidden)})\b", re.M)
    offenders = [p for p in (ROOT / package).rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders
