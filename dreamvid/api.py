"""The Python API: what the ``dreamvid`` command does, for notebooks and scripts.

Every name here is re-exported from :mod:`dreamvid` (imported lazily, so ``import dreamvid``
and ``dreamvid --help`` stay fast)::

    import dreamvid

    s = dreamvid.load_schedule("logo.yaml")          # or a dict, or YAML text
    first = next(dreamvid.frames(s))                 # HxWx3 uint8 RGB, as the video shows it
    dreamvid.render(s, "logo.mp4")                   # resumes an interrupted render
    still = dreamvid.dream("photo.jpg", layers="mixed3")
    dreamvid.show(still)                             # inline in a notebook

Errors are :class:`~dreamvid.core.errors.DreamvidError` (bad input: :class:`~dreamvid.core.errors.InputError`)
with the same one-line messages as the command. Long work shows a ``tqdm.auto`` bar unless
``progress=False``, or reports to ``callback(Progress)`` when one is given. The reference is
docs/python.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from dreamvid.core import defaults as D
from dreamvid.core.errors import InputError
from dreamvid.core.progress import Callback, Progress, ignore
from dreamvid.schedule.schedule import Schedule, ScheduleError

__all__ = ["Progress", "ScheduleSource", "as_image", "dream", "estimate", "frames", "gallery", "layers", "load_model",
           "load_schedule", "motion", "motion_frames", "network", "preview", "render", "show", "validate"]

ScheduleSource = Union[Schedule, str, os.PathLike, Mapping]
"""A :class:`Schedule`, a schedule file's path, a mapping of schedule keys, or YAML text."""


# ------------------------------------------------------------------------------ schedules


def load_schedule(source: str | os.PathLike | Mapping, *, base_dir: str | os.PathLike | None = None,
                  model: Any = None) -> Schedule:  # fmt: skip
    """Read and validate a schedule, with the command's checks and one-line messages.

    ``source`` is a file path, a mapping of schedule keys, or YAML text (a string holding a
    line break or a ``key: value``). Relative paths in it start at ``base_dir``, else the
    file's folder, else the working directory. ``output`` may be left out when only frames
    are wanted. ``model``: a network of your own (:func:`network`), whose layers the
    schedule's ``layers`` are checked against; by default the schedule's ``model``.
    Raises :class:`~dreamvid.schedule.schedule.ScheduleError` listing every problem.
    """
    from dreamvid.schedule.schedule import load_schedule as load_file
    from dreamvid.schedule.schedule import parse_schedule
    from dreamvid.schedule.yamlfile import read_yaml

    catalogue = _network_catalogue(model)
    if isinstance(source, Mapping):
        base = Path(base_dir or os.getcwd())
        return parse_schedule(dict(source), source="<schedule>", base_dir=base, catalogue=catalogue)
    if isinstance(source, str) and _looks_like_yaml(source):
        base = Path(base_dir or os.getcwd())
        data, problems = read_yaml(source)
        if problems:
            from dreamvid.core.problems import message

            raise ScheduleError([message("<schedule>", loc, text) for loc, text in problems])
        return parse_schedule(data, source="<schedule>", base_dir=base, catalogue=catalogue)
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"got a {type(source).__name__}; expected a schedule file path, a mapping or YAML text")
    if base_dir is None:
        return load_file(source, catalogue=catalogue)
    from dreamvid.schedule.yamlfile import read_yaml_file

    data, problems = read_yaml_file(source, "schedule")
    if problems:
        from dreamvid.core.problems import message

        raise ScheduleError([message(str(source), loc, text) for loc, text in problems])
    return parse_schedule(data, source=source, base_dir=base_dir, catalogue=catalogue)


def _looks_like_yaml(text: str) -> bool:
    return "\n" in text or (":" in text and Path(text).suffix.lower() not in (".yaml", ".yml"))


def _schedule(schedule: ScheduleSource, model: Any = None) -> Schedule:
    return schedule if isinstance(schedule, Schedule) else load_schedule(schedule, model=model)


