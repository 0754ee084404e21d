"""The plugin registry: registration, lookup errors, duplicate names, bad plugins."""
from __future__ import annotations

import types

import pytest

from harness import hookimpl
from harness.errors import UserError
from harness.registry import Provider, Registry


class Counter:
    def __init__(self, start: int = 0):
        self.start = start


def plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{k: hookimpl(v) for k, v in hooks.items()})


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    r.register(plugin(auh_samplers=lambda: {"mlros": Counter, "uniform": Counter, "weighted": Counter}),
               Provider("core_samplers", "au-harness", "1.0"))
    return r


def test_create_passes_params(reg):
    s = reg.create("sampler", "mlros", start=7)
    assert isinstance(s, Counter) and s.start == 7
    assert reg.available("sampler") == ["mlros", "uniform", "weighted"]
    assert reg.available("loss") == []


def test_unknown_name_lists_available_and_hints(reg):
    with pytest.raises(UserError) as err:
        reg.create("sampler", "mlross")
    assert str(err.value) == ("unknown sampler 'mlross'; available: mlros, uniform, weighted "
                              "(did you mean 'mlros'?)")


def test_unknown_kind(reg):
    with pytest.raises(UserError, match="unknown component kind 'samplers'.*did you mean 'sampler'"):
        reg.available("samplers")


def test_unknown_parameter_names_accepted_ones(reg):
    with pytest.raises(UserError, match=r"sampler 'mlros': unknown parameter 'stat'; accepts: start"):
        reg.create("sampler", "mlros", stat=1)


def test_duplicate_name_names_both_providers(reg):
    reg.register(plugin(auh_samplers=lambda: {"mlros": Counter}), Provider("theirs", "their-dist", "0.3"))
    with pytest.raises(UserError) as err:
        reg.available("sampler")
    msg = str(err.value)
    assert "sampler 'mlros' is registered twice" in msg
    assert "core_samplers (au-harness 1.0)" in msg and "theirs (their-dist 0.3)" in msg


@pytest.mark.parametrize("result, expect", [
    (["mlros"], "must return a dict"),
    ({"x": 3}, "entry 'x' is not callable"),
    ({1: Counter}, "non-string name 1"),
])
def test_hook_returning_wrong_type_names_the_plugin(result, expect):
    r = Registry()
    r.register(plugin(auh_losses=lambda: result), Provider("badplug"))
    with pytest.raises(UserError, match=f"plugin badplug: auh_losses\\(\\) .*{expect}"):
        r.available("loss")


def test_hook_raising_names_the_plugin():
    def broken():
        raise RuntimeError("boom")

    r = Registry()
    r.register(plugin(auh_losses=broken), Provider("badplug"))
    with pytest.raises(UserError, match="plugin badplug: auh_losses\\(\\) raised RuntimeError: boom"):
        r.available("loss")


def test_family_names_pass_the_member(reg):
    reg.register(plugin(auh_backbones=lambda: {"timm:*": lambda model, num_classes=1, input_size=8:
                                               (model, num_classes)}), Provider("fam"))
    assert reg.create("backbone", "timm:resnet18", num_classes=3) == ("resnet18", 3)
    with pytest.raises(UserError, match="unknown backbone 'tim:resnet18'"):
        reg.create("backbone", "tim:resnet18")


def test_plugin_file_and_import_errors(tmp_path):
    good = tmp_path / "myplug.py"
    good.write_text("from harness import hookimpl\n"
                    "class S:\n    def sample(self, labels, seed):\n        return list(range(len(labels)))\n"
                    "@hookimpl\ndef auh_samplers():\n    return {'mine': S}\n")
    r = Registry()
    r.load_plugin(str(good))
    assert r.available("sampler") == ["mine"]
    assert r.table["sampler"]["mine"].provider.plugin == str(good)

    bad = tmp_path / "badplug.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(UserError, match="plugin .*badplug.py.*import failed: ModuleNotFoundError"):
        Registry().load_plugin(str(bad))
    with pytest.raises(UserError, match="plugin file .*nothere.py' does not exist"):
        Registry().load_plugin(str(tmp_path / "nothere.py"))
    with pytest.raises(UserError, match="plugin 'no_such_module_xyz': import failed"):
        Registry().load_plugin("no_such_module_xyz")


def test_misspelled_hook_is_refused(tmp_path):
    typo = tmp_path / "typo.py"
    typo.write_text("from harness import hookimpl\n@hookimpl\ndef auh_sampler():\n    return {}\n")
    r = Registry()
    r.load_plugin(str(typo))
    with pytest.raises(UserError, match="plugin .*typo.py: unknown hook 'auh_sampler'"):
        r.available("sampler")
