"""Core subcommands: ``auh run``, ``auh predict``, ``auh ablate``, ``auh plugins``, ``auh align``.

Added through ``auh_add_commands``, the one way any plugin adds a subcommand.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import harness
from harness import hookimpl
from harness.cli import add_command
from harness import recipe as recipes
from harness.errors import UserError
from harness.fileio import check_output_file, check_output_folder
from harness.recipe import Recipe
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
                   help="a folder of images and videos, one image or video, or a list file of "
                        "paths, one per line (a relative path is read from the list file's folder)")
    p.add_argument("--out", type=Path, required=True,
                   help="the table: .parquet (metadata inside) or .csv (metadata in OUT.json)")
    p.add_argument("--submission", type=Path, metavar="PATH",
                   help="also write the submission in the bundle's benchmark layout: images, one CSV row "
                        "per image (its first face); videos of a frame-level benchmark (abaw_au), one "
                        "file per video in the folder PATH, or one table if PATH has a suffix")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image or video")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="videos: predict frames 0, N, 2N, ... (default 1: every frame)")
    p.add_argument("--smoother", metavar="NAME",
                   help="videos: the temporal smoother (none, median, ema, ...; default: the bundle's)")
    p.add_argument("--smoother-param", dest="smoother_params", action="append", default=[],
                   metavar="KEY=VALUE", help="a parameter of --smoother, e.g. window=5; repeatable")
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


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items, and ``--tracking-uri`` as the one it stands for."""
    overrides = list(args.overrides)
    if args.tracking_uri:
        overrides.append(f"run.tracking_uri={args.tracking_uri}")
    return overrides


def load_recipe(args: argparse.Namespace) -> Recipe:
    return recipes.load(args.recipe or recipes.demo_recipe(), _overrides(args))


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