def validate(schedule: ScheduleSource, callback: Callback | None = None) -> str:
    """Check a schedule as ``dreamvid validate`` does (keys, layers, files, and that the input
    image and audio decode) without dreaming; returns its summary. What is allowed but likely
    a mistake (a camera jump between segments without a transition, a formula that reads ``s``
    as Deforum's seed where dreamvid's ``s`` is seconds) is reported through
    ``callback`` as ``Progress("warning")`` records; without one, as ``dreamvid: warning:``
    lines on stderr."""
    from dreamvid.pixels.images import check_images, read_image

    s = _schedule(schedule)
    s.check_weights()  # as a render does before it loads the network
    if s.input_path is not None and s.clip is None:
        read_image(s.input_path, video_too=True)  # it must decode, not just exist (a clip was decoded when the schedule was read)
    check_images(s)  # the guides and the mask too
    if s.audio_path is not None:
        from dreamvid.media.audio import probe_audio

        probe_audio(s.audio_path)  # ffmpeg must decode it: found now, not at the final join
    if callback is None:
        from dreamvid.bars import Bar

        callback = Bar(quiet=True)  # prints warnings only
    from dreamvid.rendering.video_input import colour_notices

    for warning in [*colour_notices(s.clip), *s.camera_jumps(), *s.deforum_seconds()]:
        callback(Progress("warning", message=warning))
    return s.summary()


def estimate(schedule: ScheduleSource, *, device: str | None = None, model: Any = None):
    """How long rendering the schedule will take here, as ``dreamvid validate --estimate``
    says: two frames of its heaviest segment are dreamed at full size on ``device`` (default:
    the schedule's) and every frame's cost is scaled from theirs. Returns an
    :class:`~dreamvid.rendering.estimate.Estimate` (``seconds``, ``frame_seconds``,
    ``segment``, ``peak_bytes``; ``str()`` is the command's line)."""
    from dreamvid.rendering.estimate import estimate as time_two_frames

    s = _schedule(schedule, model)
    return time_two_frames(s, _network_for(s, model, device))


# ------------------------------------------------------------------------------- networks


def layers(model: Any = None) -> dict[str, int]:
    """The layers a network offers, ``{name: channels}`` in forward order: a built-in model's
    name (default: the embedded ``inception_v3``) or a network of your own."""
    if model is None or isinstance(model, str):
        from dreamvid.engine.catalogue import layer_catalogue

        return layer_catalogue(model or D.MODEL)
    return dict(_as_network(model).catalogue)


def load_model(name: str = D.MODEL, *, weights: str | os.PathLike | None = None, device: str | None = None,
               random_weights: bool = False):  # fmt: skip
    """A built-in network with its weights (``weights``: a local file for the torchvision
    models; nothing is downloaded) on ``device`` (auto: CUDA when present). Loaded once per
    process and kept (the last four), so calling :func:`dream` again does not reload it."""
    from dreamvid.engine.model import pick_device, shared_model

    return shared_model(name, weights=weights, random_init=random_weights, device=pick_device(device or D.DEVICE))


def network(module, layers: Mapping[str, Any], *, input_range: tuple[float, float] = (0.0, 1.0),
            mean: Iterable[float] = (0.0, 0.0, 0.0), std: Iterable[float] = (1.0, 1.0, 1.0), name: str | None = None):  # fmt: skip
    """Your own ``torch.nn.Module`` as a network to dream with.

    ``layers`` maps the names a schedule uses to submodules of ``module`` (or their dotted
    paths). Images reach ``module`` scaled to ``input_range`` and normalised with ``mean`` and
    ``std`` per channel, e.g. ``input_range=(0, 1), mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225)`` for torchvision's ImageNet models.
    """
    from dreamvid.engine.model import HookedNet

    return HookedNet(module, layers, input_range=input_range, mean=tuple(mean), std=tuple(std), name=name)


def _as_network(model: Any):
    from torch import nn

    from dreamvid.engine.model import FeatureNet

    if isinstance(model, FeatureNet):
        return model
    if isinstance(model, nn.Module):
        raise InputError(f"model: a plain {type(model).__name__}; expected dreamvid.network(module, layers={{...}}) "
                         "naming the layers to dream with")  # fmt: skip
    raise InputError(f"model: got a {type(model).__name__}; expected a model name or dreamvid.network(...)")


def _network(model: Any, device: str | None):
    """``model`` (None: the embedded default, a name, or a network) on ``device``."""
    if model is None or isinstance(model, str):
        return load_model(model or D.MODEL, device=device)
    net = _as_network(model)
    if device is not None:
        from dreamvid.engine.model import pick_device

        net = net.to(pick_device(device))
    return net


