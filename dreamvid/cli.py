"""The ``dreamvid`` command. Only this module prints and owns progress bars.

Every user-facing failure is a :class:`~dreamvid.core.errors.DreamvidError`: printed as one line
(``dreamvid: error: ...``), exit status 2 for bad input, 1 for runtime failures, 130 on
Ctrl-C; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamvid.bars import Bar, BatchBar
from dreamvid.core import defaults as D
from dreamvid.core.errors import (
    DreamvidError,
    InputError,
    Interrupted,
    describe_os_error,
    fit_advice,
    is_out_of_memory,
    out_of_memory_message,
)
from dreamvid.core.stop import StopRequest


def _size(text: str) -> tuple[int, int]:
    from dreamvid.core.problems import Invalid
    from dreamvid.schedule.spec import parse_size

    try:
        return parse_size(text)
    except Invalid as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


def _positive(kind, zero_ok=False):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v < 0 or (v == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"expected a{' non-negative' if zero_ok else ' positive'} "
                                             f"{kind.__name__}, got {text}")  # fmt: skip
        return v

    return parse


# ----------------------------------------------------------------------------------------
# commands


def cmd_layers(args) -> int:
    from dreamvid.api import layers

    for name, channels in layers(args.model).items():
        print(f"{name:<24} {channels:>5} channels")
    return 0


def _model(args):
    """The network the options name: None (the API loads the default) or a loaded one."""
    if args.model == D.MODEL and not args.weights and not args.random_weights:
        return None
    from dreamvid.api import load_model

    return load_model(args.model, weights=args.weights, device=args.device, random_weights=args.random_weights)


def cmd_dream(args) -> int:
    from dreamvid.api import dream
    from dreamvid.pixels.images import write_png

    out = dream(args.image, layers=args.layers, iterations=args.iterations, octaves=args.octaves, step=args.step,
                jitter=args.jitter, octave_scale=args.octave_scale, objective=args.objective, size=args.size,
                seed=args.seed, device=args.device, model=_model(args))  # fmt: skip
    path = write_png(args.output, out)
    if not args.quiet:
        print(f"wrote {path} ({out.shape[1]}x{out.shape[0]}, {args.layers})")
    return 0


def cmd_gallery(args) -> int:
    from dreamvid.api import gallery
    from dreamvid.pixels.images import write_png

    bar = Bar(args.quiet, unit="tile")
    try:
        sheet = gallery(args.image, size=args.size, layers=args.layers, channels=args.channels, columns=args.columns,
                        iterations=args.iterations, octaves=args.octaves, step=args.step, jitter=args.jitter,
                        octave_scale=args.octave_scale, objective=args.objective, seed=args.seed,
                        device=args.device, model=_model(args), guide=args.guide, guide_weight=args.guide_weight,
                        callback=bar)  # fmt: skip
    finally:
        bar.close()
    path = write_png(args.output, sheet)
    if not args.quiet:
        print(f"wrote {path} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def _load(args):
    """The schedule the command names, with --precision (where the command has it) applied."""
    from dataclasses import replace

    from dreamvid.api import load_schedule

    schedule = load_schedule(args.schedule)
    if getattr(args, "precision", None):  # --precision overrides the schedule's
        schedule = replace(schedule, precision=args.precision)
    return schedule


def cmd_render(args) -> int:
    from dreamvid.api import render

    schedule = _load(args)
    bar, stop = Bar(args.quiet), _stop_request()
    stop.install()  # kept after the render: until _quiet_exit, one more signal still aborts
    try:
        out = render(schedule, args.output, device=args.device, frames=args.frames, fresh=args.fresh,
                     keep_parts=args.keep_parts, callback=bar, should_stop=stop, peek=args.peek)  # fmt: skip
    finally:
        bar.close()
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def cmd_preview(args) -> int:
    from dreamvid.pixels.images import write_png

    if args.motion:
        return _motion_preview(args)
    if args.frame is None:
        raise InputError("preview: no frame; expected --frame N (or --motion for the camera path)")
    from dreamvid.api import preview

    schedule = _load(args)
    bar = Bar(args.quiet)
    try:
        rgb = preview(schedule, args.frame, device=args.device, scale=args.scale, callback=bar)
    finally:
        bar.close()
    path = write_png(args.output or Path("frame.png"), rgb)
    if not args.quiet:
        print(f"wrote {path} (frame {args.frame})")
    return 0


def _motion_preview(args) -> int:
    """``preview --motion``: the camera path as a video, or with ``--frame N`` its frame N as a PNG."""
    from dreamvid.api import motion, motion_frames
    from dreamvid.pixels.images import write_png

    if args.scale != 1.0:
        raise InputError("preview --motion: --scale applies to dreamed previews; the camera path is shown at full size "
                         "(it costs no dreaming): leave out --scale")
    schedule = _load(args)
    captions = not args.no_captions
    if args.frame is not None:
        total = schedule.total_frames
        if not 0 <= args.frame < total:
            raise InputError(f"{schedule.source}: frame {args.frame} is outside the schedule; expected 0..{total - 1}")
        frames = motion_frames(schedule, start=args.frame, stop=args.frame + 1, captions=captions, device=args.device)
        path = write_png(args.output or Path(f"motion-{args.frame}.png"), next(frames))
        frames.close()
        if not args.quiet:
            print(f"wrote {path} (frame {args.frame} of the camera path)")
        return 0
    bar = Bar(args.quiet)
    try:
        path = motion(schedule, args.output, captions=captions, device=args.device, callback=bar)
    finally:
        bar.close()
    if not args.quiet:
        print(f"wrote {path} (the camera path, {schedule.total_frames} frames, no dreaming)")
    return 0


def cmd_validate(args) -> int:
    from dreamvid.api import validate

    schedule = _load(args)
    print(validate(schedule))
    if args.estimate:
        from dreamvid.api import estimate

        print(estimate(schedule, device=args.device), flush=True)
    if args.plot:
        from dreamvid.tools.timeline import plot_timeline

        print(f"wrote {plot_timeline(schedule, args.plot)}")
    if args.params:
        from dreamvid.tools.timeline import write_params

        print(f"wrote {write_params(schedule, args.params)}")
    return 0


def _batch_table(results) -> str:
    """One row per video: its status, the frames it has, the frames dreamed and the time spent
    in this run ("joined only": its frames were all rendered before, this run joined them)."""
    rows = [("video", "status", "frames", "rendered", "time", "")]
    for r in results:
        note = r.error if r.status in ("failed", "interrupted") else str(r.output) if r.status == "done" else ""
        if r.status == "done" and r.resumed_from:
            note += f" (resumed at frame {r.resumed_from}{f', {r.attempts} runs' if r.attempts > 1 else ''})"
        if r.status == "skipped":
            note = "already complete"
        ran = r.status not in ("skipped", "not started")
        rendered = ("joined only" if r.status == "done" and not r.rendered else str(r.rendered)) if ran else "-"
        time = f"{r.seconds:.1f} s" if ran else "-"
        if r.fps and r.status == "done":
            time += f" ({r.fps:.2f} fps)"  # after the first frame, which loads and compiles
        rows.append((r.name, r.status, f"{r.frames}/{r.total}", rendered, time, note))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[5] for row in rows).rstrip()


def cmd_batch(args) -> int:
    from dreamvid.batch.jobs import load_job
    from dreamvid.batch.run import run

    variants = load_job(args.jobs)  # every variant is checked before anything starts
    bar = BatchBar(args.quiet)
    try:
        results = run(variants, workers=args.workers, ray=args.ray, retries=args.retries,
                      cpus_per_video=args.cpus_per_video, job=args.jobs, ray_logs=args.debug, callback=bar)  # fmt: skip
    finally:
        bar.close()
    if args.quiet:
        for r in results:
            if r.status == "failed":
                print(f"dreamvid: error: {r.name}: {r.error}", file=sys.stderr)
    else:
        print(_batch_table(results))
    if any(r.status in ("interrupted", "not started") for r in results):
        return 130
    return 1 if any(r.status == "failed" for r in results) else 0


def cmd_bench(args) -> int:
    import json

    from dreamvid.core.errors import InputError
    from dreamvid.tools.bench import format_report, run

    w, h = args.size
    if min(w, h) < 80 or w % 2 or h % 2:
        raise InputError(f"--size {w}x{h}: expected even sides of at least 80 (the baseline runs the whole "
                         "network; the encoder needs even sides)")  # fmt: skip
    compile = "auto" if args.compile is None else args.compile
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run(device=args.device, size=args.size, layers=args.layers, iterations=args.iterations,
                 frames=args.frames, octaves=args.octaves, compile=compile, random_weights=args.random_weights,
                 preset=args.preset, precision=args.precision, colour=args.colour)  # fmt: skip
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def cmd_schema(args) -> int:
    import json

    from dreamvid.schedule.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_import(args) -> int:
    from dreamvid.schedule.importers import import_file, write_import

    output = args.output or args.file.with_suffix(".yaml")
    imported = import_file(args.file, output, layers=args.layers, input=args.input, size=args.size)
    path = write_import(imported, output, force=args.force)
    frames = sum(seg["frames"] for seg in imported.data["segments"])
    count = len(imported.data["segments"])
    print(f"wrote {path} ({imported.kind}: {frames} frames at {imported.data['fps']} fps, "
          f"{count} segment{'s' if count > 1 else ''})")
    for line in imported.notes:
        print(f"  {line}")
    for line in imported.warnings:
        print(f"dreamvid: warning: {line}", file=sys.stderr)
    return 0


def cmd_stats(args) -> int:
    from dreamvid.media import stats
    from dreamvid.media.read import iter_frames

    data = stats.video_stats(iter_frames(args.video))
    if args.schedule:
        from dreamvid.api import load_schedule
        from dreamvid.tools.warp_error import warp_errors

        data[stats.WARP] = warp_errors(iter_frames(args.video), load_schedule(args.schedule), str(args.video))
    elif args.source:
        from dreamvid.tools.warp_error import clip_frames, source_warp_errors

        data[stats.WARP] = source_warp_errors(iter_frames(args.video), clip_frames(args.source), str(args.video),
                                              str(args.source))  # fmt: skip
    print(f"{args.video}: {len(data['frame'])} frames")
    print(stats.summary(data))
    for path, write in ((args.json, stats.write_json), (args.csv, stats.write_csv)):
        if path:
            print(f"wrote {write(path, data)}")
    if args.plot:
        print(f"wrote {stats.plot(args.plot, {args.video.name: data}, title=str(args.video))}")
    return 0


def cmd_studio(args) -> int:
    from dreamvid.studio.server import serve

    return serve(args.folder, host=args.host, port=args.port, token=not args.no_token,
                 say=lambda line: print(line, flush=True))  # fmt: skip


# ----------------------------------------------------------------------------------------
# parser


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="inception_v3", help="network (default: the embedded inception_v3)")
    p.add_argument("--weights", type=Path, help="local weight file for torchvision models")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="random initialisation instead of weights: for speed tests only, pictures mean nothing",
    )


def _add_precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=D.PRECISIONS,
                   help="the network's arithmetic: auto, fp32 or bf16 (default: the schedule's precision)")


def _add_dream_args(p: argparse.ArgumentParser) -> None:
    """What ``dream`` and ``gallery`` share: a schedule segment's dream settings with their
    defaults, the seed, the device and the network."""
    p.add_argument("--objective", default=D.OBJECTIVE, choices=["square", "mean"])
    p.add_argument("--iterations", type=_positive(int), default=D.ITERATIONS)
    p.add_argument("--step", type=_positive(float), default=D.STEP)
    p.add_argument("--octaves", type=_positive(int), default=D.OCTAVES)
    p.add_argument("--octave-scale", type=_positive(float), default=D.OCTAVE_SCALE)
    p.add_argument("--jitter", type=_positive(int, zero_ok=True), default=D.JITTER)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--quiet", action="store_true")
    _add_model_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamvid", description="DeepDream zoom videos from a YAML schedule.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("layers", help="list the layers a model offers, with channel counts")
    p.add_argument("--model", default="inception_v3")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("dream", help="dream a still image")
    p.add_argument("image", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    p.add_argument("--layers", default=D.LAYERS, help='objective: "mixed3", "mixed4:97", "mixed3+mixed4:97"')
    p.add_argument("--size", type=_size, help="fit the image to WxH (cover + centre crop)")
    _add_dream_args(p)
    p.set_defaults(func=cmd_dream)

    p = sub.add_parser("gallery", help="dream one picture at every layer: a labelled contact sheet")
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    p.add_argument("--image", type=Path, help="the picture to dream (default: grey noise)")
    p.add_argument("--size", type=_positive(int), default=160, help="tile side in pixels (default 160)")
    p.add_argument("--layers", nargs="+", metavar="KEY", help="only these keys, e.g. mixed3 mixed4:97 (default: "
                   "every layer plus --channels channels of mixed3 and mixed4)")
    p.add_argument("--channels", type=_positive(int, zero_ok=True), default=3, help="channels of mixed3 and mixed4 to show (default 3)")
    p.add_argument("--columns", type=_positive(int), default=6)
    p.add_argument("--guide", type=Path, metavar="IMG", help="also pull every tile toward this image's features "
                   "(a schedule's `guide:`); shown after the input")
    p.add_argument("--guide-weight", type=float, default=D.GUIDE_WEIGHT, metavar="W",
                   help=f"the guide's weight against the layer's (default {D.GUIDE_WEIGHT:g})")
    _add_dream_args(p)
    p.set_defaults(func=cmd_gallery)

    p = sub.add_parser("render", help="render a schedule to a video (resumes an interrupted render)")
    p.add_argument("schedule", type=Path)
    p.add_argument("-o", "--output", type=Path, help="output video (default: the schedule's output)")
    p.add_argument("--device", help="auto | cpu | cuda (default: the schedule's device)")
    p.add_argument("--frames", type=_positive(int), help="render only the first N frames")
    p.add_argument("--fresh", action="store_true", help="ignore and delete earlier checkpoints; start over")
    p.add_argument("--keep-parts", action="store_true", help="keep the work folder (parts, checkpoints)")
    p.add_argument("--peek", type=Path, metavar="FILE.jpg", help="keep this JPEG showing the newest frame "
                   f"(rewritten every {D.PEEK_EVERY:g} s at most, {D.PEEK_SIDE} px, atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_precision_arg(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("preview", help="render one frame exactly as the video shows it, or (--motion) the camera "
                       "path without dreaming")  # fmt: skip
    p.add_argument("schedule", type=Path)
    p.add_argument("--frame", type=int, help="frame index (0 = the fitted input); required without --motion")
    p.add_argument("-o", "--output", type=Path, help="output PNG (default frame.png; with --motion a video, default "
                   "<output stem>.motion.mp4 beside the schedule's output, and with --frame motion-N.png)")
    p.add_argument("--motion", action="store_true", help="the camera path alone, no dreaming: what a render with "
                   "iterations: 0 and colour control off gives, in seconds")
    p.add_argument("--no-captions", action="store_true", help="--motion: no frame number, segment, layer and "
                   "zoom-centre map in the corners")
    p.add_argument("--device")
    p.add_argument("--scale", type=_positive(float), default=1.0, help="render smaller for a fast, approximate look")
    p.add_argument("--quiet", action="store_true")
    _add_precision_arg(p)
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("validate", help="check a schedule (keys, layers, files) without dreaming")
    p.add_argument("schedule", type=Path)
    p.add_argument("--plot", type=Path, metavar="PNG", help="also plot the camera and layer weights over the frames")
    p.add_argument("--params", type=Path, metavar="CSV", help="also write every frame's settings as CSV")
    p.add_argument("--estimate", action="store_true", help="also dream two frames of the heaviest segment at full "
                   "size and print the whole render's estimated time here and the peak memory seen")
    p.add_argument("--device", help="--estimate: auto | cpu | cuda (default: the schedule's device)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("batch", help="render many videos: the variants of a job file, here or on a Ray cluster")
    p.add_argument("jobs", type=Path, help="job file (YAML): a base schedule and the lists to fan out")
    p.add_argument("--workers", type=_positive(int), help="videos at a time (default: one per GPU, else 1); "
                                                           "with --ray: at most this many tasks in flight")
    p.add_argument("--ray", metavar="ADDRESS", help="one Ray task per video: auto (the cluster this machine "
                                                    "joined), an address, or local (a private Ray here)")
    p.add_argument("--retries", type=_positive(int, zero_ok=True), default=3, help="restarts of a video whose worker died (default 3)")
    p.add_argument("--cpus-per-video", type=_positive(int), default=1,
                   help="with --ray on a cluster without GPUs: CPUs (and torch threads) per video")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table; failures only")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("bench", help="time dreamvid's render path against a plain loop (see docs/performance.md)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--size", type=_size, default=(256, 256), help="frame size WxH (default 256x256)")
    p.add_argument("--layers", default="mixed3", help="objective layer (default mixed3)")
    p.add_argument("--iterations", type=_positive(int), default=10)
    p.add_argument("--octaves", type=_positive(int), default=1)
    p.add_argument("--frames", type=_positive(int), default=5, help="timed frames per path, after one warm-up frame")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile dreamvid's network (default: on CUDA only)")
    p.add_argument("--preset", default="medium", help="libx264 preset of both paths (default medium)")
    p.add_argument("--colour", choices=D.COLOURS, help="dreamvid's colour control (default: the schedule's default, "
                   f"{D.COLOUR}; the baseline has none)")  # fmt: skip
    p.add_argument("--threads", type=_positive(int), help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--random-weights", action="store_true", help="random weights (same compute, no weight file)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    p.add_argument("--precision", choices=D.PRECISIONS, default="auto",
                   help="dreamvid's arithmetic: auto (bf16 where native and faster), fp32 or bf16; the baseline "
                        "is fp32 (default auto)")  # fmt: skip
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("studio", help="a local web page to edit schedules, preview frames and run renders "
                       "(see docs/studio.md)")
    p.add_argument("folder", nargs="?", type=Path, default=Path("."), help="the schedules' folder (default: here)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive(int, zero_ok=True), default=8765, help="default 8765; 0: any free port")
    p.add_argument("--no-token", action="store_true", help="no token: anyone who reaches the port drives the studio")
    p.set_defaults(func=cmd_studio)

    p = sub.add_parser("import", help="a Deforum settings file or a Parseq manifest as a schedule "
                       "(see docs/schedule.md)")
    p.add_argument("file", type=Path, help="Deforum settings (.txt, JSON) or a Parseq manifest (.json)")
    p.add_argument("-o", "--output", type=Path, help="the schedule to write (default: FILE with .yaml)")
    p.add_argument("--layers", default=D.IMPORT_LAYERS, metavar="SPEC",
                   help=f"one segment per space-separated term, e.g. 'mixed3' or 'mixed0 mixed3+mixed4:97' "
                        f"(default {D.IMPORT_LAYERS!r})")
    p.add_argument("--input", type=Path, metavar="IMAGE_OR_CLIP", help="start from this image or clip (default: "
                   "the file's init image or video, else noise)")
    p.add_argument("--size", type=_size, help="the frame size WxH (default: the file's W and H; a Parseq manifest "
                   "has none: 1280x720)")
    p.add_argument("--force", action="store_true", help="replace the output if it exists")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("schema", help="print the schedule's JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("stats", help="per-frame luminance, saturation, clipping and change of a video")
    p.add_argument("video", type=Path)
    p.add_argument("--plot", type=Path, help="write the metrics as a PNG plot (800x600)")
    p.add_argument("--json", type=Path, help="write per-frame metrics and the drift summary as JSON")
    p.add_argument("--csv", type=Path, help="write per-frame metrics as CSV")
    motion = p.add_mutually_exclusive_group()
    motion.add_argument("--schedule", type=Path,
                        help="the video's schedule: add the warp error under its camera (docs/quality.md#warp-error)")
    motion.add_argument("--source", type=Path,
                        help="the clip the video was rendered from: add the warp error under its optical flow")
    p.set_defaults(func=cmd_stats)
    return parser


def _stop_request():
    """Ctrl-C or SIGTERM once: finish the frame, close the part, checkpoint, exit 130 (saying
    so on stderr). A second signal aborts at once (the previous checkpoint stands)."""
    import signal

    def say(signum: int) -> None:
        said = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\ndreamvid: stopping after this frame ({said} again to abort now)", file=sys.stderr)

    return StopRequest(on_first=say)


def _quiet_exit() -> None:
    """The program is about to exit: a Ctrl-C or SIGTERM arriving now (while the interpreter
    runs its exit handlers) would print a KeyboardInterrupt traceback; there is nothing left
    to stop, so they are ignored."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass


