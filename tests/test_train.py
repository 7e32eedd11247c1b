"""Training, checkpoints, evaluate and predict, end to end on tiny CPU runs."""

import csv
import dataclasses
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CUDA
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from crnn_fast import checkpoint, data, evaluate, export, predict, train
from crnn_fast.model import ARCHS, CRNN, ModelConfig, init_blank_prior, transfer_weights


def tiny_config(tiny_set, out, **overrides):
    values = dict(preset="tiny", train_dir=tiny_set, val_dir=tiny_set, test_dir=tiny_set, batch_size=16, epochs=4,
                  lr=3e-3, augment=False, out=str(out), device="cpu")
    return train.TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def overfit_run(tiny_set, tmp_path_factory):
    """The reference's overfit experiment: a CRNN must learn 16 CAPTCHAs by heart. The
    16 images are written 16 times into a folder of PNGs with a labels.csv (which also
    exercises the folder loader), so that an epoch is 16 steps."""
    dataset = data.load(tiny_set)
    folder = tmp_path_factory.mktemp("repeated")
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        for copy in range(16):
            for i in range(16):
                Image.fromarray(dataset.images[i]).save(folder / f"{i}-{copy}.png")
                writer.writerow([f"{i}-{copy}.png", dataset.text(i)])
    out = tmp_path_factory.mktemp("overfit")
    test = train.train(tiny_config(tiny_set, out, train_dir=str(folder), epochs=12), progress=False)
    return out, test


def test_overfits_16_samples(overfit_run):
    out, test = overfit_run
    assert test["exact"] == 1.0 and test["cer"] == 0.0
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["exact"] == 1.0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[-1])["epoch"] == 12
    assert json.loads(lines[0])["val"]["exact"] < 1.0  # learnt, not given
    assert (out / "curves.png").stat().st_size > 0


def test_resume_repeats_the_uninterrupted_run(tiny_set, tmp_path):
    whole = tmp_path / "whole"
    train.train(tiny_config(tiny_set, whole, epochs=3), progress=False)
    split = tmp_path / "split"
    train.train(tiny_config(tiny_set, split, epochs=2), progress=False)
    train.train(tiny_config(tiny_set, split, epochs=3), resume=True, progress=False)
    history = lambda out: [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = history(whole), history(split)
    assert [h["epoch"] for h in b] == [1, 2, 3]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    timing = ("seconds", "images_per_s")
    strip = lambda h: {k: v for k, v in h["val"].items() if k not in timing}  # noqa: E731
    assert [strip(h) for h in a] == [strip(h) for h in b]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None], ids=["empty", "garbage", "truncated"])
