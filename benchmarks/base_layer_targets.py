"""Issue #19's per-clip targets, read from a ``fomc compare`` run (its ``results.json``).

    python benchmarks/base_layer_targets.py RESULTS.json [MORE.json ...] [--rate file|payload]
        [--base-from NEW.json ...] [--keypoints-from NEW.json]

For every clip: ``R`` is the rate of fomc's default keypoint stream (the compare point with
the encoder's defaults). At budgets ``R``, ``2R`` and ``4R``, and for each metric, the best
base-layer point (``fomc-base``) at no more than the budget is set against the best AV1
configuration (any rung of the compare's ladder, any CRF) at no more bits than that base
point. A clip where no base point fits the budget counts as a loss; the same count is made
for fomc's better mode (base and keypoint points together). Also printed: decoding
time per frame of the default base point against the default keypoint point, per clip, as
measured in the same run, and the BD-rate of all base points together against AV1. Several
result files (same clips and frames, e.g. a second run with more base points and
``--no-baselines``) are read as one; a point measured twice counts once, from the first file.
``--base-from`` (repeatable) takes every ``fomc-base`` point from those files alone (reruns of
the base points after a decoder change), and ``--keypoints-from`` every keypoint (``fomc``)
point, and so ``R`` (a rerun with another default model); the rest come from the
others. The BD-rate of the keypoint points against AV1 is printed too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean
from types import SimpleNamespace

from fomcodec.eval.compare import MEAN_CLIP, BasePoint, FomcPoint, bd_rate
from fomcodec.eval.metrics import LOWER_IS_BETTER

METRICS = ("psnr-rgb", "psnr-y", "ms-ssim-rgb")
MULTIPLES = (1, 2, 4)
LEGACY_DEFAULT_LABEL = "q15 stride2 vs250 js10"


def beats(ours: dict | None, av1: list[dict], metric: str, rate: str) -> tuple[bool, dict | None]:
    """Whether ``ours`` beats AV1's best configuration at no more bits than it (and that
    configuration); no point of ours is a loss."""
    if ours is None:
        return False, None
    theirs = best(av1, metric, ours[rate], rate)
    if theirs is None:
        return True, None
    if metric in LOWER_IS_BETTER:
        return ours[metric] < theirs[metric], theirs
    return ours[metric] > theirs[metric], theirs


def best(rows: list[dict], metric: str, budget: float, rate: str) -> dict | None:
    """The row with the best ``metric`` among ``rows`` at ``rate`` <= ``budget``."""
    fitting = [r for r in rows if r[rate] <= budget + 1e-9 and r.get(metric) is not None]
    if not fitting:
        return None
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return max(fitting, key=lambda r: sign * r[metric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--rate", choices=("payload", "file"), default="payload")
    parser.add_argument(
        "--base-from",
        type=Path,
        action="append",
        default=[],
        help="the only source of fomc-base points (repeatable)",
    )
    parser.add_argument("--keypoints-from", type=Path, help="the only source of fomc points")
    args = parser.parse_args()
    rate = "payload_kbps" if args.rate == "payload" else "kbps"
    rows, seen = [], set()
    only = {
        "fomc-base": args.base_from,
        "fomc": [args.keypoints_from] if args.keypoints_from else [],
    }
    sources = [path for paths in only.values() for path in paths] + args.results
    for path in sources:
        for row in json.loads(path.read_text())["rows"]:
            key = (row["clip"], row["codec"], row["config"])
            wanted = not only.get(row["codec"]) or path in only[row["codec"]]
            if row["clip"] != MEAN_CLIP and key not in seen and wanted:
                seen.add(key)
                rows.append(row)
    base_default = BasePoint().label
    # the encoder's default keypoint point; results from before the twelfth session named it
    # with FOMM's default scales
    labels = {r["config"] for r in rows if r["codec"] == "fomc"}
    reference = next(
        (label for label in (FomcPoint().label, LEGACY_DEFAULT_LABEL) if label in labels),
        FomcPoint().label,
    )
    clips = list(dict.fromkeys(r["clip"] for r in rows))
    wins = {(m, k): 0 for m in METRICS for k in MULTIPLES}
    either_wins = dict(wins)
    print(f"rates: {args.rate} kbit/s; R = fomc default point '{reference}'\n")
    print(
        "| clip | R | budget | metric | fomc-base (point, kbit/s, value) "
        "| AV1 best at no more bits | win |"
    )
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for clip in clips:
        mine = [r for r in rows if r["clip"] == clip]
        keypoint = next(r for r in mine if r["codec"] == "fomc" and r["config"] == reference)
        bases = [r for r in mine if r["codec"] == "fomc-base"]
        keypoints = [r for r in mine if r["codec"] == "fomc"]
        av1 = [r for r in mine if r["codec"] == "av1"]
        base_row = next((r for r in bases if r["config"] == base_default), None)
        if base_row is not None:
            per_frame = [r["decode_s"] / r["frames"] for r in (base_row, keypoint)]
            ratios.append((clip, *per_frame))
        for k in MULTIPLES:
            budget = k * keypoint[rate]
            for metric in METRICS:
                ours = best(bases, metric, budget, rate)
                win, theirs = beats(ours, av1, metric, rate)
                either = best(bases + keypoints, metric, budget, rate)
                either_wins[metric, k] += beats(either, av1, metric, rate)[0]
                ours_text = (
                    f"{ours['config']}, {ours[rate]:.2f}, {ours[metric]:.4g}"
                    if ours
                    else "no point fits"
                )
                theirs_text = (
                    f"{theirs['config']}, {theirs[rate]:.2f}, {theirs[metric]:.4g}"
                    if theirs
                    else "none"
                )
                wins[metric, k] += win
                print(
                    f"| {clip} | {keypoint[rate]:.2f} | {k}R = {budget:.2f} | {metric} | "
                    f"{ours_text} | {theirs_text} | {'yes' if win else 'no'} |"
                )
    print(f"\nwins of fomc-base over AV1 at no more bits, of {len(clips)} clips:\n")
    print("| metric | " + " | ".join(f"{k}R" for k in MULTIPLES) + " |")
    print("|---|" + "---|" * len(MULTIPLES))
    for metric in METRICS:
        print(f"| {metric} | " + " | ".join(str(wins[metric, k]) for k in MULTIPLES) + " |")
    print(
        "\nwins of fomc's better mode (the best base or keypoint point within the budget) over "
        "AV1 at no more bits:\n"
    )
    print("| metric | " + " | ".join(f"{k}R" for k in MULTIPLES) + " |")
    print("|---|" + "---|" * len(MULTIPLES))
    for metric in METRICS:
        counts = " | ".join(str(either_wins[metric, k]) for k in MULTIPLES)
        print(f"| {metric} | {counts} |")
    print("\nBD-rate of all points of each fomc mode against AV1 (means over the clips):\n")
    print("| mode | bytes | metric | BD-rate | overlap |")
    print("|---|---|---|---|---|")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["codec"], row["config"]), []).append(row)
    points = [
        SimpleNamespace(
            codec=codec,
            kbps=mean(r["kbps"] for r in group),
            payload_kbps=mean(r["payload_kbps"] for r in group),
            metrics={m: mean(r[m] for r in group) for m in METRICS},
        )
        for (codec, _), group in groups.items()
        if len(group) == len(clips)
    ]
    for mode in ("fomc-base", "fomc"):
        for kind in ("file", "payload"):
            for metric in METRICS:
                result = bd_rate(points, "av1", metric, kind, test=mode)
                value = "-" if result.value is None else f"{result.value:+.1f} %"
                print(f"| {mode} | {kind} | {metric} | {value} | {result.overlap:.0%} |")
    if ratios:
        print(f"\ndecoding time per frame, base point '{base_default}' against '{reference}':\n")
        print("| clip | base ms/frame | keypoint ms/frame | ratio |")
        print("|---|---|---|---|")
        for clip, ours, theirs in ratios:
            print(f"| {clip} | {ours * 1000:.1f} | {theirs * 1000:.1f} | {ours / theirs:.2f} |")
        overall = sum(o for _, o, _ in ratios) / sum(t for _, _, t in ratios)
        print(f"| all clips (ratio of totals) | | | {overall:.2f} |")


if __name__ == "__main__":
    main()
