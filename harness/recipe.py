"""The recipe: a frozen, typed :class:`Recipe`, read once from TOML and ``--set``.

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

:func:`load` (a TOML file and ``--set`` items) and :func:`resolve` (a plain
dict) are the boundary: they validate everything before any work (unknown
sections and keys are errors, types and ranges are checked, component names
and parameters are checked against the registry, and every message carries
the dotted path of the bad field) and return a :class:`Recipe`. Past the
boundary the recipe is read by attribute (``recipe.train.lr``,
``recipe.views["face"].backbone``) and cannot change; a variant is a new
recipe (:meth:`Recipe.with_run`, :func:`dataclasses.replace`).
:meth:`Recipe.to_dict` gives the plain nested dict back, in the recipe's
order: what :func:`dumps` writes (``recipe.toml``), :func:`flatten` gives
MLflow, and the hashes that name run folders and arm-seeds are taken of.

**Where each field is declared (once).** The core knows stages, never a
method, so a field's declaration lives with whoever owns its meaning:

* A *setting* (sections ``run``, ``evaluation``, ``train``, ``pretrain``, and
  a view's ``pretrain`` / ``init``) is one line of its section's dataclass
  below: its type is the annotation, its default and range are the
  :func:`setting` call (``lr: float = setting(0.01, "a number > 0", _pos)``).
  Adding a setting (say ``benchmark: str = setting("")`` in
  :class:`EvaluationSettings`) is that one line (with ``added=True``, so that
  recipes which leave it at its default keep their digest); a new section is
  one more dataclass and one line in :class:`Recipe`.
* A *component section* (``dataset``, ``aligner``, ``sampler``, ``loss``,
  ``ensembler``, ``thresholder``, ``smoother``, and each view's ``backbone``) is declared
  here as a stage (:class:`ComponentSpec`: a registry name and the factory's
  parameters, checked against the factory); which component fills the stage
  by default, and the default views, is the method, declared once in the
  recipes plugin's ``defaults.toml`` (the paper's components), which holds
  nothing else.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib.resources
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness.errors import UserError
from harness.fileio import check_input_file
from harness.results import plain as thaw  # freeze's inverse: plain dicts and lists
from harness.metrics import MAX_RESAMPLES

DEFAULT_RECIPE = "defaults.toml"  # package data of plugins.recipes: the default components and views


# ------------------------------------------------------------ frozen values
class FrozenMap(Mapping[str, Any]):
    """A read-only mapping that keeps its order (a component's parameters, the views);
    setting an item raises ``TypeError``, as a mapping proxy does. Unlike one, it pickles
    (a recipe crosses to other ranks under torchrun) and compares by value."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("a FrozenMap cannot change")

    def __reduce__(self) -> tuple[Any, ...]:
        return FrozenMap, (self._data,)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def freeze(value: Any) -> Any:
    """Tables as :class:`FrozenMap`, arrays as tuples, all the way down."""
    if isinstance(value, Mapping):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


# ------------------------------------------------------------------ settings
def setting(default: Any, expect: str = "", check: Callable[[Any], bool] | None = None,
            added: bool = False) -> Any:
    """A setting's default and range: ``check(value)`` must hold, ``expect`` says what it wants.

    ``added``: a setting added after recipes were first written and hashed; it is written
    only when it is not its default, so every recipe that leaves it alone keeps its text
    and digest (and its run folders and arm-seeds are found again)."""
    return field(default=default, metadata={"check": check, "expect": expect, "added": added})


def _nonneg(v: Any) -> bool:
    return v >= 0


def _pos(v: Any) -> bool:
    return v > 0


def _scale_range(v: Any) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    return len(v) == 2 and numbers and 0 < v[0] <= v[1] <= 1.5


def _one_of(*options: str) -> Callable[[Any], bool]:
    return lambda v: v in options


def _to_dict(section: Any) -> dict[str, Any]:
    return {f.name: thaw(getattr(section, f.name)) for f in dataclasses.fields(section)
            if not (f.metadata.get("added") and getattr(section, f.name) == f.default)}


@dataclass(frozen=True)
class RunSettings:
    """``[run]``: what the run is called, where it goes, how it is seeded and tracked."""

    name: str = setting("run")
    seed: int = setting(0, "an integer >= 0", lambda v: 0 <= v < 2 ** 63)
    device: str = setting("auto")
    deterministic: bool = setting(True)
    output: str = setting("runs")
    experiment: str = setting("au-harness")
    tracking_uri: str = setting("")


@dataclass(frozen=True)
class EvaluationSettings:
    """``[evaluation]``: the fixed split or K folds, and the score's bootstrap."""

    mode: str = setting("split", "one of split, kfold", _one_of("split", "kfold"))
    folds: int = setting(5, "an integer >= 3 (a fold tests, the next validates, the rest train)",
                         lambda v: v >= 3)
    bootstrap: int = setting(1000, f"an integer from 0 to {MAX_RESAMPLES}", lambda v: 0 <= v <= MAX_RESAMPLES)
    repeats: int = setting(1, "an integer from 1 to 100 (kfold: partitions, reshuffled by seed)",
                           lambda v: 1 <= v <= 100, added=True)


@dataclass(frozen=True)
class TrainSettings:
    """``[train]``: AU fine-tuning, and what every training stage shares (SGD with a step
    schedule; by default the settings of Ji, Wang, Peng et al., CVPRW 2020: lr 0.01 / 10
    every 10 epochs, momentum 0.9, weight decay 1e-5, batch 16, input 224)."""

    epochs: int = setting(10, "an integer >= 0", _nonneg)
    batch_size: int = setting(16, "an integer > 0", _pos)
    lr: float = setting(0.01, "a number > 0", _pos)
    momentum: float = setting(0.9, "a number >= 0", _nonneg)
    weight_decay: float = setting(1e-5, "a number >= 0", _nonneg)
    lr_step: int = setting(10, "an integer > 0", _pos)
    lr_gamma: float = setting(0.1, "a number > 0", _pos)
    input_size: int = setting(224, "an integer >= 16", lambda v: v >= 16)
    workers: int = setting(2, "an integer >= 0", _nonneg)
    amp: bool = setting(True)
    channels_last: bool = setting(True)
    flip: bool = setting(True)
    augment_scale: tuple[float, float] = setting(
        (1.0, 1.0), "[lo, hi] with 0 < lo <= hi <= 1.5 (crop side / face crop side)", _scale_range)
    augment_shift: float = setting(0.0, "a number in [0, 0.5]", lambda v: 0 <= v <= 0.5)
    augment_jitter: float = setting(0.0, "a number in [0, 1)", lambda v: 0 <= v < 1)
    max_steps: int = setting(0, "an integer >= 0 (0: no cap)", _nonneg)
    # Every epoch's weights (pretraining too) beside the final ones; by default a
    # stage keeps only its last checkpoint while it runs, then only its final weights.
    keep_epochs: bool = setting(False)


@dataclass(frozen=True)
class PretrainSettings:
    """``[pretrain]``: the views' pretraining stages (the rest as in ``[train]``)."""

    epochs: int = setting(5, "an integer >= 0", _nonneg)
    batch_size: int = setting(64, "an integer > 0", _pos)
    lr: float = setting(0.01, "a number > 0", _pos)


# ---------------------------------------------------------------- components
@dataclass(frozen=True)
class ComponentSpec:
    """A component the recipe names: its registry ``name`` and its factory's ``params``
    (read-only here; :meth:`kwargs` gives the factory a plain copy)."""

    name: str
    params: FrozenMap = field(default_factory=FrozenMap)

    def kwargs(self) -> dict[str, Any]:
        """The parameters as plain values (dicts and lists), as the factory takes them."""
        return thaw(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.kwargs()}


@dataclass(frozen=True, kw_only=True)
class View:
    """``[views.NAME]``: one view of the ensemble."""

    # a pretraining task is a companion set the dataset provides (checked against the
    # dataset before a run starts); "none" trains the view from its init or from scratch
    pretrain: str = setting("none", "a companion set of the dataset, or none", bool)
    init: str = setting("")
    backbone: ComponentSpec

    def to_dict(self) -> dict[str, Any]:
        return {**_to_dict(self), "backbone": self.backbone.to_dict()}


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe: every field validated and filled in (see the module docstring)."""

    run: RunSettings
    evaluation: EvaluationSettings
    train: TrainSettings
    pretrain: PretrainSettings
    dataset: ComponentSpec
    aligner: ComponentSpec
    sampler: ComponentSpec
    loss: ComponentSpec
    ensembler: ComponentSpec
    thresholder: ComponentSpec
    # per video, before thresholds (frame-level datasets, predicted videos); added after recipes
    # were first hashed, so it is written only when it smooths (see to_dict)
    smoother: ComponentSpec = field(metadata={"written_unless": "none"})
    views: FrozenMap  # name -> View, in the recipe's order

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", FrozenMap(self.views))  # a plain dict of views, frozen

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain nested dicts, in its order (for TOML, MLflow params, hashes).

        A component section added after recipes were first written and hashed declares
        ``written_unless``: it is left out while it names that component with no
        parameters, so every recipe that does not use it keeps its text and digest
        (and its run folders and arm-seeds are found again); reading fills it back in."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ComponentSpec) and not value.params \
                    and value.name == f.metadata.get("written_unless"):
                continue
            out[f.name] = ({k: v.to_dict() for k, v in value.items()} if f.name == "views"
                           else value.to_dict() if isinstance(value, ComponentSpec) else _to_dict(value))
        return out

    def with_run(self, **changes: Any) -> Recipe:
        """This recipe with ``[run]`` fields changed (a study's arm-seed, an ablation row)."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, **changes))


_HINTS = typing.get_type_hints(Recipe)
# Recipe sections that name a component of the kind of the same name; the settings sections.
COMPONENTS: tuple[str, ...] = tuple(name for name, kind in _HINTS.items() if kind is ComponentSpec)
SETTINGS: dict[str, type] = {name: kind for name, kind in _HINTS.items() if kind not in (ComponentSpec, FrozenMap)}


# ------------------------------------------------------------------ reading
@functools.cache
def _default_components() -> dict[str, Any]:
    return tomllib.loads((importlib.resources.files("plugins.recipes") / DEFAULT_RECIPE).read_text())


def demo_recipe() -> Path:
    """The recipe ``auh run`` runs when none is named (package data of :mod:`plugins.recipes`)."""
    return Path(str(importlib.resources.files("plugins.recipes") / "demo.toml"))


def load(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
         check_components: bool = True) -> Recipe:
    """Read a recipe (``None``: defaults only), apply ``--set`` overrides, validate, resolve."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path)
    for item in overrides:
        apply_override(raw, item)
    return resolve(raw, check_components=check_components)


RecipeSource = typing.Union[str, Path, Mapping[str, Any], "Recipe"]  # what from_source takes


def from_source(source: RecipeSource, overrides: typing.Sequence[str] = ()) -> Recipe:
    """A recipe from a TOML file, a plain dict, or a :class:`Recipe`, with ``--set`` overrides."""
    if isinstance(source, (str, Path)):
        return load(source, list(overrides))
    raw = source.to_dict() if isinstance(source, Recipe) else copy.deepcopy(dict(source))
    for item in overrides:
        apply_override(raw, item)
    return resolve(raw)


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


def resolve(raw: Mapping[str, Any], check_components: bool = True) -> Recipe:
    """Validate ``raw`` (a recipe as plain dicts) and return the :class:`Recipe`, every
    default filled in."""
    base = _default_components()
    known = list(_HINTS)
    for section in raw:
        if section not in known:
            raise UserError(_unknown("section", section, known))
    values: dict[str, Any] = {}
    for section, kind in SETTINGS.items():
        values[section] = kind(**_settings(section, kind, _table(raw, section)))
    for section in COMPONENTS:
        table = _with_default(_component_table(section, section, raw.get(section, {})), base[section])
        values[section] = _component(section, section, table, check_components)
    values["views"] = _views(raw.get("views", base["views"]), base["views"], check_components)
    return Recipe(**values)


def _views(views: Any, default: dict[str, Any], check: bool) -> FrozenMap:
    if not isinstance(views, dict) or not views:
        raise UserError("recipe field views: expected at least one [views.NAME] table")
    out = {}
    for name, view in views.items():
        path = f"views.{name}"
        if not isinstance(view, dict):
            raise UserError(f"recipe field {path}: expected a table, got {view!r}")
        own = [f.name for f in dataclasses.fields(View)]
        unknown = set(view) - set(own)
        if unknown:
            raise UserError(_unknown("key", f"{path}.{sorted(unknown)[0]}", own))
        settings = _settings(path, View, {k: v for k, v in view.items() if k != "backbone"})
        # a view's backbone defaults to the default recipe's (its view of that name, else its first)
        default_view = default.get(name, next(iter(default.values())))
        backbone = _with_default(_component_table(f"{path}.backbone", "backbone", view.get("backbone", {})),
                                 default_view["backbone"])
        out[name] = View(**settings, backbone=_component(f"{path}.backbone", "backbone", backbone, check,
                                                         reserved=("num_classes", "input_size")))
    return FrozenMap(out)


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


def _table(raw: Mapping[str, Any], section: str) -> dict[str, Any]:
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise UserError(f"recipe field {section}: expected a table, got {table!r}")
    return table


def _settings(path: str, kind: type, table: dict[str, Any]) -> dict[str, Any]:
    """The settings of dataclass ``kind`` (its fields with a default) from ``table``, checked."""
    fields = [f for f in dataclasses.fields(kind) if f.default is not dataclasses.MISSING]
    names = [f.name for f in fields]
    for key in table:
        if key not in names:
            raise UserError(_unknown("key", f"{path}.{key}", names))
    hints = typing.get_type_hints(kind)
    return {f.name: _check(f"{path}.{f.name}", f, hints[f.name], table.get(f.name, f.default)) for f in fields}


def _check(path: str, f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """``value`` of setting ``f`` if it has the type and range declared; frozen."""
    array = typing.get_origin(hint) is tuple  # a TOML array, kept as a tuple
    types: tuple[type, ...] = (list, tuple) if array else (hint,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = "list" if array else " or ".join(t.__name__ for t in types)
        raise UserError(f"recipe field {path}: expected {names}, got {type(value).__name__} {value!r}")
    check = f.metadata.get("check")
    if check is not None and not check(value):
        raise UserError(f"recipe field {path}: expected {f.metadata['expect']}, got {value!r}")
    return freeze(value)


def _component(path: str, kind: str, table: dict[str, Any], check: bool,
               reserved: tuple[str, ...] = ()) -> ComponentSpec:
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
    return ComponentSpec(name, freeze(params))


def _unknown(what: str, path: str, choices: Any) -> str:
    """``unknown recipe key 'train.epoch'; available: ... (did you mean 'epochs'?)``"""
    from harness.registry import unknown_message

    return unknown_message(f"recipe {what}", path, choices, match=path.rsplit(".", 1)[-1])


# ------------------------------------------------------------------ building
def build(kind: str, spec: ComponentSpec | Mapping[str, Any], **passed: Any) -> Any:
    """The component ``spec`` names (a recipe's, or a bundle's table), built with what the
    harness passes (``size`` to an aligner; ``num_classes``, ``input_size`` to a backbone);
    a parameter the recipe sets itself wins."""
    from harness.registry import get_registry

    if not isinstance(spec, ComponentSpec):
        spec = ComponentSpec(spec["name"], freeze({k: v for k, v in spec.items() if k != "name"}))
    return get_registry().create(kind, spec.name, **{**passed, **spec.kwargs()})


# ------------------------------------------------------------------ writing
def _plain(recipe: Recipe | Mapping[str, Any]) -> Mapping[str, Any]:
    return recipe.to_dict() if isinstance(recipe, Recipe) else recipe


def flatten(recipe: Recipe | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in _plain(recipe).items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def dumps(recipe: Recipe | Mapping[str, Any]) -> str:
    """Write a recipe back as TOML (tables nest as ``[a.b]``)."""
    lines: list[str] = []
    _dump_table(_plain(recipe), [], lines)
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
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def digest(recipe: Recipe) -> str:
    """The sha256 of the recipe as :func:`dumps` writes it: what a run folder was started with."""
    return hashlib.sha256(dumps(recipe).encode()).hexdigest()
