"""The README's fine-tuning curve: exact match on an unseen CAPTCHA style
(tests/realstyle.py) after training on 50 / 100 / 300 / 1000 of its images, with the
CLI's defaults for a folder (10% of it held out for validation, fit_to_data's step
budget and augmentation), starting from

- the shipped ``local`` model (``--init local``),
- the shipped ``default`` model (``--init default``),
- a model pretrained on synthetic CAPTCHAs made to look a little like the new style:
  the ``local`` model trained further on 60,000 images of the ``plain`` renderer
  (whole characters on a noisy background, lines through them) with the style's
  alphabet, drawn in a serif font (STIX, which matplotlib ships; the style itself uses
  DejaVu Serif and Computer Modern), the README's path for a new style,
- nothing (from scratch, ``--arch default``).

    python benchmarks/finetune_curve.py --out results/finetune-curve.json --plot results/finetune-curve.png

``--inits default`` runs one curve again (after a new shipped model) and keeps the others
from the existing ``--out`` (as it keeps ddddocr's zero-shot row where ddddocr is not
installed).

Each run is `python -m crnn_fast.train --train-dir POOL[:n] --test-dir TEST --alphabet ... [--init ...]`;
the test set is 1,000 images of the style that no run trains on. The 100-image runs
from the local and the pretrained model are repeated with ``--seeds`` (1 2 3). The zero-shot
readings of the same test set by the shipped and the pretrained model come first, and
ddddocr's when it is installed.
"""

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import realstyle  # noqa: E402

import matplotlib  # noqa: E402

from crnn_fast import checkpoint, data, evaluate, train  # noqa: E402

FONTS = [str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"STIXGeneral{face}.ttf")
         for face in ("", "Bol", "Italic", "BolIta")]
SEED_IMAGES = 100  # the size the target names
PRETRAIN_IMAGES, PRETRAIN_EPOCHS = 60_000, 4  # the look-alike pretraining
INITS = {"local": "fine-tuned from the shipped local model", "default": "fine-tuned from the shipped default model",
         "synthetic": "local, pretrained on look-alike synthetic data", "scratch": "from scratch"}


