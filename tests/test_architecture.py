"""The layout's rules, checked: the layer contracts (import-linter, from pyproject.toml), no
module reaching into another's underscore names, and ffmpeg started in one module only. docs/architecture.md describes the layers."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


# Calls that start a program, and the modules that may make them: ffmpeg starts in one module;
# the studio starts its renders as Python processes (``python -m dreamvid.studio.job``). The batch
# pool's workers are multiprocessing's spawned interpreters, which no call below starts.
STARTERS = {"subprocess": {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
            "os": {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "execvp",
                   "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
                   "spawnl", "spawnle", "spawnlp", "spawnlpe"},
            "imageio_ffmpeg": {"read_frames", "write_frames", "count_frames_and_secs"}}  # fmt: skip
MAY_START = {"dreamvid/media/ffmpeg.py": "ffmpeg", "dreamvid/studio/renders.py": "the studio's render processes"}


def program_starts(root: Path) -> list[str]:
    """``path:line name`` of each call (or import by name) of a STARTERS function in the package
    under ``root``, whatever the module is imported as (``import subprocess as sp`` too)."""
    found = []
    for path in sorted((root / "dreamvid").rglob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = {}  # local name -> module, for the modules in STARTERS
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases.update({a.asname or a.name: a.name for a in node.names if a.name in STARTERS})
            elif isinstance(node, ast.ImportFrom) and node.module in STARTERS:
                found += [f"{path.relative_to(root)}:{node.lineno} {node.module}.{a.name}"
                          for a in node.names if a.name in STARTERS[node.module]]  # fmt: skip
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(f := node.func, ast.Attribute)
                    and isinstance(f.value, ast.Name) and f.value.id in aliases
                    and f.attr in STARTERS[aliases[f.value.id]]):  # fmt: skip
                found.append(f"{path.relative_to(root)}:{node.lineno} {aliases[f.value.id]}.{f.attr}")
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1].split()[0])))


def test_only_media_ffmpeg_starts_ffmpeg():
    """Every ffmpeg starts in dreamvid/media/ffmpeg.py, with its shared options, and is ended there."""
    starts = program_starts(ROOT)
    assert [s for s in starts if s.split(":")[0] not in MAY_START] == [], "\n".join(starts)
    assert {s.split(":")[0] for s in starts} == set(MAY_START), starts  # each exception still needed
    renders = (PACKAGE / "studio" / "renders.py").read_text()
    assert "ffmpeg" not in renders and "sys.executable" in renders


@pytest.mark.parametrize("line", ["subprocess.run(['ffmpeg', '-version'])", "sp.Popen(['ffmpeg'])",
                                  "imageio_ffmpeg.read_frames('x.mp4')", "os.system('ffmpeg -version')"])
def test_a_program_started_elsewhere_is_caught(tmp_path, line):
    module = tmp_path / "dreamvid" / "media" / "stats.py"
    module.parent.mkdir(parents=True)
    imports = "import os\nimport subprocess\nimport subprocess as sp\nimport imageio_ffmpeg\n"
    module.write_text(imports + (PACKAGE / "media" / "stats.py").read_text() + f"\n\ndef f():\n    {line}\n")
    assert [s.split(" ")[0].split(":")[0] for s in program_starts(tmp_path)] == ["dreamvid/media/stats.py"]
    module.write_text("from subprocess import check_output\n")
    assert program_starts(tmp_path) == ["dreamvid/media/stats.py:1 subprocess.check_output"]