def main(argv: list[str] | None = None) -> int:
    """The ``dreamvid`` program (``argv`` None: ``sys.argv``), or one command run from Python."""
    parser = build_parser()
    args = parser.parse_args(argv)
    program = argv is None and not args.debug  # the program itself, not a call from Python
    try:
        code = args.func(args)
    except BaseException as e:  # noqa: BLE001 - reported below, or raised again
        if program and not isinstance(e, SystemExit):
            _quiet_exit()
        return _report(e, args.debug)
    if program:
        _quiet_exit()
    return code


def _report(e: BaseException, debug: bool) -> int:
    """Print a failure as one line and return the exit status; raise it again when
    ``debug`` or when it is a bug (then the traceback is what is wanted)."""
    if debug:
        raise e
    if isinstance(e, Interrupted):  # a stop that was asked for: what was done is saved; not an error
        print(f"dreamvid: {e}", file=sys.stderr)
        return e.exit_code
    if isinstance(e, DreamvidError):
        print(f"dreamvid: error: {e}", file=sys.stderr)
        return e.exit_code
    if isinstance(e, OSError):  # a file system failure no module foresaw: still one line
        print(f"dreamvid: error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    if is_out_of_memory(e):  # in preview/dream (render words its own, with the frame's size)
        print(f"dreamvid: error: {out_of_memory_message(e, advice=fit_advice('--size/size'))}", file=sys.stderr)
        return 1
    if isinstance(e, KeyboardInterrupt):
        print("dreamvid: interrupted", file=sys.stderr)
        return 130
    raise e


if __name__ == "__main__":
    sys.exit(main())
