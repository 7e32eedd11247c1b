"""Train a CRNN with CTC on CAPTCHAs.

    python -m crnn_fast.train                      # the reference recipe (the CPU preset without a GPU)
    python -m crnn_fast.train --preset cpu         # small recipe that finishes in minutes on a CPU
    python -m crnn_fast.train --resume --out runs/default   # continue a run from its last checkpoint

Synthetic data is generated on first use and cached under --data-dir. On a GPU each
epoch's uint8 images are copied there once; on the CPU each batch is read from the
memory-mapped cache. Batches are augmented and normalised on the training device, so
the loop runs no per-sample Python. Each epoch ends with BatchNorm's statistics
re-estimated on un-augmented training images (--bn-images), a validation pass,
a line in metrics.jsonl, a refreshed curves.png and an atomically written checkpoint
(last.pt, and best.pt when validation exact match improves, or every epoch with
--keep last); the run ends with the test set (read by best.pt's weights) and
report.json.
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

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import augment, checkpoint, data, distributed
from .evaluate import autocast, default_batch_size, evaluate, format_report, load_eval_data, tokens_of
from .model import ARCHS, CRNN, ModelConfig, init_blank_prior, transfer_cnn, transfer_weights


# reestimate_batchnorm's images after each epoch: the README's fourth run of the shipped
# model read validation 95.25 / 95.30 / 95.35% exact with 1,024 / 4,096 / 20,480
BN_IMAGES = 4096
PRECISIONS = {"auto": None, "bf16": True, "float32": False}  # --precision: train_step's bf16


@dataclass
class TrainConfig:
    """A training run's settings; saved in every checkpoint, so a run resumes as it started."""

    preset: str = "gpu"
    arch: Optional[str] = None  # None: "default", or with init the source's architecture
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # share of all steps spent warming the learning rate up
    clip: float = 5.0
    augment: str = "light"  # augment.LEVELS (checkpoints before levels existed hold True/False)
    seed: int = 0
    n_train: int = 100_000
    n_val: int = 2_000
    n_test: int = 10_000
    data_dir: str = "data"
    train_dir: Optional[str] = None
    val_dir: Optional[str] = None
    test_dir: Optional[str] = None
    val_split: float = 0.1  # with train_dir: share of it held out for validation (and for test without test_dir)
    # The synthetic data's style (data.Style; None: the reference task's). With train_dir,
    # alphabet (default: the folder's characters), height and width apply to the folder
    # (default: the --init checkpoint's size, else the folder's images'; size_from_data).
    alphabet: Optional[str] = None
    length: Optional[str] = None
    height: Optional[int] = None
    width: Optional[int] = None
    fonts: Optional[list] = None
    font_sizes: Optional[list] = None
    renderer: Optional[str] = None
    out: str = "runs/default"
    device: str = "auto"
    precision: str = "auto"  # the network's: "bf16", "float32", or "auto" (bf16 where native_bf16 says so)
    init: Optional[str] = None  # start from this checkpoint's weights (or a shipped model's: checkpoint.SHIPPED)
    min_steps: Optional[int] = None  # small data: at least this many steps, batches that fit (fit_to_data)
    keep: str = "best"  # the epoch whose weights best.pt holds and the test reads: "best" validation exact, or "last"
    bn_images: int = BN_IMAGES  # un-augmented training images BatchNorm's statistics are re-estimated on after each epoch

    def __post_init__(self):
        if isinstance(self.augment, bool):
            self.augment = "light" if self.augment else "none"
        if self.augment not in augment.LEVELS:
            raise ValueError(f"augment must be one of {augment.LEVELS}, got {self.augment!r}")
        if self.keep not in KEEP:
            raise ValueError(f"keep must be one of {KEEP}, got {self.keep!r}")
        if isinstance(self.bn_images, bool) or not isinstance(self.bn_images, int) or self.bn_images < 0:
            raise ValueError(f"bn_images must be an int >= 0, got {self.bn_images!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")