def scorecard(result: RunResult, recipe: Recipe) -> str:
    """The readable end-of-run report: per-AU table, final score, baselines, where to look."""
    s = result.scores
    lines = [f"run {recipe.run.name!r}: {result.out_dir}", "",
             f"{'AU':<6}{'n':>7}{'accuracy':>10}{'F1':>8}"]
    for au, v in s["per_au"].items():
        if v["accuracy"] is None:
            lines.append(f"{au:<6}{v['n']:>7}{'undefined (no known labels)':>26}")
        else:
            lines.append(f"{au:<6}{v['n']:>7}{v['accuracy']:>10.4f}{v['f1']:>8.4f}")
    lines.append("")
    ci = f"  95% CI [{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}]" if "ci95" in s else ""
    if "headline" in s:  # a benchmark other than the default names its headline
        lines.append(f"final {s['final']:.4f} = {s['headline']} (accuracy {s['accuracy']:.4f}, "
                     f"F1 {s['f1']:.4f}; {s['benchmark']}){ci}")
    else:
        lines.append(f"final {s['final']:.4f} = (accuracy {s['accuracy']:.4f} + F1 {s['f1']:.4f}) / 2{ci}")
    if result.cv["n_folds"] > 1:
        lines.append(f"cross-validation: {result.cv['n_folds']} folds, final "
                     f"{result.cv['mean']:.4f} +- {result.cv['std']:.4f} (mean +- sd)")
        lines.append("  per fold: " + ", ".join(f"{f.name} {f.score['final']:.4f}" for f in result.folds))
    if result.protocol.get("manifest_sha256"):
        lines.append(f"folds: {result.protocol['manifest']} (sha256 {result.protocol['manifest_sha256'][:12]})")
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

    Align and classify images and videos with a trained bundle. Writes one row per image (or
    video frame) and face: the face box, 5 landmarks, the aligner's score, each AU's
    probability (AU1_prob ...) and its 0/1 at the bundle's threshold (AU1 ...); video rows
    also give the video, the frame (from 0) and its timestamp, their probabilities smoothed
    per video by the bundle's smoother (--smoother to change it). Videos are decoded and
    written in batches, in constant memory. Files that cannot be read are listed with the
    reason and skipped (--strict: stop at the first); a video that breaks keeps the frames
    decoded before. --submission also writes the challenge submission (one row per image)
    that `auh check` accepts.
    """
    from harness.bundle import list_inputs, load_bundle
    from harness.predict import TableWriter, Tally, bundle_folder, bundle_id, columns, count, predict_batches
    from harness.progress import progress
    from harness.video import is_video

    outputs, smoother = _check_predict_args(args)
    paths = list_inputs(args.input)
    videos = sum(map(is_video, paths))
    if args.submission is not None and len({p.stem if is_video(p) else p.name for p in paths}) < len(paths):
        raise UserError("--submission: two inputs share a name; a submission needs unique image "
                        "and video names")
    with bundle_folder(args.bundle, args.tracking_uri) as folder:
        bundle = load_bundle(folder, device=args.device)
        benchmark = _submission_benchmark(args, bundle.schema.name, len(paths), videos)
        smoother = smoother or bundle.meta.get("smoother", {"name": "none"})
        tally = Tally(bundle.aus, bundle.thresholds, {"id": bundle_id(folder), "source": args.bundle},
                      {"smoother": smoother, "every": args.every}, keep_frames=benchmark is not None)
        built = recipes.build("smoother", smoother)
        with TableWriter(args.out) as writer, \
                progress(total=None if videos else len(paths), desc="predict",
                         unit="frame" if videos else "img") as bar:
            for part in predict_batches(bundle, paths, args.batch_size, args.strict, bar, args.every,
                                        built, tally.skipped):
                writer.write(part)
                tally.add(part)
            writer.finish(tally.metadata(), columns(bundle.aus, bool(videos)))
    lines = [tally.summary(args.out)]
    if args.submission is not None and videos:
        lines.append(_write_frame_submission(args.submission, tally, benchmark))
    elif args.submission is not None:
        from harness.labels import write_predictions
        from harness.layouts import write_submission

        names, preds, unreadable = tally.submission_rows()
        if benchmark is not None:  # the benchmark's layout (its name column)
            write_submission(args.submission, names, preds, benchmark)
        else:  # a CSV with the header whatever the name ends in: what `auh check` accepts
            write_predictions(args.submission, names, preds, bundle.schema, as_csv=True)
        note = f" ({count(unreadable, 'unreadable image')} predicted absent for every AU)" if unreadable else ""
        lines.append(f"wrote the submission for {len(names)} images to {args.submission}{note}")
    print("\n".join(lines))
    return 0


def _submission_benchmark(args: argparse.Namespace, schema: str, n_inputs: int, videos: int) -> Any:
    """The benchmark whose layout ``--submission`` is written in: the registered benchmark
    named like the bundle's AU schema (None: an image CSV in the bundle's schema).
    Videos need a frame-level benchmark, every frame (``--every 1``) and no images."""
    from harness.benchmark import get_benchmark
    from harness.predict import count

    if args.submission is None:
        return None
    benchmark = get_benchmark(schema) if schema in harness.get_registry().available("benchmark") else None
    if not videos:
        return benchmark
    if benchmark is None or benchmark.unit != "frame":
        raise UserError(f"--submission: the input holds {count(videos, 'video')}, but the bundle "
                        f"predicts {schema!r}, whose submission is one row per image; expected a "
                        f"bundle of a frame-level benchmark (auh plugins --kind benchmark), or images")
    if videos < n_inputs:
        raise UserError("--submission: the input mixes images and videos; a frame-level "
                        "submission is made of videos only")
    if args.every != 1:
        raise UserError(f"--submission: a frame-level submission needs every frame; expected "
                        f"--every 1, got {args.every}")
    return benchmark


def _write_frame_submission(path: Path, tally: Any, benchmark: Any) -> str:
    """The videos' face-0 predictions in the benchmark's layout: per-video files in the folder
    ``path`` (no suffix), else one table; the summary line."""
    from harness.layouts import write_submission
    from harness.predict import count

    names, preds, videos, stopped = tally.frame_submission(benchmark)
    write_submission(path, names, preds, benchmark, videos)
    layout = "per-video files" if not path.suffix else "table"
    note = (f"; {count(len(stopped), 'video')} stopped early and {'has' if len(stopped) == 1 else 'have'} "
            f"rows up to the frame where decoding stopped (first: {stopped[0]})" if stopped else "")
    return (f"wrote the {benchmark.name} submission ({layout}) for {count(len(names), 'frame')} of "
            f"{count(len(videos.names), 'video')} to {path}{note}")


def _check_predict_args(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, Any] | None]:
    """Every argument of ``auh predict``, checked before the bundle is loaded or anything is
    written: the output files, and the smoother table ``--smoother`` names (None: the bundle's)."""
    from harness.fileio import check_not_inputs
    from harness.predict import check_out, sidecar

    if args.batch_size < 1:
        raise UserError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    if args.every < 1:
        raise UserError(f"--every: expected an integer >= 1 (every Nth frame), got {args.every}")
    outputs = {"--out": check_out(check_output_file(args.out))}
    if args.out.suffix.lower() == ".csv":
        outputs["--out metadata file"] = check_output_file(sidecar(args.out), "--out metadata file")
    if args.submission is not None and (args.submission.suffix or not args.submission.is_dir()):
        outputs["--submission"] = check_output_file(args.submission, "--submission")
    elif args.submission is not None:  # an existing folder: per-video files go into it
        outputs["--submission"] = check_output_folder(args.submission, "--submission")
    # An input folder may hold the table (only its images and videos are read); an input file may not.
    check_not_inputs(outputs, {"INPUT": None if args.input.is_dir() else args.input})
    if args.smoother is None:
        if args.smoother_params:
            raise UserError("--smoother-param: expected --smoother NAME too")
        return outputs, None
    table: dict[str, Any] = {"name": args.smoother}
    for item in args.smoother_params:
        recipes.apply_override(table, item)
    recipes.build("smoother", table)  # refuses an unknown name or parameter now
    return outputs, table


# ------------------------------------------------------------------ ablate
def cmd_ablate(args: argparse.Namespace) -> int:
    """the paper's Table 2 for a recipe: views, alignment, balancing

    Run the paper's ablation on any recipe: F_face, F_emotion, F_face + F_emotion, + Align, +
    balancing, each a recipe derived from RECIPE; prints the Acc / F1 / Avg table in markdown
    and writes it next to the runs.
    """
    from harness.ablation import ablate

    result = ablate(args.recipe, seeds=args.seeds, jobs=args.jobs, resamples=args.resamples,
                    overrides=_overrides(args), out=args.out, plugins=args.plugin)
    print(result.table)
    print(f"\nwritten to {result.path}")
    return 0


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
    overrides = _overrides(args)
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
    verdict = comparison.compare(recipe_a, args.recipe_b, vs=args.vs, overrides=overrides,
                                 seeds=args.seeds, jobs=args.jobs, resamples=args.resamples,
                                 collect=args.collect, plugins=args.plugin)
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
    dataset = recipes.build("dataset", recipe.dataset)
    sets = {dataset.name: (dataset.images, dataset.landmarks)}
    sets.update({f"{dataset.name}/{task}": (c.images, c.landmarks) for task, c in dataset.companions.items()})
    for label, (images, landmarks) in sets.items():
        cache = align(images, recipe, landmarks, dataset.root)
        if distributed.is_main():
            missed = len(cache) - int(cache.found.sum())
            print(f"{label}: {len(cache)} images aligned, no face found in {missed} "
                  f"(center crop used); {cache.path}")
    return 0
