"""Core subcommands: ``auh run``, ``auh predict``, ``auh ablate``, ``auh plugins``, ``auh align``.

Added through ``auh_add_commands``, the one way any plugin adds a subcommand.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import harness
from harness import hookimpl
from harness.cli import add_command
from harness import recipe as recipes
from harness.errors import UserError
from harness.fileio import check_output_file, check_output_folder
from harness.results import RunResult


@hookimpl
def auh_add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "run", cmd_run)
    _recipe_args(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the latest unfinished run of this recipe from its last checkpoint")

    p = add_command(subparsers, "predict", cmd_predict)
    p.add_argument("bundle", help="a bundle folder written by `auh run`, or an MLflow model URI "
                                  "(runs:/<run id>/model, models:/<name>/<version>)")
    p.add_argument("input", type=Path,
                   help="a folder of images, one image, or a list file of image paths, one per "
                        "line (a relative path is read from the list file's folder)")
    p.add_argument("--out", type=Path, required=True,
                   help="the table: .parquet (metadata inside) or .csv (metadata in OUT.json)")
    p.add_argument("--submission", type=Path, metavar="CSV",
                   help="also write the submission: one row per image (its first face), 0/1 per AU")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for a model URI "
                                          "(default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")

    p = add_command(subparsers, "ablate", cmd_ablate)
    _recipe_args(p)
    p.add_argument("--out", type=Path, help="markdown file for the table (default: OUTPUT/NAME-ablation.md)")
    _seed_args(p, default=None)

    p = add_command(subparsers, "compare", cmd_compare)
    p.add_argument("recipe", nargs="?", type=Path, help="recipe A (default: the demo recipe)")
    p.add_argument("recipe_b", nargs="?", type=Path, help="recipe B (or give --vs)")
    p.add_argument("--vs", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="B is A with this override; repeatable")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a field in both arms; repeatable")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    _seed_args(p, default=5)
    p.add_argument("--plan", action="store_true",
                   help="write the arm-seed recipes and print one `auh run` command per unfinished "
                        "arm-seed (for a job array); run nothing")
    p.add_argument("--collect", action="store_true",
                   help="run nothing: the verdict from finished arm-seed folders only")
    p.add_argument("--json", action="store_true", help="print the whole verdict as JSON")

    p = add_command(subparsers, "plugins", cmd_plugins)
    p.add_argument("--kind", choices=sorted(_kinds()), help="only this kind")
    p.add_argument("--check", nargs="?", const="", metavar="NAME",
                   help="run the conformance kit (harness.testing) on every component, or on NAME "
                        "(a family member such as timm:resnet18 too); exit status 1 if one fails")

    p = add_command(subparsers, "align", cmd_align)
    p.add_argument("source", metavar="DATASET_OR_RECIPE",
                   help="a dataset name (e.g. synth) or a recipe .toml (its dataset and aligner)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. dataset.n=200 or aligner.select=largest; repeatable")
    p.add_argument("--aligner", help="aligner name (default: the recipe's, else mtcnn)")
    p.add_argument("--size", type=int, help="crop size in pixels (default: the recipe's train.input_size)")
    p.add_argument("--workers", type=int, help="aligning processes (default: the recipe's train.workers)")


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", type=Path, help="a TOML recipe (default: the demo recipe)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe field, e.g. --set train.epochs=2; repeatable")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db here)")


def _seed_args(p: argparse.ArgumentParser, default: int | None) -> None:
    more = "" if default else ("; with it, every row is compared with the row above and the first "
                               "row (paired verdicts, as auh compare)")
    p.add_argument("--seeds", type=int, default=default, metavar="N",
                   help=f"run on seeds run.seed .. run.seed+N-1 (at least 2; default {default}){more}")
    p.add_argument("--jobs", type=int, default=1, metavar="K",
                   help="run K arm-seeds at a time in child processes, each on its share of the cores")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")


def _kinds() -> list[str]:
    from harness.registry import KINDS

    return list(KINDS)


def load_recipe(args: argparse.Namespace) -> dict[str, Any]:
    overrides = list(args.overrides)
    if args.tracking_uri:
        overrides.append(f"run.tracking_uri={args.tracking_uri}")
    return recipes.load(args.recipe or recipes.demo_recipe(), overrides)


# --------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    """train, ensemble, threshold and score a recipe (default: the CPU demo)

    Run the whole pipeline of a recipe: align faces, pretrain and fine-tune each view, ensemble
    the views, fit per-AU thresholds on validation predictions, score the test rows, save a
    model bundle, and log everything to MLflow. With no RECIPE it runs the shipped demo recipe
    (plugins/recipes/demo.toml) on the synthetic benchmark.
    """
    from harness import distributed
    from harness.pipeline import run

    recipe = load_recipe(args)
    result = run(recipe, resume=args.resume)
    if distributed.is_main():
        print(scorecard(result, recipe))
    return 0


def scorecard(result: RunResult, recipe: dict[str, Any]) -> str:
    """The readable end-of-run report: per-AU table, final score, baselines, where to look."""
    s = result.scores
    lines = [f"run {recipe['run']['name']!r}: {result.out_dir}", "",
             f"{'AU':<6}{'n':>7}{'accuracy':>10}{'F1':>8}"]
    for au, v in s["per_au"].items():
        if v["accuracy"] is None:
            lines.append(f"{au:<6}{v['n']:>7}{'undefined (no known labels)':>26}")
        else:
            lines.append(f"{au:<6}{v['n']:>7}{v['accuracy']:>10.4f}{v['f1']:>8.4f}")
    lines.append("")
    ci = f"  95% CI [{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}]" if "ci95" in s else ""
    lines.append(f"final {s['final']:.4f} = (accuracy {s['accuracy']:.4f} + F1 {s['f1']:.4f}) / 2{ci}")
    if result.cv["n_folds"] > 1:
        lines.append(f"cross-validation: {result.cv['n_folds']} folds, final "
                     f"{result.cv['mean']:.4f} +- {result.cv['std']:.4f} (mean +- sd)")
    for view, final in result.view_final.items():
        lines.append(f"view {view} alone: final {final:.4f}")
    for name, b in result.baselines.items():
        lines.append(f"baseline {name}: final {b['final']:.4f} (accuracy {b['accuracy']:.4f}, F1 {b['f1']:.4f})")
    faces = result.faces
    lines.append(f"faces: {faces['n'] - faces['not_found']} of {faces['n']} found by the aligner; "
                 f"{faces['not_found']} fell back to a center crop (still labelled and scored)")
    lines.append(f"model bundle: {result.bundle}")
    tracking = result.reports.get("tracking") or {}
    if tracking.get("ui_command"):
        lines.append(f"MLflow: {tracking['ui_command']}")
        if tracking.get("run_id") and tracking.get("experiment_id"):
            base = tracking["tracking_uri"] if str(tracking.get("tracking_uri", "")).startswith("http") \
                else "http://127.0.0.1:5000"
            lines.append(f"        then open {base.rstrip('/')}/#/experiments/{tracking['experiment_id']}"
                         f"/runs/{tracking['run_id']}")
    return "\n".join(lines)


# ----------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    """a table of per-face AU probabilities (and a submission) from a model bundle

    Align and classify images with a trained bundle. Writes one row per image and face: the face
    box, 5 landmarks, the aligner's score, each AU's probability (AU1_prob ...) and its 0/1 at the
    bundle's threshold (AU1 ...). Images that cannot be read are listed with the reason and
    skipped (--strict: stop at the first). --submission also writes the challenge submission
    (one row per image) that `auh check` accepts.
    """
    from harness.bundle import list_images, load_bundle
    from harness.fileio import check_not_inputs
    from harness.labels import write_submission
    from harness.predict import bundle_folder, bundle_id, check_out, predict_table, sidecar, \
        submission_rows, write_table
    from harness.progress import progress

    # Every argument is checked before the bundle is loaded and anything is written.
    if args.batch_size < 1:
        raise UserError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    outputs = {"--out": check_out(check_output_file(args.out))}
    if args.out.suffix.lower() == ".csv":
        outputs["--out metadata file"] = check_output_file(sidecar(args.out), "--out metadata file")
    if args.submission is not None:
        outputs["--submission"] = check_output_file(args.submission, "--submission")
    paths = list_images(args.input)
    # An image folder may hold the table (only image files are read); an image or a list may not.
    check_not_inputs(outputs, {"INPUT": None if args.input.is_dir() else args.input})
    if args.submission is not None and len({p.name for p in paths}) < len(paths):
        raise UserError("--submission: two input images share a file name; a submission needs "
                        "unique image names")
    with bundle_folder(args.bundle, args.tracking_uri) as folder:
        bundle = load_bundle(folder, device=args.device)
        identity = {"id": bundle_id(folder), "source": args.bundle}
        with progress(total=len(paths), desc="predict", unit="img") as bar:
            result = predict_table(bundle, paths, args.batch_size, strict=args.strict, bar=bar)
    result.bundle = identity
    write_table(args.out, result)
    first = result.first_faces
    with_face = int(first["found"].sum())
    no_face = len(first) - with_face - len(result.skipped)
    lines = [f"wrote {_count(len(result.table), 'row')} for {_count(len(first), 'image')} to {args.out}: "
             f"{_count(int(result.table['found'].sum()), 'face')} in {_count(with_face, 'image')}, "
             f"{_count(no_face, 'image')} without a face (predicted from a center crop), "
             f"{len(result.skipped)} skipped"]
    if result.skipped:
        path, reason = result.skipped[0]
        lines[0] += (f" as unreadable or unsupported (first: {path}: {reason}; each is listed "
                     f"in the table's error column)")
    if args.submission is not None:
        names, preds, unreadable = submission_rows(result)
        write_submission(args.submission, names, preds, bundle.schema)
        note = f" ({_count(unreadable, 'unreadable image')} predicted absent for every AU)" if unreadable else ""
        lines.append(f"wrote the submission for {len(names)} images to {args.submission}{note}")
    print("\n".join(lines))
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


# ------------------------------------------------------------------ ablate
def ablation(base: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """``auh ablate``'s rows for ``base`` and the legend under the table, from the
    plugin that derives them (``auh_ablation``; the paper's: :mod:`plugins.recipes.ablation`)."""
    found = harness.get_registry().hook.auh_ablation(recipe=base)
    if found is None:
        raise UserError("auh ablate: no plugin derives ablation rows (auh_ablation)")
    return found


def cmd_ablate(args: argparse.Namespace) -> int:
    """the paper's Table 2 for a recipe: views, alignment, balancing

    Run the paper's ablation on any recipe: F_face, F_emotion, F_face + F_emotion, + Align, +
    balancing, each a recipe derived from RECIPE; prints the Acc / F1 / Avg table in markdown
    and writes it next to the runs.
    """
    from harness import comparison
    from harness.fileio import atomic_open
    from harness.pipeline import preflight_all, run

    comparison.check_options(args.seeds, args.jobs, args.resamples)
    if args.seeds is None and args.jobs != 1:
        raise UserError(f"--jobs {args.jobs}: only with --seeds (without it the rows run one "
                        f"after another in this process)")
    base = load_recipe(args)
    rows, legend = ablation(base)
    variants = {row: recipes.resolve(r) for row, r in rows}
    out = args.out or Path(base["run"]["output"]) / f"{base['run']['name']}-ablation.md"
    check_output_folder(out.parent, "--out folder")
    if args.seeds is not None:
        table = seeded_ablation(base, variants, legend, args)
    else:
        preflight_all(list(variants.values()))  # every row refused before the first one runs
        rows = []
        for row, r in variants.items():
            s = run(r).scores
            rows.append((row, s["accuracy"], s["f1"], s["final"]))
        table = "\n".join(["| method | Acc | F1 | Avg |", "|---|---|---|---|"] +
                          [f"| {m} | {a:.3f} | {f:.3f} | {v:.3f} |" for m, a, f, v in rows] +
                          ["", legend])
    with atomic_open(out) as fh:
        fh.write(table + "\n")
    print(table)
    print(f"\nwritten to {out}")
    return 0


def seeded_ablation(base: dict[str, Any], variants: dict[str, dict[str, Any]], legend: str,
                    args: argparse.Namespace) -> str:
    """The ablation on several seeds: each row's mean and 95% t-interval across seeds,
    and the paired verdict of each row against the row above and against the first row."""
    from harness import comparison

    labels = {row: f"row{k}" for k, row in enumerate(variants)}
    # Each row under the base recipe's name: a row is then the same arm as the recipe
    # it equals, and a later `auh compare` of two rows reuses their runs.
    arms = {labels[row]: {**r, "run": {**r["run"], "name": base["run"]["name"]}} for row, r in variants.items()}
    study = comparison.Study(comparison.study_root("ablate", {"base": base}), arms,
                             comparison.seed_list(args.seeds, base["run"]["seed"]), tuple(args.plugin))
    comparison.check_study(study)
    study.prepare()
    study.run(args.jobs)
    rows = list(variants)
    verdicts: dict[str, Any] = {}
    for k, row in enumerate(rows[1:], 1):
        for other in dict.fromkeys([rows[k - 1], rows[0]]):
            verdicts[f"{row} vs {other}"] = study.verdict(labels[other], labels[row], a_name=other, b_name=row,
                                                          resamples=args.resamples)
    comparison.finish(study, verdicts)
    return ablation_table(rows, verdicts, legend, len(study.seeds))


def ablation_table(rows: list[str], verdicts: dict[str, Any], legend: str, n_seeds: int) -> str:
    """Markdown: mean +- t half-width across seeds of Acc / F1 / Avg per row, and each
    row's verdict on Avg against the row above and the first row."""
    from harness.verdict import t_interval

    def cell(values: tuple[float, ...]) -> str:
        lo, hi = t_interval(values)
        return f"{(lo + hi) / 2:.3f} +- {(hi - lo) / 2:.3f}"

    def step(v: Any) -> str:
        m = v.metrics["final"]
        return (f"{m.mean_diff:+.3f} [{m.bootstrap_interval[0]:+.3f}, {m.bootstrap_interval[1]:+.3f}], "
                f"P={m.p_b_better:.2f}: {m.verdict.replace('B ', '')}")

    lines = ["| method | Acc | F1 | Avg | vs row above | vs first row |", "|---|---|---|---|---|---|"]
    for k, row in enumerate(rows):
        # A row's per-seed values: arm B of its step, or arm A of the first step for the first row.
        step_of = verdicts[f"{rows[max(k, 1)]} vs {rows[max(k, 1) - 1]}"]
        arm = "b" if k else "a"
        cells = [cell(getattr(step_of.metrics[m], arm)) for m in ("accuracy", "f1", "final")]
        above = step(verdicts[f"{row} vs {rows[k - 1]}"]) if k else ""
        first = step(verdicts[f"{row} vs {rows[0]}"]) if k > 1 else ""
        lines.append(f"| {row} | {' | '.join(cells)} | {above} | {first} |")
    return "\n".join(lines + ["", f"{n_seeds} seeds; mean +- 95% t-interval across seeds. Steps: "
                                   f"mean difference of Avg, two-level bootstrap 95% interval (seeds "
                                   f"and test images), P(B > A), verdict.", legend])


# ----------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> int:
    """did B help? A and B on the same seeds, with a paired verdict

    Run recipe A and recipe B (or A with --vs overrides) on the same seeds,
    each arm-seed an ordinary run folder (finished ones are reused), and print
    the paired verdict: per-seed finals, the mean difference B - A with a
    t-interval across seeds and a two-level bootstrap interval (seeds and test
    images), P(B > A), and a per-AU table.
    """
    from harness import comparison

    comparison.check_options(args.seeds, args.jobs, args.resamples)
    if args.plan and args.collect:
        raise UserError("--plan and --collect: give one")
    overrides = list(args.overrides)
    if args.tracking_uri:
        overrides.append(f"run.tracking_uri={args.tracking_uri}")
    recipe_a = args.recipe or recipes.demo_recipe()
    if args.plan:
        study, _, _ = comparison.plan_compare(recipe_a, args.recipe_b, vs=args.vs, overrides=overrides,
                                              seeds=args.seeds, plugins=args.plugin)
        comparison.check_study(study)
        study.prepare()
        pending = study.pending()
        print(f"# {len(pending)} of {len(study.arms) * len(study.seeds)} arm-seeds to run, from "
              f"{Path.cwd()}; then: auh compare ... --collect")
        for item in pending:
            print(" ".join(study.command(*item)))
        return 0
    try:
        verdict = comparison.compare(recipe_a, args.recipe_b, vs=args.vs, overrides=overrides,
                                     seeds=args.seeds, jobs=args.jobs, resamples=args.resamples,
                                     collect=args.collect, plugins=args.plugin)
    except RuntimeError as exc:  # an arm-seed's run failed in its child process
        print(f"auh: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(verdict.to_dict(), indent=1) if args.json else verdict.render())
    return 0


# ----------------------------------------------------------------- plugins
def cmd_plugins(args: argparse.Namespace) -> int:
    """list every registered component

    List every registered component: kind, name, the plugin that provides it, and that plugin's
    distribution and version. With --check, run each component's conformance checks instead.
    """
    if args.check is not None:
        return check_plugins(args.check, args.kind)
    table = harness.get_registry().table
    rows = [("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "DESCRIPTION")]
    for kind in _kinds():
        if args.kind and kind != args.kind:
            continue
        for name in sorted(table[kind]):
            c = table[kind][name]
            dist = f"{c.provider.distribution} {c.provider.version}".strip() or "-"
            rows.append((kind, name, c.provider.plugin, dist, c.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r[:4], widths)) + "  " + r[4])
    return 0


def check_plugins(name: str, kind: str | None) -> int:
    """``auh plugins --check [NAME]``: one line per component; 1 if any check failed."""
    from harness.registry import FAMILY_SUFFIX, unknown_message
    from harness.testing import ComponentCheckError, check_component

    registry = harness.get_registry()
    kinds = [k for k in _kinds() if kind in (None, k)]
    if name:
        targets = [(k, name) for k in kinds if _resolves(registry, k, name)]
        if not targets:
            names = {n for k in kinds for n in registry.table[k]}
            raise UserError(f"--check: {unknown_message('component', name, names)}")
    else:
        targets = [(k, n) for k in kinds for n in sorted(registry.table[k])]
    failed = 0
    for k, n in targets:
        component, lead = registry.get(k, n)
        if n.endswith(FAMILY_SUFFIX):
            print(f"skip  {k} {n}: a family; check a member: auh plugins --check {n[:-1]}NAME")
            continue
        needs = _required_params(component.factory, k, len(lead))
        if needs:
            print(f"skip  {k} {n}: needs {', '.join(needs)}; from Python: "
                  f"harness.testing.check_component({k!r}, {n!r}, {needs[0]}=...)")
            continue
        try:
            passed = check_component(k, n)
        except ComponentCheckError as exc:
            failed += 1
            print(f"FAIL  {exc}")
        else:
            print(f"ok    {k} {n} ({len(passed)} checks)")
    return 1 if failed else 0


def _resolves(registry: Any, kind: str, name: str) -> bool:
    try:
        registry.get(kind, name)
    except UserError:
        return False
    return True


def _required_params(factory: Any, kind: str, positional: int) -> list[str]:
    """Parameters the factory needs that neither the harness nor a default supplies."""
    import inspect

    from harness.protocols import PASSED

    try:
        params = list(inspect.signature(factory).parameters.values())[positional:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.name not in PASSED.get(kind, ())
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


# ------------------------------------------------------------------- align
def cmd_align(args: argparse.Namespace) -> int:
    """align a dataset's faces into the crop cache (before `auh run`)

    Detect and align every image of a dataset and of its pretraining companion sets into the
    aligned-face cache, exactly as `auh run` does (same cache, under $AUH_CACHE/faces), so that
    training never waits for the detector. Resumable: rerun after an interruption. Under
    torchrun each rank aligns a disjoint set of shards.
    """
    from harness import distributed
    from harness.pipeline import align

    is_recipe = args.source.endswith(".toml") or Path(args.source).is_file()
    overrides = [] if is_recipe else [f"dataset.name={json.dumps(args.source)}"]
    overrides += args.overrides
    if args.aligner:
        overrides.append(f"aligner.name={json.dumps(args.aligner)}")
    if args.size is not None:
        overrides.append(f"aligner.size={args.size}")
    if args.workers is not None:
        overrides.append(f"train.workers={args.workers}")
    recipe = recipes.load(args.source if is_recipe else None, overrides)
    distributed.setup("cpu")  # under torchrun: ranks split the shards (a no-op otherwise)
    dataset = recipes.build("dataset", recipe["dataset"])
    sets = {dataset.name: (dataset.images, dataset.landmarks)}
    sets.update({f"{dataset.name}/{task}": (c.images, c.landmarks) for task, c in dataset.companions.items()})
    for label, (images, landmarks) in sets.items():
        cache = align(images, recipe, landmarks, dataset.root)
        if distributed.is_main():
            missed = len(cache) - int(cache.found.sum())
            print(f"{label}: {len(cache)} images aligned, no face found in {missed} "
                  f"(center crop used); {cache.path}")
    return 0