def subset(pool: Path, n: int, out: Path) -> Path:
    """A folder with the first ``n`` images of ``pool`` (labels.csv rows included)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = (pool / "labels.csv").read_text().splitlines()[1 : n + 1]
    for row in rows:
        shutil.copy(pool / row.split(",")[0], out)
    (out / "labels.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 300, 1000])
    parser.add_argument("--work", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    parser.add_argument("--plot", type=Path, help="results PNG")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3],
                        help=f"more seeds for the {SEED_IMAGES}-image runs of the local and pretrained models")
    parser.add_argument("--reuse", action="store_true", help="keep the finished runs (report.json) found in --work")
    parser.add_argument("--inits", nargs="+", choices=list(INITS), default=list(INITS),
                        help="the curves to run (default: all); the others are kept from an existing --out")
    args = parser.parse_args()

    pool, test = args.work / "pool", args.work / "test"
    needed = max([*args.sizes, SEED_IMAGES])
    if not (pool / "labels.csv").is_file() or len((pool / "labels.csv").read_text().splitlines()) - 1 < needed:
        realstyle.write(pool, needed, seed=0)  # sample i is the same in any pool: a larger one extends it
    if not (test / "labels.csv").is_file():
        realstyle.write(test, 1000, seed=1)
    pretrained = args.work / "pretrained"
    pretrain = ["--init", "local", "--alphabet", realstyle.ALPHABET, "--fonts", *FONTS, "--renderer", "plain",
                "--n-train", str(PRETRAIN_IMAGES), "--epochs", str(PRETRAIN_EPOCHS), "--augment", "light",
                "--n-val", "500", "--n-test", "500",
                "--data-dir", str(args.work / "data"), "--out", str(pretrained), "--no-progress", "--device", "cpu"]
    if "synthetic" in args.inits:
        pretrain_once(pretrained, pretrain)
    timed = pretrained / "wall_seconds.txt"
    seconds = float(timed.read_text()) if timed.is_file() else None
    results = {"pretrain": {"command": "python -m crnn_fast.train " + " ".join(pretrain), "seconds": seconds},
               "zero_shot": {}, "runs": []}
    for name, path in [("local", "local"), ("default", "default"), ("synthetic", pretrained / "best.pt")]:
        if name not in args.inits:
            continue
        model = checkpoint.load_model(path)
        alphabet = model.config.alphabet
        zero_shot = evaluate.evaluate(model, data.load_folder(test, alphabet=alphabet), "cpu", progress=False)
        results["zero_shot"][name] = {"exact": zero_shot["exact"], "char_acc": zero_shot["char_acc"]}
        print(f"{INITS[name]}, zero-shot: exact {100 * zero_shot['exact']:.1f}%", flush=True)
    results["zero_shot"]["ddddocr"] = ddddocr_zero_shot(test)
    plan = [(n, init, 0) for n in args.sizes for init in args.inits]
    plan += [(SEED_IMAGES, init, seed) for seed in args.seeds for init in ("local", "synthetic")
             if seed != 0 and init in args.inits]
    folders = {n: subset(pool, n, args.work / f"train-{n}") for n, _, _ in plan}
    for n, init, seed in plan:
        folder = folders[n]
        out = args.work / (f"run-{n}-{init}" + (f"-seed{seed}" if seed else ""))
        source = {"local": ["--init", "local"], "default": ["--init", "default"],
                  "synthetic": ["--init", str(pretrained / "best.pt")], "scratch": []}[init]
        argv = ["--train-dir", str(folder), "--test-dir", str(test), "--alphabet", realstyle.ALPHABET,
                "--seed", str(seed), "--out", str(out), "--no-progress", "--device", "cpu", *source]
        if not (args.reuse and (out / "report.json").is_file()):
            shutil.rmtree(out, ignore_errors=True)
            assert train.main(argv) == 0, argv
        report = json.loads((out / "report.json").read_text())
        run = {"images": n, "init": init, "seed": seed, "exact": report["test"]["exact"],
               "char_acc": report["test"]["char_acc"], "epochs": report["train_config"]["epochs"],
               "batch_size": report["train_config"]["batch_size"], "lr": report["train_config"]["lr"],
               "seconds": sum(h["train_seconds"] for h in report["history"]),
               "command": "python -m crnn_fast.train " + " ".join(argv)}
        results["runs"].append(run)
        print(f"{n} images, {init}, seed {seed}: exact {100 * run['exact']:.1f}% ({run['seconds']:.0f} s of training)",
              flush=True)
    if args.out.is_file():  # the curves not run again, and ddddocr's row where it is not installed here
        results = kept_from(json.loads(args.out.read_text()), results, args.inits)
    args.out.write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)


def pretrain_once(pretrained: Path, pretrain: list) -> None:
    """Runs the look-alike pretraining into ``pretrained``, unless it holds this one already."""
    if (pretrained / "report.json").is_file():
        made = json.loads((pretrained / "report.json").read_text())["train_config"]
        if (made.get("renderer"), made["n_train"], made["epochs"]) != ("plain", PRETRAIN_IMAGES, PRETRAIN_EPOCHS):
            sys.exit(f"{pretrained} was pretrained with other options than {' '.join(pretrain)}; delete it")
        return
    start = time.perf_counter()
    # A process of its own: it renders its data with worker processes (spawn).
    subprocess.run([sys.executable, "-m", "crnn_fast.train", *pretrain], check=True)
    (pretrained / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")


def kept_from(old: dict, new: dict, inits: list) -> dict:
    """``new``, the curves ``inits`` run again, with the other curves of ``old``."""
    return {"pretrain": new["pretrain"] if "synthetic" in inits else old["pretrain"],
            "zero_shot": {**old["zero_shot"], **{k: v for k, v in new["zero_shot"].items() if v is not None}},
            "runs": [r for r in old["runs"] if r["init"] not in inits] + new["runs"]}


def ddddocr_zero_shot(test: Path):
    """ddddocr's zero-shot reading of the test set (the pretrained CAPTCHA reader most
    people install), or None when it is not installed (``pip install ddddocr``)."""
    try:
        import ddddocr
    except ImportError:
        print("ddddocr is not installed: no zero-shot row for it", flush=True)
        return None
    reader = ddddocr.DdddOcr(show_ad=False)
    rows = [line.split(",") for line in (test / "labels.csv").read_text().splitlines()[1:]]
    reads = [reader.classification((test / name).read_bytes()) for name, _ in rows]
    exact = sum(read == label for read, (_, label) in zip(reads, rows)) / len(rows)
    folded = sum(read.lower() == label.lower() for read, (_, label) in zip(reads, rows)) / len(rows)
    version = importlib.metadata.version("ddddocr")
    print(f"ddddocr {version}, zero-shot: exact {100 * exact:.1f}% ({100 * folded:.1f}% ignoring case)", flush=True)
    return {"version": version, "exact": exact, "exact_folded": folded}


def plot(results: dict, path: Path) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for init, label in INITS.items():
        runs = [r for r in results["runs"] if r["init"] == init and r["seed"] == 0]
        ax.plot([r["images"] for r in runs], [100 * r["exact"] for r in runs], marker="o", label=label)
    ax.axhline(90, color="gray", ls=":", label="the target from 100 images")
    if results["zero_shot"].get("ddddocr"):
        ax.axhline(100 * results["zero_shot"]["ddddocr"]["exact"], color="black", ls="--",
                   label="ddddocr, zero-shot (no training)")
    sizes = sorted({r["images"] for r in results["runs"]})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="labelled images of the new style", ylabel="exact match on 1,000 test images (%)",
           title="an unseen CAPTCHA style")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