def test_bad_checkpoint_is_named(overfit_run, tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content if content is not None else (overfit_run[0] / "best.pt").read_bytes()[:5000])
    with pytest.raises(ValueError, match=f"checkpoint {bad} is truncated or corrupt"):
        checkpoint.load(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")


def test_atomic_save_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    checkpoint.save({"model": {}, "model_config": {}, "n": 1}, path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save({"model": {}, "model_config": {}, "n": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left behind


def test_evaluate_cli(overfit_run, tiny_set, capsys):
    out, _ = overfit_run
    assert evaluate.main(["--checkpoint", str(out / "best.pt"), "--data", tiny_set, "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["exact"] == 1.0 and result["exact_folded"] == 1.0 and result["count"] == 16
    assert evaluate.main(["--checkpoint", str(out / "nope.pt"), "--data", tiny_set]) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err


def test_predict_cli_reads_image_files(overfit_run, tiny_set, tmp_path, capsys):
    out, _ = overfit_run
    dataset = data.load(tiny_set)
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(dataset.images[i]).convert("RGB").save(path)  # colour on disk, gray inside
        paths.append(str(path))
    assert predict.main(["--checkpoint", str(out / "best.pt"), "--device", "cpu", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    for i, line in enumerate(lines):
        path, text, confidence = line.split("\t")
        assert path == paths[i] and text == dataset.text(i) and 0 < float(confidence) <= 1


def test_exported_weights_read_like_the_checkpoint(overfit_run, tiny_set, tmp_path, capsys):
    out, _ = overfit_run
    weights = tmp_path / "w.pt"
    best_epoch = checkpoint.load(out / "best.pt")["history"][-1]["epoch"]  # the epoch best.pt was saved at
    assert export.main(["--checkpoint", str(out / "best.pt"), "--weights", str(weights)]) == 0
    assert f"epoch {best_epoch}, validation exact 100.00%" in capsys.readouterr().out
    slim, full = checkpoint.load_model(weights), checkpoint.load_model(out / "best.pt")
    images = torch.tensor(data.load(tiny_set).images)
    with torch.no_grad():
        torch.testing.assert_close(slim(images), full(images), rtol=0, atol=0.05)  # float16 weights
    slim_reads, full_reads = predict.predict(slim, images), predict.predict(full, images)
    assert [r.text for r in slim_reads] == [r.text for r in full_reads]
    assert [r.confidence for r in slim_reads] == pytest.approx([r.confidence for r in full_reads], rel=0.05)
    assert weights.stat().st_size < 0.4 * (out / "best.pt").stat().st_size
    stored = torch.load(weights, weights_only=True)["info"]
    assert stored["epoch"] == best_epoch and stored["train_config"]["epochs"] == 12
    bare = tmp_path / "bare.pt"  # weights and config, but no training facts
    checkpoint.save({k: v for k, v in torch.load(weights, weights_only=True).items() if k != "info"}, bare)
    assert export.main(["--checkpoint", str(bare), "--weights", str(tmp_path / "again.pt")]) == 2
    assert f"{bare} is neither a training checkpoint nor a file exported from one" in capsys.readouterr().err


def test_export_reestimates_batchnorm_on_bn_data(overfit_run, tiny_set, tmp_path, capsys):
    out, _ = overfit_run
    weights = tmp_path / "w.pt"
    argv = ["--checkpoint", str(out / "best.pt"), "--weights", str(weights), "--bn-data", tiny_set]
    assert export.main([*argv, "--bn-images", "8"]) == 0
    assert "before BatchNorm was re-estimated" in capsys.readouterr().out
    expected = checkpoint.load_model(out / "best.pt")
    train.reestimate_batchnorm(expected, data.load(tiny_set).images[:8], "cpu")
    exported = checkpoint.load_model(weights)
    assert not torch.equal(exported.cnn[1].running_mean, checkpoint.load_model(out / "best.pt").cnn[1].running_mean)
    for (name, buffer), (_, got) in zip(expected.named_buffers(), exported.named_buffers(), strict=True):
        torch.testing.assert_close(got, buffer, rtol=1e-3, atol=1e-3, msg=lambda m: f"{name}: {m}")  # float16
    stored = torch.load(weights, weights_only=True)["info"]
    assert stored["batchnorm"] == f"re-estimated on the first 8 images of {tiny_set}"
    # an exported file (a shipped model, say) again: its facts carry over
    again = tmp_path / "again.pt"
    assert export.main(["--checkpoint", str(weights), "--weights", str(again), "--bn-data", tiny_set]) == 0
    kept = torch.load(again, weights_only=True)["info"]
    assert kept["epoch"] == stored["epoch"] and kept["train_config"] == stored["train_config"]
    assert kept["batchnorm"] == f"re-estimated on the first 16 images of {tiny_set}"
    with pytest.raises(SystemExit):
        export.main([*argv, "--bn-images", "0"])
    assert "argument --bn-images: must be > 0, got 0" in capsys.readouterr().err
    wide = tmp_path / "wide"
    data.generate(4, 3, wide, workers=1, style=data.Style(width=160), progress=False)
    assert export.main([*argv[:4], "--bn-data", str(wide)]) == 2
    assert "the images are (40, 160) but the model reads (40, 150)" in capsys.readouterr().err


def test_train_dir_alone_holds_out_validation_and_test(tmp_path, capsys):
    """A folder alone is enough: validation and test come out of it (never from the
    synthetic splits, whose alphabet and style differ), the model reads the folder's
    most common image size, and the run says so."""
    cache = data.load(data.generate(40, 5, tmp_path / "cache", workers=1, progress=False))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(40):
        size = (150, 40) if i < 3 else (100, 30)  # (width, height): most are 100 x 30
        Image.fromarray(cache.images[i]).resize(size).save(folder / f"{cache.text(i)}.png")
    assert data.folder_image_sizes(folder) == {(30, 100): 37, (40, 150): 3}
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--train-dir", str(folder), "--epochs", "1", "--batch-size", "8", "--device", "cpu",
            "--out", str(out), "--no-progress"]
    assert train.main(argv) == 0
    alphabet = "".join(sorted(set("".join(cache.texts()))))
    assert (f"32 images, 4 validation, 4 test (4 val and 4 test held out of --train-dir: 10% each, by seed 0), "
            f"{len(alphabet)} characters {alphabet!r}, 30x100 pixels") in (err := capsys.readouterr().err)
    assert "the images have 2 sizes; 37 of 40 are 30x100 (height x width), the size every image is resized to" in err
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["count"] == 4 and report["model_config"]["alphabet"] == alphabet
    assert (report["model_config"]["height"], report["model_config"]["width"]) == (30, 100)
    assert train.main([*argv, "--resume"]) == 0  # resumes at the size it chose


def test_size_from_data_prefers_flags_then_init_then_the_folder(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.new("L", (90, 24), 255).save(folder / "ab.png")
    config = train.TrainConfig(train_dir=str(folder))
    assert (train.size_from_data(config).height, train.size_from_data(config).width) == (24, 90)
    source = {"model_config": {"alphabet": "ab", "height": 40, "width": 150}}
    assert (train.size_from_data(config, source).height, train.size_from_data(config, source).width) == (40, 150)
    given = dataclasses.replace(config, height=32)
    assert (train.size_from_data(given).height, train.size_from_data(given).width) == (32, 90)
    synthetic = train.TrainConfig()
    assert train.size_from_data(synthetic) == synthetic  # the style's default, decided by data.Style
    (folder / "labels.csv").write_text("filename,label\nmissing.png,ab\n")
    with pytest.raises(ValueError, match="missing.png: cannot read image"):
        train.size_from_data(config)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_reads_a_batch_into_its_frames(arch):
    """Each architecture maps (B, 40, 150) images to (B, frames, C + 1) log-probs, with
    ``frames`` the width its pools leave; "stem" convolves twice at full resolution."""
    model = CRNN(ModelConfig(alphabet="abc", arch=arch)).eval()
    sizes = []
    for layer in model.cnn:
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(lambda mod, inputs, out: sizes.append(tuple(out.shape[2:])))
    with torch.no_grad():
        out = model(torch.randint(0, 256, (3, 40, 150), dtype=torch.uint8))
    pools = ARCHS[arch]["pools"]
    assert model.frames == 150 // math.prod(p[1] for p in pools)
    assert out.shape == (3, model.frames, 4)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, model.frames))
    assert sizes[:2] == ([(40, 150)] * 2 if arch == "stem" else [(40, 150), (20, 75)])


def test_transfer_weights_keeps_shared_characters_rows():
    torch.manual_seed(0)
    source = CRNN(ModelConfig(alphabet="abc"))
    torch.manual_seed(1)
    target = CRNN(ModelConfig(alphabet="cbx"))
    fresh = target.head.weight.detach().clone()
    assert transfer_weights(target, source.state_dict(), "abc") == "cb"
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        if not name.startswith("head."):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    for row, source_row in [(0, 0), (1, 3), (2, 2)]:  # blank, 'c', 'b'
        assert torch.equal(target.head.weight[row], source.head.weight[source_row])
        assert torch.equal(target.head.bias[row], source.head.bias[source_row])
    assert torch.equal(target.head.weight[3], fresh[3])  # 'x' is new: its fresh row stays
    with pytest.raises(ValueError, match="do not fit this model"):
        transfer_weights(CRNN(ModelConfig(alphabet="ab", height=64)), source.state_dict(), "abc")
    with pytest.raises(ValueError, match="do not fit this model"):
        transfer_weights(CRNN(ModelConfig(alphabet="ab", arch="seed")), source.state_dict(), "abc")
    one_layer = ModelConfig(alphabet="ab", arch_params={**ARCHS["default"], "layers": 1})
    with pytest.raises(ValueError, match=r"another architecture \(missing \[\], unexpected \['rnn.weight_ih_l1'"):
        transfer_weights(CRNN(one_layer), source.state_dict(), "abc")


def test_blank_prior_starts_at_the_blank_share_of_frames(tiny_set, tmp_path):
    model = CRNN(ModelConfig(alphabet="abc"))  # 37 frames, 4 classes
    assert model.frames == 37
    for mean_length, p in [(5.0, 1 - 5 / 37), (0.0, 0.99), (36.0, 0.25), (80.0, 0.25)]:
        assert init_blank_prior(model, mean_length) == pytest.approx(p)
        probs = model.head.bias.softmax(0)  # what the output layer adds to every frame
        torch.testing.assert_close(probs, torch.tensor([p, (1 - p) / 3, (1 - p) / 3, (1 - p) / 3]))
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="mean_length"):
            init_blank_prior(model, bad)

    # Training from scratch starts there: after one step at a negligible learning rate the
    # blank's bias is the prior for the data's mean label length.
    train.train(tiny_config(tiny_set, tmp_path, epochs=1, lr=1e-12), progress=False)
    trained = checkpoint.load(tmp_path / "last.pt")
    dataset = data.load(tiny_set)
    fresh = CRNN(ModelConfig(**trained["model_config"]))
    p = init_blank_prior(fresh, float(dataset.lengths.mean()))
    assert p < 0.99
    torch.testing.assert_close(trained["model"]["head.bias"].float(), fresh.head.bias, rtol=0, atol=1e-6)


def test_init_starts_from_a_checkpoint(overfit_run, tiny_set, tmp_path, capsys):
    """--init loads the source's layers (checked after one step at a negligible learning
    rate) and adapts the output layer to the data's alphabet."""
    source = checkpoint.load(overfit_run[0] / "best.pt")
    folder = tmp_path / "folder"
    folder.mkdir()
    dataset = data.load(tiny_set)
    for i in range(16):
        Image.fromarray(dataset.images[i]).save(folder / f"{dataset.text(i).lower()}.png")
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--train-dir", str(folder), "--val-dir", str(folder), "--test-dir", str(folder),
            "--init", str(overfit_run[0] / "best.pt"), "--epochs", "1", "--batch-size", "16", "--lr", "1e-12",
            "--device", "cpu", "--out", str(out), "--no-progress", "--no-augment"]
    assert train.main(argv) == 0
    alphabet = "".join(sorted(set("".join(dataset.texts()).lower())))
    shared = sum(ch in source["model_config"]["alphabet"] for ch in alphabet)
    assert (f"every layer, and the output rows of {shared} of the {len(alphabet)} characters "
            f"(the source reads {len(source['model_config']['alphabet'])})") in capsys.readouterr().err
    tuned = checkpoint.load(out / "last.pt")["model"]
    torch.testing.assert_close(tuned["cnn.0.weight"], source["model"]["cnn.0.weight"], rtol=0, atol=1e-6)
    row = source["model_config"]["alphabet"].index(alphabet[0]) + 1
    torch.testing.assert_close(tuned["head.weight"][1], source["model"]["head.weight"][row], rtol=0, atol=1e-6)

    small = tmp_path / "small.pt"
    checkpoint.save({"model": CRNN(ModelConfig(alphabet="ab", height=32)).state_dict(),
                     "model_config": {"alphabet": "ab", "height": 32}}, small)
    from_small = [*argv[:argv.index("--init") + 1], str(small), "--epochs", "1", "--batch-size", "16"]
    assert train.main([*from_small, "--out", str(tmp_path / "bad"), "--height", "40"]) == 2
    assert f"--init {small} reads images 32 px high, the training images are 40 px high" in capsys.readouterr().err
    # The width only sets the number of frames: a checkpoint fine-tunes at another.
    assert train.main([*from_small, "--out", str(tmp_path / "wide"), "--height", "32", "--width", "200"]) == 0
    assert checkpoint.load(tmp_path / "wide" / "last.pt")["model_config"]["width"] == 200
    assert train.main([*from_small, "--out", str(tmp_path / "resized")]) == 0  # reads the source's size
    assert checkpoint.load(tmp_path / "resized" / "last.pt")["model_config"]["height"] == 32

    # Another architecture with the same CNN starts from the source's CNN alone.
    assert train.main([*argv, "--arch", "local", "--out", str(tmp_path / "local")]) == 0
    assert "(architecture default): the CNN; the local architecture's other layers start fresh" in \
        capsys.readouterr().err
    local = checkpoint.load(tmp_path / "local" / "last.pt")
    assert local["model_config"]["arch"] == "local"
    assert local["model"]["head.bias"][0] > 1 and local["model"]["head.bias"][1:].abs().max() < 1e-6  # a fresh head
    torch.testing.assert_close(local["model"]["cnn.0.weight"], source["model"]["cnn.0.weight"], rtol=0, atol=1e-6)
    assert train.main([*argv, "--arch", "seed", "--out", str(tmp_path / "seed")]) == 2
    assert "the source model's CNN differs from this architecture's" in capsys.readouterr().err


@pytest.mark.parametrize("decoder", ["beam", "greedy"])
def test_predict_json_and_min_confidence(overfit_run, tiny_set, tmp_path, capsys, decoder):
    dataset = data.load(tiny_set)
    paths = []
    for i in range(4):
        Image.fromarray(dataset.images[i]).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    common = ["--checkpoint", str(overfit_run[0] / "best.pt"), "--device", "cpu", "--decoder", decoder]
    assert predict.main([*common, "--json", *paths]) == 0
    reads = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in reads] == paths and [r["text"] for r in reads] == dataset.texts()[:4]
    for r in reads:
        assert [c["char"] for c in r["chars"]] == list(r["text"]) and not r["doubtful"]
        assert all(0 < c["confidence"] <= 1 for c in r["chars"])
        if decoder == "greedy":  # the best path's probability is a product over frames that include these
            assert r["confidence"] <= min(c["confidence"] for c in r["chars"]) * (1 + 1e-5)
    threshold = sorted(r["confidence"] for r in reads)[2]  # two reads below it
    assert predict.main([*common, "--min-confidence", str(threshold), *paths]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[3:] == ["doubtful"] for line in lines] == [r["confidence"] < threshold for r in reads]
    assert sum(len(line) == 4 for line in lines) == 2


def test_greedy_frames_are_each_labels_best_frame_in_its_run():
    log_probs = torch.full((1, 8, 4), -10.0)
    path, scores = [0, 2, 2, 2, 0, 2, 3, 3], [-1, -0.5, -0.1, -0.3, -1, -0.2, -0.4, -0.05]
    for t, (c, v) in enumerate(zip(path, scores)):
        log_probs[0, t, c] = v
    assert predict.greedy_frames(log_probs)[0, :3].tolist() == [2, 5, 7]


@pytest.mark.parametrize("content, match", [(b"", "cannot read image"), (b"\x89PNG\r\n\x1a\n garbage", "cannot read image"),
                                            (None, "no image file")])
def test_predict_names_an_unreadable_image(overfit_run, tmp_path, capsys, content, match):
    bad = tmp_path / "bad.png"
    if content is not None:
        bad.write_bytes(content)
    assert predict.main(["--checkpoint", str(overfit_run[0] / "best.pt"), "--device", "cpu", str(bad)]) == 2
    assert f"{match} {bad}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--min-confidence", "1.5"], ["--min-confidence", "-0.1"]])
