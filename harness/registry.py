"""The plugin manager and the one component registry.

Plugins come from three places, in this order: the built-in ``plugins``
package, the ``au_harness`` entry-point group of every installed
distribution, and modules or files named with ``--plugin``. Each
registration hook result is merged into one ``{kind: {name: Component}}``
table; a name registered twice is an error that names both providers.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from harness import hookspecs
from harness.errors import UserError
from harness.protocols import PASSED

PROJECT = "au_harness"
ENTRY_POINT_GROUP = "au_harness"

KINDS: dict[str, str] = {
    "aligner": "auh_aligners",
    "backbone": "auh_backbones",
    "sampler": "auh_samplers",
    "loss": "auh_losses",
    "ensembler": "auh_ensemblers",
    "thresholder": "auh_thresholders",
    "smoother": "auh_smoothers",
    "dataset": "auh_datasets",
    "reader": "auh_readers",
    "benchmark": "auh_benchmarks",
    "metric": "auh_metrics",
}
FAMILY_SUFFIX = ":*"


@dataclass(frozen=True)
class Provider:
    """Who registered something: plugin name, distribution and its version."""

    plugin: str
    distribution: str = ""
    version: str = ""

    def __str__(self) -> str:
        dist = f" ({self.distribution} {self.version})".rstrip() if self.distribution else ""
        return f"{self.plugin}{dist}"


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    provider: Provider

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""


def _own_version() -> str:
    return package_version("au-harness") or "0+unknown"


# ------------------------------------------------------------- provenance
VERSIONED = {"au-harness": "harness", "torch": "torch", "timm": "timm", "mlflow": "mlflow",
             "numpy": "numpy"}  # distribution -> module: what results record they ran with


def package_versions() -> dict[str, str]:
    """``{distribution: version}`` of the packages in :data:`VERSIONED` that are installed."""
    found = {dist: package_version(dist, module) for dist, module in VERSIONED.items()}
    return {dist: v for dist, v in found.items() if v}


def package_version(dist: str, module: str | None = None) -> str | None:
    """The version of ``dist`` actually running: the imported ``module``'s
    ``__version__`` when it has one (stale metadata of an older install can
    disagree), else the installed distribution's; ``None`` if not installed."""
    version = getattr(sys.modules.get(module or dist), "__version__", None)
    if version:
        return str(version)
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