def _network_catalogue(model: Any):
    if model is None:
        return None
    if isinstance(model, str):
        from dreamvid.engine.catalogue import layer_catalogue

        return layer_catalogue(model)
    return _as_network(model).catalogue


def _network_for(schedule: Schedule, model: Any, device: str | None):
    """The network to dream ``schedule`` with: ``model`` (a name or a network) or the schedule's."""
    if model is None:
        from dreamvid.rendering.loop import load_network

        return load_network(schedule, device)
    if isinstance(model, str):
        return load_model(model, device=device or schedule.device)
    net = _as_network(model)
    from dreamvid.engine.catalogue import check_layer_key

    for seg in schedule.segments:
        for key, _ in seg.layers:
            problem = check_layer_key(key, net.catalogue)
            if problem:
                raise InputError(f"{schedule.source}: segments[{seg.index}].layers.{key}: {problem}")
    return _network(net, device)


# ------------------------------------------------------------------------------- progress


def _callback(progress: bool, callback: Callback | None, unit: str = "frame"):
    """(callback, bar or None): the caller's callback, a tqdm.auto bar, or nothing."""
    if callback is not None:
        return callback, None
    if not progress:
        return ignore, None
    from dreamvid.bars import Bar

    bar = Bar(unit=unit, notebook=True)
    return bar, bar


# ------------------------------------------------------------------------------ rendering


