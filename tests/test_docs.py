"""The docs say what the program does (issue 32). The examples themselves run through Sybil
(conftest.py, tests/docs_examples.py); these tests check what Sybil cannot: which blocks do not
run and why, the messages and figures quoted in prose and output blocks, the paths cited."""

import ast
import builtins
import re
import subprocess
from pathlib import Path

import pytest

from dreamvid import cli
from tests.docs_examples import ROOT, all_blocks, error_rows, message_pattern, pages

MAX_NOT_RUN = 16  # blocks marked not to run, in all pages: keep the list short (raise it knowingly)
# a command in a bare fence (it should be a ```bash block): dreamvid SUBCOMMAND, python, bash, VAR=...
COMMAND = re.compile(r"^(nice -n \d+ )?(dreamvid [a-z-]+( |$)|python3? |bash |[A-Z_]+=\S+ )")


def test_the_readme_leads_with_the_demo_and_ci_runs_its_test_command():
    readme = [b for b in all_blocks() if b.page == "README.md" and b.language == "bash"]
    demo = readme[0].source.strip()  # the first command: install, render the demo (run, its install a no-op)
    assert demo == "bash install.sh && dreamvid render schedules/demo.yaml" and not readme[0].skip
    test_cmd = readme[1].source.strip()
    assert test_cmd == "bash install.sh --test && python3 -m pytest -q"
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()


def test_demo_schedule_validates():
    from dreamvid.schedule.schedule import load_schedule

    s = load_schedule(ROOT / "schedules" / "demo.yaml")
    assert s.total_frames == 90 and s.size == (256, 144)


def test_blocks_that_do_not_run_say_why_and_are_few():
    runnable = [b for b in all_blocks() if b.language in ("bash", "python")]
    not_run = [b for b in runnable if b.skip]
    assert len(runnable) - len(not_run) >= 6
    assert len(not_run) <= MAX_NOT_RUN, "\n".join(f"{b.page}:{b.line}: {b.skip}" for b in not_run)
    assert all(len(b.skip.split()) >= 3 for b in not_run), "say why a block does not run, in a few words"
    text = "".join(page.read_text() for page in pages())
    markers = re.findall(r"^[ \t]*<!--\s*skip:.*?-->", text, re.MULTILINE)
    assert len(markers) == len(not_run), f"a skip marker that is not `skip: next \"reason\"` before a block: {markers}"


def test_commands_are_in_bash_blocks():
    """A command shown in a bare ``` fence would escape the runner: commands go in ```bash."""
    bare = [f"{b.page}:{b.line}: {line}" for b in all_blocks() if b.language == ""
            for line in b.source.splitlines() if COMMAND.match(line)]  # fmt: skip
    assert not bare, "\n".join(bare)


def _unbound_names(source: str) -> set[str]:
    """Names a block reads at its top level that it never binds (and Python does not define)."""
    tree = ast.parse(source)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.language == "python"],
                         ids=lambda b: f"{b.page}:{b.line}")  # fmt: skip
def test_python_blocks_import_what_they_use(block):
    """Each Python block stands alone (blocks that do not run too): a reader copies one block."""
    assert not _unbound_names(block.source), f"{block.page}:{block.line} uses {_unbound_names(block.source)}"


# a path into the repository named in prose or a link: it must be there
REPO_PATH = re.compile(r"(?:`|\]\()((?:\.\./)*(?:dreamvid|tests|bench|schedules|docs|examples|shared|\.ci)/[\w./*-]+)")


# paths the docs name as written by a command, not shipped (git ignores the others: bench/carry/)
WRITTEN = ("docs/studio-first-run.png",)


def _ignored(path: str) -> bool:
    return any(subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", p], check=False).returncode == 0
               for p in (path, path + "/"))


def test_paths_the_docs_cite_exist():
    missing = []
    for page in pages():
        for m in REPO_PATH.finditer(page.read_text()):
            path = m.group(1).split("#")[0].rstrip(".")
            base = page.parent if path.startswith("..") or m.group(0).startswith("](") else ROOT
            if not list(base.glob(path)) and not (ROOT / path.lstrip("./")).exists() and path not in WRITTEN \
                    and not _ignored(path):
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "cited, but not in the repository:\n" + "\n".join(missing)


# ------------------------------------------------------------------ messages shown in the docs


def _bad_schedule(folder: Path) -> Path:
    """The schedule the docs' example messages come from: a misspelt layer in segment 1, and a
    word for the frame rate."""
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "in.png"), np.full((64, 64, 3), 128, np.uint8))
    path = folder / "s.yaml"
    path.write_text("input: in.png\nsize: [64, 64]\nfps: fast\nsegments:\n"
                    "  - {frames: 150, layers: {mixed0: 1}}\n  - {frames: 250, layers: {mixed9x: 1}}\n")
    return path


def _said(lines: str, folder: Path) -> list[str]:
    return [line.removeprefix("dreamvid: error: ").replace(f"{folder}/", "") for line in lines.splitlines()]


EXAMPLE_MESSAGES = [("README.md", "Mistakes are reported"), ("docs/schedule.md", "Every problem is reported")]