class Registry:
    """A pluggy plugin manager plus the merged component table."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._providers: dict[str, Provider] = {}
        self._table: dict[str, dict[str, Component]] = {}

    # ------------------------------------------------------------- loading
    def register(self, plugin: Any, provider: Provider) -> None:
        """Register a plugin module or object under ``provider.plugin``."""
        if self.pm.is_registered(plugin) or self.pm.has_plugin(provider.plugin):
            return
        try:
            self.pm.register(plugin, name=provider.plugin)
        except pluggy.PluginValidationError as exc:
            raise UserError(f"plugin {provider}: {exc}") from None
        self._providers[provider.plugin] = provider
        self._table = {}

    def load_builtins(self) -> None:
        _check_builtin_package()
        from plugins import BUILTIN_PLUGINS

        version = _own_version()
        for modname in BUILTIN_PLUGINS:
            module = importlib.import_module(modname)
            if getattr(getattr(module, "__spec__", None), "_initializing", False):
                # the registry was asked for while this module was still being imported:
                # registering it half-made would lose its hooks for the whole process
                raise RuntimeError(f"built-in plugin {modname} asked for the plugin registry while "
                                   f"being imported; a plugin module must not build it at import time")
            self.register(module, Provider(modname, "au-harness", version))

    def load_entry_points(self) -> None:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            provider = Provider(ep.name, dist.name if dist else "", dist.version if dist else "")
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as exc:  # any import-time failure, sys.exit() included
                raise UserError(f"plugin {provider}: failed to load entry point {ep.value!r}: "
                                f"{type(exc).__name__}: {exc}") from exc
            self.register(plugin, provider)

    def load_plugin(self, spec: str) -> None:
        """Load ``--plugin`` ``spec``: a ``.py`` file path or an importable module name."""
        try:
            if spec.endswith(".py") or Path(spec).is_file():
                module = _import_file(spec)
            else:
                module = importlib.import_module(spec)
        except UserError:
            raise
        except (Exception, SystemExit) as exc:  # sys.exit() in a plugin is a failed load, not an exit
            raise UserError(f"plugin {spec!r}: import failed: {type(exc).__name__}: {exc}") from exc
        self.register(module, Provider(spec))

    # -------------------------------------------------------------- lookup
    @property
    def table(self) -> dict[str, dict[str, Component]]:
        for kind in KINDS:
            self._kind(kind)
        return self._table

    def _collect(self, kind: str) -> dict[str, Component]:
        """One kind's components. Kinds are collected when first asked for: looking up a
        benchmark runs no other kind's registration hook (nor imports what they need)."""
        try:  # a misspelled hook (``auh_sampler``) would otherwise be silently ignored
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise UserError(f"plugin {self._provider_of(exc.plugin)}: {exc}") from None
        found: dict[str, Component] = {}
        hook_name = KINDS[kind]
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):  # registration order
            provider = self._providers.get(impl.plugin_name, Provider(impl.plugin_name))
            try:
                result = impl.function()
            except Exception as exc:
                raise UserError(f"plugin {provider}: {hook_name}() raised "
                                f"{type(exc).__name__}: {exc}") from exc
            _check_factories(result, hook_name, provider)
            for name, factory in result.items():
                _check_signature(kind, name, factory, provider)
                if name in found:
                    raise UserError(f"{kind} {name!r} is registered twice: by {found[name].provider} "
                                    f"and by {provider}")
                found[name] = Component(kind, name, factory, provider)
        return found

    def _provider_of(self, plugin: Any) -> Provider:
        name = self.pm.get_name(plugin) or repr(plugin)
        return self._providers.get(name, Provider(name))

    def available(self, kind: str) -> list[str]:
        return sorted(self._kind(kind))

    def get(self, kind: str, name: str) -> tuple[Component, tuple[Any, ...]]:
        """Resolve ``name`` (or ``family:member``) to its component and leading args."""
        components = self._kind(kind)
        if not isinstance(name, str) or not name:
            raise UserError(f"{kind} name must be a non-empty string, got {name!r}")
        if name in components:
            return components[name], ()
        family, sep, member = name.partition(":")
        if sep and member and family + FAMILY_SUFFIX in components:
            return components[family + FAMILY_SUFFIX], (member,)
        raise UserError(unknown_message(kind, name, components))

    def create(self, kind: str, name: str, **params: Any) -> Any:
        component, args = self.get(kind, name)
        check_params(component, params)
        try:
            return component.factory(*args, **params)
        except UserError:
            raise
        except (TypeError, ValueError) as exc:  # the factory's own check of a parameter
            raise UserError(f"{kind} {name!r}: {exc}") from exc
        except Exception as exc:  # the plugin failed, not the input: say which one
            raise UserError(f"{kind} {name!r} (plugin {component.provider}) failed to build: "
                            f"{type(exc).__name__}: {exc}") from exc

    def _kind(self, kind: str) -> dict[str, Component]:
        if kind not in KINDS:
            raise UserError(unknown_message("component kind", kind, KINDS))
        if kind not in self._table:
            self._table[kind] = self._collect(kind)
        return self._table[kind]

    # ----------------------------------------------------------- lifecycle
    @property
    def hook(self) -> Any:
        return self.pm.hook

    def add_commands(self, subparsers: Any) -> None:
        """Every plugin's ``auh_add_commands``, in registration order (the built-ins first)."""
        for impl in self.pm.hook.auh_add_commands.get_hookimpls():
            impl.function(*[{"subparsers": subparsers}[arg] for arg in impl.argnames])


