"""Train a CRNN with CTC on CAPTCHAs.

    python -m crnn_fast.train                      # the reference recipe (the CPU preset without a GPU)
    python -m crnn_fast.train --preset cpu         # small recipe that finishes in minutes on a CPU
    python -m crnn_fast.train --resume --out runs/default   # continue a run from its last checkpoint

Synthetic data is generated on first use and cached under --data-dir. The uint8
images live on the training device; batches are sliced, augmented and normalised
there, so the loop runs no per-sample Python. Each epoch ends with a validation pass,
a line in metrics.jsonl, a refreshed curves.png and an atomically written checkpoint
(last.pt, and best.pt when validation exact match improves); the run ends with the
test set and report.json.
"""

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint, data, distributed
from .evaluate import autocast, evaluate, format_report, load_eval_data, tokens_of
from .model import ARCHS, CRNN, ModelConfig


@dataclass
class TrainConfig:
    """A training run's settings; saved in every checkpoint, so a run resumes as it started."""

    preset: str = "gpu"
    arch: str = "default"
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # share of all steps spent warming the learning rate up
    clip: float = 5.0
    augment: bool = True
    seed: int = 0
    n_train: int = 100_000
    n_val: int = 2_000
    n_test: int = 10_000
    data_dir: str = "data"
    train_dir: Optional[str] = None
    val_dir: Optional[str] = None
    test_dir: Optional[str] = None
    out: str = "runs/default"
    device: str = "auto"


PRESETS = {
    # The reference recipe: 100k synthetic images, 10k test images.
    "gpu": dict(epochs=30, batch_size=256, lr=2e-3, n_train=100_000, n_val=2_000, n_test=10_000),
    # Fits ~15 minutes on a 2-core CPU, data generation and test included.
    "cpu": dict(epochs=7, batch_size=64, lr=1.5e-3, n_train=20_000, n_val=500, n_test=2_000),
    # Seconds: for smoke tests.
    "tiny": dict(epochs=2, batch_size=16, lr=2e-3, n_train=64, n_val=16, n_test=16),
}


PLOT_EVERY_S = 30  # redraw curves.png at most this often (and after the last epoch)


def load_split(config: TrainConfig, split: str, alphabet: Optional[str] = None,
               progress: bool = True) -> data.CaptchaDataset:
    folder = {"train": config.train_dir, "val": config.val_dir, "test": config.test_dir}[split]
    n = {"train": config.n_train, "val": config.n_val, "test": config.n_test}[split]
    if folder is None:
        return data.synthetic(config.data_dir, split, n, progress=progress)
    return load_eval_data(folder, alphabet, n, config.data_dir, 40, 150)


def augment(images: torch.Tensor, generator: torch.Generator, rows: Optional[slice] = None,
            total: Optional[int] = None) -> torch.Tensor:
    """Small random affine warps, contrast/brightness changes and noise, batched on the
    images' device. ``images``: (B, H, W) float in [0, 1].

    The random draws are made for a batch of ``total`` images (default B) of which
    ``images`` are the ``rows``: the ranks of a distributed run, each holding a slice of
    the global batch, then augment exactly as one process augmenting the whole batch."""
    B = images.shape[0]
    total = B if total is None else total
    rows = slice(0, B) if rows is None else rows
    rand = lambda *shape: torch.rand(total, *shape, generator=generator, device=images.device)[rows]  # noqa: E731
    angle = (rand() - 0.5) * math.radians(6)
    scale = 1 + (rand() - 0.5) * 0.12
    shift = (rand(2) - 0.5) * 0.08
    contrast = 0.75 + 0.5 * rand(1, 1)
    brightness = (rand(1, 1) - 0.5) * 0.2
    noise = torch.randn((total, *images.shape[1:]), generator=generator, device=images.device)[rows]
    theta = torch.zeros(B, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (B, 1, *images.shape[1:]), align_corners=False)
    x = F.grid_sample(images.unsqueeze(1), grid, padding_mode="border", align_corners=False).squeeze(1)
    x = (x - 0.5) * contrast + 0.5 + brightness
    x = x + 0.03 * noise
    return x.clamp_(0, 1)


def lr_lambda(total_steps: int, warmup: float):
    """Linear warm-up, then cosine decay to 1% of the peak."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def ctc_loss_args(log_probs: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor) -> tuple:
    """``F.ctc_loss``'s arguments for (B, T, C) log-probs and (B, L) padded targets (ids
    > 0, padding <= 0): time-major log-probs, the targets as one flat int64 list, and the
    lengths, all on the log-probs' device.

    int64 targets keep torch on its own CTC kernels, never cuDNN's: measured on an H100
    (torch 2.11), cuDNN's CTC gradient for 8 sequences (T=37, C=63, labels of 1-5) was
    off by up to 0.116 where the largest gradient entry is 0.123, while torch's CUDA
    kernel matched the CPU's to 3.5e-6 (tests/test_train.py checks this on any GPU)."""
    device = log_probs.device
    targets = targets.to(device, torch.int64)
    input_lengths = torch.full((log_probs.shape[0],), log_probs.shape[1], dtype=torch.int64, device=device)
    return log_probs.transpose(0, 1), targets[targets > 0], input_lengths, target_lengths.to(device, torch.int64)


