"""The ``dreamvid`` command. Only this module prints and owns progress bars.

Every user-facing failure is a :class:`~dreamvid.errors.DreamvidError`: printed as one line
(``dreamvid: error: ...``), exit status 2 for bad input, 1 for runtime failures, 130 on
Ctrl-C; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import DreamvidError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 512x512, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text} out of range; expected 16..8192 per side")
    return w, h


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text}")
        return v

    return parse


# ----------------------------------------------------------------------------------------
# commands


def cmd_layers(args) -> int:
    from .model import layer_catalogue

    for name, channels in layer_catalogue(args.model).items():
        print(f"{name:<24} {channels:>5} channels")
    return 0


def cmd_dream(args) -> int:
    import torch

    from .dream import DreamSettings, dream
    from .images import fit, read_image, to_tensor, to_uint8, write_png
    from .model import layer_catalogue, load_model, pick_device
    from .objectives import weighted

    catalogue = layer_catalogue(args.model)
    weights = {spec.strip(): 1.0 for spec in args.layers.split("+") if spec.strip()}
    objective = weighted(weights, args.objective, catalogue)  # checks names before any work
    img = read_image(args.image)
    if args.size:
        img = fit(img, args.size)
    device = pick_device(args.device)
    net = load_model(args.model, weights=args.weights, random_init=args.random_weights, device=device)
    settings = DreamSettings(args.iterations, args.step, args.octaves, args.octave_scale, args.jitter)
    generator = torch.Generator().manual_seed(args.seed)
    out = dream(net, to_tensor(img, device), objective, settings, generator)
    path = write_png(args.output, to_uint8(out).cpu().numpy())
    if not args.quiet:
        print(f"wrote {path} ({out.shape[-1]}x{out.shape[-2]}, {objective.name})")
    return 0


def _load(args, check_files=True):
    from .schedule import load_schedule

    return load_schedule(args.schedule, check_files=check_files)


class _Bar:
    """The CLI's view of :class:`~dreamvid.render.Progress`: a tqdm bar and warning lines."""

    def __init__(self, quiet: bool, unit="frame"):
        self.quiet, self.unit, self.bar = quiet, unit, None

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if p.event == "warning":
            (self.bar.write if self.bar else print)(f"dreamvid: warning: {p.message}", file=sys.stderr)
        if self.quiet:
            return
        if p.event == "start":
            if p.start:
                print(f"resuming at frame {p.start} of {p.total}", file=sys.stderr)
            self.bar = tqdm(total=p.total, initial=p.start, unit=self.unit, dynamic_ncols=True, smoothing=0.1)
        elif p.event == "frame" and self.bar is not None:
            self.bar.set_postfix_str(f"segment {p.segment}", refresh=False)
            self.bar.update(p.frame - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_render(args) -> int:
    from .render import render

    schedule = _load(args)
    bar, stop = _Bar(args.quiet), _StopRequest()
    stop.install()
    try:
        out = render(schedule, device=args.device, output=args.output, frames=args.frames, fresh=args.fresh,
                     keep_parts=args.keep_parts, callback=bar, should_stop=stop)  # fmt: skip
    finally:
        bar.close()
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def cmd_preview(args) -> int:
    from .images import write_png
    from .render import preview

    schedule = _load(args)
    bar = _Bar(args.quiet)
    try:
        rgb = preview(schedule, args.frame, device=args.device, scale=args.scale, callback=bar)
    finally:
        bar.close()
    path = write_png(args.output, rgb)
    if not args.quiet:
        print(f"wrote {path} (frame {args.frame})")
    return 0


def cmd_validate(args) -> int:
    from .images import read_image

    schedule = _load(args)
    if schedule.input_path is not None:
        read_image(schedule.input_path)  # it must decode, not just exist
    print(schedule.summary())
    return 0


def cmd_schema(args) -> int:
    import json

    from .schedule import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


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
    p.add_argument("--layers", default="mixed3", help='objective: "mixed3", "mixed4:97", "mixed3+mixed4:97"')
    p.add_argument("--objective", default="square", choices=["square", "mean"])
    p.add_argument("--iterations", type=_positive(int), default=10)
    p.add_argument("--step", type=_positive(float), default=0.01)
    p.add_argument("--octaves", type=_positive(int), default=4)
    p.add_argument("--octave-scale", type=_positive(float), default=1.4)
    p.add_argument("--jitter", type=int, default=32)
    p.add_argument("--size", type=_size, help="fit the image to WxH (cover + centre crop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--quiet", action="store_true")
    _add_model_args(p)
    p.set_defaults(func=cmd_dream)

    p = sub.add_parser("render", help="render a schedule to a video (resumes an interrupted render)")
    p.add_argument("schedule", type=Path)
    p.add_argument("-o", "--output", type=Path, help="output video (default: the schedule's output)")
    p.add_argument("--device", help="auto | cpu | cuda (default: the schedule's device)")
    p.add_argument("--frames", type=_positive(int), help="render only the first N frames")
    p.add_argument("--fresh", action="store_true", help="ignore and delete earlier checkpoints; start over")
    p.add_argument("--keep-parts", action="store_true", help="keep the work folder (parts, checkpoints)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("preview", help="render one frame exactly as the video shows it")
    p.add_argument("schedule", type=Path)
    p.add_argument("--frame", type=int, required=True, help="frame index (0 = the fitted input)")
    p.add_argument("-o", "--output", type=Path, default=Path("frame.png"))
    p.add_argument("--device")
    p.add_argument("--scale", type=_positive(float), default=1.0, help="render smaller for a fast, approximate look")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("validate", help="check a schedule (keys, layers, files) without dreaming")
    p.add_argument("schedule", type=Path)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the schedule's JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)
    return parser


class _StopRequest:
    """Ctrl-C or SIGTERM once: finish the frame, close the part, checkpoint, exit 130.
    A second Ctrl-C aborts at once (the previous checkpoint stands)."""

    def __init__(self):
        self.requested = False

    def install(self) -> None:
        import signal

        try:
            signal.signal(signal.SIGINT, self._handler)
            signal.signal(signal.SIGTERM, self._handler)
        except ValueError:  # not the main thread (embedded use)
            pass

    def _handler(self, signum, frame) -> None:
        import signal

        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\ndreamvid: stopping after this frame (Ctrl-C again to abort now)", file=sys.stderr)

    def __call__(self) -> bool:
        return self.requested


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DreamvidError as e:
        if args.debug:
            raise
        print(f"dreamvid: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("dreamvid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