def frames(schedule: ScheduleSource, *, start: int = 0, stop: int | None = None, device: str | None = None,
           model: Any = None, scale: float = 1.0, progress: bool = True,
           callback: Callback | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Frames ``start`` .. ``stop - 1`` (default: to the end) as HxWx3 uint8 RGB arrays,
    equal to the video's frames before encoding.

    Frame after frame costs one dream each; a render's checkpoint at or before ``start``
    is used when one fits (as ``preview`` does). ``scale`` < 1: smaller, faster, approximate.
    """
    from dreamvid.rendering.loop import frames as render_frames

    s = _schedule(schedule, model)
    net = _network_for(s, model, device)
    report, bar = _callback(progress, callback)
    try:
        yield from render_frames(s, start=start, stop=stop, scale=scale, model=net, callback=report)
    finally:
        if bar is not None:
            bar.close()


def preview(schedule: ScheduleSource, n: int, *, device: str | None = None, model: Any = None,
            scale: float = 1.0, progress: bool = True, callback: Callback | None = None) -> np.ndarray:  # fmt: skip
    """Frame ``n`` exactly as the video shows it (HxWx3 uint8), as ``dreamvid preview`` does."""
    s = _schedule(schedule, model)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < s.total_frames:
        raise InputError(f"{s.source}: frame {n!r} is outside the schedule; expected 0..{s.total_frames - 1}")
    gen = frames(s, start=n, stop=n + 1, device=device, model=model, scale=scale, progress=progress,
                 callback=callback)  # fmt: skip
    try:
        return next(gen)
    finally:
        gen.close()


def motion_frames(schedule: ScheduleSource, *, start: int = 0, stop: int | None = None, captions: bool = False,
                  device: str | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """The schedule's camera path without dreaming: frames ``start`` .. ``stop - 1`` as HxWx3
    uint8 RGB, each the one before moved by its frame's camera, with the render's own warps
    (so they equal a render with ``iterations: 0`` and colour control off). ``captions``: the
    frame number, segment and strongest layer in the top-left corner and the zoom centre on a
    small map in the bottom-right one. No network is loaded: hundreds of frames a second."""
    from dreamvid.rendering.motion import motion_frames as camera_path

    yield from camera_path(_schedule(schedule), start=start, stop=stop, captions=captions, device=device)


def motion(schedule: ScheduleSource, output: str | os.PathLike | None = None, *, captions: bool = True,
           device: str | None = None, progress: bool = True, callback: Callback | None = None) -> Path:  # fmt: skip
    """Write the camera path (:func:`motion_frames`) as a video, as ``dreamvid preview --motion``
    does: to ``output``, default ``<output stem>.motion.mp4`` beside the schedule's output.
    Returns its path; the file appears only when complete."""
    from dreamvid.rendering.motion import default_path, write_motion

    s = _schedule(schedule)
    path = Path(output) if output is not None else default_path(s)
    report, bar = _callback(progress, callback)
    try:
        return write_motion(s, path, captions=captions, device=device, callback=report)
    finally:
        if bar is not None:
            bar.close()


def render(schedule: ScheduleSource, output: str | os.PathLike | None = None, *, device: str | None = None,
           frames: int | None = None, fresh: bool = False, model: Any = None, keep_parts: bool = False,
           progress: bool = True, callback: Callback | None = None,
           should_stop: Callable[[], bool] | None = None, peek: str | os.PathLike | None = None) -> Path:  # fmt: skip
    """Render the schedule (its first ``frames`` frames) to ``output`` (default: the schedule's
    ``output``), as ``dreamvid render`` does: it resumes from the work folder's checkpoints,
    refuses a changed schedule unless ``fresh``, and writes the video only when complete.
    ``should_stop()`` is asked after each frame; when true the render checkpoints and raises
    :class:`~dreamvid.rendering.loop.Interrupted`. ``peek``: a JPEG path kept showing the
    newest frame (every 2 s at most; the work folder has its own, which the studio shows).
    Returns the video's path."""
    from dreamvid.rendering.loop import render as render_video

    s = _schedule(schedule, model)
    if output is None and s.output_path is None:  # before loading a network
        raise InputError(f"{s.source}: output: no output file; expected `output:` in the schedule or -o")
    net = _network_for(s, model, device)
    report, bar = _callback(progress, callback)
    try:
        return render_video(s, output=None if output is None else Path(output), frames=frames, fresh=fresh,
                            keep_parts=keep_parts, model=net, callback=report,
                            should_stop=should_stop or (lambda: False),
                            peek=None if peek is None else Path(peek))  # fmt: skip
    finally:
        if bar is not None:
            bar.close()


# --------------------------------------------------------------------------------- stills


def dream(image: Any, *, layers: str | Mapping[str, float] = D.LAYERS, iterations: int = D.ITERATIONS,
          octaves: int = D.OCTAVES, step: float = D.STEP, jitter: int = D.JITTER,
          octave_scale: float = D.OCTAVE_SCALE, objective: str = D.OBJECTIVE,
          size: tuple[int, int] | str | None = None, seed: int = 0, device: str | None = None,
          model: Any = None) -> np.ndarray:  # fmt: skip
    """Dream a still: ``image`` (a path, an HxWx3 uint8 or float array, a PIL image, or a
    tensor (3, H, W) / (1, 3, H, W) in [0, 1]) -> HxWx3 uint8 RGB.

    ``layers``: ``"mixed3"``, ``"mixed3+mixed4:97"`` or ``{"mixed3": 1.0, "mixed4:97": 0.5}``.
    ``size``: fit the image to (width, height) first (cover + centre crop), like a schedule.
    The defaults are a schedule segment's (:mod:`dreamvid.core.defaults`).
    """
    import torch

    from dreamvid.engine.ascent import DreamSettings
    from dreamvid.engine.ascent import dream as dream_image
    from dreamvid.engine.catalogue import size_problem
    from dreamvid.engine.objectives import weighted
    from dreamvid.pixels.images import fit, to_tensor, to_uint8

    net = _network(model, device)
    weights = _layer_weights(layers)
    objective_fn = weighted(weights, objective, net.catalogue)  # checks names before any work
    img = as_image(image)
    if size is not None:
        img = fit(img, _size(size))
    problem = size_problem(net.name, weights, img.shape[1], img.shape[0])
    if problem:
        raise InputError(f"image: {problem}")
    settings = DreamSettings(iterations, step, octaves, octave_scale, jitter)
    out = dream_image(net, to_tensor(img, net.device), objective_fn, settings, torch.Generator().manual_seed(seed))
    return to_uint8(out).cpu().numpy()


def _layer_weights(layers: str | Mapping[str, float]) -> dict[str, float]:
    if isinstance(layers, Mapping):
        return {str(k): float(v) for k, v in layers.items()}
    from dreamvid.engine.catalogue import layer_sum

    try:
        return layer_sum(layers)
    except ValueError as err:
        raise InputError(str(err)) from None


def _size(size) -> tuple[int, int]:
    from dreamvid.core.problems import Invalid
    from dreamvid.schedule.spec import parse_size

    try:
        return parse_size(list(size) if isinstance(size, tuple) else size)
    except Invalid as err:
        raise InputError(f"size: {err}") from None


def as_image(image: Any) -> np.ndarray:
    """Anything :func:`dream` takes -> HxWx3 float32 RGB in [0, 1]."""
    from dreamvid.pixels.images import read_image

    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):  # PIL
        image = np.asarray(image.convert("RGB"))
    if type(image).__module__.startswith("torch"):
        t = image.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise InputError(f"image: a tensor of shape {tuple(image.shape)}; expected (3, H, W) or (1, 3, H, W)")
        image = t.permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise InputError(f"image: got a {type(image).__name__}; expected a path, an HxWx3 array, a PIL image or "
                         "a tensor")  # fmt: skip
    arr = image
    if arr.ndim == 2:
        arr = arr[:, :, None].repeat(3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise InputError(f"image: an array of shape {arr.shape}; expected HxWx3 (RGB)")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise InputError("image: holds NaN or infinite values; expected RGB in [0, 1]")
    else:
        raise InputError(f"image: an array of {arr.dtype}; expected uint8 (0..255) or float (0..1)")
    if arr.shape[2] == 4:  # RGBA over white, as image files are read
        alpha = arr[:, :, 3:4]
        arr = arr[:, :, :3] * alpha + (1.0 - alpha)
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0))


