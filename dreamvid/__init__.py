"""dreamvid: DeepDream zoom videos from a YAML schedule.

The Python API (reference: docs/python.md)::

    import dreamvid

    s = dreamvid.load_schedule("logo.yaml")   # a path, a dict or YAML text
    for frame in dreamvid.frames(s, stop=30): ...   # HxWx3 uint8, as the video shows them
    dreamvid.render(s, "logo.mp4")            # resumes an interrupted render
    dreamvid.show(dreamvid.dream("photo.jpg", layers="mixed3"))

The names are imported on first use, so ``import dreamvid`` (and ``dreamvid --help``) do not
import torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dreamvid.core.defaults import MAX_INPUT_PIXELS, VERSION

__version__ = VERSION

# OpenCV decodes images of up to OPENCV_IO_MAX_IMAGE_PIXELS (2**30 by default), and a JPEG header
# of a few hundred bytes can claim that many: gigabytes, 12 GB more as float32. OpenCV reads the
# variable when it is imported, so it is set here, before any dreamvid module imports cv2
# (images.read_image refuses a larger image anyway, once decoded).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_INPUT_PIXELS))

_API = {
    "load_schedule": "api", "validate": "api", "frames": "api", "preview": "api", "render": "api",
    "dream": "api", "gallery": "api", "layers": "api", "load_model": "api", "network": "api", "show": "api",
    "motion": "api", "motion_frames": "api", "estimate": "api",
    "Schedule": "schedule.schedule", "ScheduleError": "schedule.schedule", "FrameParams": "schedule.schedule",
    "Progress": "core.progress", "DreamvidError": "core.errors", "InputError": "core.errors",
    "Interrupted": "core.errors", "FeatureNet": "engine.model",
}  # fmt: skip
__all__ = [
    "DreamvidError", "FeatureNet", "FrameParams", "InputError", "Interrupted", "Progress", "Schedule", "ScheduleError",
    "__version__", "dream", "estimate", "frames", "gallery", "layers", "load_model", "load_schedule", "motion",
    "motion_frames", "network", "preview", "render", "show", "validate",
]  # fmt: skip

if TYPE_CHECKING:  # for editors and type checkers: the same names, eagerly
    from dreamvid.api import (
        dream,
        estimate,
        frames,
        gallery,
        layers,
        load_model,
        load_schedule,
        motion,
        motion_frames,
        network,
        preview,
        render,
        show,
        validate,
    )
    from dreamvid.core.errors import DreamvidError, InputError
    from dreamvid.core.progress import Progress
    from dreamvid.engine.model import FeatureNet
    from dreamvid.rendering.loop import Interrupted
    from dreamvid.schedule.schedule import FrameParams, Schedule, ScheduleError


def __getattr__(name: str):
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'dreamvid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
