"""Backbones: IR shapes and parameter counts (from a formula over layer
shapes, not from the implementation), timm models at small inputs."""
from __future__ import annotations

import pytest
import torch

import harness
from harness.errors import UserError
from plugins.backbones.ir import IRNet

STAGES = {50: (3, 4, 14, 3), 101: (3, 13, 30, 3), 152: (3, 8, 36, 3)}


def expected_params(layers: int, se: bool, num_classes: int, embedding: int = 512) -> int:
    """Parameters of an IR net, worked out from the IR architecture (stem, bottleneck units, stage depths)."""
    def unit(cin: int, d: int) -> int:
        n = 2 * cin + 9 * cin * d + d + 9 * d * d + 2 * d  # BN, conv3x3, PReLU, conv3x3, BN
        if cin != d:
            n += cin * d + 2 * d                             # 1x1 conv + BN shortcut
        if se:
            n += 2 * d * (d // 16)                           # two 1x1 convs, no bias
        return n

    total = 3 * 9 * 64 + 2 * 64 + 64                         # stem: conv3x3, BN, PReLU
    cin = 64
    for width, units in zip((64, 128, 256, 512), STAGES[layers]):
        total += unit(cin, width) + (units - 1) * unit(width, width)
        cin = width
    total += 2 * 512 + 512 * 7 * 7 * embedding + embedding + 2 * embedding  # BN, Linear, BN1d
    return total + embedding * num_classes + num_classes     # classifier


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_ir50_matches_the_reference_size():
    # IR-50 body + head at 112 px with a 512-d embedding: ~43.6 M parameters
    # (face.evoLve / InsightFace IR-50); the classifier comes on top.
    body_and_head = expected_params(50, False, num_classes=0)
    assert abs(body_and_head - 43.6e6) < 0.1e6
    with torch.device("meta"):
        model = harness.create("backbone", "ir50", num_classes=23)
    assert n_params(model) == expected_params(50, False, 23)


@pytest.mark.parametrize("name,layers,se", [("ir101", 101, False), ("ir152", 152, False),
                                            ("ir_se50", 50, True), ("ir_se152", 152, True)])
def test_ir_param_counts(name, layers, se):
    with torch.device("meta"):  # no memory: only shapes
        model = harness.create("backbone", name, num_classes=23, embedding_size=256)
    assert n_params(model) == expected_params(layers, se, 23, embedding=256)


@pytest.mark.parametrize("name", ["ir50", "ir101", "ir152", "ir_se50"])
@pytest.mark.parametrize("size", [112, 224])
def test_ir_shapes_on_meta(name, size):
    with torch.device("meta"):
        model = harness.create("backbone", name, num_classes=23, input_size=size)
        x = torch.empty(2, 3, size, size)
        assert model.body(model.input_layer(x)).shape == (2, 512, size // 16, size // 16)
        assert model(x).shape == (2, 23)


def test_ir50_forward_and_features():
    torch.manual_seed(0)
    model = harness.create("backbone", "ir50", num_classes=5).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        logits, emb = model(x), model.features(x)
    assert logits.shape == (2, 5) and emb.shape == (2, 512)
    torch.testing.assert_close(logits, model.classifier(emb))


def test_head_is_shared_between_112_and_224():
    # the adaptive 7x7 pool means one set of weights serves both input sizes
    a = harness.create("backbone", "ir50", num_classes=3, input_size=112)
    b = harness.create("backbone", "ir50", num_classes=3, input_size=224)
    b.load_state_dict(a.state_dict())
    assert n_params(a) == n_params(b)


def test_face_evolve_key_names():
    # names of face.evoLve's IR checkpoints, so they load with harness.weights
    with torch.device("meta"):
        keys = set(harness.create("backbone", "ir_se50", num_classes=2).state_dict())
    assert {"input_layer.0.weight", "input_layer.2.weight", "body.3.shortcut_layer.0.weight",
            "body.1.res_layer.1.weight", "body.1.res_layer.5.fc1.weight",
            "output_layer.3.weight", "output_layer.4.running_mean", "classifier.weight"} <= keys


def test_reset_classifier():
    model = harness.create("backbone", "ir50", num_classes=1000, input_size=32).eval()
    x = torch.ones(2, 3, 32, 32)
    with torch.no_grad():
        emb_before = model.features(x)
        model.reset_classifier(23)
        assert model(x).shape == (2, 23)
        torch.testing.assert_close(model.features(x), emb_before)


def test_ir_bad_parameters():
    with pytest.raises(UserError, match="num_classes"):
        harness.create("backbone", "ir50", num_classes=0)
    with pytest.raises(UserError, match="dropout"):
        harness.create("backbone", "ir50", num_classes=2, dropout=1.5)
    with pytest.raises(UserError, match="unknown parameter 'depth'"):
        harness.create("backbone", "ir50", num_classes=2, depth=3)


# ----------------------------------------------------------------- timm
@pytest.mark.parametrize("size", [32, 48, 64])
def test_timm_resnet18_small_inputs(size):
    model = harness.create("backbone", "timm:resnet18", num_classes=23, input_size=size).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert model(x).shape == (2, 23)
        assert model.features(x).shape == (2, 512)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)


def test_timm_fixed_size_model_follows_input_size():
    # a ViT is built for its input size: patch grid 64 / 16 = 4 x 4
    model = harness.create("backbone", "timm:test_vit", num_classes=3, input_size=64).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_timm_kwargs_pass_through():
    model = harness.create("backbone", "timm:resnet18", num_classes=2, drop_rate=0.25)
    assert model.model.drop_rate == 0.25


def test_timm_unknown_model():
    with pytest.raises(UserError, match="unknown timm model 'resnet1888'"):
        harness.create("backbone", "timm:resnet1888", num_classes=2)


def test_timm_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # conftest sets it before timm is imported
    try:
        harness.create("backbone", "timm:resnet18", num_classes=2, pretrained=True)
    except UserError as exc:
        assert "pretrained" in str(exc) and "HF_HUB_OFFLINE" in str(exc)
    else:
        pytest.skip("resnet18 weights are in the local Hugging Face cache")
