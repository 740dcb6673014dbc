"""The frame loop: resume, dream, encode, checkpoint.

frame 0 is the fitted input; frame n = dream(camera(frame n-1)) with frame n's parameters
and a generator seeded by (seed, n), so frame n never depends on how the render started
(the step: :mod:`.step`); with a ``cadence`` only every k-th frame is dreamed so, the frames
between are crossfades of the two dreams around them (:mod:`.cadence`). Frames stream into
ffmpeg in parts that close at each checkpoint (:mod:`.parts`, :mod:`.checkpoint`); at the end
the parts are joined without re-encoding and renamed onto the output.

The library reports progress through ``callback(Progress)``; it never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dreamvid.core.errors import (
    DreamvidError,
    InputError,
    Interrupted,
    describe_os_error,
    is_out_of_memory,
    out_of_memory_message,
)
from dreamvid.core.progress import Callback, Progress, ignore, warner
from dreamvid.engine.model import FeatureNet, pick_device, shared_model
from dreamvid.media.audio import probe_audio
from dreamvid.media.colourspace import Colour, for_writing
from dreamvid.media.write import VideoWriter, join_videos, output_problem, part_colour, probe_codec
from dreamvid.pixels.images import check_images, to_uint8
from dreamvid.rendering import cadence, lease, workdir
from dreamvid.rendering import checkpoint as ckpt
from dreamvid.rendering import video_input as video
from dreamvid.rendering.checkpoint import (
    Checkpoint,
    ScheduleChanged,  # noqa: F401 - part of this module's API (batch catches it)
)
from dreamvid.rendering.framesource import FrameSource
from dreamvid.rendering.parts import Parts
from dreamvid.rendering.peek import Peek
from dreamvid.rendering.step import Dreamer
from dreamvid.rendering.workdir import work_dir
from dreamvid.schedule.schedule import Schedule


def load_network(schedule: Schedule, device: str | None = None) -> FeatureNet:
    """The schedule's network with its weights, on ``device`` (default: the schedule's), kept
    for the process (:func:`.model.shared_model`): a batch worker that renders many videos
    loads its network, and compiles it (:func:`.ascent.compiled`), once."""
    schedule.check_weights()
    return shared_model(schedule.model, weights=schedule.model_weights_path, device=pick_device(device or schedule.device))


def render(
    schedule: Schedule,
    *,
    device: str | None = None,
    output: Path | None = None,
    frames: int | None = None,
    fresh: bool = False,
    keep_parts: bool = False,
    model: FeatureNet | None = None,
    callback: Callback = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    peek: Path | None = None,
) -> Path:
    """Render ``schedule`` (its first ``frames`` frames) to ``output``; resumes when it can.

    The newest frame goes, now and then, into the work folder's ``peek.jpg`` and to ``peek``
    (a JPEG path) when given (:mod:`.peek`).

    ``should_stop`` is asked after each frame; when it says yes the encoder is stopped, a
    checkpoint naming the open part's frames (already on disk) is written and
    :class:`Interrupted` raised (the CLI wires it to Ctrl-C and SIGTERM). A
    ``KeyboardInterrupt`` instead aborts at once, keeping the last checkpoint.
    """
    output = _checked_output(schedule, output, callback)
    peek = _checked_peek(peek, output)
    total = min(frames or schedule.total_frames, schedule.total_frames)
    codec = probe_codec(schedule.encoder.codec)
    # device and model errors before any folder is made
    dreamer = Dreamer(schedule, model or load_network(schedule, device), on_warning=warner(callback))
    work = work_dir(output)
    workdir.make(work)
    with lease.exclusive(work, on_wait=warner(callback)):
        if fresh:
            workdir.empty(work)
        parts, state, colour = _resume(schedule, dreamer, work, total, codec, callback)
        callback(Progress("start", frame=parts.start, total=total, start=parts.start))
        # parts.folder: the work folder, or a scratch folder in it when it holds a longer render's frames
        peeks = Peek([workdir.peek_path(parts.folder), *([peek] if peek else [])], on_warning=warner(callback))
        try:
            _loop(schedule, FrameSource(dreamer, total), parts, state, total, callback, should_stop, peeks)
            _join(schedule, parts, total, output, colour)
        except BaseException as err:  # a hard stop (KeyboardInterrupt) too: the last checkpoint stands
            parts.abort()
            workdir.drop_if_empty(work)
            if _is_runtime_failure(err):
                raise _failed(err, work, parts.saved, schedule.size) from err
            raise
        finally:
            dreamer.close()
        kept = parts.close(keep=keep_parts)
        if kept:
            callback(Progress("warning", message=kept))
        callback(Progress("done", frame=total, total=total, start=parts.start, message=str(output)))
        return output


def _checked_output(schedule: Schedule, output: Path | None, callback: Callback) -> Path:
    """The output's absolute path, once the request is known to be renderable: an output
    that is not the input and can be written, readable audio and images (before hours of
    rendering, not at the final join). Notices about a clip input go to ``callback``."""
    if output is None and schedule.output_path is None:
        raise InputError(f"{schedule.source}: output: no output file; expected `output:` in the schedule or -o")
    output = Path(output or schedule.output_path).absolute()
    if schedule.input_path is not None and output.resolve() == schedule.input_path.resolve():
        raise InputError(f"{output}: the output path is the input image; choose another output")
    problem = output_problem(output)
    if problem:
        raise InputError(f"{output}: {problem}")
    if schedule.audio_path is not None:
        probe_audio(schedule.audio_path)
    check_images(schedule)
    for notice in video.notices(schedule.clip):
        callback(Progress("warning", message=notice))
    return output


def _checked_peek(peek: Path | None, output: Path) -> Path | None:
    """``--peek``'s absolute path: a file in an existing folder, not the output."""
    if peek is None:
        return None
    peek = Path(peek).absolute()
    if not peek.parent.is_dir():
        raise InputError(f"{peek}: --peek: its folder does not exist; expected a JPEG path in an existing folder")
    if peek == output or peek.is_dir():
        raise InputError(f"{peek}: --peek: expected a JPEG file path, not the output or a folder")
    return peek


