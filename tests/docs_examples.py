"""Running the examples of README.md and docs/*.md (with Sybil: the repository's conftest.py).

Every ```bash and ```python block is an example, run in order within its page from the root of
a clean copy of the repository (the files git tracks or would track: a new copy per page, removed
afterwards), so that what a block writes never lands in the checkout. Shell blocks run in
``bash -e`` with ``dreamvid`` and ``python3`` on PATH meaning the code under test; Python blocks
run in this process with the copy as working directory, one namespace per page.

A block that cannot run (a GPU, an install, a server that runs until stopped, a file the user
supplies) is preceded by Sybil's skip marker with the reason, and counts as skipped::

    <!-- skip: next "needs a GPU" -->

The same module lists the blocks of every page for the tests that count and check them
(tests/test_docs.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sybil import Example

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/*.md"]  # the pages whose examples run (relative to ROOT)
RUN = ("bash", "python")  # the fence languages that are examples
SHELL_TIMEOUT = 540  # seconds for one shell block (under pytest-timeout's 600): the demo render takes 16 s on 2 free cores
SKIP = re.compile(r'<!--\s*skip:\s*next\s+"([^"]+)"\s*-->\s*\n\s*\Z')  # right before a block
FENCE = re.compile(r"^([ \t]*)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def checkout_files(root: Path = ROOT) -> list[str]:
    """The files of a clean checkout: tracked, or new and not ignored (what a commit would hold)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return sorted({name for name in out.decode().split("\0") if name and (root / name).is_file()})


def clean_copy(into: Path) -> Path:
    """A copy of the checkout in ``into``/repo (its install.sh a no-op), with ``dreamvid`` and
    ``python3`` in ``into``/bin."""
    repo = into / "repo"
    for name in checkout_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    # the code under test is installed already (CI ran the real install.sh first): a block that
    # installs, then uses dreamvid (the README's first command), runs its second half as written
    (repo / "install.sh").write_text("#!/usr/bin/env bash\n# docs runner: already installed\nexit 0\n")
    bin_dir = into / "bin"
    bin_dir.mkdir()
    (bin_dir / "dreamvid").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dreamvid "$@"\n')
    (bin_dir / "dreamvid").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    return repo


class Checkout:
    """One page's clean copy, made at its first example (see the ``docs_checkout`` fixture)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="dreamvid-docs-"))
        self.repo = clean_copy(self.tmp)
        self.env = {**os.environ, "PATH": f"{self.tmp / 'bin'}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": str(self.repo), "MPLBACKEND": "Agg"}  # fmt: skip

    def remove(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_shell(example: Example) -> str | None:
    """Sybil evaluator: the block as a bash script (``-e``: the first failing command fails it; a
    pipeline fails when its last command does, as in a terminal)."""
    checkout: Checkout = example.namespace["docs_checkout"]
    proc = subprocess.run(["bash", "-e", "-c", example.parsed], cwd=checkout.repo, env=checkout.env,
                          capture_output=True, text=True, timeout=SHELL_TIMEOUT, check=False)  # fmt: skip
    if proc.returncode != 0:
        return f"exit status {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    return None


class InCheckout:
    """Sybil evaluator for Python blocks: ``evaluator`` with the page's copy as working directory."""

    def __init__(self, evaluator) -> None:
        self.evaluator = evaluator

    def __call__(self, example: Example):
        checkout: Checkout = example.namespace["docs_checkout"]
        here = os.getcwd()
        os.chdir(checkout.repo)
        try:
            return self.evaluator(example)
        finally:
            os.chdir(here)


# ------------------------------------------------------------------ the blocks, for counting


@dataclass(frozen=True)
class Block:
    page: str  # relative to ROOT
    line: int  # of the opening fence
    language: str  # "" for a bare fence
    source: str
    skip: str | None  # the reason it is not run, if marked


def pages() -> list[Path]:
    return sorted({p for pattern in PAGES for p in ROOT.glob(pattern)})


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()]
        marker = SKIP.search(before[-500:])
        found.append(Block(str(page.relative_to(ROOT)), before.count("\n") + 1, m.group(2), m.group(3),
                           marker.group(1) if marker else None))
    return found


def all_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page)]


# ------------------------------------------------------------ docs/errors.md's message table

ERRORS_PAGE = ROOT / "docs" / "errors.md"
_FIRST_CODE = re.compile(r"(`+) ?(.+?) ?\1")


def error_rows(sections: tuple[str, ...] = ("",)) -> list[str]:
    """The message cell of each row of docs/errors.md's error tables (its first code span), in
    the sections whose heading starts with one of ``sections`` (default: all)."""
    rows, in_table, section = [], False, ""
    for line in ERRORS_PAGE.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:]
        if not section.startswith(sections):
            continue
        if line.startswith("| message"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("| ---"):
            m = _FIRST_CODE.match(line.split(" | ")[0].removeprefix("| "))
            if m:
                rows.append(m.group(2))
    return rows


def message_pattern(doc: str) -> re.Pattern:
    """A documented message as a pattern: ``...`` stands for any text, and the message may be
    shortened at its end (the table leaves out long lists and hints)."""
    return re.compile(".*?".join(re.escape(part) for part in doc.split("...")), re.DOTALL)


def matches_doc(doc: str, line: str, folder: Path) -> bool:
    """Whether ``line`` (stderr, ``dreamvid: error:`` and the case's folder taken off; the
    schedule shown as ``s.yaml`` whatever its name) is the documented message ``doc``."""
    said = line.removeprefix("dreamvid: error: ").replace(f"{folder}/", "").replace("raw.yaml", "s.yaml")
    return message_pattern(doc).match(said) is not None
