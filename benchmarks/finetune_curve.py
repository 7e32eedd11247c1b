"""The README's fine-tuning curve: exact match on an unseen CAPTCHA style
(tests/realstyle.py) after training on 50 / 100 / 300 / 1000 of its images, starting
from the shipped model (--init default) and from scratch, with the CLI's defaults for
a folder (10% of it held out for validation, fit_to_data's step budget).

    python benchmarks/finetune_curve.py --out results/finetune-curve.json --plot results/finetune-curve.png

Each run is `python -m crnn_fast.train --train-dir POOL[:n] --test-dir TEST --alphabet ... [--init default]`;
the test set is 1,000 images of the style that no run trains on. The shipped model's
zero-shot reading of the same test set is the first row.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import realstyle  # noqa: E402

from crnn_fast import checkpoint, data, evaluate, train  # noqa: E402


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
    args = parser.parse_args()

    pool, test = args.work / "pool", args.work / "test"
    if not (pool / "labels.csv").is_file():
        realstyle.write(pool, max(args.sizes), seed=0)
    if not (test / "labels.csv").is_file():
        realstyle.write(test, 1000, seed=1)
    zero_shot = evaluate.evaluate(checkpoint.load_model(), data.load_folder(test, alphabet=data.ALPHABET), "cpu",
                                  progress=False)
    results = {"zero_shot": {"exact": zero_shot["exact"], "char_acc": zero_shot["char_acc"]}, "runs": []}
    print(f"shipped model, zero-shot: exact {100 * zero_shot['exact']:.1f}%", flush=True)
    for n in args.sizes:
        folder = subset(pool, n, args.work / f"train-{n}")
        for init in ("default", None):
            out = args.work / f"run-{n}-{init or 'scratch'}"
            shutil.rmtree(out, ignore_errors=True)
            argv = ["--train-dir", str(folder), "--test-dir", str(test), "--alphabet", realstyle.ALPHABET,
                    "--out", str(out), "--no-progress", "--device", "cpu"] + (["--init", init] if init else [])
            start = time.perf_counter()
            assert train.main(argv) == 0, argv
            report = json.loads((out / "report.json").read_text())
            run = {"images": n, "init": init or "scratch", "exact": report["test"]["exact"],
                   "char_acc": report["test"]["char_acc"], "epochs": report["train_config"]["epochs"],
                   "batch_size": report["train_config"]["batch_size"], "lr": report["train_config"]["lr"],
                   "seconds": time.perf_counter() - start, "command": "python -m crnn_fast.train " + " ".join(argv)}
            results["runs"].append(run)
            print(f"{n} images, {run['init']}: exact {100 * run['exact']:.1f}% ({run['seconds']:.0f} s)", flush=True)
    args.out.write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for init, label in [("default", "fine-tuned from the shipped model"), ("scratch", "from scratch")]:
        runs = [r for r in results["runs"] if r["init"] == init]
        ax.plot([r["images"] for r in runs], [100 * r["exact"] for r in runs], marker="o", label=label)
    ax.axhline(100 * results["zero_shot"]["exact"], color="gray", ls="--", label="shipped model, zero-shot")
    ax.set(xscale="log", xlabel="labelled images of the new style", ylabel="exact match on 1,000 test images (%)",
           title="an unseen CAPTCHA style")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
