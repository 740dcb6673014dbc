"""How steady is a dreamed video clip? Flow-warped blending against plain blending and none.

Makes clips whose true motion is known, from public-domain/CC0 photos of skimage.data:

- ``pan``: the photo panned right by PAN px per frame (true backward flow: (-PAN, 0));
- ``warp``: the photo under a smooth non-rigid warp that changes every frame (sinusoidal
  displacement fields; true backward flow solved by fixed-point iteration);
- ``fade``: the pan dissolving into the same pan of another photo (a change no flow explains:
  does the dream let go of the old picture?).

Each clip is dreamed frame by frame with the dream engine directly (``dreamvid.engine.ascent.dream``,
inception_v3, mixed3), the start image of frame n built by ``dreamvid.pixels.flow.start_image``:

- ``alone``: each frame dreamed from its source frame (flow_blend 0);
- ``plain``: DeepDreamVideo's blend of the previous output, no motion compensation;
- ``dis`` / ``farneback``: the previous output warped along that flow, occlusion masked;
- ``dis+pull``: as ``dis``, plus the temporal term (``flow.pull_toward``: after every step);
- ``dis+smooth``: as ``dis``, plus the same pull once after the dream (no hook in the dream loop;
  what the render's ``smoothing`` does, with the carried previous dream as the moved frame).

Temporal error = mean |out[n] - warp(out[n-1], true flow)| over pixels visible in both frames
(0-255 units); change = mean |out[n] - source[n]| (how much the dream shows; on the fade's last
frame, how much of the old picture is left on top). Then times the
flow per frame (both directions + occlusion + warp) at 256x144 and 1280x720, a dream frame at
default-ish settings, and decoding a 720p clip with ``dreamvid.media.read.ClipReader``.

    nice -n 5 python3 bench/video_flow.py                # everything (about 15 min on 2 idle cores; resumes)
    nice -n 5 python3 bench/video_flow.py --quality      # only the steadiness tables
    nice -n 5 python3 bench/video_flow.py --timing       # only the timings
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamvid.engine.ascent import DreamSettings, dream  # noqa: E402
from dreamvid.engine.model import load_model  # noqa: E402
from dreamvid.engine.objectives import weighted  # noqa: E402
from dreamvid.media.read import ClipReader, probe_clip, read_frames  # noqa: E402
from dreamvid.media.write import VideoWriter  # noqa: E402
from dreamvid.pixels import flow as FL  # noqa: E402
from dreamvid.pixels.images import fit, to_tensor  # noqa: E402

OUT = ROOT / "out" / "video_flow"
PHOTOS = {"astronaut": skimage.data.astronaut, "coffee": skimage.data.coffee, "chelsea": skimage.data.chelsea}
QUALITY_PHOTOS = ("astronaut", "coffee")  # a portrait with flat areas, a textured still life
SIZE = (160, 96)  # (width, height)
FRAMES = 16
PAN = 4  # px per frame, to the right
SETTINGS = DreamSettings(iterations=3, step=0.02, octaves=1, jitter=16)
LAYERS = {"mixed3": 1.0}
BLENDS = (0.5, 0.7, 0.9)
PULL = 0.3  # temporal_pull strength per step
SMOOTH = 0.5  # the same pull once, after the dream (as the render's `smoothing` key does with the moved frame)


# --- clips with known motion ---------------------------------------------------------


def _photo(name: str, margin: int) -> np.ndarray:
    """The photo fitted to the frame size plus ``margin`` on every side, float32 RGB."""
    img = PHOTOS[name]().astype(np.float32) / 255.0
    w, h = SIZE
    return fit(img, (w + 2 * margin, h + 2 * margin))


def pan_clip(name: str, n: int = FRAMES, speed: int = PAN):
    """Frames (HxWx3), true backward flows (2xHxW) of a pan: content moves right ``speed`` px/frame."""
    w, h = SIZE
    big = _photo(name, speed * n // 2 + 1)
    x0 = speed * n
    frames = [big[: h, x0 - speed * i : x0 - speed * i + w] for i in range(n)]
    flow = np.zeros((2, h, w), np.float32)
    flow[0] = -speed
    return frames, [flow] * n


def fade_clip(name: str, n: int = FRAMES, speed: int = PAN):
    """The pan of ``name`` dissolving into the same pan of the other photo: motion plus a change
    of content that no flow explains (the warped previous output must not hold the old picture)."""
    other = [p for p in QUALITY_PHOTOS if p != name][0]
    a, flows = pan_clip(name, n, speed)
    b, _ = pan_clip(other, n, speed)
    return [(1 - i / (n - 1)) * fa + (i / (n - 1)) * fb for i, (fa, fb) in enumerate(zip(a, b))], flows


def _displacement(i: int, w: int, h: int) -> np.ndarray:
    """Smooth displacement field of frame i (2xHxW, px): two travelling sine waves per axis."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = 0.35 * i
    dx = 6 * np.sin(2 * np.pi * yy / (0.9 * h) + t) + 3 * np.sin(2 * np.pi * (xx + yy) / (0.7 * w) - 0.6 * t)
    dy = 5 * np.cos(2 * np.pi * xx / (0.8 * w) + 0.8 * t) + 2 * np.sin(2 * np.pi * (xx - yy) / (0.6 * h) + t)
    return np.stack([dx, dy]).astype(np.float32)


