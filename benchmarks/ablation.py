"""The measurements behind the README's "What each change to the CPU recipe bought".

    python benchmarks/ablation.py speed                      # images/s of one training step, per variant
    python benchmarks/ablation.py plateau --rnn gru --precision bf16 --lr 1.5e-3 --steps 600
    python benchmarks/ablation.py plateau --uniform-start --seed 1      # without train's blank prior

``speed`` times train.train_step on random images (no augmentation), batch 64: the
mean of 8 steps after 2 warm-up steps, for the default architecture in float32 with
the CNN in NCHW and in channels_last, under bf16 autocast, and with a BiLSTM.
``plateau`` trains from scratch on the CPU preset's training split (generated under
--data-dir if missing) with augmentation, 100 warm-up steps and then a constant
learning rate, and prints the mean loss of every 100 steps and the exact match on the
CPU preset's validation split after them: how soon a recipe leaves CTC's initial
plateau. The output layer starts as train's does (init_blank_prior), or uniform
(--uniform-start, as train did before).
"""

import argparse
import time

import torch

from crnn_fast import augment, data, train
from crnn_fast.evaluate import evaluate, tokens_of
from crnn_fast.model import ARCHS, CRNN, ModelConfig, init_blank_prior

BATCH = 64


def make(rnn: str = "gru", lr: float = 1e-3, seed: int = 0):
    torch.manual_seed(seed)
    model = CRNN(ModelConfig(alphabet=data.ALPHABET, arch_params={**ARCHS["default"], "rnn": rnn}))
    return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, fused=True)


def speed(args) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH, data.HEIGHT, data.WIDTH, generator=g)
    targets, lengths = torch.randint(1, len(data.ALPHABET) + 1, (BATCH, 5), generator=g), torch.full((BATCH,), 5)
    for name, rnn, bf16, nchw in [("float32, NCHW", "gru", False, True), ("float32, channels_last", "gru", False, False),
                                  ("bf16, channels_last", "gru", True, False), ("bf16, channels_last, BiLSTM", "lstm", True, False)]:
        model, optimizer = make(rnn)
        if nchw:
            model.cnn.to(memory_format=torch.contiguous_format)
            model.forward = nchw_forward(model)
        for _ in range(2):
            train.train_step(model, optimizer, images, targets, lengths, 5.0, bf16)
        start = time.perf_counter()
        for _ in range(8):
            train.train_step(model, optimizer, images, targets, lengths, 5.0, bf16)
        print(f"{name:30s} {8 * BATCH / (time.perf_counter() - start):6.0f} images/s", flush=True)


def nchw_forward(model):
    """The model's forward with its input left in NCHW (as the CNN was before channels_last)."""
    def forward(images):
        x = model.cnn((images.unsqueeze(1) - 0.5) / 0.5)
        x, _ = model.rnn(x.flatten(1, 2).transpose(1, 2))
        return model.head(x).float().log_softmax(-1)

    return forward


def plateau(args) -> None:
    split = data.synthetic(args.data_dir, "train", args.n_train)
    val = data.synthetic(args.data_dir, "val", train.PRESETS["cpu"]["n_val"], progress=False)
    model, optimizer = make(args.rnn, args.lr, args.seed)
    if not args.uniform_start:
        init_blank_prior(model, float(split.lengths.mean()))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 100))
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(args.seed))[: args.steps * BATCH]
    images = torch.from_numpy(split.images[order.numpy()])
    targets, lengths = (t[order].long() for t in tokens_of(split))
    g, losses, start = torch.Generator().manual_seed(args.seed), [], time.perf_counter()
    for step in range(args.steps):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        x = augment.augment(images[batch].float() / 255, g)
        loss, _ = train.train_step(model, optimizer, x, targets[batch], lengths[batch], 5.0,
                                   train.PRECISIONS[args.precision])
        scheduler.step()
        losses.append(loss.item())
        if step % 100 == 99:
            exact = evaluate(model, val, "cpu", progress=False, confusions=0)["exact"]
            model.train()
            print(f"steps {step - 98}-{step + 1}: loss {sum(losses[-100:]) / 100:.3f}, validation exact "
                  f"{exact:.1%} ({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("speed")
    p = sub.add_parser("plateau")
    p.add_argument("--rnn", choices=["gru", "lstm"], default="gru")
    p.add_argument("--precision", choices=sorted(train.PRECISIONS), default="auto")
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--n-train", type=int, default=train.PRESETS["cpu"]["n_train"])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--seed", type=int, default=0, help="the model's initialisation, the order and augmentation")
    p.add_argument("--uniform-start", action="store_true", help="leave the output layer as nn.Linear initialises it")
    args = parser.parse_args()
    {"speed": speed, "plateau": plateau}[args.what](args)


if __name__ == "__main__":
    main()
