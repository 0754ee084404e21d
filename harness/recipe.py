"""TOML recipes: load, override with ``--set``, validate, resolve defaults.

A recipe names one component per stage and the training settings::

    [dataset]            # a component table: ``name`` + the factory's parameters
    name = "synth"
    n = 1500

    [sampler]
    name = "mlros"
    percent = 25

    [views.face]         # one table per view of the ensemble
    pretrain = "identity"
    [views.face.backbone]
    name = "ir50"

Every field's default comes from the shipped default recipe,
``plugins/recipes/defaults.toml`` (the paper's method and training
settings): a recipe is read on top of it. This module knows the fields,
their types and ranges, never a method. Validation happens before any work:
unknown sections and keys are errors, types are checked, component names and
parameters are checked against the registry, and every message carries the
dotted path of the bad field.
"""
from __future__ import annotations

import copy
import functools
import importlib.resources
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness.errors import UserError
from harness.fileio import check_input_file
from harness.metrics import MAX_RESAMPLES


@dataclass(frozen=True)
class Field:
    """A typed recipe field with an optional constraint (its default is in the default recipe)."""

    type: type | tuple[type, ...]
    check: Callable[[Any], bool] | None = None
    expect: str = ""

    def validate(self, path: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise UserError(f"recipe field {path}: expected {names}, got {type(value).__name__} {value!r}")
        if self.check is not None and not self.check(value):
            raise UserError(f"recipe field {path}: expected {self.expect}, got {value!r}")
        return value


def _nonneg(v: Any) -> bool:
    return v >= 0


def _pos(v: Any) -> bool:
    return v > 0


def _scale_range(v: list) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    return len(v) == 2 and numbers and 0 < v[0] <= v[1] <= 1.5


def _choice(*options: str) -> Field:
    return Field(str, lambda v: v in options, "one of " + ", ".join(options))


SECTIONS: dict[str, dict[str, Field]] = {
    "run": {
        "name": Field(str),
        "seed": Field(int, lambda v: 0 <= v < 2 ** 63, "an integer >= 0"),
        "device": Field(str),
        "deterministic": Field(bool),
        "output": Field(str),
        "experiment": Field(str),
        "tracking_uri": Field(str),
    },
    "evaluation": {
        "mode": _choice("split", "kfold"),
        "folds": Field(int, lambda v: v >= 3, "an integer >= 3 (a fold tests, the next validates, the rest train)"),
        "bootstrap": Field(int, lambda v: 0 <= v <= MAX_RESAMPLES, f"an integer from 0 to {MAX_RESAMPLES}"),
    },
    "train": {
        "epochs": Field(int, _nonneg, "an integer >= 0"),
        "batch_size": Field(int, _pos, "an integer > 0"),
        "lr": Field(float, _pos, "a number > 0"),
        "momentum": Field(float, _nonneg, "a number >= 0"),
        "weight_decay": Field(float, _nonneg, "a number >= 0"),
        "lr_step": Field(int, _pos, "an integer > 0"),
        "lr_gamma": Field(float, _pos, "a number > 0"),
        "input_size": Field(int, lambda v: v >= 16, "an integer >= 16"),
        "workers": Field(int, _nonneg, "an integer >= 0"),
        "amp": Field(bool),
        "channels_last": Field(bool),
        "flip": Field(bool),
        "augment_scale": Field(list, lambda v: _scale_range(v),
                               "[lo, hi] with 0 < lo <= hi <= 1.5 (crop side / face crop side)"),
        "augment_shift": Field(float, lambda v: 0 <= v <= 0.5, "a number in [0, 0.5]"),
        "augment_jitter": Field(float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "max_steps": Field(int, _nonneg, "an integer >= 0 (0: no cap)"),
        "keep_epochs": Field(bool),
    },
    "pretrain": {
        "epochs": Field(int, _nonneg, "an integer >= 0"),
        "batch_size": Field(int, _pos, "an integer > 0"),
        "lr": Field(float, _pos, "a number > 0"),
    },
}

# Recipe sections that name a component of the kind of the same name.
COMPONENTS: tuple[str, ...] = ("dataset", "aligner", "sampler", "loss", "ensembler", "thresholder")
VIEW_FIELDS: dict[str, Field] = {
    # a pretraining task is a companion set the dataset provides (checked against the
    # dataset before a run starts); "none" trains the view from its init or from scratch
    "pretrain": Field(str, lambda v: bool(v), "a companion set of the dataset, or none"),
    "init": Field(str),
}
VIEW_DEFAULTS = {"pretrain": "none", "init": ""}  # a view that names neither
DEFAULT_RECIPE = "defaults.toml"  # package data of plugins.recipes


@functools.cache
def _defaults() -> dict[str, Any]:
    return tomllib.loads((importlib.resources.files("plugins.recipes") / DEFAULT_RECIPE).read_text())


def demo_recipe() -> Path:
    """The recipe ``auh run`` runs when none is named (package data of :mod:`plugins.recipes`)."""
    return Path(str(importlib.resources.files("plugins.recipes") / "demo.toml"))


def defaults() -> dict[str, Any]:
    """The default recipe (a fresh copy): every field's default value."""
    return copy.deepcopy(_defaults())


def load(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
         check_components: bool = True) -> dict[str, Any]:
    """Read a recipe (``None``: defaults only), apply ``--set`` overrides, validate, resolve."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path)
    for item in overrides:
        apply_override(raw, item)
    return resolve(raw, check_components=check_components)


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"recipe {str(path)!r} does not exist")
    check_input_file(path, "recipe")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"recipe {str(path)!r} is not valid TOML: {exc}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply ``section.key=value``; ``value`` is parsed as TOML, else kept as a string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {item!r}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {item!r}: {part!r} is a value, not a table")
        node = child
    kind = _component_kind(parts[:-1])
    if parts[-1] == "name" and kind and node.get("name", value) != value:
        _keep_params_of(node, kind, value)
    node[parts[-1]] = value


def _component_kind(path: list[str]) -> str | None:
    """The component kind of the recipe table at ``path`` (``sampler``, ``views.face.backbone``)."""
    if len(path) == 1 and path[0] in COMPONENTS:
        return path[0]
    return "backbone" if len(path) == 3 and path[0] == "views" and path[2] == "backbone" else None


def _keep_params_of(table: dict[str, Any], kind: str, name: Any) -> None:
    """Renaming a component: drop the old one's parameters that component ``name`` does not
    take (they were the old one's); an unknown ``name`` is refused later, naming the field."""
    from harness.registry import accepted_params, get_registry

    try:
        accepted = accepted_params(get_registry().get(kind, str(name))[0])
    except UserError:
        return
    if accepted is not None:
        for key in [k for k in table if k != "name" and k not in accepted]:
            del table[key]


def resolve(raw: dict[str, Any], check_components: bool = True) -> dict[str, Any]:
    """Validate ``raw`` and return the full recipe with every default filled in."""
    base = defaults()
    known = set(SECTIONS) | set(COMPONENTS) | {"views"}
    for section in raw:
        if section not in known:
            raise UserError(_unknown("section", section, known))
    out: dict[str, Any] = {}
    for section, fields in SECTIONS.items():
        out[section] = _fields(section, _table(raw, section), fields, base[section])
    for section in COMPONENTS:
        table = _with_default(_component_table(section, section, raw.get(section, {})), base[section])
        out[section] = _component(section, section, table, check_components)
    views = raw.get("views", base["views"])
    if not isinstance(views, dict) or not views:
        raise UserError("recipe field views: expected at least one [views.NAME] table")
    out["views"] = {}
    for name, view in views.items():
        path = f"views.{name}"
        if not isinstance(view, dict):
            raise UserError(f"recipe field {path}: expected a table, got {view!r}")
        unknown = set(view) - set(VIEW_FIELDS) - {"backbone"}
        if unknown:
            raise UserError(_unknown("key", f"{path}.{sorted(unknown)[0]}", list(VIEW_FIELDS) + ["backbone"]))
        resolved = _fields(path, {k: v for k, v in view.items() if k != "backbone"}, VIEW_FIELDS,
                           VIEW_DEFAULTS)
        # a view's backbone defaults to the default recipe's (its view of that name, else its first)
        default_view = base["views"].get(name, next(iter(base["views"].values())))
        backbone = _with_default(_component_table(f"{path}.backbone", "backbone", view.get("backbone", {})),
                                 default_view["backbone"])
        resolved["backbone"] = _component(f"{path}.backbone", "backbone", backbone,
                                          check_components, reserved=("num_classes", "input_size"))
        out["views"][name] = resolved
    return out


def _component_table(path: str, kind: str, value: Any) -> dict[str, Any]:
    """A component's table; the shorthand ``sampler = "mlros"`` names it without parameters."""
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        raise UserError(f"recipe field {path}: expected a {kind} name or a table, got {value!r}")
    return value


def _with_default(table: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """A component table over the default recipe's: its name when it names none, and
    the default's parameters only for the default component itself."""
    if table.get("name", default["name"]) != default["name"]:
        return table
    return {**default, **table}


def _table(raw: dict[str, Any], section: str) -> dict[str, Any]:
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise UserError(f"recipe field {section}: expected a table, got {table!r}")
    return table


def _fields(path: str, table: dict[str, Any], fields: dict[str, Field],
            default: dict[str, Any]) -> dict[str, Any]:
    for key in table:
        if key not in fields:
            raise UserError(_unknown("key", f"{path}.{key}", fields))
    return {key: f.validate(f"{path}.{key}", table.get(key, copy.deepcopy(default[key])))
            for key, f in fields.items()}


def _component(path: str, kind: str, table: dict[str, Any], check: bool,
               reserved: tuple[str, ...] = ()) -> dict[str, Any]:
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise UserError(f"recipe field {path}.name: expected a {kind} name, got {name!r}")
    params = {k: v for k, v in table.items() if k != "name"}
    for key in reserved:
        if key in params:
            raise UserError(f"recipe field {path}.{key}: set by the pipeline, not the recipe")
    if check:
        from harness.registry import check_params, get_registry

        registry = get_registry()
        try:
            component, _ = registry.get(kind, name)
            check_params(component, params)
        except UserError as exc:
            raise UserError(f"recipe field {path}: {exc}") from None
    return {"name": name, **params}


def _unknown(what: str, path: str, choices: Any) -> str:
    """``unknown recipe key 'train.epoch'; available: ... (did you mean 'epochs'?)``"""
    from harness.registry import unknown_message

    return unknown_message(f"recipe {what}", path, choices, match=path.rsplit(".", 1)[-1])


def component_params(table: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a resolved component table into ``(name, params)``."""
    params = dict(table)
    return params.pop("name"), params


def build(kind: str, table: dict[str, Any], **passed: Any) -> Any:
    """The component a resolved table names, built with what the harness passes
    (``size`` to an aligner; ``num_classes``, ``input_size`` to a backbone); a
    parameter the table sets itself wins."""
    from harness.registry import get_registry

    name, params = component_params(table)
    return get_registry().create(kind, name, **{**passed, **params})


def flatten(recipe: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def dumps(recipe: Mapping[str, Any]) -> str:
    """Write a resolved recipe back as TOML (tables nest as ``[a.b]``)."""
    lines: list[str] = []
    _dump_table(recipe, [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    if path and scalars:
        lines.append(f"\n[{'.'.join(path)}]")
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            _dump_table(value, path + [key], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        import json

        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
