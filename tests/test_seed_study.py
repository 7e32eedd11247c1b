"""benchmarks/seed_study.py: runs one recipe per seed, summarises, resumes; tiny CPU runs."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import seed_study  # noqa: E402


def study_args(tiny_set, tmp_path, *extra, seeds=("0", "1")):
    return ["--seeds", *seeds, "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"), *extra,
            "--", "--preset", "tiny", "--train-dir", tiny_set, "--val-dir", tiny_set, "--test-dir", tiny_set,
            "--device", "cpu", "--epochs", "2", "--batch-size", "8"]


def test_each_seed_runs_and_the_table_summarises_their_reports(tiny_set, tmp_path, capsys):
    args = study_args(tiny_set, tmp_path)
    assert seed_study.main(args) == 0
    out = tmp_path / "out"
    result = json.loads((out / "seed-study.json").read_text())
    assert [(r["arch"], r["seed"]) for r in result["runs"]] == [("default", 0), ("default", 1)]
    weights = []
    for row in result["runs"]:
        report = json.loads((out / f"default-seed{row['seed']}" / "report.json").read_text())
        assert report["train_config"]["seed"] == row["seed"] and len(report["history"]) == 2
        assert {k: row[k] for k in seed_study.METRICS} == {k: report["test"][k] for k in seed_study.METRICS}
        assert row["wall_s"] > 0
        weights.append(torch.load(out / f"default-seed{row['seed']}" / "last.pt", weights_only=False)["model"])
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the seeds differ
    exact = [r["exact"] for r in result["runs"]]
    assert result["default"]["exact"] == {"mean": sum(exact) / 2, "min": min(exact), "max": max(exact)}
    table = capsys.readouterr().out
    assert "| --arch default, seed 1 |" in table and "| --arch default, max |" in table

    # Run again: finished runs are read, not rerun; a run without its report resumes.
    finished = (out / "default-seed0" / "report.json").stat().st_mtime_ns
    (out / "default-seed1" / "report.json").unlink()
    assert seed_study.main(args) == 0
    assert (out / "default-seed0" / "report.json").stat().st_mtime_ns == finished
    rows = json.loads((out / "seed-study.json").read_text())["runs"]
    assert rows[0]["wall_s"] is None and rows[1]["wall_s"] is None  # read, and resumed
    assert len((out / "default-seed1" / "metrics.jsonl").read_text().splitlines()) == 2  # not trained again


def test_the_reference_architecture_runs_with_the_first_seed(tiny_set, tmp_path):
    assert seed_study.main(study_args(tiny_set, tmp_path, "--arch-seed", seeds=("2",))) == 0
    result = json.loads((tmp_path / "out" / "seed-study.json").read_text())
    assert [(r["arch"], r["seed"]) for r in result["runs"]] == [("default", 2), ("seed", 2)]
    report = json.loads((tmp_path / "out" / "seed-seed2" / "report.json").read_text())
    assert report["model_config"]["arch"] == "seed"
    assert result["default"]["exact"]["min"] == result["runs"][0]["exact"]  # the summary is the default's alone


def test_only_the_synthetic_splits_the_runs_read_are_rendered_first(tiny_set, tmp_path):
    """With --train-dir alone the runs hold validation and test out of the folder: no
    synthetic split is rendered for them (the tiny preset would render 16 images each)."""
    args = ["--seeds", "0", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"), "--",
            "--preset", "tiny", "--train-dir", tiny_set, "--device", "cpu", "--epochs", "1", "--batch-size", "8"]
    assert seed_study.main(args) == 0
    data_dir = tmp_path / "data"
    assert not data_dir.exists() or not list(data_dir.glob("*-seed*")), list(data_dir.iterdir())


@pytest.mark.parametrize("study, train_args, message", [
    (["--seeds", "0", "0"], [], "--seeds must be distinct"),
    (["--seeds", "-1"], [], "--seeds must be distinct non-negative"),
    ([], ["--seed", "3"], "--seed is set by the study"),
    ([], ["--out=x"], "--out is set by the study"),
    ([], ["--epochs", "0"], "training arguments after -- were refused"),
    ([], ["--train-dir", "x", "--length", "4"], "--length"),
])
def test_bad_arguments_are_refused_before_any_run(tmp_path, capsys, study, train_args, message):
    with pytest.raises(SystemExit) as exit_info:
        seed_study.main([*study, "--out", str(tmp_path / "out"), "--", *train_args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
