"""python -m crnn_fast.export --onnx: onnxruntime reads the graph as PyTorch does, and
the README's numpy/Pillow/onnxruntime reader reads images as predict does."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crnn_fast
from crnn_fast import checkpoint, data, export, predict

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

README = Path(__file__).parent.parent / "README.md"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert export.main(["--onnx", str(path)]) == 0
    return path


def test_onnx_log_probs_equal_pytorch(exported, tiny_set):
    model = checkpoint.load_model()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta == {"alphabet": data.ALPHABET, "height": "40", "width": "150", "blank": "0"}
    images = data.load(tiny_set).images
    for batch in (1, 3, 16):  # the batch dimension is dynamic
        ours = session.run(None, {"images": np.ascontiguousarray(images[:batch])})[0]
        with torch.no_grad():
            reference = model(torch.tensor(images[:batch])).numpy()  # float32, as exported
        assert ours.shape == reference.shape == (batch, 37, len(data.ALPHABET) + 1)
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-3)


def test_readme_reader_reads_like_predict(exported, tiny_set, tmp_path, monkeypatch):
    block = re.search(r"<!-- onnx-reader.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(exported.parent)  # the snippet opens "model.onnx"
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    dataset = data.load(tiny_set)
    paths = []
    for i in range(16):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(dataset.images[i]).convert("RGB").save(paths[-1])
    model = checkpoint.load_model()
    with torch.no_grad():  # predict's preprocessing and greedy decoding, on the float32 model the graph holds
        tokens, lengths = crnn_fast.ctc_greedy_decode(model(torch.tensor(predict.read_images(paths, 40, 150))))
    expected = ["".join(data.ALPHABET[t - 1] for t in row[:n]) for row, n in zip(tokens.tolist(), lengths.tolist())]
    assert [namespace["read"](p) for p in paths] == expected


def test_export_cli_rejects(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main([])
    assert "nothing to do" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main(["--weights", str(tmp_path / "w.pt")])
    assert "--weights needs --checkpoint" in capsys.readouterr().err
    assert export.main(["--checkpoint", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