def test_predict_cli_rejects_bad_arguments(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main([*argv, str(tmp_path / "x.png")])
    assert exit_info.value.code == 2 and "--min-confidence" in capsys.readouterr().err


def test_train_on_a_synthetic_style(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--alphabet", "digits", "--length", "3-4", "--width", "100", "--n-train", "32",
            "--n-val", "8", "--n-test", "8", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
            "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-progress"]
    assert train.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model_config"]["alphabet"] == "0123456789" and report["model_config"]["width"] == 100
    assert report["train_config"]["length"] == "3-4" and report["test"]["count"] == 8
    key = data.Style(alphabet="digits", length=(3, 4), width=100).key()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [f"{s}-n{n}-{key}-seed{seed}" for s, n, seed in
                                                                    [("test", 8, 2), ("train", 32, 0), ("val", 8, 1)]]
    assert train.main([*argv, "--length", "4-3"]) == 2
    assert "min <= max" in capsys.readouterr().err


def test_train_dir_labels_outside_the_alphabet_are_named(tiny_set, tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    dataset = data.load(tiny_set)
    for i in range(16):
        Image.fromarray(dataset.images[i]).save(folder / f"{dataset.text(i)}.png")
    argv = ["--preset", "tiny", "--train-dir", str(folder), "--alphabet", "lower", "--device", "cpu",
            "--out", str(tmp_path / "run"), "--no-progress"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    bad = next(t for t in sorted(dataset.texts()) if set(t) - set(data.ALPHABETS["lower"]))  # the first file named
    assert f"{bad}.png: label {bad!r} has characters not in the alphabet" in err
    assert not (tmp_path / "run").exists()


def test_fit_to_data_sizes_small_folders():
    config = train.TrainConfig(epochs=8, batch_size=64, min_steps=1500)
    small = train.fit_to_data(config, 90)
    assert (small.batch_size, small.epochs) == (11, 188)  # 8 steps an epoch, 1504 steps
    assert train.fit_to_data(small, 90) == small  # a resumed run decides the same
    assert train.fit_to_data(config, 90, world=2).batch_size == 10
    assert train.fit_to_data(config, 5).batch_size == 1
    big = train.fit_to_data(config, 100_000)
    assert (big.batch_size, big.epochs) == (64, 8)
    assert train.fit_to_data(dataclasses.replace(config, min_steps=None), 90) == dataclasses.replace(config, min_steps=None)
    args = ["--train-dir", "x", "--device", "cpu"]
    folder = train.build_config(train.make_parser().parse_args(args))
    assert (folder.min_steps, folder.augment, folder.keep) == (train.FOLDER_MIN_STEPS, "light", "last")
    assert train.build_config(train.make_parser().parse_args([*args, "--keep", "best"])).keep == "best"
    with pytest.raises(ValueError, match="keep must be one of"):
        train.TrainConfig(keep="first")
    assert train.build_config(train.make_parser().parse_args([*args, "--init", "local"])).augment == "heavy"
    assert train.build_config(train.make_parser().parse_args([*args, "--augment", "light"])).augment == "light"
    assert train.build_config(train.make_parser().parse_args([*args, "--no-augment"])).augment == "none"
    assert train.TrainConfig(augment=False).augment == "none" and train.TrainConfig(augment=True).augment == "light"
    # the CPU preset renders fresh images and trains on them clean; a folder of them is augmented
    synthetic = ["--preset", "cpu", "--device", "cpu"]
    assert train.build_config(train.make_parser().parse_args(synthetic)).augment == "none"
    assert train.build_config(train.make_parser().parse_args([*synthetic, "--train-dir", "x"])).augment == "light"
    assert train.build_config(train.make_parser().parse_args([*synthetic, "--augment", "light"])).augment == "light"
    assert train.build_config(train.make_parser().parse_args(["--preset", "gpu"])).augment == "light"
    with pytest.raises(ValueError, match="augment must be one of"):
        train.TrainConfig(augment="strong")
    by_epochs = train.build_config(train.make_parser().parse_args([*args, "--epochs", "3"]))
    assert by_epochs.min_steps is None and by_epochs.keep == "best"


def test_keep_last_keeps_the_final_epoch(tiny_set, tmp_path):
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--train-dir", str(tiny_set), "--val-dir", str(tiny_set), "--test-dir", str(tiny_set),
            "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--out", str(out), "--no-progress",
            "--keep", "last"]
    assert train.main(argv) == 0
    best, last = checkpoint.load(out / "best.pt"), checkpoint.load(out / "last.pt")
    assert best["epoch"] == last["epoch"] == 2
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    test = json.loads((out / "report.json").read_text())["test"]
    last_reads = evaluate.evaluate(checkpoint.load_model(out / "last.pt"), data.load(tiny_set), "cpu", progress=False)
    assert (test["exact"], test["cer"]) == (last_reads["exact"], last_reads["cer"])


def test_case_fold_map():
    fold = evaluate.case_fold_map("aAb0")
    assert fold.tolist() == [0, 1, 1, 3, 4]


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--lr", "-1"], ["--arch", "nope"], ["--preset", "huge"],
                                  ["--val-split", "0.5"], ["--val-split", "x"], ["--bn-images", "-1"]])