PRESETS = {
    # The reference recipe: 100k synthetic images, 10k test images.
    "gpu": dict(epochs=30, batch_size=256, lr=2e-3, n_train=100_000, n_val=2_000, n_test=10_000),
    # Fits ~15 minutes on a 2-core CPU, data generation and test included. Each image is
    # seen twice: rendering an image takes a quarter of the time training on it does, and
    # the same 5,000 steps read 87.05% from 160k images x 2 epochs, 85.60% from 80k x 4
    # and 85.35% from 40k x 8 (seed 0, 2,000 test images; the README's ablation). No
    # augmentation: on fresh images seen twice, trained clean, seeds 0-2 read 94.88% of
    # their test images on average, 91.73% with light augmentation (the README's study).
    "cpu": dict(epochs=2, batch_size=64, lr=1.5e-3, n_train=160_000, n_val=500, n_test=2_000, augment="none"),
    # Seconds: for smoke tests.
    "tiny": dict(epochs=2, batch_size=16, lr=2e-3, n_train=64, n_val=16, n_test=16),
}


FOLDER_MIN_STEPS = 1500  # --train-dir without --epochs/--batch-size: fit_to_data's step budget
# ... and, when fine-tuning (--init), augmentation: fine-tuned on 100 images of a new
# style (arch local, benchmarks/finetune_curve.py's set), "heavy" read 74.8% where
# "light" read 61.4%. From scratch, heavy keeps CTC on its initial plateau: 1.2% from
# 300 images of that set, where light reached 87.9% (arch default, 200x50).
FOLDER_AUGMENT = "heavy"
# ... and the last epoch's weights, not the best validation epoch's: a small folder's
# validation split (10 images of 100) saturates early and ranks epochs by noise. On the
# README's fine-tuning curve (--init local), the last epoch read the 1,000 test images
# better than the best-validation one in all seven runs: 50 images 60.8% vs 55.6%, 100
# images (seeds 0-3) 76.7/76.3/74.5/77.4% vs 69.1/75.6/66.3/72.4%, 300 87.6% vs 82.6%,
# 1000 92.6% vs 91.5%.
FOLDER_KEEP = "last"
KEEP = ("best", "last")

# A fine-tuned model starts near a good solution: a lower peak learning rate keeps the
# first steps on new data from undoing what it learnt (a common starting point, not yet
# tuned on this model).
FINETUNE_LR = 0.3

PLOT_EVERY_S = 30  # redraw curves.png at most this often (and after the last epoch)
LOG_EVERY = 50  # steps between progress-bar updates (each reads the running loss from the device)


def load_split(config: TrainConfig, split: str, alphabet: Optional[str] = None,
               progress: bool = True) -> data.CaptchaDataset:
    folder = {"train": config.train_dir, "val": config.val_dir, "test": config.test_dir}[split]
    n = {"train": config.n_train, "val": config.n_val, "test": config.n_test}[split]
    style = data.style_of(config)
    if folder is None:
        return data.synthetic(config.data_dir, split, n, style=style, progress=progress)
    if alphabet is None and config.alphabet is not None:
        alphabet = style.alphabet
    return load_eval_data(folder, alphabet, n, config.data_dir, style.height, style.width)


def size_from_data(config: TrainConfig, source: Optional[dict] = None) -> TrainConfig:
    """``config`` with the image size the model will read filled in where --height or
    --width is not given: the size ``source`` (the --init checkpoint) reads, else for a
    --train-dir folder the most common size of its images; else unchanged (the synthetic
    style's default). Idempotent, so a resumed run reads what it read before."""
    if config.height is not None and config.width is not None:
        return config
    if source is not None:
        reads = ModelConfig(**source["model_config"])
        size = reads.height, reads.width
    elif config.train_dir is not None and not (Path(config.train_dir) / "meta.json").is_file():
        sizes = data.folder_image_sizes(config.train_dir)
        size, count = sizes.most_common(1)[0]  # the first listed among equally common sizes
        if len(sizes) > 1:
            print(f"{config.train_dir}: the images have {len(sizes)} sizes; {count} of {sum(sizes.values())} are "
                  f"{size[0]}x{size[1]} (height x width), the size every image is resized to (--height and "
                  "--width choose another)", file=sys.stderr)
    else:
        return config
    return dataclasses.replace(config, height=config.height or size[0], width=config.width or size[1])


