"""Headless command line: ``python -m unlearn_core audit|methods ...``.

Errors a user can act on (bad parameters, missing data, bad images) print one clear line and
exit with status 2; they never show a stack trace.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .audit import run_audit
from .bench import BUDGETS, BenchConfig, render_markdown, run_bench
from .errors import UnlearnError
from .faces import load_image
from .forget_me import FORGET_ME_PRESET, ForgetMeConfig, forget_me
from .methods import create_method, list_methods, method_class, preset_params
from .pipeline import RECOMMENDED, AuditConfig, Workspace, WorkspaceConfig
from .privacy import format_privacy_table
from .references import DEFAULT_K

METRIC_COLUMNS = ("mAP", "rank1", "rank5", "cs", "centroid_acc", "head_acc")
MIN_IMAGES_HELP = ("photos a person needs to be forgotten or retained, at least 4 (2 to train on, 2 to test); "
                   "default: the gallery's own (lfw 20 to forget / 10 to retain, olivetti 10 / 4, folder 4)")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["lr=1e-4", "hard=true"]`` -> ``{"lr": 1e-4, "hard": True}`` (values parsed as JSON when possible)."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise UnlearnError(f"--param expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def format_table(report: dict[str, Any]) -> str:
    """The before/after metrics as a fixed-width text table."""
    lines = [f"{'set':<16}{'when':<8}" + "".join(f"{c:>13}" for c in METRIC_COLUMNS)]
    for part in ("forget", "forget_extended", "retain"):
        for when in ("before", "after"):
            if part in report[when]:
                m = report[when][part]
                lines.append(f"{part:<16}{when:<8}" + "".join(f"{m[c]:>13.3f}" if c in m else f"{'-':>13}" for c in METRIC_COLUMNS))
    return "\n".join(lines)


class TqdmProgress:
    """Progress callback drawing one tqdm bar per phase (the message prefix before ':').

    The bar shows the fraction done, the time elapsed and the message, never a rate: progress
    arrives as jumps of a fraction, so an items-per-second figure would be meaningless.
    """

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.phase = ""

    def __call__(self, fraction: float, message: str) -> None:
        phase = message.split(":")[0]
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=1000, desc=phase, leave=False, file=sys.stderr, bar_format=self.BAR_FORMAT)
        assert self.bar is not None
        self.bar.n = int(1000 * min(max(fraction, 0.0), 1.0))
        self.bar.set_postfix_str(message[len(phase) + 1 :].strip()[:60], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def method_and_params(args: argparse.Namespace, protocol: str, default_preset: str | None = None) -> tuple[str, dict[str, Any]]:
    """``--method`` (default: the protocol's recommended method, with ``default_preset`` unless
    ``--preset`` names another), its ``--preset`` and ``--param``s, validated."""
    method = args.method or RECOMMENDED[protocol]
    preset = args.preset or (default_preset if args.method is None else None)
    params = {**(preset_params(method, preset) if preset else {}), **parse_params(args.param)}
    create_method(method, **params)  # unknown or out-of-range parameters fail here, before any expensive work
    return method, params


def cmd_audit(args: argparse.Namespace) -> int:
    protocol = "one_shot" if args.one_shot else "gallery_assisted" if args.gallery_assisted else "standard"
    method, params = method_and_params(args, protocol)
    config = AuditConfig(
        method=method,
        params=params,
        iterations=args.iterations,
        one_shot=args.one_shot,
        gallery_assisted=args.gallery_assisted,
        privacy=not args.no_privacy,
        references=args.references,
        workspace=WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=args.seed, backbone=args.backbone,
                                  device=args.device, train_from=args.train_from, n_distractors=args.distractors,
                                  n_retain=args.retain, min_images=args.min_images),
    )
    progress = TqdmProgress()
    report = run_audit(config, progress)
    progress.close()
    print(f"{report['method']} on {report['dataset']} ({report['backbone']}, {report['device']}, "
          f"train_from={report['train_from']}, seed {report['seed']})")
    print(f"forget identities: {', '.join(report['forget_identities'])}")
    print(format_table(report))
    if "find" in report:
        find = report["find"]
        print(f"find: {find['n_found']} photos found, precision {find['precision']:.3f}, recall {find['recall']:.3f} "
              f"(false-match rate at the threshold {find['thresholds']['expanded']['fmr']:.1e} on retained identities)")
    if "privacy" in report:
        print(format_privacy_table(report["privacy"]))
    print("timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["timing_s"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"report written to {args.json}")
    return 0


def read_photo(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise UnlearnError(f"cannot read {path}: {err.strerror or err}") from None


def cmd_forget_me(args: argparse.Namespace) -> int:
    method, params = method_and_params(args, "gallery_assisted", FORGET_ME_PRESET)
    config = ForgetMeConfig(method=method, params=params, iterations=args.iterations, take_main_face=args.main_face, seed=args.seed)
    portrait, enrolled, check = read_photo(args.portrait), [read_photo(p) for p in args.enrolled], [read_photo(p) for p in args.check]
    load_image(portrait)  # a file that is not an image fails here, before the workspace is built
    progress = TqdmProgress()
    started = time.perf_counter()
    ws = Workspace(WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=args.seed, device=args.device,
                                   train_from=args.train_from, n_distractors=args.distractors, n_retain=args.retain,
                                   max_images_per_identity=args.max_images), progress)
    warm = time.perf_counter()
    result = forget_me(ws, portrait, enrolled, check, config, progress)
    progress.close()
    report = result.report
    report["timing_s"].update(total=round(time.perf_counter() - warm, 3), workspace=round(warm - started, 3))
    find = report["find"]
    print(f"{report['method']} on {report['workspace']['dataset']} ({report['device']}), protocol {report['protocol']}")
    print(f"find: {find['n_found']} photos found ({find['n_true_found']} of your {find['n_present']} enrolled, "
          f"{find['n_other_people']} of other people); precision {find['precision']:.3f}, recall {find['recall']:.3f}")
    rows = [("you (check photos)", report["visitor"], ("before", "after", "after_deletion")),
            ("retained identities", report["retain"], ("before", "after"))]
    print(f"{'set':<22}{'when':<16}{'mAP':>8}{'rank1':>8}{'cs':>8}")
    for name, block, whens in rows:
        for when in whens:
            m = block[when]
            print(f"{name:<22}{when:<16}" + "".join(f"{m[k]:>8.3f}" if k in m else f"{'-':>8}" for k in ("mAP", "rank1", "cs")))
    for note in result.notes:
        print(f"note: {note}")
    print("timing (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timing_s"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        print(f"report written to {args.json}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    for name in list_methods():
        cls = method_class(name)
        print(f"{name:<20}{cls.summary}")
        if args.verbose:
            print(f"    budget: {cls.budget_counts or 'none (closed form)'}")
            for pname, spec in cls.parameters().items():
                bounds = f"{spec['choices']}" if spec["choices"] else f"[{spec['low']}, {spec['high']}]"
                print(f"    {pname:<16}default {spec['default']!r:<10} {bounds:<20} {spec['help']}")
            for preset, values in cls.presets.items():
                print(f"    preset {preset}: " + " ".join(f"{k}={v}" for k, v in values.items()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    config = BenchConfig(
        methods=[] if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()],
        seeds=parse_ints(args.seeds),
        budget=args.budget,
        iterations=args.iterations,
        protocols=[p.strip() for p in args.protocols.split(",") if p.strip()],
        workspace=WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, backbone=args.backbone, device=args.device,
                                  train_from=args.train_from, n_distractors=args.distractors, n_retain=args.retain,
                                  min_images=args.min_images),
    )

    def save(results: dict) -> None:
        if args.out:
            Path(args.out).write_text(render_markdown(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        if args.out or args.json:
            print(f"results after {len(results['seeds'])} seed(s) written to {args.out or ''} {args.json or ''}", file=sys.stderr)

    progress = TqdmProgress()
    results = run_bench(config, progress, log=lambda m: tqdm.write(m, file=sys.stderr), on_seed=save)
    progress.close()
    print(render_markdown(results))
    return 0


def parse_ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UnlearnError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unlearn_core", description="Face-identity unlearning: audit and benchmark.")
    sub = parser.add_subparsers(dest="command", required=True)
    audit = sub.add_parser("audit", help="unlearn identities with one method and report before/after metrics")
    audit.add_argument("--dataset", default="lfw", help="lfw, olivetti, or folder:PATH (<root>/<identity>/<image>)")
    audit.add_argument("--forget", type=int, default=10, help="number of identities to forget (sampled by seed)")
    audit.add_argument("--retain", type=int, default=None, help="keep only this many retain identities (default all)")
    audit.add_argument("--min-images", type=int, default=None, help=MIN_IMAGES_HELP)
    audit.add_argument("--method", default=None, help="see `python -m unlearn_core methods` (default: the protocol's recommended "
                       f"method: {', '.join(f'{p} {m}' for p, m in RECOMMENDED.items())})")
    audit.add_argument("--preset", help="a named parameter set of the method (see `methods -v`); --param values override it")
    audit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method hyper-parameter (repeatable)")
    audit.add_argument("--iterations", type=int, default=None, help="cap on optimisation steps")
    protocol = audit.add_mutually_exclusive_group()
    protocol.add_argument("--one-shot", action="store_true", help="forget from one support image per identity")
    protocol.add_argument("--gallery-assisted", action="store_true",
                          help="one held-out selfie per identity finds its training photos, which are forgotten")
    audit.add_argument("--seed", type=int, default=0)
    audit.add_argument("--backbone", default="dlib_resnet")
    audit.add_argument("--device", default="auto", help="auto, cpu or cuda")
    audit.add_argument("--train-from", default="auto", help="tail (CPU fast path), full, a stage name, or auto")
    audit.add_argument("--distractors", type=int, default=1000, help="one-image identities added to the forget gallery")
    audit.add_argument("--json", help="write the JSON report here")
    audit.add_argument("--no-privacy", action="store_true", help="skip the privacy audit (membership inference vs the retrain model)")
    audit.add_argument("--references", type=int, default=DEFAULT_K,
                       help=f"reference models of the privacy audit's RMIA and U-LiRA (even, >= 4; default {DEFAULT_K})")
    audit.set_defaults(func=cmd_audit)
    fm = sub.add_parser("forget-me", help="one person's portrait finds and forgets them in a private model copy")
    fm.add_argument("--portrait", required=True, help="the person's portrait (one face)")
    fm.add_argument("--enrolled", nargs="*", default=[], metavar="PATH",
                    help="photos of the person the service already holds (joined to the private copy's data; the find step should find them)")
    fm.add_argument("--check", nargs="*", default=[], metavar="PATH", help="photos used only to test the result (never enrolled or forgotten)")
    fm.add_argument("--dataset", default="lfw", help="the service's gallery: lfw, olivetti, or folder:PATH")
    fm.add_argument("--method", default=None, help=f"default {RECOMMENDED['gallery_assisted']}")
    fm.add_argument("--preset", help="a named parameter set of the method")
    fm.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    fm.add_argument("--iterations", type=int, default=1000, help="cap on optimisation steps (iterative methods)")
    fm.add_argument("--seed", type=int, default=0)
    fm.add_argument("--forget", type=int, default=4, help="gallery identities set aside as the workspace's forget set")
    fm.add_argument("--retain", type=int, default=40, help="retained gallery identities")
    fm.add_argument("--max-images", type=int, default=20, help="photos per gallery identity at most")
    fm.add_argument("--distractors", type=int, default=1000, help="one-image identities in the gallery")
    fm.add_argument("--main-face", action="store_true", help="use the main face (large and central) when a photo shows several")
    fm.add_argument("--device", default="auto")
    fm.add_argument("--train-from", default="auto")
    fm.add_argument("--json", help="write the JSON report here")
    fm.set_defaults(func=cmd_forget_me)
    methods = sub.add_parser("methods", help="list the registered unlearning methods")
    methods.add_argument("-v", "--verbose", action="store_true", help="show hyper-parameters")
    methods.set_defaults(func=cmd_methods)
    bench = sub.add_parser("bench", help="compare methods over several forget sets (markdown table, mean ± std)")
    bench.add_argument("--dataset", default="lfw", help="lfw, olivetti, or folder:PATH")
    bench.add_argument("--methods", default="all", help="comma-separated method names, or 'all'")
    bench.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one forget set each")
    bench.add_argument("--budget", default="paper", choices=sorted(BUDGETS), help="iteration caps: the methods' own defaults (paper) or short ones")
    bench.add_argument("--iterations", type=int, default=None, help="replace the budget's default cap (its per-method caps still apply)")
    bench.add_argument("--forget", type=int, default=10, help="identities to forget per seed")
    bench.add_argument("--retain", type=int, default=None, help="keep only this many retain identities (default all)")
    bench.add_argument("--min-images", type=int, default=None, help=MIN_IMAGES_HELP)
    bench.add_argument("--distractors", type=int, default=1000, help="one-image identities added to the forget gallery")
    bench.add_argument("--backbone", default="dlib_resnet")
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda")
    bench.add_argument("--train-from", default="auto", help="tail (CPU fast path), full, a stage name, or auto")
    bench.add_argument("--protocols", default="standard,one_shot", help="comma-separated: standard, one_shot, gallery_assisted")
    bench.add_argument("--out", help="write the markdown table here")
    bench.add_argument("--json", help="write the raw per-seed numbers here")
    bench.set_defaults(func=cmd_bench)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UnlearnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