def test_train_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_train_config_rejects_bad_bn_images(value):
    with pytest.raises(ValueError, match="bn_images must be an int >= 0"):
        train.TrainConfig(bn_images=value)


@torch.no_grad()
def test_reestimate_batchnorm_matches_a_reference(tiny_set):
    images = data.load(tiny_set).images  # 16 images, 4 batches of 4
    torch.manual_seed(0)
    model = CRNN(ModelConfig(alphabet=data.ALPHABET))
    model.train()
    model(torch.from_numpy(np.array(images[:8])))  # running statistics that are not the answer
    momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    rng = torch.get_rng_state()
    train.reestimate_batchnorm(model, images, "cpu", batch_size=4)
    assert torch.equal(torch.get_rng_state(), rng)  # drew no random numbers: a run's course stays the same
    assert not model.training and [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
    # the first layer's by hand: the mean over the batches of each batch's per-channel
    # mean and unbiased variance of the first convolution's output, in float32
    conv, norm = model.cnn[0], model.cnn[1]
    x = conv(((torch.from_numpy(np.array(images)).float() / 255).unsqueeze(1) - 0.5) / 0.5)
    means = torch.stack([b.mean((0, 2, 3)) for b in x.split(4)]).mean(0)
    variances = torch.stack([b.var((0, 2, 3), unbiased=True) for b in x.split(4)]).mean(0)
    torch.testing.assert_close(norm.running_mean, means, rtol=0.02, atol=0.01)  # bf16 autocast where native
    torch.testing.assert_close(norm.running_var, variances, rtol=0.05, atol=0.01)
    assert norm.num_batches_tracked.item() == 4
    # no BatchNorm (arch seed): nothing to do, and nothing breaks
    seed = CRNN(ModelConfig(alphabet=data.ALPHABET, arch="seed"))
    train.reestimate_batchnorm(seed, images, "cpu")
    assert not seed.training


def test_batchnorm_reestimate_leaves_the_course_of_training_alone(tiny_set, tmp_path):
    """Re-estimating BatchNorm after each epoch changes the saved statistics only: the
    losses are those of a run without it, and the checkpoint's statistics are those of
    the first bn_images training images, un-augmented."""
    runs = {}
    for n in (0, 12):
        out = tmp_path / f"bn{n}"
        train.train(tiny_config(tiny_set, out, epochs=2, augment="light", bn_images=n), progress=False)
        runs[n] = out
    history = lambda out: [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert [h["train_loss"] for h in history(runs[0])] == [h["train_loss"] for h in history(runs[12])]
    kept, plain = checkpoint.load_model(runs[12] / "last.pt"), checkpoint.load_model(runs[0] / "last.pt")
    assert not torch.equal(kept.cnn[1].running_mean, plain.cnn[1].running_mean)
    train.reestimate_batchnorm(plain, data.load(tiny_set).images[:12], "cpu")
    for a, b in zip(kept.buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_train_cli_rejects_synthetic_style_options_with_a_folder(tmp_path, capsys):
    argv = ["--train-dir", str(tmp_path), "--renderer", "plain", "--fonts", str(tmp_path), "--device", "cpu"]
    assert train.main(argv) == 2
    assert "--fonts, --renderer: these describe synthetic data" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
    # a run from before the check, which saved such options, still resumes (they are ignored)
    assert train.TrainConfig(train_dir=str(tmp_path), length="4-6", fonts=["x.ttf"]).length == "4-6"


def test_lr_schedule_warms_up_then_decays():
    factor = train.lr_lambda(100, 0.1)
    values = [factor(s) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:])) and values[-1] >= 0.01
    assert not any(math.isnan(v) for v in values)


def test_sigkill_mid_epoch_then_resume(tmp_path):
    """A run killed with SIGKILL keeps every finished epoch; --resume then ends exactly
    where the uninterrupted run ends."""
    folder = str(data.generate(48, 3, tmp_path / "set48", workers=1, progress=False))
    common = dict(train_dir=folder, val_dir=folder, test_dir=folder, batch_size=4, epochs=5)
    killed = tmp_path / "killed"
    argv = [sys.executable, "-m", "crnn_fast.train", "--preset", "tiny", "--train-dir", folder, "--val-dir", folder,
            "--test-dir", folder, "--batch-size", "4", "--epochs", "5", "--lr", "3e-3", "--no-augment",
            "--device", "cpu", "--out", str(killed), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "last.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # during epoch 2
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = checkpoint.load(killed / "last.pt")["epoch"] + 1
    assert 1 <= done < 5

    train.train(tiny_config(folder, killed, **common), resume=True, progress=False)
    whole = tmp_path / "whole"
    train.train(tiny_config(folder, whole, **common), progress=False)
    resumed, uninterrupted = (checkpoint.load(p / "last.pt")["history"] for p in (killed, whole))
    assert [h["epoch"] for h in resumed] == [1, 2, 3, 4, 5]
    assert [h["train_loss"] for h in resumed] == pytest.approx([h["train_loss"] for h in uninterrupted], rel=1e-6)
    assert [h["val"] for h in resumed][-1]["exact"] == uninterrupted[-1]["val"]["exact"]
    lines = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4, 5]  # rewritten from the checkpoint: no epoch lost or repeated


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_evaluate_rejects_bad_batch_size(overfit_run, tiny_set, batch_size):
    model = checkpoint.load_model(overfit_run[0] / "best.pt")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1 or None"):
        evaluate.evaluate(model, data.load(tiny_set), "cpu", batch_size=batch_size, progress=False)


@CUDA
def test_ctc_loss_on_the_gpu_matches_the_cpu():
    """The loss and gradient training computes on the GPU equal the CPU's (cuDNN's CTC
    gradient did not, which is why ctc_loss_args keeps torch off it)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 37, 63, generator=g)
    lengths = torch.tensor([5, 5, 4, 3, 5, 1, 5, 2], dtype=torch.int32)
    targets = torch.randint(1, 63, (8, 5), generator=g, dtype=torch.int32)
    targets[torch.arange(5) >= lengths[:, None]] = -1
    results = []
    for device in ("cpu", "cuda"):
        x = logits.detach().to(device).requires_grad_()  # a leaf on each device
        args = train.ctc_loss_args(x.log_softmax(-1), targets, lengths)
        assert train.ctc_backend(*args) == ("native CUDA" if device == "cuda" else "native CPU")
        loss = F.ctc_loss(*args, blank=0, zero_infinity=True)
        loss.backward()
        results.append((loss.detach().cpu(), x.grad.cpu()))
    torch.testing.assert_close(results[1], results[0], rtol=1e-4, atol=1e-5)


@CUDA
def test_trains_on_the_gpu(tiny_set, tmp_path):
    test = train.train(tiny_config(tiny_set, tmp_path, device="cuda", epochs=2), progress=False)
    history = checkpoint.load(tmp_path / "last.pt")["history"]
    assert len(history) == 2 and all(math.isfinite(h["train_loss"]) for h in history)
    assert 0.0 <= test["exact"] <= 1.0


def refuse_tolist(tensor):
    raise AssertionError("tolist reads a tensor on the host")


class NoHostReads(TorchDispatchMode):
    """Fails on the ops through which the host reads a tensor's values (``.item()``,
    ``bool(t)``, boolean-mask indexing, ``nonzero``): on a GPU each one waits for the
    device. On the CPU they cost nothing, but the same code runs on both. ``tolist``
    reads without dispatching, so it is replaced while the mode is on."""

    READS = {torch.ops.aten._local_scalar_dense, torch.ops.aten.nonzero, torch.ops.aten.masked_select,
             torch.ops.aten.is_nonzero, torch.ops.aten.equal}
    INDEXING = {torch.ops.aten.index, torch.ops.aten.index_put, torch.ops.aten.index_put_}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        masks = func.overloadpacket in self.INDEXING and any(
            i is not None and i.dtype in (torch.bool, torch.uint8) for i in args[1])
        if func.overloadpacket in self.READS or masks:
            raise AssertionError(f"{func} reads a tensor on the host")
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self.tolist = torch.Tensor.tolist
        torch.Tensor.tolist = refuse_tolist
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist = self.tolist
        return super().__exit__(*exc)


@pytest.mark.parametrize("read", [lambda t: t.sum().item(), lambda t: t[t > 0], lambda t: bool(t.any()),
                                  lambda t: t.nonzero(), lambda t: t.tolist()])
def test_no_host_reads_catches_reads(read):
    with pytest.raises(AssertionError, match="reads a tensor on the host"), NoHostReads():
        read(torch.ones(2))


def step_inputs(batch=4):
    g = torch.Generator().manual_seed(0)
    model = CRNN(ModelConfig(alphabet=data.ALPHABET))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    images = torch.rand(batch, 40, 150, generator=g)
    targets = torch.randint(1, 63, (batch, 5), generator=g)
    lengths = torch.tensor([5, 4, 3, 1][:batch])
    targets[torch.arange(5) >= lengths[:, None]] = -1
    return model, optimizer, images, targets, lengths


def test_train_step_never_reads_the_device_and_skips_non_finite_steps():
    model, optimizer, images, targets, lengths = step_inputs()
    with NoHostReads():
        loss, skipped = train.train_step(model, optimizer, images, targets, lengths, clip=5.0)
    assert math.isfinite(loss.item()) and skipped.item() == 0.0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in optimizer.state[next(model.parameters())].items()}
    bad = images.clone()
    bad[1, 3, 7] = float("nan")  # one pixel makes the loss and every gradient NaN
    with NoHostReads():
        loss, skipped = train.train_step(model, optimizer, bad, targets, lengths, clip=5.0)
    assert math.isnan(loss.item()) and skipped.item() == 1.0
    after = model.state_dict()
    for name, value in before.items():
        if "running" not in name and "num_batches" not in name:  # BatchNorm statistics move in any forward
            torch.testing.assert_close(after[name], value, rtol=0, atol=0, msg=f"{name} changed in a skipped step")
    for key, value in optimizer.state[next(model.parameters())].items():
        torch.testing.assert_close(value, moments[key], rtol=0, atol=0, msg=f"optimizer state {key} changed")
    loss, skipped = train.train_step(model, optimizer, images, targets, lengths, clip=5.0)
    assert skipped.item() == 0.0 and optimizer.state[next(model.parameters())]["step"].item() == 2


def test_padded_targets_give_the_flat_targets_loss():
    """ctc_loss_args's padded (B, L) targets give the loss of the concatenated targets
    that a boolean-mask gather would make."""
    _, _, _, targets, lengths = step_inputs()
    log_probs = torch.randn(4, 37, 63, generator=torch.Generator().manual_seed(1)).log_softmax(-1)
    args = train.ctc_loss_args(log_probs, targets, lengths)
    flat = targets[targets > 0]
    expected = F.ctc_loss(log_probs.transpose(0, 1), flat, args[2], lengths, reduction="none")
    torch.testing.assert_close(F.ctc_loss(*args, reduction="none"), expected)