def warp_clip(name: str, n: int = FRAMES):
    """Frames of the photo sampled at p + D_i(p), and the true backward flows q - p where
    q + D_{i-1}(q) = p + D_i(p) (fixed-point iteration, converged to < 0.01 px)."""
    w, h = SIZE
    m = 16
    big = _photo(name, m)
    fields = [_displacement(i, w + 2 * m, h + 2 * m) for i in range(n)]  # defined around the frame too
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames, flows = [], []
    for i in range(n):
        d = fields[i][:, m : m + h, m : m + w]
        frames.append(cv2.remap(big, xx + m + d[0], yy + m + d[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
        if i == 0:
            flows.append(np.zeros((2, h, w), np.float32))
            continue
        qx, qy = xx.copy(), yy.copy()
        prev = fields[i - 1]
        for _ in range(50):  # q = p + D_i(p) - D_{i-1}(q)
            px = cv2.remap(prev[0], qx + m, qy + m, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            py = cv2.remap(prev[1], qx + m, qy + m, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            nx, ny = xx + d[0] - px, yy + d[1] - py
            delta = max(np.abs(nx - qx).max(), np.abs(ny - qy).max())
            qx, qy = nx, ny
            if delta < 0.01:
                break
        flows.append(np.stack([qx - xx, qy - yy]).astype(np.float32))
    return [np.clip(f, 0, 1) for f in frames], flows


# --- dreaming a clip -------------------------------------------------------------------


def dream_clip(net, objective, frames, method: str, blend: float, pull: float = 0.0, smooth: float = 0.0,
               seed: int = 0):
    """Dream ``frames`` with start images by ``method`` (alone, plain or a flow method); ``pull``:
    the temporal term per step (``flow.pull_toward``); ``smooth``: the same pull once, after."""
    flow_fn = None if method in ("alone", "plain") else FL.flow_method(method)
    gen = torch.Generator().manual_seed(seed)
    outs, prev_src = [], None
    for i, f in enumerate(frames):
        src = to_tensor(f).contiguous(memory_format=torch.channels_last)  # as the renderer runs
        if i == 0 or method == "alone":
            out = dream(net, src, objective, SETTINGS, gen)
        else:
            st = FL.start_image(src, prev_src, outs[-1], blend, flow_fn)
            out = dream(net, st.image, objective, SETTINGS, gen, after_step=FL.pull_toward(st, pull) if pull else None)
            if smooth:
                out = FL.temporal_pull(out, st.target, st.valid, smooth)
        outs.append(out.detach())
        prev_src = src
    return outs


def temporal_error(outs, flows) -> float:
    """Mean |out[n] - warp(out[n-1], true flow)| over pixels visible in both, 0-255 units."""
    errs = []
    for n in range(1, len(outs)):
        f = torch.from_numpy(flows[n])[None]
        moved = FL.warp(outs[n - 1], f)
        h, w = f.shape[-2:]
        xs = torch.arange(w).view(1, w) + f[0, 0]
        ys = torch.arange(h).view(h, 1) + f[0, 1]
        visible = ((xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)).float()
        errs.append(float(((outs[n] - moved).abs().mean(1)[0] * visible).sum() / visible.sum() * 255))
    return float(np.mean(errs))


def change(outs, frames) -> float:
    return float(np.mean([(o - to_tensor(f)).abs().mean() * 255 for o, f in zip(outs, frames)]))


def quality(net, results: dict, save) -> dict:
    """Dream every clip with every variant; ``results`` already holding a key skips that run
    (so an interrupted measurement resumes), ``save(results)`` runs after each."""
    objective = weighted(LAYERS)
    # (label, method, flow_blend, pull per step, smooth after)
    variants = [("alone", "alone", 0.0, 0.0, 0.0)] + [
        (m, m, b, 0.0, 0.0) for m in ("plain", "dis") for b in BLENDS] + [
        ("farneback", "farneback", 0.7, 0.0, 0.0)] + [("dis+pull", "dis", b, PULL, 0.0) for b in (0.5, 0.7)] + [
        (f"dis+pull-{p}", "dis", 0.7, p, 0.0) for p in (0.15, 0.5)] + [("dis+smooth", "dis", b, 0.0, SMOOTH)
                                                                       for b in (0.7, 0.5)] + [
        (f"dis+smooth-{m}", "dis", 0.5, 0.0, m) for m in (0.3, 0.7)]
    fade_variants = {("alone", 0.0), ("plain", 0.7), ("dis", 0.5), ("dis", 0.7), ("dis+pull", 0.5), ("dis+pull", 0.7),
                     ("dis+pull-0.5", 0.7), ("dis+smooth", 0.7), ("dis+smooth", 0.5), ("dis+smooth-0.3", 0.5),
                     ("dis+smooth-0.7", 0.5)}
    for kind, make in (("pan", pan_clip), ("warp", warp_clip), ("fade", fade_clip)):
        for photo in QUALITY_PHOTOS:
            frames, flows = make(photo)
            src = [to_tensor(f) for f in frames]
            floor = temporal_error(src, flows)  # the source frames themselves (interpolation only)
            results[f"{kind}/{photo}/source"] = {"error": floor, "change": 0.0, "change_last": 0.0}
            for label, method, blend, pull, smooth in variants:
                key = f"{kind}/{photo}/{label}/{blend}"
                if key in results or (kind == "fade" and (label, blend) not in fade_variants):
                    continue
                t = time.perf_counter()
                outs = dream_clip(net, objective, frames, method, blend, pull, smooth)
                results[key] = {"error": temporal_error(outs, flows), "change": change(outs, frames),
                                "change_last": change(outs[-1:], frames[-1:]), "seconds": time.perf_counter() - t}
                print(key, {k: round(v, 2) for k, v in results[key].items()}, flush=True)
                save(results)
    return results


def flow_accuracy() -> dict:
    """End-point error (px) of each method/preset against the true backward flow, at SIZE."""
    methods = {"dis-ultrafast": FL.dis("ultrafast"), "dis-fast": FL.dis("fast"), "dis-medium": FL.dis("medium"),
               "farneback": FL.farneback()}
    res = {}
    for kind, make in (("pan", pan_clip), ("warp", warp_clip)):
        for name, fn in methods.items():
            epe = []
            for photo in PHOTOS:
                frames, flows = make(photo, n=6)
                for n in range(1, len(frames)):
                    back = fn(to_tensor(frames[n]), to_tensor(frames[n - 1]))[0].numpy()
                    epe.append(np.sqrt(((back - flows[n]) ** 2).sum(0))[8:-8, 8:-8].mean())
            res[f"{kind}/{name}"] = float(np.mean(epe))
    return res


# --- the same through the renderer --------------------------------------------------

# label -> per-segment keys of the schedule (the rest: the schedule's defaults, flow dis,
# flow_blend 0.5, temporal 0.3, colour matching to the source frame)
RENDER_VARIANTS = {
    "alone": {"flow_blend": 0, "temporal": 0},  # each frame dreamed from its source frame
    "plain": {"flow": "none", "temporal": 0},  # DeepDreamVideo's blend
    "plain+temporal": {"flow": "none"},  # the same, with the temporal term toward the unwarped dream
    "dis": {"temporal": 0},
    "dis+temporal": {},  # the defaults
}
RENDER_SETTINGS = {  # dream settings of the renders: the engine runs' (SETTINGS), and the schedule's defaults
    "bench": {"iterations": SETTINGS.iterations, "step": SETTINGS.step, "octaves": SETTINGS.octaves,
              "jitter": SETTINGS.jitter},
    "defaults": {},
}


def write_clip(path: Path, frames) -> Path:
    """Frames as a lossless clip (RGB, x264 crf 0): the renderer decodes exactly these frames."""
    w, h = SIZE
    with VideoWriter(path, (w, h), 30, codec="libx264rgb", crf=0, preset="veryfast", pix_fmt="rgb24") as wr:
        for f in frames:
            wr.write((np.clip(f, 0, 1) * 255).round().astype(np.uint8))
    return path


def rendered(net, results: dict, save, settings: str) -> dict:
    """Each clip through ``dreamvid.frames`` (the renderer, as a schedule renders it), with
    every variant of RENDER_VARIANTS; the same temporal error and change as :func:`quality`."""
    import dreamvid
    from dreamvid.schedule.schedule import parse_schedule

    with tempfile.TemporaryDirectory() as tmp:
        for kind, make in (("pan", pan_clip), ("warp", warp_clip)):
            for photo in QUALITY_PHOTOS:
                frames, flows = make(photo)
                clip = write_clip(Path(tmp) / f"{kind}-{photo}.mp4", frames)
                decoded = [f.astype(np.float32) / 255 for f in read_frames(clip)]
                for label, keys in RENDER_VARIANTS.items():
                    key = f"{settings}/{kind}/{photo}/{label}"
                    if key in results:
                        continue
                    data = {"input": str(clip), "size": list(SIZE), "precision": "fp32", "seed": 0,
                            "defaults": {**RENDER_SETTINGS[settings], **keys},
                            "segments": [{"frames": len(frames), "layers": LAYERS}]}
                    t = time.perf_counter()
                    s = parse_schedule(data, source=Path(tmp) / "s.yaml")
                    outs = [to_tensor(f.astype(np.float32) / 255) for f in dreamvid.frames(s, model=net, progress=False)]
                    results[key] = {"error": temporal_error(outs, flows), "change": change(outs, decoded),
                                    "seconds": time.perf_counter() - t}
                    print(key, {k: round(v, 2) for k, v in results[key].items()}, flush=True)
                    save(results)
    return results


def render_table(r: dict) -> str:
    lines = []
    for settings in RENDER_SETTINGS:
        if not any(k.startswith(settings + "/") for k in r):
            continue
        lines += ["", f"renderer, {settings} settings", "| start of frame n | pan: temporal error | pan: change | "
                  "warp: temporal error | warp: change |", "|---|---|---|---|---|"]
        for label in RENDER_VARIANTS:
            cells = []
            for kind in ("pan", "warp"):
                rows = [v for k, v in r.items() if k.startswith(f"{settings}/{kind}/") and k.endswith("/" + label)]
                cells += [f"{np.mean([x['error'] for x in rows]):.2f}", f"{np.mean([x['change'] for x in rows]):.1f}"] \
                    if rows else ["-", "-"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- timing ---------------------------------------------------------------------------


def _best(fn, repeat: int, warm: bool = True) -> dict:
    """Fastest of ``repeat`` calls: wall seconds and this process's CPU seconds (all threads).

    On a loaded machine the wall time mostly measures the other processes; CPU seconds are
    what the call itself needed, so the shares below are taken from them.
    """
    if warm:
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall": min(wall), "cpu": min(cpu)}


def timing(net) -> dict:
    res = {}
    photo = PHOTOS["astronaut"]().astype(np.float32) / 255.0
    for size in ((256, 144), (1280, 720)):
        w, h = size
        big = fit(photo, (w + 16, h + 16))
        a, b = to_tensor(big[8 : 8 + h, 8 : 8 + w]), to_tensor(big[8 : 8 + h, 4 : 4 + w])
        out = a.clone()
        repeat = 10 if w < 1000 else 3
        for name in ("dis-ultrafast", "dis-fast", "dis-medium", "farneback"):
            fn = FL.dis(name.split("-")[1]) if name.startswith("dis") else FL.farneback()
            res[f"flow/{w}x{h}/{name}"] = _best(lambda: FL.start_image(b, a, out, 0.5, fn), repeat)
        res[f"flow/{w}x{h}/none"] = _best(lambda: FL.start_image(b, a, out, 0.5, None), repeat)
        objective = weighted(LAYERS)
        for label, s in (("demo", DreamSettings(iterations=4, step=0.008, octaves=2, jitter=16)),
                         ("default", DreamSettings())):  # the schedule's defaults: 10 iterations, 3 octaves
            gen = torch.Generator().manual_seed(0)
            x = a.contiguous(memory_format=torch.channels_last)
            res[f"dream/{w}x{h}/{label}"] = _best(lambda: dream(net, x, objective, s, gen), 2 if w < 1000 else 1,
                                                  warm=w < 1000)
        print({k: v for k, v in res.items() if f"{w}x{h}" in k}, flush=True)
    # decoding a 720p clip: frames per second from frame 0, and the cost of starting at frame k
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "pan720.mp4"
        big = fit(photo, (1280 + 4 * 120, 720))
        with VideoWriter(clip, (1280, 720), 30, codec="libx264", preset="veryfast") as wr:
            for i in range(120):
                wr.write((big[:, 4 * i : 4 * i + 1280] * 255).round().astype(np.uint8))
        t = time.perf_counter()
        info = probe_clip(clip)
        res["clip/720p/probe_120"] = time.perf_counter() - t
        for size, label in ((None, "native"), ((256, 144), "fit256x144")):
            t = time.perf_counter()
            with ClipReader(info, size) as r:
                n = sum(1 for _ in r)
            res[f"clip/720p/read_per_frame/{label}"] = (time.perf_counter() - t) / n
        t = time.perf_counter()
        with ClipReader(info, None, start=110) as r:
            next(r)
        res["clip/720p/start_at_110"] = time.perf_counter() - t
    print({k: round(v, 4) for k, v in res.items() if k.startswith("clip")}, flush=True)
    return res


def machine() -> dict:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = " ".join(f for f in line.split(":")[1].split() if f.startswith(("avx", "amx", "fma")))
                break
    except OSError:
        pass
    model = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                           text=True).stdout.strip()
    return {"cpu": model, "flags": flags, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "opencv": cv2.__version__, "load": os.getloadavg(), "python": platform.python_version()}


def table(res: dict) -> str:
    q = res.get("quality", {})
    lines = []
    if q:
        lines += ["| start of frame n | flow_blend | pan: temporal error | pan: change | warp: temporal error | "
                  "warp: change | fade: temporal error | fade: change | fade: change, last frame |",
                  "|---|---|---|---|---|---|---|---|---|"]
        order = ["source", "alone", "plain", "dis", "farneback", "dis+pull", "dis+pull-0.15", "dis+pull-0.5",
                 "dis+smooth-0.3", "dis+smooth", "dis+smooth-0.7"]
        keys = sorted({k.split("/", 2)[2] for k in q},
                      key=lambda k: (order.index(k.split("/")[0]) if k.split("/")[0] in order else len(order), k))
        for key in keys:
            cells = []
            for kind in ("pan", "warp", "fade"):
                rows = [v for k, v in q.items() if k.startswith(kind + "/") and k.split("/", 2)[2] == key]
                if not rows:
                    cells += ["-", "-"] + (["-"] if kind == "fade" else [])
                    continue
                cells += [f"{np.mean([r['error'] for r in rows]):.2f}", f"{np.mean([r['change'] for r in rows]):.1f}"]
                if kind == "fade":
                    cells.append(f"{np.mean([r['change_last'] for r in rows]):.1f}")
            method, _, blend = key.partition("/")
            lines.append(f"| {method} | {blend or '-'} | " + " | ".join(cells) + " |")
    if "accuracy" in res:
        lines += ["", "| flow | pan: end-point error (px) | warp: end-point error (px) |", "|---|---|---|"]
        for name in ("dis-ultrafast", "dis-fast", "dis-medium", "farneback"):
            lines.append(f"| {name} | {res['accuracy'][f'pan/{name}']:.2f} | {res['accuracy'][f'warp/{name}']:.2f} |")
    if isinstance(res.get("timing", {}).get("flow/256x144/none"), dict):
        t = res["timing"]
        lines += ["", "| per frame (CPU seconds; wall) | 256x144 | 1280x720 |", "|---|---|---|"]

        def cell(key, unit=1e3, fmt="{:.0f} ms"):
            return (fmt.format(t[key]["cpu"] * unit) + "; " + fmt.format(t[key]["wall"] * unit))

        for name in ("none", "dis-ultrafast", "dis-fast", "dis-medium", "farneback"):
            lines.append(f"| start image, flow {name} | {cell(f'flow/256x144/{name}', fmt='{:.1f} ms')} | "
                         f"{cell(f'flow/1280x720/{name}')} |")
        for label in ("demo", "default"):
            lines.append(f"| dream, {label} settings | {cell(f'dream/256x144/{label}', 1, '{:.2f} s')} | "
                         f"{cell(f'dream/1280x720/{label}', 1, '{:.1f} s')} |")
        for label in ("demo", "default"):
            share = [t[f"flow/{s}/dis-medium"]["cpu"] / t[f"dream/{s}/{label}"]["cpu"] for s in ("256x144", "1280x720")]
            lines.append(f"| flow dis-medium as a share of the dream ({label}) | {share[0]:.1%} | {share[1]:.1%} |")
        clip = {k: v for k, v in t.items() if k.startswith("clip/")}
        lines += ["", "| reading a 1280x720 H.264 clip (120 frames) | seconds |", "|---|---|"]
        lines += [f"| {k[len('clip/720p/'):]} | {v:.3f} |" for k, v in clip.items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true", help="only the steadiness tables")
    ap.add_argument("--timing", action="store_true", help="only the timings")
    ap.add_argument("--table", action="store_true", help="print the tables of the saved results")
    ap.add_argument("--render", choices=sorted(RENDER_SETTINGS), help="only the steadiness through the renderer, "
                    "with these dream settings")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    saved = OUT / "results.json"
    res = json.loads(saved.read_text()) if saved.exists() else {}
    if not args.table:
        torch.set_num_threads(2)
        net = load_model("inception_v3").to(memory_format=torch.channels_last)
        res["machine"] = machine()
        config = {"size": SIZE, "frames": FRAMES, "pan_px": PAN, "settings": repr(SETTINGS), "layers": LAYERS,
                  "photos": QUALITY_PHOTOS, "pull": PULL}
        if json.loads(json.dumps(config)) != res.get("config"):
            res.pop("quality", None)  # measured with other settings
        res["config"] = config
        if args.render:
            def save_render(r):
                res["render"] = r
                saved.write_text(json.dumps(res, indent=1))

            rendered(net, res.get("render", {}), save_render, args.render)
        elif not args.timing:
            res["accuracy"] = flow_accuracy()

            def save(q):
                res["quality"] = q
                saved.write_text(json.dumps(res, indent=1))

            quality(net, res.get("quality", {}), save)
        if not args.quality and not args.render:
            res["timing"] = timing(net)
        res["machine"]["load_after"] = os.getloadavg()
        saved.write_text(json.dumps(res, indent=1))
    print(json.dumps(res.get("machine", {})))
    print(table(res))
    print(render_table(res.get("render", {})))


if __name__ == "__main__":
    main()
