"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py, issue 22): the Hypothesis budget,
the long run, the per-example time bound, and the checks every property makes.

The normal suite runs each property on a fixed set of examples (``derandomize``: the same
ones every run, so the suite cannot turn red by chance; no example database is written).
The long run explores new examples for a given time per property::

    DREAMVID_FUZZ_SECONDS=600 python3 -m pytest -q -p no:cacheprovider tests/test_fuzz_schedule.py -k text

runs each selected property for 600 s (random seeds, batches of examples until the time is
up) and prints how many examples it ran. Failures are saved in ``.hypothesis/`` and replayed
first on the next run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.statistics import collector, describe_statistics

from dreamvid.core.errors import DreamvidError, InputError

LONG_SECONDS = float(os.environ.get("DREAMVID_FUZZ_SECONDS") or 0)
BOUND_S = 30.0  # an example that runs longer than this hangs (generous: the machine may be busy)

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example, HealthCheck.function_scoped_fixture]
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target] + (
    [] if os.environ.get("DREAMVID_FUZZ_SHRINK") == "0" else [Phase.shrink])  # 0: report examples unshrunk (faster)
settings.register_profile("dreamvid-suite", derandomize=True, database=None, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True, phases=_PHASES)
settings.register_profile("dreamvid-long", derandomize=False, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True, phases=_PHASES)

COUNTS: dict[str, int] = {}  # property name -> examples it ran (shrinking included)


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def budget(examples: int) -> settings:
    """The settings of a property that runs ``examples`` examples in the suite (batches of as
    many random ones in the long run)."""
    if LONG_SECONDS:
        return settings(settings.get_profile("dreamvid-long"), max_examples=examples)
    return settings(settings.get_profile("dreamvid-suite"), max_examples=examples)


_ITEM: list = []  # the running pytest item (see fuzz_item)


@pytest.fixture(autouse=True)
def fuzz_item(request):
    """The running test, for :func:`fuzz` to hand Hypothesis's statistics to pytest (shown by
    ``--hypothesis-show-statistics``). Test modules import this fixture to use it."""
    _ITEM.append(request.node)
    yield
    _ITEM.pop()


def fuzz(prop: Callable) -> None:
    """Run the @given property ``prop`` once (the suite), or again and again with new random
    examples for DREAMVID_FUZZ_SECONDS (the long run), then log how many examples ran."""
    name = prop.__name__
    if not LONG_SECONDS:
        item = _ITEM[-1] if _ITEM else None

        def note(stats: dict) -> None:
            if item is not None:
                item.hypothesis_statistics = describe_statistics({**stats, "nodeid": item.nodeid})

        with collector.with_value(note):
            prop()
        return
    start, batches = time.monotonic(), 0
    while time.monotonic() - start < LONG_SECONDS:
        prop()
        batches += 1
    took = time.monotonic() - start
    line = f"fuzz {name}: {COUNTS.get(name, 0)} examples in {took:.0f} s ({batches} batches), no failure\n"
    with open(os.environ.get("DREAMVID_FUZZ_LOG", "/dev/stderr"), "a") as log:
        log.write(line)


class Hang(BaseException):
    """An example ran past :data:`BOUND_S` (BaseException: no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def bounded(seconds: float = BOUND_S):
    """Raise :class:`Hang` in this (main) thread if the block runs longer than ``seconds``."""

    def alarm(signum, frame):
        raise Hang(f"ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: compared before and after, it shows
    whether anything was written."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def check_refusal(err: BaseException, names: tuple[str, ...]) -> None:
    """``err`` is dreamvid's bad-input error: an InputError (exit status 2) whose every line
    starts with one of ``names`` (the file); anything else is raised again (a finding)."""
    if not isinstance(err, InputError):
        raise err
    text = str(err)
    assert text and text == text.strip(), repr(text)
    for line in text.splitlines():
        assert line.startswith(names), f"{line!r} does not start with one of {names}"
        assert "Traceback" not in line


def check_one_line(err: BaseException, name: str) -> None:
    """A media error: a DreamvidError of one line that names the file."""
    if not isinstance(err, DreamvidError):
        raise err
    text = str(err)
    assert "\n" not in text and text.strip(), repr(text)
    assert name in text, f"{text!r} does not name {name!r}"
