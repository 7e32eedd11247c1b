"""torch.distributed on the CPU: gloo, processes launched by torchrun. DDP training,
sharded evaluation and sharded data generation against a single process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from crnn_fast import checkpoint, data, evaluate, train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def torchrun(nproc, module, *args, cwd):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", module, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def history(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# float32: bf16 rounds a batch's halves differently from the whole batch
TRAIN_ARGS = ["--preset", "tiny", "--arch", "seed", "--batch-size", 8, "--lr", 3e-3, "--device", "cpu", "--no-progress",
              "--precision", "float32"]


@pytest.fixture(scope="module")
def runs(tiny_set, tmp_path_factory):
    """The same 2-epoch recipe in 1 and in 2 processes; then each resumed for a 3rd epoch
    on the other world size. The `seed` architecture has neither BatchNorm nor dropout,
    whose per-rank statistics and masks would legitimately differ."""
    root = tmp_path_factory.mktemp("ddp")
    dirs = ["--train-dir", tiny_set, "--val-dir", tiny_set, "--test-dir", tiny_set]
    config = dict(preset="tiny", arch="seed", train_dir=tiny_set, val_dir=tiny_set, test_dir=tiny_set, batch_size=8,
                  lr=3e-3, device="cpu", precision="float32")
    single, ddp = root / "single", root / "ddp"
    train.train(train.TrainConfig(**config, epochs=2, out=str(single)), progress=False)
    torchrun(2, "crnn_fast.train", *TRAIN_ARGS, *dirs, "--epochs", 2, "--out", ddp, cwd=root)
    two_epochs = history(single), history(ddp)
    torchrun(2, "crnn_fast.train", *TRAIN_ARGS, *dirs, "--epochs", 3, "--out", single, "--resume", cwd=root)
    train.train(train.TrainConfig(**config, epochs=3, out=str(ddp)), resume=True, progress=False)
    return single, ddp, two_epochs


def test_ddp_training_matches_one_process(runs):
    one, two = runs[2]
    assert [h["processes"] for h in one] == [1, 1] and [h["processes"] for h in two] == [2, 2]
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val"]["exact"] == a["val"]["exact"] and b["val"]["cer"] == pytest.approx(a["val"]["cer"], abs=1e-6)


def test_resume_on_another_world_size(runs):
    single, ddp, _ = runs  # single: 1 process, then 2; ddp: 2 processes, then 1
    a, b = history(single), history(ddp)
    assert [h["processes"] for h in a] == [1, 1, 2] and [h["processes"] for h in b] == [2, 2, 1]
    assert b[-1]["train_loss"] == pytest.approx(a[-1]["train_loss"], rel=1e-5)
    weights_a, weights_b = (checkpoint.load(out / "last.pt")["model"] for out in (single, ddp))
    for name, w in weights_a.items():
        # Per tensor, not per element: Adam turns float-rounding differences in near-zero
        # gradients into steps of either sign, up to lr each.
        assert (weights_b[name] - w).norm() <= 1e-3 * w.norm(), name


@pytest.mark.parametrize("nproc", [2, 3])
def test_sharded_evaluation_equals_one_process(runs, tiny_set, nproc, capsys):
    single = runs[0]
    args = ["--checkpoint", single / "best.pt", "--data", tiny_set, "--json", "--device", "cpu", "--batch-size", 3]
    assert evaluate.main(list(map(str, args))) == 0
    alone = json.loads(capsys.readouterr().out)
    sharded = json.loads(torchrun(nproc, "crnn_fast.evaluate", *args, cwd=single).stdout)
    for timing in ("seconds", "images_per_s"):
        alone.pop(timing), sharded.pop(timing)
    assert sharded == alone


def test_sharded_generation_equals_one_process(tmp_path):
    torchrun(3, "crnn_fast.data", "--size", 10, "--seed", 5, "--out", tmp_path / "sharded", "--workers", 1,
             "--no-progress", cwd=tmp_path)
    data.generate(10, 5, tmp_path / "alone", workers=1, progress=False)
    sharded, alone = data.load(tmp_path / "sharded"), data.load(tmp_path / "alone")
    for name in ("images", "labels", "lengths"):
        np.testing.assert_array_equal(getattr(sharded, name), getattr(alone, name))
    assert json.loads((tmp_path / "sharded" / "meta.json").read_text()) == json.loads(
        (tmp_path / "alone" / "meta.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone", "sharded"]  # no parts left behind


def test_batch_size_must_split_over_the_processes(tiny_set, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "crnn_fast.train", "--preset", "tiny", "--train-dir", tiny_set, "--batch-size", "7", "--device", "cpu",
           "--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0 and "must be a multiple of the number of processes, 2" in proc.stderr