def ctc_backend(log_probs_tbc, targets, input_lengths, target_lengths) -> str:
    """Which CTC implementation nn.CTCLoss dispatches to for these arguments."""
    if log_probs_tbc.device.type != "cuda":
        return "native CPU"
    use = torch._use_cudnn_ctc_loss(log_probs_tbc, targets, input_lengths, target_lengths, 0)
    return "cuDNN" if use else "native CUDA"


def plot_history(history: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="CTC loss (train)", yscale="log", title="loss")
    for key, label in [("exact", "exact match"), ("exact_folded", "exact, no case"), ("char_acc", "char accuracy")]:
        ax_acc.plot(epochs, [100 * h["val"][key] for h in history], marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel="% (validation)", title="validation accuracy")
    ax_acc.legend()
    ax_acc.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Runs (or resumes) a training run; returns the test metrics.

    Under torchrun every process runs this: DistributedDataParallel over the ranks,
    ``config.batch_size`` the global batch (each rank takes its 1/world slice of every
    batch), and only rank 0 writes files."""
    out = Path(config.out)
    ctx, device = distributed.init(config.device)
    try:
        return _train(config, resume, progress and ctx.main, ctx, device, out)
    finally:
        distributed.close()


def _train(config: TrainConfig, resume: bool, progress: bool, ctx: distributed.Context, device: torch.device,
           out: Path) -> dict:
    state = checkpoint.load(out / "last.pt") if resume else None
    if state is not None:
        config = TrainConfig(**{**state["train_config"], "epochs": config.epochs, "device": config.device})
    if config.batch_size % ctx.world:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be a multiple of the number "
                         f"of processes, {ctx.world}")
    local_batch = config.batch_size // ctx.world

    train_set = load_split(config, "train", progress=progress)
    alphabet = train_set.alphabet if state is None else state["model_config"]["alphabet"]
    val_set = load_split(config, "val", alphabet, progress=progress)
    height, width = train_set.images.shape[1:]
    model_config = ModelConfig(alphabet=alphabet, arch=config.arch, height=height, width=width)
    if state is not None:
        model_config = ModelConfig(**state["model_config"])
    torch.manual_seed(config.seed)
    model = CRNN(model_config).to(device)

    targets, target_lengths = (t.long() for t in tokens_of(train_set))  # int64, the CTC layout ctc_loss_args wants
    steps_per_epoch = len(train_set) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({len(train_set)})")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(steps_per_epoch * config.epochs, config.warmup))
    history, start_epoch, skipped = [], 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start_epoch, skipped = state["history"], state["epoch"] + 1, state["skipped_steps"]
    # DDP averages the ranks' gradients: with equal slices of the global batch that is
    # the gradient of the global batch's mean loss, as in one process.
    net = torch.nn.parallel.DistributedDataParallel(model) if ctx.world > 1 else model
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        # A run killed after its checkpoint but before its log line (or the reverse) still
        # logs each finished epoch exactly once: the log restarts from the checkpoint.
        checkpoint.write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    best = max((h["val"]["exact"] for h in history), default=-1.0)
    best_weights = None
    last_plot = -math.inf
    frames = model.frames
    if ctx.main:
        print(f"training {config.arch} on {device}{f' x {ctx.world} processes' if ctx.world > 1 else ''}: "
              f"{len(train_set)} images, {len(val_set)} validation, {frames} frames, batch {config.batch_size}, "
              f"epochs {start_epoch + 1}..{config.epochs}, out {out}", file=sys.stderr)

    for epoch in range(start_epoch, config.epochs):
        model.train()
        # Every epoch's order, augmentation and dropout depend on (seed, epoch) only, so a
        # resumed run repeats exactly what the interrupted one would have done.
        epoch_seed = config.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed + 7919 * ctx.rank)  # dropout: its own stream per rank
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(epoch_seed))
        # This rank's slice of every global batch, in step order: its share of the data
        # set for the epoch, copied from the (memory-mapped) cache to the device once.
        mine = order[: steps_per_epoch * config.batch_size].view(steps_per_epoch, ctx.world, local_batch)[:, ctx.rank]
        mine = mine.reshape(-1)
        images = torch.from_numpy(train_set.images[mine.numpy()]).to(device)
        epoch_targets, epoch_lengths = targets[mine].to(device), target_lengths[mine].to(device)
        rows = slice(ctx.rank * local_batch, (ctx.rank + 1) * local_batch)
        aug_gen = torch.Generator(device=device).manual_seed(epoch_seed)
        loss_sum, counted, seen, t0 = 0.0, 0, 0, time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress)
        for step in bar:
            batch = slice(step * local_batch, (step + 1) * local_batch)
            x = images[batch].float().div_(255)
            if config.augment:
                x = augment(x, aug_gen, rows, config.batch_size)
            with autocast(device):
                log_probs = net(x)
            loss_args = ctc_loss_args(log_probs, epoch_targets[batch], epoch_lengths[batch])
            if epoch == start_epoch and step == 0 and ctx.main:
                print(f"CTC loss implementation: {ctc_backend(*loss_args)}", file=sys.stderr)
            loss = F.ctc_loss(*loss_args, blank=0, zero_infinity=True)
            optimizer.zero_grad(set_to_none=True)
            # The global batch's mean loss; every rank sees the same value, so all of them
            # agree to skip a non-finite step (one rank skipping alone would hang DDP).
            loss_value = distributed.all_reduce_sum(loss.detach().double()).item() / ctx.world
            if not math.isfinite(loss_value):
                skipped += 1  # a bad batch is dropped, not fatal
                scheduler.step()
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            scheduler.step()
            loss_sum, counted, seen = loss_sum + loss_value, counted + 1, seen + config.batch_size
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / counted:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        train_seconds = time.perf_counter() - t0
        del images
        distributed.broadcast_(model.buffers())  # BatchNorm statistics: rank 0's, as saved
        val = evaluate(model, val_set, device, progress=False, confusions=0)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(counted, 1), "lr": scheduler.get_last_lr()[0],
                  "train_images_per_s": seen / train_seconds, "train_seconds": train_seconds,
                  "skipped_steps": skipped, "processes": ctx.world, "val": val}
        history.append(record)
        improved = val["exact"] > best  # the same on every rank: the metrics are reduced
        if improved:
            best = val["exact"]
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if not ctx.main:
            continue
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "model_config": asdict(model_config),
                 "train_config": asdict(config), "epoch": epoch, "history": history, "skipped_steps": skipped}
        print(f"epoch {epoch + 1}: loss {record['train_loss']:.4f}, val exact {100 * val['exact']:.2f}%, "
              f"char acc {100 * val['char_acc']:.2f}%, {record['train_images_per_s']:.0f} images/s", file=sys.stderr)
        if improved:  # best.pt first: a run killed in between redoes this epoch, identically
            checkpoint.save(state, out / "best.pt")
        checkpoint.save(state, out / "last.pt")
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if epoch + 1 == config.epochs or time.perf_counter() - last_plot > PLOT_EVERY_S:
            plot_history(history, out / "curves.png")
            last_plot = time.perf_counter()

    # The best epoch's weights: kept in memory by every rank (no shared filesystem needed),
    # or, when this run resumed after its best epoch, read back from best.pt.
    if best_weights is not None:
        best_model = CRNN(model_config).to(device)
        best_model.load_state_dict(best_weights)
    else:
        best_model = checkpoint.load_model(out / "best.pt", device)
    test_set = load_split(config, "test", alphabet, progress=progress)
    test = evaluate(best_model, test_set, device, progress=progress)
    if ctx.main:
        report = {"test": test, "train_config": asdict(config), "model_config": asdict(model_config),
                  "history": history, "device": str(device), "processes": ctx.world, "torch": torch.__version__,
                  "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
        checkpoint.write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    return test


def build_config(args) -> TrainConfig:
    gpu = torch.cuda.is_available() and not (args.device or "auto").startswith("cpu")
    preset = args.preset or ("gpu" if gpu else "cpu")
    if args.preset is None and preset == "cpu":
        print("no GPU visible: using the CPU preset (--preset cpu); pass --preset gpu for the full recipe",
              file=sys.stderr)
    values = {"preset": preset, **PRESETS[preset]}
    for field in dataclasses.fields(TrainConfig):
        given = getattr(args, field.name, None)
        if given is not None and field.name != "preset":
            values[field.name] = given
    return TrainConfig(**values)


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.train", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="recipe defaults (default: gpu with a GPU, else cpu)")
    parser.add_argument("--arch", choices=sorted(ARCHS))
    parser.add_argument("--epochs", type=positive(int))
    parser.add_argument("--batch-size", type=positive(int))
    parser.add_argument("--lr", type=positive(float))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--n-train", type=positive(int), help="synthetic training images")
    parser.add_argument("--n-val", type=positive(int))
    parser.add_argument("--n-test", type=positive(int))
    parser.add_argument("--data-dir", help="where synthetic splits are cached (default: data)")
    parser.add_argument("--train-dir", help="train on a folder of labelled images (or a crnn_fast.data cache)")
    parser.add_argument("--val-dir")
    parser.add_argument("--test-dir")
    parser.add_argument("--out", help="run directory (default: runs/default)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = build_config(args)
        test = train(config, resume=args.resume, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(test))
    return 0


if __name__ == "__main__":
    sys.exit(main())