def fit_to_data(config: TrainConfig, n: int, world: int = 1) -> TrainConfig:
    """With ``config.min_steps`` set (the CLI sets it for a --train-dir folder unless
    --epochs or --batch-size is given): batches of at most an eighth of the ``n``
    training images (a multiple of ``world``, the processes), and enough epochs for at
    least ``min_steps`` steps; else ``config`` unchanged. The presets are sized for
    tens of thousands of images: 8 epochs of a few hundred images would be a handful of
    steps. Idempotent, so a resumed run makes the same choice."""
    if config.min_steps is None:
        return config
    batch = max(world, min(config.batch_size, n // 8) // world * world)
    epochs = max(config.epochs, math.ceil(config.min_steps / max(1, n // batch)))
    return dataclasses.replace(config, batch_size=batch, epochs=epochs)


def load_data(config: TrainConfig, alphabet: Optional[str] = None, progress: bool = True) -> dict:
    """The train, val and test sets: each from its folder when given, else synthetic.
    With ``train_dir``, a split without a folder of its own is held out of the train
    folder (``val_split`` of it each, drawn by ``seed``), never taken from synthetic
    data, which would not share the folder's style or alphabet."""
    sets = {"train": load_split(config, "train", alphabet, progress=progress)}
    alphabet = alphabet or sets["train"].alphabet
    held = held_out(config)
    if held:
        sets["train"], *parts = data.split(sets["train"], config.val_split, len(held), config.seed)
        sets.update(zip(held, parts))
    for name in ("val", "test"):
        if name not in sets:
            sets[name] = load_split(config, name, alphabet, progress=progress)
    return sets


def held_out(config: TrainConfig) -> list[str]:
    """The splits ``load_data`` holds out of the train folder: those without a folder of their own."""
    return [s for s in ("val", "test") if config.train_dir is not None and getattr(config, f"{s}_dir") is None]


@torch.no_grad()
def reestimate_batchnorm(model: CRNN, images, device, batch_size: Optional[int] = None) -> None:
    """Sets the running mean and variance of every BatchNorm layer in ``model`` to their
    averages over ``images`` (uint8 (N, H, W), e.g. un-augmented training images), in
    batches of ``batch_size`` (default: evaluate's), with evaluation's autocast; leaves
    ``model`` in eval mode. Draws no random numbers (dropout stays off).

    During training the running statistics average the augmented batches, whose noise,
    contrast and brightness differ from the clean images the model reads afterwards:
    re-estimated on clean images, the fourth CPU run of the shipped model read its
    validation set 95.30% exactly where its own statistics read 91.60% (README)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    if not norms or len(images) == 0:
        return
    device = torch.device(device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts the same
        m.train()
    try:
        batch_size = batch_size or default_batch_size(device)
        for lo in range(0, len(images), batch_size):
            with autocast(device):
                model(torch.from_numpy(np.array(images[lo:lo + batch_size])).to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


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
    > 0, padding <= 0): time-major log-probs, the targets padded (B, L) int64 with the
    padding made 0 (ctc_loss reads none past each length), and the lengths, all on the
    log-probs' device. Nothing here waits for the device: the padded layout needs no
    boolean-mask gather (which would sync the host with the GPU every step).

    int64 targets keep torch on its own CTC kernels, never cuDNN's: measured on an H100
    (torch 2.11), cuDNN's CTC gradient for 8 sequences (T=37, C=63, labels of 1-5) was
    off by up to 0.116 where the largest gradient entry is 0.123, while torch's CUDA
    kernel matched the CPU's to 3.5e-6 (tests/test_train.py checks this on any GPU)."""
    device = log_probs.device
    targets = targets.to(device, torch.int64).clamp(min=0)
    input_lengths = torch.full((log_probs.shape[0],), log_probs.shape[1], dtype=torch.int64, device=device)
    return log_probs.transpose(0, 1), targets, input_lengths, target_lengths.to(device, torch.int64)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor,
               target_lengths: torch.Tensor, clip: float, bf16: Optional[bool] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step that never waits for the device: returns this process's
    loss and 1.0 if the step was skipped (0.0 if taken), both as 0-dim device tensors.
    ``bf16``: run the network under bf16 autocast (default: where it is native).

    A step whose gradients are not all finite is skipped on the device: a non-finite
    loss makes non-finite gradients, so their norm is non-finite, and ``optimizer``
    (AdamW with ``fused=True``) takes that flag as ``found_inf``, the argument through
    which ``torch.amp.GradScaler`` skips steps: no update, no step count. Under DDP the
    gradients are already averaged over the processes, so all of them skip together."""
    with autocast(images.device, bf16):
        log_probs = net(images)
    loss = F.ctc_loss(*ctc_loss_args(log_probs, targets, target_lengths), blank=0, zero_infinity=True)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, clip)
    skipped = (~torch.isfinite(norm)).float()
    optimizer.found_inf = skipped
    optimizer.step()
    return loss.detach(), skipped


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
    source = None
    if state is not None:
        config = TrainConfig(**{**state["train_config"], "epochs": config.epochs, "device": config.device})
    elif config.init is not None:
        source = checkpoint.load(checkpoint.resolve(config.init))
    config = size_from_data(config, source)
    sets = load_data(config, None if state is None else state["model_config"]["alphabet"], progress)
    train_set, val_set = sets["train"], sets["val"]
    config = fit_to_data(config, len(train_set), ctx.world)
    if config.batch_size % ctx.world:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be a multiple of the number "
                         f"of processes, {ctx.world}")
    local_batch = config.batch_size // ctx.world
    if config.min_steps is not None and ctx.main:
        print(f"small training set: batch {config.batch_size}, {config.epochs} epochs of "
              f"{len(train_set) // config.batch_size} steps (at least {config.min_steps} steps; --epochs or "
              f"--batch-size choose yourself), keeping the {config.keep} epoch (--keep)", file=sys.stderr)
    alphabet = train_set.alphabet if state is None else state["model_config"]["alphabet"]
    height, width = train_set.images.shape[1:]
    model_config = ModelConfig(alphabet=alphabet, arch=config.arch or "default", height=height, width=width)
    if state is not None:
        model_config = ModelConfig(**state["model_config"])
    elif source is not None:
        reads = ModelConfig(**source["model_config"])
        if reads.height != height:  # the width may differ: it only sets the number of frames
            raise ValueError(f"--init {config.init} reads images {reads.height} px high, the training images are "
                             f"{height} px high ({height}x{width}, height x width)")
        if config.arch in (None, reads.arch):  # the source's architecture, this data's alphabet
            model_config = ModelConfig(alphabet=alphabet, arch=reads.arch, height=height, width=width,
                                       arch_params=reads.arch_params)
    torch.manual_seed(config.seed)
    model = CRNN(model_config)
    if source is None or model_config.arch != reads.arch:  # a fresh output layer
        init_blank_prior(model, float(train_set.lengths.mean()))
    if source is not None:
        if model_config.arch == reads.arch:
            shared = transfer_weights(model, source["model"], source["model_config"]["alphabet"])
            what = (f"every layer, and the output rows of {len(shared)} of the {len(alphabet)} characters (the "
                    f"source reads {len(reads.alphabet)})")
        else:
            transfer_cnn(model, source["model"])
            what = f"the CNN; the {model_config.arch} architecture's other layers start fresh"
        if ctx.main:
            print(f"initialised from {config.init} (architecture {reads.arch}): {what}", file=sys.stderr)
    model = model.to(device)

    targets, target_lengths = (t.long() for t in tokens_of(train_set))  # int64, the CTC layout ctc_loss_args wants
    steps_per_epoch = len(train_set) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({len(train_set)})")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
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
        held = " and ".join(f"{len(sets[name])} {name}" for name in held_out(config))
        if held:
            held = f" ({held} held out of --train-dir: {config.val_split:.0%} each, by seed {config.seed})"
        print(f"training {model_config.arch} on {device}{f' x {ctx.world} processes' if ctx.world > 1 else ''}: "
              f"{len(train_set)} images, {len(val_set)} validation, {len(sets['test'])} test{held}, "
              f"{len(alphabet)} characters {alphabet!r}, {height}x{width} pixels (height x width), {frames} frames, "
              f"batch {config.batch_size}, epochs {start_epoch + 1}..{config.epochs}, out {out}", file=sys.stderr)

    for epoch in range(start_epoch, config.epochs):
        model.train()
        # Every epoch's order, augmentation and dropout depend on (seed, epoch) only, so a
        # resumed run repeats exactly what the interrupted one would have done.
        epoch_seed = config.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed + 7919 * ctx.rank)  # dropout: its own stream per rank
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(epoch_seed))
        # This rank's slice of every global batch, in step order: its share of the data
        # set for the epoch, copied from the (memory-mapped) cache to a GPU once. On the
        # CPU each batch is gathered from the cache when its step comes, so no shuffled
        # copy of the epoch is made (1.2M images would take another 7.2 GB).
        mine = order[: steps_per_epoch * config.batch_size].view(steps_per_epoch, ctx.world, local_batch)[:, ctx.rank]
        mine = mine.reshape(-1)
        images = None if device.type == "cpu" else torch.from_numpy(train_set.images[mine.numpy()]).to(device)
        epoch_targets, epoch_lengths = targets[mine].to(device), target_lengths[mine].to(device)
        rows = slice(ctx.rank * local_batch, (ctx.rank + 1) * local_batch)
        aug_gen = torch.Generator(device=device).manual_seed(epoch_seed)
        # Sums stay on the device; the host reads them at the epoch's end (and for the
        # progress bar every LOG_EVERY steps), never once per step.
        loss_sum, skip_sum = torch.zeros((), dtype=torch.float64, device=device), torch.zeros((), device=device)
        t0 = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress)
        for step in bar:
            batch = slice(step * local_batch, (step + 1) * local_batch)
            x = (images[batch] if images is not None else torch.from_numpy(train_set.images[mine[batch].numpy()]))
            x = x.float().div_(255)
            if config.augment != "none":
                x = augment.augment(x, aug_gen, rows, config.batch_size, config.augment)
            if epoch == start_epoch and step == 0 and ctx.main:
                probe = ctc_loss_args(torch.zeros(1, frames, model_config.num_classes, device=device),
                                      epoch_targets[:1], epoch_lengths[:1])
                print(f"CTC loss implementation: {ctc_backend(*probe)}", file=sys.stderr)
            loss, step_skipped = train_step(net, optimizer, x, epoch_targets[batch], epoch_lengths[batch], config.clip,
                                            PRECISIONS[config.precision])
            scheduler.step()
            loss_sum += torch.where(step_skipped > 0, 0.0, loss.double())
            skip_sum += step_skipped
            if progress and step % LOG_EVERY == LOG_EVERY - 1:
                taken = step + 1 - skip_sum.item()
                bar.set_postfix(loss=f"{loss_sum.item() / max(taken, 1):.3f}",
                                img_s=f"{(step + 1) * config.batch_size / (time.perf_counter() - t0):.0f}")
        # The loss each process saw, averaged over the processes: the global batch's mean.
        loss_sum = distributed.all_reduce_sum(loss_sum).item() / ctx.world
        epoch_skipped = round(skip_sum.item())
        counted, skipped = steps_per_epoch - epoch_skipped, skipped + epoch_skipped
        seen = counted * config.batch_size
        train_seconds = time.perf_counter() - t0
        del images
        reestimate_batchnorm(model, train_set.images[:config.bn_images], device)  # the same images on every rank
        distributed.broadcast_(model.buffers())  # BatchNorm statistics: rank 0's, as saved
        val = evaluate(model, val_set, device, progress=False, confusions=0)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(counted, 1), "lr": scheduler.get_last_lr()[0],
                  "train_images_per_s": seen / train_seconds, "train_seconds": train_seconds,
                  "skipped_steps": skipped, "processes": ctx.world, "val": val}
        history.append(record)
        # the same on every rank: the metrics are reduced
        improved = config.keep == "last" or val["exact"] > best
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
    test = evaluate(best_model, sets["test"], device, progress=progress)
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
    # On the command line only: a run resumed from before this check may hold them (ignored).
    synthetic_only = [k for k in ("length", "fonts", "font_sizes", "renderer") if getattr(args, k, None) is not None]
    if args.train_dir is not None and synthetic_only:
        names = ", ".join("--" + k.replace("_", "-") for k in synthetic_only)
        raise ValueError(f"{names}: these describe synthetic data, and with --train-dir every set comes from "
                         "folders (pretrain on synthetic data in one run, then fine-tune on the folder with --init)")
    values = {"preset": preset, **PRESETS[preset]}
    if args.init is not None:
        values["lr"] *= FINETUNE_LR
    if args.train_dir is not None:  # a folder holds far fewer images than a preset renders
        values["augment"] = TrainConfig.augment
        if args.epochs is None and args.batch_size is None:
            values["min_steps"] = FOLDER_MIN_STEPS
            values["keep"] = FOLDER_KEEP
            if args.init is not None:
                values["augment"] = FOLDER_AUGMENT
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


def fraction(text):
    value = float(text)
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.5, got {text}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.train", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="recipe defaults (default: gpu with a GPU, else cpu)")
    parser.add_argument("--arch", choices=sorted(ARCHS), help="default: default, or the --init checkpoint's (another "
                        "architecture with the same CNN starts from the checkpoint's CNN)")
    parser.add_argument("--epochs", type=positive(int), help="default: the preset's; for a --train-dir folder "
                        f"given neither this nor --batch-size, enough for {FOLDER_MIN_STEPS} steps")
    parser.add_argument("--batch-size", type=positive(int), help="the global batch (default: the preset's; for a "
                        "--train-dir folder, at most an eighth of its training images)")
    parser.add_argument("--lr", type=positive(float))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--n-train", type=positive(int), help="synthetic training images")
    parser.add_argument("--n-val", type=positive(int))
    parser.add_argument("--n-test", type=positive(int))
    parser.add_argument("--data-dir", help="where synthetic splits are cached (default: data)")
    parser.add_argument("--train-dir", help="train on a folder of labelled images (or a crnn_fast.data cache)")
    parser.add_argument("--val-dir", help="validation folder (default: held out of --train-dir, or synthetic)")
    parser.add_argument("--test-dir", help="test folder (default: held out of --train-dir, or synthetic)")
    data.add_style_arguments(parser, size_default="the --init checkpoint's, else the most common of a --train-dir "
                             "folder's images, else {}")
    parser.add_argument("--val-split", type=fraction,
                        help="with --train-dir: share held out for validation, and again for test without "
                             "--test-dir (default: 0.1)")
    parser.add_argument("--out", help="run directory (default: runs/default)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS),
                        help="the network's precision in training (default: auto = bf16 where the device has it "
                             "natively: recent GPUs, CPUs with AVX512-BF16 or AMX; else float32)")
    parser.add_argument("--augment", choices=augment.LEVELS,
                        help=f"training augmentation (default: none for --preset cpu's synthetic images, else "
                             f"light; {FOLDER_AUGMENT} to fine-tune (--init) on a --train-dir folder given neither "
                             "--epochs nor --batch-size)")
    parser.add_argument("--no-augment", dest="augment", action="store_const", const="none", help="--augment none")
    parser.add_argument("--keep", choices=KEEP,
                        help="the epoch whose weights best.pt holds and the test reads: the best validation exact "
                             f"match (default), or the last ({FOLDER_KEEP} for a --train-dir folder given neither "
                             "--epochs nor --batch-size: its small validation split ranks epochs by noise)")
    parser.add_argument("--init", metavar="CHECKPOINT",
                        help="fine-tune: start from a checkpoint's weights, or a shipped model's: 'local' (the "
                             "better start for another style) or 'default'; "
                             f"the learning rate defaults to {FINETUNE_LR:g} x the preset's")
    parser.add_argument("--bn-images", type=data.styles._int_at_least(0), metavar="N",
                        help="after each epoch, re-estimate BatchNorm's statistics on the first N training images, "
                             f"un-augmented (default: {BN_IMAGES}; 0 keeps the running averages of the augmented batches)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
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