def _resume(schedule: Schedule, dreamer: Dreamer, work: Path, total: int, codec: str,
            callback: Callback) -> tuple[Parts, cadence.State | None, Colour]:  # fmt: skip
    """The parts of a render of ``total`` frames into ``work``, continued from the newest
    checkpoint that fits, the state it holds (None: start from frame 0), and the colour its
    parts are encoded with. A work folder that holds frames past ``total`` (a longer render,
    stopped) is left as it is."""
    enc = schedule.encoder
    settings = ckpt.render_settings(schedule, codec, dreamer.net)
    checkpoint = ckpt.find(schedule, work, settings, total - 1, callback)
    state = None if checkpoint is None else cadence.resumed(checkpoint, dreamer.device)
    dreamer.continue_from(checkpoint)
    if checkpoint is not None and (warning := ckpt.numerics_warning(checkpoint.numerics, dreamer.numerics())):
        callback(Progress("warning", message=warning))
    newest = workdir.last_saved_frame(work)
    colour = _colour(schedule, work, checkpoint)
    parts = Parts(work, checkpoint, total - 1, schedule.checkpoint_every, settings, dreamer.numerics,
                  lambda n: ckpt.checkpoint_digests(schedule, n), read_only=newest is not None and newest >= total,
                  new_writer=lambda path: VideoWriter(path, schedule.size, schedule.frame_rate, codec=codec,
                                                      crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt,
                                                      colour=colour))  # fmt: skip
    return parts, state, colour


def _colour(schedule: Schedule, work: Path, checkpoint: Checkpoint | None) -> Colour:
    """The colour of a render's parts: that of the parts it has already encoded (one video, one
    matrix, even when an earlier release began it), else the one for its size."""
    if checkpoint is not None and checkpoint.parts:
        return part_colour(work / checkpoint.parts[0][0], schedule.size, schedule.encoder.pix_fmt)
    return for_writing(schedule.size, schedule.encoder.pix_fmt)


def _loop(schedule: Schedule, source: FrameSource, parts: Parts, state: cadence.State | None, total: int,
          callback: Callback, should_stop: Callable[[], bool], peek: Peek) -> None:  # fmt: skip
    """Frames ``parts.start`` .. ``total - 1``: each made from the state after the one before,
    encoded, saved, shown now and then as the peek; a checkpoint where a part closes and after
    the last frame; a stop when asked."""
    start = parts.start
    for n in range(start, total):
        state, rgb = source.get(n, state)
        peek(n, total, rgb)
        if parts.add(n, rgb) or n == total - 1:
            parts.save(n, state)
            callback(Progress("checkpoint", frame=n + 1, total=total, start=start))
        callback(Progress("frame", frame=n + 1, total=total, start=start, segment=schedule.segment_of(n)[0]))
        if should_stop() and n < total - 1:
            saved = parts.stop(n, state)
            raise Interrupted(f"stopped; frames 0-{saved} of {total} are saved in {parts.work}; "
                              "rerun the same command to resume")  # fmt: skip


