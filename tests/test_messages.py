"""What the CLI says when a render is stopped (issue 21): real processes, real signals.

* SIGTERM is named as what was received, and how to abort at once with it (no Ctrl-C was pressed);
* a stop that was asked for is a plain message, not an error, and exits 130;
* a second Ctrl-C while dreamvid shuts down prints no Python traceback.
"""

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ENV, write_schedule

pytestmark = pytest.mark.timeout(240)

TINY = {"size": [64, 64], "checkpoint_every": 2,
        "defaults": {"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05}}  # fmt: skip
LONG = [{"frames": 400, "layers": {"mixed0": 1.0}}]


def _start(args, script=None):
    cmd = [sys.executable, "-c", script, *map(str, args)] if script else [sys.executable, "-m", "dreamvid", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_for_checkpoint(work, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not list(work.glob("ckpt-*.pt")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_stop_names_its_signal_and_is_not_an_error(tmp_path, sig, said):
    path = write_schedule(tmp_path, segments=LONG, **TINY)
    proc = _start(["render", path, "--quiet"])
    _wait_for_checkpoint(tmp_path / "out" / "video.mp4.parts", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2, err
    assert lines[0] == f"dreamvid: stopping after this frame ({said} again to abort now)"
    assert lines[1].startswith("dreamvid: stopped; frames 0-") and lines[1].endswith("rerun the same command to resume")
    assert "error" not in err and "Traceback" not in err
    if sig == signal.SIGTERM:
        assert "Ctrl-C" not in err


# The render under test, run as the `dreamvid` program is, with a slow step added to the
# interpreter's shutdown (an atexit callback, registered first so it runs last) so that a
# second Ctrl-C reliably lands while dreamvid is shutting down after a clean stop.
SLOW_EXIT = """
import atexit, sys, time
atexit.register(time.sleep, 4)
from dreamvid.cli import main
sys.argv = ["dreamvid", *sys.argv[1:]]
sys.exit(main())
"""


def test_a_second_ctrl_c_while_shutting_down_prints_no_traceback(tmp_path):
    path = write_schedule(tmp_path, segments=LONG, **TINY)
    proc = _start(["render", path, "--quiet"], script=SLOW_EXIT)
    _wait_for_checkpoint(tmp_path / "out" / "video.mp4.parts", proc)
    proc.send_signal(signal.SIGINT)
    lines = []
    while not (lines and lines[-1].startswith("dreamvid: stopped;")):  # the clean stop is done
        line = proc.stderr.readline()
        assert line, lines
        lines.append(line.strip())
    proc.send_signal(signal.SIGINT)  # while the interpreter shuts down
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest and "Exception ignored" not in rest, rest
