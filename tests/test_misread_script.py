"""benchmarks/misread.py counts the misread test images as crnn_fast.evaluate does, and draws them."""

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from crnn_fast import checkpoint, data, evaluate
from crnn_fast.model import CRNN, ModelConfig

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "misread.py"


def test_counts_what_evaluate_counts_and_writes_the_figure(tmp_path):
    n = 60
    # the local model misreads some of the reference task's images; the default model few
    done = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", "local", "--data-dir", str(tmp_path),
                           "--n-test", str(n), "--out", str(tmp_path / "m.png")],
                          capture_output=True, text=True, check=True)
    wrong = int(done.stdout.split()[0])
    metrics = evaluate.evaluate(checkpoint.load_model("local"), data.synthetic(tmp_path, "test", n), "cpu",
                                progress=False)
    assert wrong == round(n * (1 - metrics["exact"])) > 0
    assert (tmp_path / "m.png").stat().st_size > 10_000


def test_rejects_a_bad_count(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--show", "0", "--out", str(tmp_path / "m.png")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--show" in done.stderr


def test_rejects_a_model_of_another_image_size(tmp_path):
    model = CRNN(ModelConfig(alphabet="abc", height=32, width=100))
    checkpoint.save_weights({"model": model.state_dict(), "model_config": asdict(model.config)}, tmp_path / "w.pt")
    done = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(tmp_path / "w.pt"), "--n-test", "4",
                           "--data-dir", str(tmp_path), "--out", str(tmp_path / "m.png")], capture_output=True, text=True)
    assert done.returncode == 2 and "--checkpoint: the images are (40, 150) but the model reads (32, 100)" in done.stderr
    assert not (tmp_path / "m.png").exists()
