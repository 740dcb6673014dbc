"""The layout's rules, checked: the layer contracts (import-linter, from pyproject.toml) and no
module reaching into another's underscore names. docs/architecture.md describes the layers."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dreamvid"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter over the package in ``root`` with the repository's contracts."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                          cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})  # fmt: skip


def test_the_layer_contracts_are_kept():
    r = lint_imports(ROOT)
    assert r.returncode == 0 and "BROKEN" not in r.stdout, r.stdout + r.stderr
    assert "Contracts: 2 kept, 0 broken." in r.stdout, r.stdout


def test_an_import_against_the_layers_is_caught(tmp_path):
    """The contracts bite: core importing the frame loop (one line) breaks the build."""
    shutil.copytree(PACKAGE, tmp_path / "dreamvid", ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "dreamvid" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom dreamvid.rendering import loop  # noqa\n")
    r = lint_imports(tmp_path)
    assert r.returncode != 0 and "dreamvid.core is not allowed to import dreamvid.rendering" in r.stdout, r.stdout


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dreamvid"):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                private += [p for p in node.module.split(".") if p.startswith("_")]
                if private:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module} {private}")
    assert not found, "\n".join(found)