def unknown_message(what: str, name: str, choices: Iterable[str], match: str | None = None) -> str:
    """``unknown sampler 'mlross'; available: mlros, uniform, weighted (did you mean 'mlros'?)``

    The hint compares ``match`` (default: ``name``) with the choices.
    """
    names = sorted(choices)
    msg = f"unknown {what} {name!r}; available: {', '.join(names) or '(none)'}"
    close = difflib.get_close_matches(str(name if match is None else match), names, n=1)
    return msg + (f" (did you mean {close[0]!r}?)" if close else "")


def accepted_params(component: Component) -> list[str] | None:
    """The keyword parameters the factory takes; ``None`` when it takes any."""
    try:
        sig = inspect.signature(component.factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_params(component: Component, params: dict[str, Any]) -> None:
    """Refuse parameters the factory does not accept, naming those it does."""
    accepted = accepted_params(component)
    if accepted is None:
        return
    for key in params:
        if key not in accepted:
            raise UserError(f"{component.kind} {component.name!r}: unknown parameter {key!r}; "
                            f"accepts: {', '.join(accepted) or '(none)'}")


def _check_factories(result: Any, hook_name: str, provider: Provider) -> None:
    if not isinstance(result, dict):
        raise UserError(f"plugin {provider}: {hook_name}() must return a dict "
                        f"{{name: factory}}, got {type(result).__name__}")
    for name, factory in result.items():
        if not isinstance(name, str) or not name:
            raise UserError(f"plugin {provider}: {hook_name}() returned a non-string name {name!r}")
        if not callable(factory):
            raise UserError(f"plugin {provider}: {hook_name}() entry {name!r} is not callable "
                            f"(got {type(factory).__name__})")


def _check_signature(kind: str, name: str, factory: Callable[..., Any], provider: Provider) -> None:
    """Refuse a factory that cannot take the keywords the harness passes to its kind."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    named = {p.name for p in params.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if name.endswith(FAMILY_SUFFIX):  # the member name arrives first, positionally
        first = next(iter(params.values()), None)
        if first is None or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD,
                                                first.VAR_POSITIONAL):
            raise UserError(f"plugin {provider}: {kind} family {name!r}: its factory must take the "
                            f"member name as its first positional argument (see harness.protocols)")
        named.discard(first.name)
    missing = [key for key in PASSED.get(kind, ()) if key not in named]
    if missing:
        raise UserError(f"plugin {provider}: {kind} {name!r}: its factory does not take "
                        f"{', '.join(missing)}, which the harness passes to every {kind} "
                        f"(see harness.protocols)")


def _check_builtin_package() -> None:
    """Refuse, before importing anything, a ``plugins`` that is not ours.

    The built-in plugins are the top-level package ``plugins`` installed next
    to ``harness``. A folder of that name earlier on ``sys.path`` (the working
    directory under ``python -m``, or ``PYTHONPATH``) would otherwise be
    imported, and its code run, in their place.
    """
    home = Path(__file__).resolve().parent.parent / "plugins"
    spec = importlib.util.find_spec("plugins")
    found = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    if found != [home]:
        where = ", ".join(map(str, found)) or "nowhere"
        raise UserError(f"the package 'plugins' resolves to {where}, not au-harness's built-in "
                        f"plugins at {home}: a folder named 'plugins' on sys.path shadows it; "
                        f"rename that folder or run auh from another directory")


def _import_file(path: str) -> ModuleType:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"plugin file {path!r} does not exist")
    modname = f"auh_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(modname, file)
    if spec is None or spec.loader is None:
        raise UserError(f"plugin file {path!r} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide :class:`Registry` (built-ins and entry points loaded), also
    ``harness.get_registry``. Kept here, not in the package, so the modules that
    need it (the pipeline's hooks) do not import the package that imports them."""
    global _REGISTRY
    if _REGISTRY is None:
        reg = Registry()
        reg.load_builtins()
        reg.load_entry_points()
        _REGISTRY = reg
    return _REGISTRY
