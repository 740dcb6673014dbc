"""Where the CPU dream step's time goes, convolution by convolution, and whether Winograd pays.

    python bench/convs.py [--size 256x256] [--layers mixed3] [--reps 10]

For docs/performance.md (issue 6's CPU target). Three tables, one process:

1. every convolution of the network truncated at ``--layers``, alone, channels_last fp32
   as dreamvid runs it: forward and input-gradient ms and GFLOP/s. Their sums against the
   whole step show what the rest (relu, pools, concatenation, autograd) costs;
2. the same step, in place (median ms), for comparison;
3. Winograd F(4x4, 3x3) (Lavin & Gray 2016), written with torch ops, against oneDNN's
   direct convolution for each 3x3 stride-1 layer's forward: the one standard way to do
   fewer multiplications for the same convolution (2.25x fewer here), and its error.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from dreamvid.engine.ascent import gradient
from dreamvid.engine.model import load_model
from dreamvid.engine.objectives import layer

# Winograd F(4x4, 3x3) with the points 0, +-1, +-2, inf: Y = A^T [(G g G^T) * (B^T d B)] A
_BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]  # fmt: skip
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]  # fmt: skip
_AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def winograd_filter(w: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (36, Cin, Cout): each filter in the Winograd domain, once per network."""
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.einsum("ak,oikl,bl->abio", g, w.double(), g)
    return u.reshape(36, w.shape[1], w.shape[0]).float().contiguous()


def winograd_conv(x: torch.Tensor, u: torch.Tensor, pad: int) -> torch.Tensor:
    """conv2d(x, w, padding=pad) for 3x3 stride 1, from ``u = winograd_filter(w)``; x channels_last."""
    _, c, h, w = x.shape
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = -(-ho // 4), -(-wo // 4)  # 4x4 output tiles, each read from a 6x6 input tile
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, pad, 4 * tw + 2 - w - pad, pad, 4 * th + 2 - h - pad))
    d = xp.unfold(1, 6, 4).unfold(2, 6, 4).reshape(th * tw * c, 36)  # the one copy of the input
    bt, at = torch.tensor(_BT, dtype=torch.float32), torch.tensor(_AT, dtype=torch.float32)
    v = torch.mm(torch.kron(bt, bt), d.t()).view(36, th * tw, c)  # input tiles to the Winograd domain
    m = torch.bmm(v, u)  # 36 products of (tiles x Cin) @ (Cin x Cout): the multiplications
    y = torch.mm(torch.kron(at, at), m.view(36, -1)).view(4, 4, th, tw, -1)  # back to 4x4 outputs
    y = y.permute(2, 0, 3, 1, 4).reshape(1, 4 * th, 4 * tw, -1)[:, :ho, :wo]
    return y.permute(0, 3, 1, 2)


def best_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def convs_of(net, x, layers):
    """(conv module, its input) for every convolution the truncated forward runs."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach())))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]  # fmt: skip
    net(x, layers)
    for h in hooks:
        h.remove()
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--layers", default="mixed3")
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    net = load_model(random_init=True).to(memory_format=torch.channels_last)  # same compute as the real weights
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    rows, wino = [], []
    for m, inp in convs_of(net, x, [a.layers]):
        conv = lambda i: F.conv2d(i, m.weight, m.bias, m.stride, m.padding)  # noqa: E731
        out = conv(inp)
        flops = 2 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        leaf, grad_out = inp.clone().requires_grad_(True), torch.randn_like(out)
        fwd = best_ms(lambda: conv(inp), a.reps)
        bwd = best_ms(lambda: torch.autograd.grad(conv(leaf), leaf, grad_out), a.reps) - fwd
        rows.append((f"{m.kernel_size[0]}x{m.kernel_size[1]}/{m.stride[0]} {m.in_channels}->{m.out_channels} "
                     f"at {out.shape[-1]}x{out.shape[-2]}", flops, fwd, bwd))  # fmt: skip
        if m.kernel_size == (3, 3) and m.stride == (1, 1):
            u = winograd_filter(m.weight)
            err = (winograd_conv(inp, u, m.padding[0]) + m.bias.view(1, -1, 1, 1) - out).abs().max() / out.abs().max()
            wino.append((rows[-1][0], fwd, best_ms(lambda: winograd_conv(inp, u, m.padding[0]), a.reps), float(err)))
    obj = layer(a.layers)
    step = best_ms(lambda: gradient(net, x, obj), a.reps)

    print(f"### Convolutions of the step ({w}x{h}, {a.layers}, {torch.get_num_threads()} threads, torch {torch.__version__})\n")
    print("| convolution | MFLOP | forward ms | GFLOP/s | input gradient ms | GFLOP/s |\n|---|---|---|---|---|---|")
    for name, flops, fwd, bwd in sorted(rows, key=lambda r: -r[1]):
        print(f"| {name} | {flops / 1e6:.0f} | {fwd:.2f} | {flops / fwd / 1e6:.0f} | {bwd:.2f} | {flops / bwd / 1e6:.0f} |")
    flops, fwd, bwd = (sum(r[i] for r in rows) for i in (1, 2, 3))
    best = max(max(r[1] / r[2], r[1] / r[3]) for r in rows) / 1e6
    print(f"| **all {len(rows)}** | {flops / 1e6:.0f} | {fwd:.1f} | {flops / fwd / 1e6:.0f} | {bwd:.1f} | {flops / bwd / 1e6:.0f} |")
    print(f"\nWhole step in place: {step:.1f} ms; convolutions alone {fwd + bwd:.1f} ms; the rest "
          f"{step - fwd - bwd:.1f} ms. At the fastest convolution's {best:.0f} GFLOP/s the step's "
          f"{2 * flops / 1e9:.2f} GFLOP would take {2 * flops / best / 1e6:.1f} ms.\n")
    print("### Winograd F(4x4, 3x3) against oneDNN's direct convolution (forward)\n")
    print("| convolution | direct ms | Winograd ms | speedup | max rel. error |\n|---|---|---|---|---|")
    for name, direct, wg, err in wino:
        print(f"| {name} | {direct:.2f} | {wg:.2f} | {direct / wg:.2f}x | {err:.1e} |")


if __name__ == "__main__":
    main()
