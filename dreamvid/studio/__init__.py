"""``dreamvid studio``: a local web page to shape a schedule, preview frames and run renders.

Built on the Python API (:mod:`dreamvid.api`): the page checks the schedule with
:func:`dreamvid.load_schedule` and :func:`dreamvid.validate`, previews with
:func:`dreamvid.frames`, plots with :mod:`dreamvid.tools.timeline`, and renders with
:func:`dreamvid.render` in a background process (:mod:`.job`) that shares the work folder,
lock and checkpoints of ``dreamvid render``. Modules: :mod:`.paths` (what may be read or
written), :mod:`.checks` (validation with line numbers), :mod:`.previews`, :mod:`.renders`
(background renders and their state on disk), :mod:`.app` (the Starlette application and
its token gate), :mod:`.server` (uvicorn, signals). Reference: docs/studio.md.

Starlette and uvicorn are an optional extra: ``pip install 'dreamvid[studio]'``.
"""

from __future__ import annotations

EXTRA = "pip install 'dreamvid[studio]'"


def require_extra() -> None:
    """Raise a one-line :class:`~dreamvid.core.errors.DreamvidError` when the web stack is missing."""
    import importlib

    from dreamvid.core.errors import DreamvidError

    missing = []
    for module in ("starlette", "uvicorn"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        err = DreamvidError(f"dreamvid studio needs {' and '.join(missing)}; install the extra: {EXTRA}")
        err.exit_code = 2
        raise err
