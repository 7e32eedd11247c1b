"""benchmarks/finetune_curve.py --inits: running some curves again keeps the others' results."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import finetune_curve  # noqa: E402


def run(init, images, exact):
    return {"init": init, "images": images, "seed": 0, "exact": exact}


def test_curves_run_again_replace_theirs_and_keep_the_rest():
    old = {"pretrain": {"seconds": 566.0}, "zero_shot": {"local": {"exact": 0.8}, "default": {"exact": 0.0},
                                                        "ddddocr": {"exact": 0.9}},
           "runs": [run("local", 50, 0.87), run("default", 50, 0.15), run("default", 100, 0.34)]}
    new = {"pretrain": {"seconds": None}, "zero_shot": {"default": {"exact": 0.01}, "ddddocr": None},
           "runs": [run("default", 50, 0.2), run("default", 100, 0.4)]}
    merged = finetune_curve.kept_from(old, new, ["default"])
    assert merged["pretrain"] == {"seconds": 566.0}  # not pretrained again: the old record stays
    assert merged["zero_shot"] == {"local": {"exact": 0.8}, "default": {"exact": 0.01}, "ddddocr": {"exact": 0.9}}
    assert sorted((r["init"], r["images"], r["exact"]) for r in merged["runs"]) == [
        ("default", 50, 0.2), ("default", 100, 0.4), ("local", 50, 0.87)]
    assert finetune_curve.kept_from(old, new, ["default", "synthetic"])["pretrain"] == {"seconds": None}
