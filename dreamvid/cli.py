"""The ``dreamvid`` command. Only this module prints and owns progress bars.

Every user-facing failure is a :class:`~dreamvid.errors.DreamvidError`: printed as one line
(``dreamvid: error: ...``), exit status 2 for bad input, 1 for runtime failures, 130 on
Ctrl-C; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import DreamvidError, InputError


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
    return parser


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