def gallery(image: Any = None, *, size: int = 160, layers: Iterable[str] | None = None, channels: int = 3,
            columns: int = 6, iterations: int = D.ITERATIONS, octaves: int = D.OCTAVES, step: float = D.STEP,
            jitter: int = D.JITTER, octave_scale: float = D.OCTAVE_SCALE, objective: str = D.OBJECTIVE,
            seed: int = 0, device: str | None = None, model: Any = None, progress: bool = True,
            guide: Any = None, guide_weight: float = D.GUIDE_WEIGHT,
            callback: Callback | None = None) -> np.ndarray:  # fmt: skip
    """A labelled contact sheet (HxWx3 uint8): ``image`` (default: grey noise) dreamed at every
    layer of the network (or at ``layers``), plus ``channels`` channels of mixed3 and mixed4.
    ``guide`` (an image, as ``image``): every tile is also pulled toward its features with
    ``guide_weight``, as a schedule's ``guide:`` does; it is shown after the input."""
    import torch

    from dreamvid.engine.ascent import DreamSettings
    from dreamvid.pixels.images import fit, noise_image
    from dreamvid.tools.gallery import make_gallery

    net = _network(model, device)
    tile = (size, size)
    picture = fit(as_image(image), tile) if image is not None else noise_image(tile, torch.Generator().manual_seed(seed))
    settings = DreamSettings(iterations, step, octaves, octave_scale, jitter)
    report, bar = _callback(progress, callback, unit="tile")
    try:
        return make_gallery(net, picture, net.catalogue, settings, keys=None if layers is None else list(layers),
                            channels=channels, columns=columns, seed=seed, objective=objective,
                            guide=None if guide is None else fit(as_image(guide), tile), guide_weight=guide_weight,
                            callback=report)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------------------- show


def show(what: Any, *, columns: int = 4, width: int | None = None) -> None:
    """Display inline in a notebook: a frame (HxWx3 array), frames (an iterable of them, as a
    grid), or a video file (an HTML5 player). Outside a notebook it says so in one line."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, Video, display
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython else None
    if shell is None or not hasattr(shell, "kernel"):
        where = f"; open {what} in a video player" if isinstance(what, (str, os.PathLike)) else ""
        print(f"dreamvid.show: not in a notebook (no IPython kernel), nothing shown{where}", file=sys.stderr)
        return
    if isinstance(what, (str, os.PathLike)):
        display(Video(str(what), embed=True, width=width, html_attributes="controls loop autoplay muted"))
        return
    import cv2

    from dreamvid.tools.gallery import contact_sheet

    pictures = [what] if isinstance(what, np.ndarray) and what.ndim == 3 else [np.asarray(f) for f in what]
    if not pictures:
        raise InputError("show: no frames; expected a frame, frames or a video path")
    sheet = pictures[0] if len(pictures) == 1 else contact_sheet(pictures, [str(i) for i in range(len(pictures))],
                                                                   columns)  # fmt: skip
    ok, png = cv2.imencode(".png", np.ascontiguousarray(sheet[:, :, ::-1]))
    display(Image(data=png.tobytes(), width=width))

