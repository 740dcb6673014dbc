import pytest
import torch

from dreamvid.core.errors import InputError
from dreamvid.engine.objectives import channel, layer, parse, weighted

ACTS = {"a": torch.arange(24.0).view(1, 2, 3, 4), "b": -torch.ones(1, 3, 2, 2)}


def test_layer_square_and_mean():
    assert layer("a")(ACTS).item() == pytest.approx((torch.arange(24.0) ** 2).mean().item())
    assert layer("a", "mean")(ACTS).item() == pytest.approx(11.5)


def test_channel_and_channel_lists():
    # channel 1 of "a" holds 12..23
    assert channel("a", 1, "mean")(ACTS).item() == pytest.approx(17.5)
    # a list sums the per-channel objectives: mean(0..11) + mean(12..23)
    assert channel("a", [0, 1], "mean")(ACTS).item() == pytest.approx(5.5 + 17.5)


def test_objectives_add_and_scale():
    obj = 2 * layer("a", "mean") + channel("b", 0, "mean") - 0.5 * layer("b", "mean")
    assert obj(ACTS).item() == pytest.approx(2 * 11.5 - 1 + 0.5)
    assert obj.layers == {"a", "b"}
    assert "2 * a" in obj.name


def test_parse_and_weighted():
    cat = {"a": 2, "b": 3}
    assert parse("a:1", "mean", cat)(ACTS).item() == pytest.approx(17.5)
    obj = weighted({"a": 1.0, "b:0,2": 0.5}, "mean", cat)
    assert obj(ACTS).item() == pytest.approx(11.5 + 0.5 * (-1 - 1))
    with pytest.raises(InputError, match="unknown layer 'c'"):
        parse("c", catalogue=cat)
    with pytest.raises(InputError, match=r"b:3: channel 3 out of range; expected 0..2 \(b has 3 channels\)"):
        parse("b:3", catalogue=cat)
    with pytest.raises(InputError, match="bad layer key"):
        parse("b:x", catalogue=cat)
