"""benchmarks/glyph_ambiguity.py renders single glyphs as captcha does and counts what a classifier confuses."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "glyph_ambiguity.py"
sys.path.insert(0, str(SCRIPT.parent))
import glyph_ambiguity  # noqa: E402


def test_glyphs_are_a_function_of_the_seed_and_hold_one_character():
    images, labels = glyph_ambiguity.render_glyphs("O0x", 3, seed=5)
    assert images.shape == (9, glyph_ambiguity.CELL, glyph_ambiguity.CELL) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    again, _ = glyph_ambiguity.render_glyphs("O0x", 3, seed=5)
    other, _ = glyph_ambiguity.render_glyphs("O0x", 3, seed=6)
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    for cell in images:  # dark ink on a light background, away from the cell's border
        ink = cell < cell.max() - 60
        rows, cols = np.nonzero(ink)
        assert len(rows) > 20 and min(rows.min(), cols.min()) > 0 and max(rows.max(), cols.max()) < cell.shape[0] - 1


def test_report_counts_add_up(tmp_path):
    out = tmp_path / "g.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--train-per-class", "3", "--test-per-class", "2",
                           "--epochs", "1", "--out", str(out)], capture_output=True, text=True, check=True)
    result = json.loads(out.read_text())
    assert (result["train_glyphs"], result["test_glyphs"]) == (3 * 62, 2 * 62)
    wrong = sum(c["count"] for c in result["confusions"])
    assert wrong == round(result["error"] * result["test_glyphs"])
    assert abs(np.mean(list(result["per_class_error"].values())) - result["error"]) < 1e-9
    folded = sum(c["count"] for c in result["confusions"] if c["true"].lower() != c["read"].lower())
    assert folded == round(result["error_case_folded"] * result["test_glyphs"])
    assert f"{result['test_glyphs']} test glyphs: error" in done.stdout


def test_rejects_bad_counts(tmp_path):
    for flag in ("--train-per-class", "--epochs", "--batch"):
        done = subprocess.run([sys.executable, str(SCRIPT), flag, "0"], capture_output=True, text=True)
        assert done.returncode == 2 and flag in done.stderr
