"""Turns pytest-benchmark JSON into the README's results table and a plot.

    python benchmarks/report.py results/bench-cpu.json [more.json ...] [--plot results/bench-cpu.png]

Rows are grouped by the comparison they belong to (same inputs, same run); each
anchor row says how many times faster crnn_fast is on that comparison, per item
(sequence, pair or image), since slow anchors run on a subset.
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def load_rows(paths):
    rows, machines = [], []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        info = doc.get("machine_info", {})
        cpu = info.get("cpu", {}).get("brand_raw") or info.get("processor", "?")
        gpu = info.get("gpu")
        machines.append(f"{cpu}, {info.get('cpu_threads', '?')} threads (decoding anchors: as many processes)"
                        + (f", {gpu}" if gpu else ", no GPU")
                        + f"; torch {info.get('torch', '?')}, CUDA {info.get('cuda') or '-'}; {doc.get('datetime', '')[:10]}")
        for bench in doc["benchmarks"]:
            extra = bench.get("extra_info", {})
            if "group" not in extra:
                continue
            items = extra["items"]
            seconds = bench["stats"]["median"]
            if "train_images_per_s" in extra:  # the training loop's own throughput
                per_item = 1 / extra["train_images_per_s"]
            else:
                per_item = seconds / items
            label = extra.get("library", bench["name"])
            if "variant" in extra:
                label += f", {extra['variant']}"
            rows.append(dict(group=extra["group"], label=label, per_item=per_item, items=items, extra=extra,
                             ours=label.startswith("crnn_fast")))
    return rows, machines


def fmt_time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def rate(per_s):
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


def table(rows):
    groups = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
    lines = ["| comparison | implementation | items | time per item | items/s | crnn_fast CPU is | crnn_fast CUDA is | notes |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for group, members in groups.items():
        ours = {r["extra"].get("device"): r for r in members if r["ours"] and "variant" not in r["extra"]}
        for row in sorted(members, key=lambda r: (not r["ours"], r["extra"].get("library", ""), r["items"], r["label"])):
            speedups = []
            for device in ("cpu", "cuda"):
                mine = ours.get(device)
                speedups.append(f"{row['per_item'] / mine['per_item']:.1f}x faster" if mine and not row["ours"] else "")
            notes = []
            extra = row["extra"]
            if "top1_disagreements" in extra:
                notes.append(f"top-1 differs on {extra['top1_disagreements']}/{row['items']} "
                             f"(more probable: crnn_fast {extra['crnn_fast_more_probable']}, "
                             f"this {extra['anchor_more_probable']})")
            if extra.get("same_cer") is not None:
                notes.append("same CER" if extra["same_cer"] else "CER DIFFERS")
            if "chunks" in extra:
                notes.append(f"{fmt_time(row['per_item'] * row['items'] / extra['chunks'])} per chunk of the batch")
            if "exact" in extra:
                notes.append(f"exact {100 * extra['exact']:.2f}%")
            lines.append(f"| {group} | {row['label']} | {row['items']} | {fmt_time(row['per_item'])} | "
                         f"{rate(1 / row['per_item'])} | {speedups[0]} | {speedups[1]} | {'; '.join(notes)} |")
    return "\n".join(lines)


def throughput_panel(ax, rows, select, x_key, xlabel, title):
    """Sequences/s against ``x_key`` for the rows ``select`` keeps, a line per library."""
    series = defaultdict(list)
    for row in rows:
        if select(row):
            series[row["extra"]["library"]].append((row["extra"][x_key], 1 / row["per_item"]))
    for label, points in sorted(series.items()):
        ax.plot(*zip(*sorted(points)), marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="sequences / s", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_beam, by_batch) = plt.subplots(1, 2, figsize=(12, 4.5))
    throughput_panel(by_beam, rows, lambda r: r["group"].startswith("beam ") and "T37-C63" in r["group"], "beam",
                     "beam width", "CTC beam search, T=37, C=63")
    throughput_panel(by_batch, rows, lambda r: r["group"].startswith("batch size"), "batch", "batch size",
                     "crnn_fast beam 10, T=37, C=63")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="files written by pytest --benchmark-json")
    parser.add_argument("--plot", help="write the throughput plot (PNG) here")
    args = parser.parse_args(argv)
    try:
        rows, machines = load_rows(args.json)
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"cannot read the benchmark JSON: {err}")
    if not rows:
        parser.error("no crnn_fast benchmark rows in these files (were they written by pytest benchmarks/?)")
    print("Measured on: " + " | ".join(dict.fromkeys(machines)) + "\n")  # each machine once
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"\nplot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
