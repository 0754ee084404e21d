"""harness.weights: prefix mapping, shape mismatches, reports, and refusing pickles."""
from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

import harness
from harness.errors import UserError
from harness.weights import load_weights, save_weights, strip_prefixes


class Tiny(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, classes)


class NotATensor:
    """Pickled into a checkpoint: torch.load(weights_only=True) must refuse it."""


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
    return model


def _assert_same(a: nn.Module, b: nn.Module, skip: tuple[str, ...] = ()) -> None:
    sb = b.state_dict()
    for k, v in a.state_dict().items():
        if not k.startswith(skip):
            torch.testing.assert_close(v, sb[k], msg=k)


def test_strip_prefixes():
    assert strip_prefixes("module.model.body.0.weight") == "body.0.weight"
    assert strip_prefixes("backbone.head.bias") == "head.bias"
    assert strip_prefixes("modules.x") == "modules.x"


def test_safetensors_round_trip(tmp_path):
    src = _randomised(Tiny(), 1).to(memory_format=torch.channels_last)  # non-contiguous weights
    path = save_weights(src, tmp_path / "w.safetensors")
    dst = Tiny()
    report = load_weights(dst, path)
    assert report == ([], [], [])
    _assert_same(src, dst)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers


@pytest.mark.parametrize("wrap", ["module.", "model.", "backbone.", "module.backbone."])
def test_prefixed_and_wrapped_pth(tmp_path, wrap):
    src = _randomised(Tiny(), 2)
    state = collections.OrderedDict((wrap + k, v) for k, v in src.state_dict().items())
    torch.save({"state_dict": state, "epoch": 7, "arch": "tiny"}, tmp_path / "ckpt.pth")
    dst = Tiny()
    assert load_weights(dst, tmp_path / "ckpt.pth") == ([], [], [])
    _assert_same(src, dst)


def test_plain_timm_checkpoint_into_the_wrapped_backbone(tmp_path):
    # TimmBackbone keeps the timm model as `.model`; a raw timm state dict has no prefix
    backbone = harness.create("backbone", "timm:test_resnet", num_classes=3)
    raw = _randomised(harness.create("backbone", "timm:test_resnet", num_classes=3).model, 3)
    torch.save(raw.state_dict(), tmp_path / "raw.pt")
    assert load_weights(backbone, tmp_path / "raw.pt") == ([], [], [])
    _assert_same(raw, backbone.model)


def test_report_missing_unexpected_mismatched(tmp_path):
    src = _randomised(Tiny(classes=10), 4)
    state = src.state_dict()
    del state["bn.weight"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "w.pth")
    dst = _randomised(Tiny(classes=3), 5)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    missing, unexpected, mismatched = load_weights(dst, tmp_path / "w.pth")
    assert missing == ["bn.weight"]
    assert unexpected == ["extra.weight"]
    assert sorted(mismatched) == ["head.bias", "head.weight"]
    # loaded where it matched, untouched elsewhere
    torch.testing.assert_close(dst.conv.weight, src.conv.weight)
    for k in ("bn.weight", "head.weight", "head.bias"):
        torch.testing.assert_close(dst.state_dict()[k], before[k])


def test_ir_classifier_swap(tmp_path):
    # pretraining head (1000 identities) -> AU head (23): everything but the classifier loads
    src = harness.create("backbone", "ir50", num_classes=1000, embedding_size=16)
    save_weights(src, tmp_path / "pre.safetensors")
    dst = harness.create("backbone", "ir50", num_classes=23, embedding_size=16)
    report = load_weights(dst, tmp_path / "pre.safetensors")
    assert report.missing == [] and report.unexpected == []
    assert sorted(report.mismatched) == ["classifier.bias", "classifier.weight"]
    _assert_same(src, dst, skip=("classifier.",))
    assert "2 shape-mismatched" in report.summary()


def test_refuses_pickled_objects(tmp_path):
    torch.save({"w": torch.ones(2), "obj": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="refused"):
        load_weights(Tiny(), tmp_path / "evil.pth")
    torch.save(Tiny(), tmp_path / "module.pth")  # a whole pickled module
    with pytest.raises(UserError, match="refused"):
        load_weights(Tiny(), tmp_path / "module.pth")


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_weights(Tiny(), tmp_path / "nope.pth")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(UserError, match="unknown format"):
        load_weights(Tiny(), tmp_path / "w.h5")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="safetensors"):
        load_weights(Tiny(), tmp_path / "bad.safetensors")
    torch.save({"other.weight": torch.ones(2)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="none of its 1 tensors match"):
        load_weights(Tiny(), tmp_path / "other.pth")