def _join(schedule: Schedule, parts: Parts, total: int, output: Path, colour: Colour) -> None:
    """Encode the open part's frames as the tail and join the parts (and the audio) onto ``output``."""
    parts.finish(total - 1)
    videos = parts.videos()
    join_videos([path for path, _ in videos], output, audio=schedule.audio_path,
                durations=[count / schedule.fps for _, count in videos], fps=schedule.frame_rate, colour=colour)


def _is_runtime_failure(err: BaseException) -> bool:
    """Failures the user can act on, reported as one line (not bugs, not a stop request)."""
    if isinstance(err, (Interrupted, InputError)):
        return False
    return isinstance(err, (DreamvidError, OSError)) or is_out_of_memory(err)


def _failed(err: BaseException, work: Path, saved: int, size: tuple[int, int]) -> DreamvidError:
    """A runtime failure (disk full, ffmpeg died, NaN, out of memory) as one line that
    also says what survived: checkpoints are written atomically, so the last one stands."""
    if isinstance(err, OSError):
        what = describe_os_error(err)
    elif is_out_of_memory(err) and not isinstance(err, DreamvidError):
        what = out_of_memory_message(err, f"rendering a {size[0]}x{size[1]} frame")
    else:
        what = str(err)
    if saved >= 0:
        kept = f"frames 0-{saved} are saved in {work}: fix the cause, then rerun the same command to resume"
    else:
        kept = "no frame had been saved yet"
    out = DreamvidError(f"{what}; {kept}")
    out.exit_code = getattr(err, "exit_code", 1)
    return out


def frames(
    schedule: Schedule,
    *,
    start: int = 0,
    stop: int | None = None,
    device: str | None = None,
    scale: float = 1.0,
    model: FeatureNet | None = None,
    callback: Callback = ignore,
) -> Iterator[np.ndarray]:
    """Frames ``start`` .. ``stop - 1`` as the video shows them (before encoding), HxWx3 uint8.

    Starts from the newest checkpoint at or before ``start`` that a render of this schedule
    left (at ``scale`` 1), else from frame 0; each further frame costs one dream.
    ``scale`` < 1 renders smaller and faster, an approximation.
    """
    total = schedule.total_frames
    stop = total if stop is None else stop
    if not 0 <= start < stop <= total:
        raise InputError(f"frames {start}..{stop - 1} are outside the schedule; expected frames within 0..{total - 1}")
    dreamer = Dreamer(schedule, model or load_network(schedule, device), scale=scale, on_warning=warner(callback))
    known, state = -1, None  # the last frame we have, and the state after it
    checkpoint: Checkpoint | None = None
    if scale == 1.0 and schedule.output_path is not None and work_dir(schedule.output_path).is_dir():
        settings = ckpt.render_settings(schedule, probe_codec(schedule.encoder.codec), dreamer.net)
        try:
            checkpoint = ckpt.find(schedule, work_dir(schedule.output_path), settings, start, callback)
        except InputError as e:
            callback(Progress("warning", message=f"{e}; rendering from frame 0"))
            checkpoint = None
        if checkpoint is not None:
            dreamer.continue_from(checkpoint)
            known, state = checkpoint.index, cadence.resumed(checkpoint, dreamer.device)
            # a stop saved frames first_pending..known as the video shows them
            if known > start and checkpoint.first_pending > start:  # frame start is inside an encoded part: dream from 0
                known, state = -1, None
    callback(Progress("start", frame=min(known, stop - 1) + 1, total=stop, start=min(known, stop - 1) + 1))
    if known >= start:
        work = work_dir(schedule.output_path)
        for n in range(start, min(known, stop - 1) + 1):
            if n == known:
                yield to_uint8(state.frame).cpu().numpy()
            else:
                yield workdir.load_frame(work, checkpoint.pending_file(n))
    made = cadence.Cadenced(dreamer)
    try:
        for n in range(known + 1, stop):
            state = made.make(n, state)
            callback(Progress("frame", frame=n + 1, total=stop, start=known + 1, segment=schedule.segment_of(n)[0]))
            if n >= start:
                yield to_uint8(state.frame).cpu().numpy()
    finally:
        dreamer.close()
