"""A batch worker compiles once: its second video reuses the network and its compiled graphs.

The worker function (shared by the local pool and Ray tasks) renders two videos in this
process with ``compile: true`` on the CPU. A tiny network stands in for InceptionV3 (a CPU
compile of the real one takes minutes); dynamo's counters say what was compiled."""

import torch
from torch import nn

from dreamvid.batch.worker import render_variant
from dreamvid.engine import ascent as dream_module
from dreamvid.engine import model as model_module
from dreamvid.engine.model import BlockNet, FeatureNet

from .conftest import write_schedule
from .procs import ffmpeg_children


def tiny_net() -> FeatureNet:
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    return BlockNet("inception_v3", [("mixed3", block)], lambda x: x * 2 - 1)


def test_second_video_of_a_worker_does_not_recompile(tmp_path, monkeypatch):
    from torch._dynamo.utils import counters

    loads = []
    monkeypatch.setattr(model_module, "_SHARED", {})
    monkeypatch.setattr(model_module, "load_model", lambda *a, **k: loads.append(a) or tiny_net())
    segments = [{"frames": 3, "layers": {"mixed3": 1.0}}]
    tasks = []
    for name in ("a", "b"):
        path = write_schedule(tmp_path / name, segments=segments, compile=True, device="cpu", precision="fp32",
                              size=[64, 48], output=f"{name}.mp4", defaults={"iterations": 1, "octaves": 1})
        tasks.append({"name": name, "schedule": str(path), "threads": 0})

    def graphs() -> int:
        return counters["stats"]["unique_graphs"]

    before = graphs()
    first = render_variant(tasks[0], lambda p: None)
    assert first["status"] == "done", first
    compiled = graphs() - before
    assert compiled >= 1  # the first video compiled the step (forward; its backward comes with it)
    net = next(iter(model_module._SHARED.values()))
    assert "_dreamvid_compiled" in net.__dict__

    second = render_variant(tasks[1], lambda p: None)
    assert second["status"] == "done", second
    assert graphs() - before == compiled  # nothing new: same network, same compiled graphs
    assert len(loads) == 1  # one network for both videos
    assert second["fps"] is not None and second["fps"] > 0  # measured after the first frame
    assert (tmp_path / "b" / "b.mp4").is_file() and not ffmpeg_children()


def test_cuda_graphs_fall_back_to_plain_compile_then_eager():
    """What a render does when a compiled step fails (a compiler missing, an op unsupported):
    CUDA graphs -> compiled without them -> eager, and the worker's next videos start from
    what worked. Building the wrappers compiles nothing."""
    net = tiny_net()
    graphs = dream_module.compiled(net, cuda_graphs=True)
    assert dream_module.compiled(net, cuda_graphs=True) is graphs  # one per network and mode
    plain, why = dream_module.fallback(graphs, net)
    assert plain is dream_module.compiled(net) and "without CUDA graphs" in why
    assert dream_module.compiled(net, cuda_graphs=True) is plain  # a failure is not retried (next video)
    eager, why = dream_module.fallback(plain, net)
    assert eager is net and why == "without it"
    assert dream_module.compiled(net, cuda_graphs=True) is net and dream_module.compiled(net) is net
