"""Every module imports on its own in a fresh interpreter (no hidden import-order dependence or
cycle), and the privacy audit does not depend on the pipeline."""
from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unlearn_core"
TOP_LEVEL = sorted(f"unlearn_core.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
SUBPACKAGES = {f"unlearn_core.{d.name}": sorted(f"unlearn_core.{d.name}.{p.stem}" for p in d.glob("*.py") if p.stem != "__init__")
               for d in sorted(PACKAGE.iterdir()) if (d / "__init__.py").exists()}
"""Subpackage -> its modules. Importing any of them first imports the subpackage, which imports
all of them (registries), so one fresh interpreter per subpackage covers its modules."""


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_every_module_imports_alone():
    assert "unlearn_core.privacy" in TOP_LEVEL and "unlearn_core.attacks.rmia" in SUBPACKAGES["unlearn_core.attacks"]
    checks = {m: f"import {m}" for m in ["unlearn_core", *TOP_LEVEL]}
    checks |= {pkg: f"import sys, {pkg}; missing = [m for m in {modules!r} if m not in sys.modules]; assert not missing, missing"
               for pkg, modules in SUBPACKAGES.items()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(checks, pool.map(python, checks.values())))
    failures = {m: r.stderr.strip().splitlines()[-1] for m, r in results.items() if r.returncode != 0}
    assert not failures, failures


def test_privacy_does_not_import_the_pipeline():
    result = python("import sys, unlearn_core.privacy; "
                    "bad = sorted(m for m in sys.modules if m in ('unlearn_core.pipeline', 'unlearn_core.forget_me')); "
                    "assert not bad, bad")
    assert result.returncode == 0, result.stderr


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, anywhere (``TYPE_CHECKING`` blocks too), as ``unlearn_core.x`` for relative imports."""
    package = ".".join(path.relative_to(ROOT).parent.parts)
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            names.append(".".join(p for p in (base, node.module) if p))
    return names


def test_privacy_and_attacks_never_name_the_pipeline():
    """Not even for type checking: the audit reads a workspace through ``privacy.AuditWorkspace``."""
    for path in [PACKAGE / "privacy.py", *sorted((PACKAGE / "attacks").glob("*.py"))]:
        bad = [m for m in imported_modules(path) if m.startswith(("unlearn_core.pipeline", "unlearn_core.forget_me"))]
        assert not bad, (path.name, bad)


def test_the_core_flows_do_not_load_the_display_layer():
    """``forget_me`` and ``audit`` are core: they must not pull in ``viz`` (plotly)."""
    result = python("import sys, unlearn_core.forget_me, unlearn_core.audit; "
                    "bad = sorted(m for m in sys.modules if m == 'unlearn_core.viz' or m.startswith('plotly')); assert not bad, bad")
    assert result.returncode == 0, result.stderr
