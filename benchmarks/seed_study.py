"""The README's seed study: one training recipe run from scratch with several seeds,
side by side, and a table of each seed's test metrics with their mean, min and max.

    python benchmarks/seed_study.py --seeds 0 1 2 --out runs/seeds                 # GPU preset with a GPU
    python benchmarks/seed_study.py --seeds 0 1 2 3 4 --arch-seed --out runs/seeds  # + the reference design, seed 0
    python benchmarks/seed_study.py --seeds 0 1 2 --out runs/seeds -- --epochs 20   # after --: to every run

The synthetic splits the runs read are rendered once, with every core, before the runs
start (so that the runs neither race to write them nor render them each); folders
given with ``--train-dir`` etc. are left to the runs. Each run is
``python -m crnn_fast.train --seed S --data-dir DATA --out OUT/<arch>-seed<S>
--no-progress [TRAIN ARGS]``, its output in ``OUT/<arch>-seed<S>.log``; on a GPU every
run shares the one device (``--parallel``, default: all at once; one at a time
without a GPU). A run that wrote its report.json is read, not rerun; one that has a
last.pt resumes, so an interrupted study continues where it stopped (the table's wall
time, this script's clock from a run's start to its report, is left out for both).
Writes ``OUT/seed-study.json`` and prints the table in Markdown.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from crnn_fast import train

METRICS = ("exact", "exact_folded", "char_acc", "cer", "mean_edit")


def run_name(arch: str, seed: int) -> str:
    return f"{arch}-seed{seed}"


def command(arch: str, seed: int, args) -> list:
    out = Path(args.out) / run_name(arch, seed)
    cmd = [sys.executable, "-m", "crnn_fast.train", "--seed", str(seed), "--data-dir", args.data_dir,
           "--out", str(out), "--no-progress", *args.train_args]
    if arch != "default":
        cmd += ["--arch", arch]
    if (out / "last.pt").is_file():
        cmd.append("--resume")
    return cmd


def summarise(arch: str, seed: int, report: dict, wall_s) -> dict:
    history = report["history"]
    speeds = [h["train_images_per_s"] for h in history[1:] or history]  # the first epoch includes warm-up
    return {"arch": arch, "seed": seed, **{k: report["test"][k] for k in METRICS},
            "best_val_epoch": max(history, key=lambda h: h["val"]["exact"])["epoch"],
            "epochs": len(history), "train_images_per_s": statistics.median(speeds),
            "wall_s": wall_s, "device": report["gpu"] or report["device"]}


def aggregate(rows: list) -> dict:
    return {k: {"mean": statistics.fmean(r[k] for r in rows), "min": min(r[k] for r in rows),
                "max": max(r[k] for r in rows)} for k in METRICS}


def markdown(rows: list, summary: dict) -> str:
    lines = ["| run | exact | exact, no case | char accuracy | CER | mean edit | train images/s | wall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        wall = "–" if r["wall_s"] is None else f"{r['wall_s'] / 60:.1f} min"
        lines.append(f"| --arch {r['arch']}, seed {r['seed']} | {r['exact']:.2%} | {r['exact_folded']:.2%} | "
                     f"{r['char_acc']:.2%} | {r['cer']:.2%} | {r['mean_edit']:.3f} | "
                     f"{r['train_images_per_s']:,.0f} | {wall} |")
    for stat in ("mean", "min", "max"):
        s = {k: v[stat] for k, v in summary.items()}
        lines.append(f"| --arch default, {stat} | {s['exact']:.2%} | {s['exact_folded']:.2%} | {s['char_acc']:.2%} | "
                     f"{s['cer']:.2%} | {s['mean_edit']:.3f} | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s [options] [-- TRAIN ARGS]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arch-seed", action="store_true", help="also the reference design (--arch seed), "
                        "with the first seed")
    parser.add_argument("--out", default="runs/seed-study")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--parallel", type=train.positive(int),
                        help="runs at once (default: all with a GPU, else 1)")
    args = parser.parse_args(argv)
    args.train_args = train_args
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct non-negative integers, got {args.seeds}")
    for flag in ("--seed", "--out", "--data-dir", "--resume", "--arch"):
        if any(a == flag or a.startswith(flag + "=") for a in train_args):
            parser.error(f"{flag} is set by the study for each run; remove it from the training arguments")
    try:
        config = train.build_config(train.make_parser().parse_args(train_args + ["--data-dir", args.data_dir]))
    except SystemExit:
        parser.error(f"the training arguments after -- were refused: {' '.join(train_args)}")
    except ValueError as err:
        parser.error(str(err))
    for split in ("train", "val", "test"):  # render the synthetic splits the runs will read (load_data's choice)
        if getattr(config, f"{split}_dir") is None and split not in train.held_out(config):
            train.load_split(config, split)
    runs = [("default", s) for s in args.seeds] + ([("seed", args.seeds[0])] if args.arch_seed else [])
    parallel = args.parallel or (len(runs) if torch.cuda.is_available() else 1)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    walls, pending, running = {}, [r for r in runs if not (out / run_name(*r) / "report.json").is_file()], []
    failed = []
    while pending or running:
        while pending and len(running) < parallel:
            arch, seed = run = pending.pop(0)
            print(f"start {run_name(arch, seed)}", file=sys.stderr, flush=True)
            log = open(out / f"{run_name(arch, seed)}.log", "a")
            cmd = command(arch, seed, args)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            running.append((run, proc, log, None if "--resume" in cmd else time.perf_counter()))
        time.sleep(1)
        for item in [r for r in running if r[1].poll() is not None]:
            (arch, seed), proc, log, start = item
            running.remove(item)
            log.close()
            walls[(arch, seed)] = None if start is None else time.perf_counter() - start  # None: resumed
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(f"{run_name(arch, seed)}: {status}, log "
                  f"{out / (run_name(arch, seed) + '.log')}", file=sys.stderr, flush=True)
            if proc.returncode:
                failed.append(run_name(arch, seed))
    if failed:
        print(f"error: {', '.join(failed)} failed; see their logs (rerun to resume them)", file=sys.stderr)
        return 1

    rows = [summarise(arch, seed, json.loads((out / run_name(arch, seed) / "report.json").read_text()),
                      walls.get((arch, seed))) for arch, seed in runs]
    summary = aggregate([r for r in rows if r["arch"] == "default"])
    result = {"train_args": train_args, "parallel": parallel, "runs": rows, "default": summary,
              "torch": torch.__version__}
    (out / "seed-study.json").write_text(json.dumps(result, indent=2))
    print(markdown(rows, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