@pytest.mark.parametrize("page, after", EXAMPLE_MESSAGES)
def test_example_messages_are_what_validate_says(page, after, tmp_path, capsys, monkeypatch):
    text = (ROOT / page).read_text()
    block = re.search(re.escape(after) + r".*?```\n(.*?)```", text, re.DOTALL).group(1)
    _bad_schedule(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", "s.yaml"]) == 2
    said = _said(capsys.readouterr().err, tmp_path)
    for line in block.splitlines():
        assert any(message_pattern(line).fullmatch(s) for s in said), f"{page} shows {line!r}; dreamvid says {said}"


def _numbers_that_do_not_keyframe() -> set[str]:
    """A segment's keys that take numbers (a layer's weight too) but no keyframes, by the schema."""
    import json

    from dreamvid.schedule.spec import json_schema
    from tests.test_docs_schedule import _keyframeable

    props = json_schema()["$defs"]["SegmentSpec"]["properties"]
    return {k for k, node in props.items() if re.search(r'"(number|integer)"', json.dumps(node))
            and not _keyframeable(node)}  # fmt: skip


def test_readme_says_which_numbers_do_not_keyframe():
    text = (ROOT / "README.md").read_text()
    claim = re.search(r"Every number in `defaults` or a segment can be keyframed \(except ([^)]*)\)", text)
    assert claim, "README: say which numbers of a segment cannot be keyframed"
    assert set(re.findall(r"`(\w+)`", claim.group(1))) == _numbers_that_do_not_keyframe()


def _modules_that_print() -> set[str]:
    """Modules of dreamvid that call print() or write to sys.stdout / sys.stderr."""
    found = set()
    for path in (ROOT / "dreamvid").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                if (isinstance(f, ast.Name) and f.id == "print") or (
                        isinstance(f, ast.Attribute) and f.attr == "write" and "sys.std" in ast.unparse(f)):
                    found.add(path.stem)
    return found


def test_the_layout_says_which_modules_print():
    assert {"cli", "bars", "api"} <= _modules_that_print()
    for page in ("README.md", "docs/architecture.md"):
        line = next(line for line in (ROOT / page).read_text().splitlines() if line.startswith("cli.py "))
        named = {m for m in _modules_that_print() if re.search(rf"\b{m}\b", line)}
        assert named == _modules_that_print(), f"{page}: the layout names {named} as printing"


# ------------------------------------------------------------------ figures


DEMO_TIME = re.compile(r"(\d+(?:\.\d+)?) s on a 2-core AMD EPYC with AVX2 and AVX512_BF16, shared with other jobs: "
                       r"`bench/doc_figures.py`")
# a time given for the demo render anywhere else (a second figure for one thing)
OTHER_DEMO_TIME = re.compile(r"demo(?:\.yaml`?)?[^.\n]{0,60}?(?:takes|took|about|in) \d+(?:\.\d+)? s\b"
                             r"|demo\.yaml` \d+(?:\.\d+)? s\b|under a minute")


def test_the_demo_time_is_one_measured_figure():
    readme = (ROOT / "README.md").read_text()
    assert DEMO_TIME.search(readme), "README: the demo's time, its machine and the script that measured it"
    assert (ROOT / "bench" / "doc_figures.py").is_file()
    others = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in [*pages(), *(ROOT / "schedules").glob("*.yaml")]
              for m in OTHER_DEMO_TIME.finditer(DEMO_TIME.sub("", p.read_text()))]  # fmt: skip
    assert not others, "one figure for the demo's time (README's):\n" + "\n".join(others)


def test_the_gallery_cost_is_measured():
    readme = (ROOT / "README.md").read_text()
    cost = re.search(r"Making a gallery costs\s+\(layers \+ channels\) dreams of one tile: (.*?)`(bench/\S+\.py)[^`]*`",
                     readme, re.DOTALL)
    assert cost, "README: the gallery's cost, its machine and the script that measured it"
    assert re.search(r"\d+ CPU-seconds", cost.group(1)) and "AMD EPYC" in cost.group(1)
    assert (ROOT / cost.group(2)).is_file()


def test_the_amd_epyc_bf16_section_gives_the_bench_figures():
    """It said auto "should pick bf16 there" and that the bench's figures "remain to be checked"."""
    text = (ROOT / "docs" / "performance.md").read_text()
    section = text.split("### AMD EPYC with AVX512_BF16", 1)[1].split("\n### ", 1)[0]
    assert "to be checked" not in section and "should pick" not in section
    rows = re.findall(r"^\| (\d+x\d+) \| bf16 \(.*?\| (\d+) \| (\d+) \| \*\*(\d+\.\d+)x\*\* \|$", section, re.MULTILINE)
    assert {size for size, *_ in rows} == {"256x256", "512x512"}
    for _, baseline, dreamvid, speedup in rows:  # the speedup is the ratio of the two columns
        assert abs(int(baseline) / int(dreamvid) - float(speedup)) < 0.01


# rows of docs/errors.md that no case of tests/test_errors.py reproduces (the page says why)
NOT_COMPARED = (".../ckpt-...pt: checkpoint is truncated", ".../ckpt-...pt: this checkpoint belongs",
                "out/v.mp4.parts: another dreamvid", "cannot write in", "<file>: <reason>; <hint>",
                "/tmp/x/newest.jpg: --peek:", "demo.yaml: output: /home/me/out/demo.mp4 is outside the studio folder",
                "s.yaml: defaults.release:")
COMPARED_SECTIONS = ("Schedule", "Files", "Runtime")  # the import and Ray tables: tests/test_import.py, test_batch.py


def test_every_error_row_is_compared_with_a_case():
    from tests.test_errors import DOCUMENTED

    rows = error_rows(COMPARED_SECTIONS)
    left = [row for row in rows if not row.startswith((*DOCUMENTED.values(), *NOT_COMPARED))]
    assert not left, "rows of docs/errors.md without a case in tests/test_errors.py (DOCUMENTED):\n" + "\n".join(left)
    assert len(rows) - len(NOT_COMPARED) >= 60
