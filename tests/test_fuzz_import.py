"""Fuzzing `dreamvid import` (issue 30): random JSON, Deforum settings and Parseq manifests with
random values, truncated files. For every input ``import_file`` returns a schedule that loads
(its YAML text too), or raises dreamvid's bad-input error, one line naming the file; never
another exception, never longer than a bound, never a file written (nor a half one by the
command). Budget and long run: tests/fuzzing.py."""

from __future__ import annotations

import subprocess
import sys

import yaml
from hypothesis import example, given

from dreamvid.schedule.importers import import_file
from dreamvid.schedule.schedule import parse_schedule
from tests.conftest import ENV
from tests.fuzzing import (
    Hang,
    bounded,
    budget,
    check_refusal,
    count,
    fuzz,
    fuzz_item,  # noqa: F401 - an autouse fixture (Hypothesis statistics)
    listing,
)
from tests.strategies import IMPORT_FILES


def test_fuzz_import(tmp_path):
    @budget(150)
    @given(IMPORT_FILES)
    @example('{"max_frames": 3, "zoom": "\\"max_f*1e300\\": (1)"}')
    @example('{"max_frames": 1000000, "zoom": "0: (1 + t)"}')
    @example('{"max_frames": 1, "translation_y": 1' + "0" * 400 + '}')
    @example('{"max_frames": 3, "zoom": "\"max_f*1e308*10\": (1), \"max_f*0/0\": (2)"}')
    @example('{"max_frames": 3, "zoom": "0: (1), ' + "9" * 5000 + ': (2)"}')
    @example('{"max_frames": 3, "zoom": "0: (1), 1' + "0" * 400 + ': (2)", "angle": "\"1e400\": (1)"}')
    def imports(text):
        count("imports")
        path = tmp_path / "in.txt"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = listing(tmp_path)
        try:
            with bounded():
                result = import_file(path, tmp_path / "out.yaml")
        except Hang:
            raise
        except BaseException as err:  # noqa: BLE001 - checked, or raised again
            check_refusal(err, (str(path),))
            assert len(str(err).splitlines()) == 1 or all(
                line.startswith(f"{path}: the imported schedule would not load") for line in str(err).splitlines())
            return
        finally:
            assert listing(tmp_path) == before, "import_file wrote a file"
        assert yaml.safe_load(result.text) == result.data
        parse_schedule(result.data, source=tmp_path / "out.yaml", check_files=False)
        assert all("\n" not in line for line in result.notes + result.warnings)

    fuzz(imports)


def test_fuzz_import_command(tmp_path):
    """A sample through the real command: exit 0 with a whole schedule written, or 2 with one
    line per problem and nothing written."""

    @budget(3)
    @given(IMPORT_FILES)
    def command(text):
        count("import_command")
        path = tmp_path / "in.txt"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = tmp_path / "out.yaml"
        out.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "dreamvid", "import", path.name, "-o", out.name], check=False,
                              capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=120)
        assert "Traceback" not in proc.stderr and proc.returncode in (0, 2), proc.stderr
        if proc.returncode == 2:
            assert proc.stderr.startswith(f"dreamvid: error: {path.name}"), proc.stderr
            assert not out.exists()
        else:
            parse_schedule(yaml.safe_load(out.read_text()), source=out, check_files=False)
        assert sorted(p.name for p in tmp_path.iterdir()) in (["in.txt"], ["in.txt", "out.yaml"])

    fuzz(command)
