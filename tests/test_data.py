"""Synthetic CAPTCHA caches are reproducible, atomic and memory-mapped; folders of real images load or fail by name."""

import csv
import dataclasses
import gc
import os
import random
import secrets
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import captcha.image
import numpy as np
import pytest
from PIL import Image

from crnn_fast import data

N, SEED = 20, 7


def arrays(ds):
    return ds.images, ds.labels, ds.lengths


def assert_same(a, b):
    for x, y in zip(arrays(a), arrays(b)):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Samples [0, N) of set SEED, rendered in this process."""
    out = data.generate(N, SEED, tmp_path_factory.mktemp("base") / "cache", workers=1, progress=False)
    return data.load(out)


def test_samples_have_the_reference_shape_alphabet_and_length(base):
    assert len(base) == N
    assert base.images.shape == (N, 40, 150) and base.images.dtype == np.uint8
    assert base.labels.shape == (N, 5) and base.labels.dtype == np.int16
    assert base.lengths.dtype == np.int16 and (np.asarray(base.lengths) == 5).all()
    assert base.alphabet == data.ALPHABET and len(data.ALPHABET) == 62
    assert ((np.asarray(base.labels) >= 0) & (np.asarray(base.labels) < 62)).all()
    assert all(len(t) == 5 and set(t) <= set(data.ALPHABET) for t in base.texts())
    assert len(set(base.texts())) == N
    for image in np.asarray(base.images, dtype=np.float64):
        background = np.median(image)  # text is darker than the light background, which covers most pixels
        assert image.std() > 10 and background > 200 and image.min() < background - 50


def test_meta_records_how_the_cache_was_made(tmp_path):
    out = data.generate(3, 5, tmp_path / "c", workers=1, style=data.Style(length=4), progress=False)
    meta = data.cache._read_meta(out)
    assert meta | {"captcha_version": None, "pillow_version": None} == {
        "format_version": data.FORMAT_VERSION, "alphabet": data.ALPHABET, "n": 3, "seed": 5, "start": 0, "stop": 3,
        "length": 4, "height": 40, "width": 150, "font_sizes": [26, 30, 34], "fonts": [],
        "captcha_version": None, "pillow_version": None,
    }
    assert meta["captcha_version"] == captcha.__version__
    assert data.load(out).labels.shape == (3, 4)


def test_label_streams_are_pinned():
    # Depends only on SeedSequence and random.Random, not on captcha: a change here changes every split.
    assert data.styles._render_range(0, 0, 3, data.Style())[0] == ["nvnmh", "VxZMv", "AJ7f4"]
    assert data.styles._render_range(2, 1, 3, data.Style())[0] == ["NnlUS", "HboiI"]


def test_same_seed_gives_identical_arrays(base, tmp_path):
    random.seed(12345)  # the module-level generators must play no part
    again = data.load(data.generate(N, SEED, tmp_path / "again", workers=1, progress=False))
    assert_same(base, again)
    assert captcha.image.secrets is secrets


def test_worker_count_does_not_change_the_data(base, tmp_path):
    parallel = data.load(data.generate(N, SEED, tmp_path / "w2", workers=2, progress=False))
    assert_same(base, parallel)


def test_worker_processes_release_each_chunk_once_yielded():
    # generate() writes each chunk into the cache; holding them all besides would keep a
    # large set in memory whole (12 GB for 2M images)
    from crnn_fast.data.styles import _rendered_chunks

    released = []
    for _, _, images in _rendered_chunks(SEED, [(a, a + 5) for a in range(0, N, 5)], data.Style(), workers=2):
        gc.collect()
        assert all(ref() is None for ref in released)
        released.append(weakref.ref(images))
        del images
    assert len(released) == N // 5


def test_index_ranges_concatenate_to_the_whole(base, tmp_path):
    head = data.load(data.generate(N, SEED, tmp_path / "head", workers=1, progress=False, stop=10))
    tail = data.load(data.generate(N, SEED, tmp_path / "tail", workers=1, progress=False, start=10))
    assert len(head) == len(tail) == 10
    np.testing.assert_array_equal(np.concatenate([head.images, tail.images]), base.images)
    np.testing.assert_array_equal(np.concatenate([head.labels, tail.labels]), base.labels)


def test_different_seeds_differ(base, tmp_path):
    other = data.load(data.generate(N, SEED + 1, tmp_path / "other", workers=1, progress=False))
    assert not set(other.texts()) & set(base.texts())
    assert all(not np.array_equal(a, b) for a, b in zip(other.images, base.images))


def test_load_memory_maps_read_only(base, tmp_path):
    assert all(isinstance(a, np.memmap) and not a.flags.writeable for a in arrays(base))
    out = data.generate(2, 1, tmp_path / "c", workers=1, progress=False)
    in_memory = data.load(out, mmap=False)
    assert not isinstance(in_memory.images, np.memmap)
    assert_same(in_memory, data.load(out))


def test_interrupted_generation_leaves_nothing_loadable(tmp_path, monkeypatch):
    render, calls = data.styles._render_range, []

    def fail_on_second_chunk(seed, start, stop, style):
        calls.append(start)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return render(seed, start, stop, style)

    monkeypatch.setattr(data.styles, "_render_range", fail_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        data.generate(8, 0, tmp_path / "cache", workers=1, progress=False)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []  # neither the cache nor its partial directory
    with pytest.raises(FileNotFoundError, match="no dataset cache at .*cache"):
        data.load(tmp_path / "cache")


def test_cache_without_its_completion_marker_is_refused(tmp_path):
    out = data.generate(2, 0, tmp_path / "cache", workers=1, progress=False)
    (out / "meta.json").unlink()
    with pytest.raises(ValueError, match=r"cache is not a complete dataset cache \(missing meta.json\)"):
        data.load(out)


def test_cache_with_wrong_array_shapes_is_refused(tmp_path):
    out = data.generate(3, 0, tmp_path / "cache", workers=1, progress=False)
    np.save(out / "lengths.npy", np.zeros(2, dtype=np.int16))
    with pytest.raises(ValueError, match=r"lengths.npy has shape \(2,\), meta.json says \(3,\)"):
        data.load(out)


@pytest.mark.parametrize("rival_seed, wins", [(0, True), (1, False)])
def test_losing_the_rename_race(rival_seed, wins, tmp_path, monkeypatch):
    """A process that finds the cache completed by another keeps it if it is the same cache, else fails."""
    rival = data.generate(3, rival_seed, tmp_path / "rival", workers=1, progress=False)
    replace = os.replace

    def finish_rival_first(src, dst):
        shutil.copytree(rival, dst)
        replace(src, dst)

    monkeypatch.setattr(data.cache.os, "replace", finish_rival_first)
    out = tmp_path / "cache"
    if wins:
        assert data.generate(3, 0, out, workers=1, progress=False) == out
    else:
        with pytest.raises(OSError):
            data.generate(3, 0, out, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "rival"]  # no partial directory left
    assert_same(data.load(out), data.load(rival))


def test_synthetic_splits_generate_once_and_ignore_leftovers(tmp_path, monkeypatch):
    assert len(set(data.SPLIT_SEEDS.values())) == len(data.SPLIT_SEEDS)
    killed = tmp_path / ".val-n6-len5-seed1.partial-0123"  # what a killed run leaves behind
    killed.mkdir()
    (killed / "images.npy").write_bytes(b"truncated")
    val = data.synthetic(tmp_path, "val", 6, workers=1, progress=False)
    directory = tmp_path / "val-n6-len5-seed1"
    assert data.cache._read_meta(directory)["seed"] == data.SPLIT_SEEDS["val"] == 1
    assert val.texts() == data.styles._render_range(1, 0, 6, data.Style())[0]

    monkeypatch.setattr(data.cache, "generate", lambda *a, **k: pytest.fail("a complete cache was generated again"))
    assert_same(data.synthetic(tmp_path, "val", 6, progress=False), val)


def test_synthetic_refuses_to_overwrite_an_incomplete_directory(tmp_path):
    junk = tmp_path / "test-n4-len5-seed2"
    junk.mkdir()
    (junk / "images.npy").write_bytes(b"")
    with pytest.raises(FileExistsError, match="test-n4-len5-seed2 already exists"):
        data.synthetic(tmp_path, "test", 4, workers=1, progress=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n=0), ValueError, "n must be >= 1, got 0"),
        (dict(n=2.0), TypeError, "n must be an int, got float"),
        (dict(n=True), TypeError, "n must be an int, got bool"),
        (dict(seed=-1), ValueError, "seed must be >= 0"),
        (dict(seed="0"), TypeError, "seed must be an int, got str"),
        (dict(out_dir=3), TypeError, "out_dir must be a str or os.PathLike"),
        (dict(workers=0), ValueError, "workers must be >= 1"),
        (dict(style="5"), TypeError, "style must be a crnn_fast.data.Style, got str"),
        (dict(progress=1), TypeError, "progress must be a bool"),
        (dict(start=-1), ValueError, "start must be >= 0"),
        (dict(stop=5), ValueError, r"0 <= start < stop <= n = 4, got start=0, stop=5"),
        (dict(start=2, stop=2), ValueError, r"start < stop"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_generate_rejects(kwargs, error, match, tmp_path):
    args = dict(n=4, seed=0, out_dir=tmp_path / "c", workers=1, progress=False) | kwargs
    with pytest.raises(error, match=match):
        data.generate(**args)
    assert not (tmp_path / "c").exists()


def test_generate_refuses_an_existing_directory(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="out_dir .*c already exists"):
        data.generate(2, 0, tmp_path / "c", workers=1, progress=False)
    assert data.load(data.generate(2, 0, tmp_path / "empty-is-fine", workers=1, progress=False)).images.shape[0] == 2


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda p: data.load(p / "nope"), FileNotFoundError, "no dataset cache at .*nope"),
        (lambda p: data.load(p, mmap="r"), TypeError, "mmap must be a bool"),
        (lambda p: data.synthetic(p, "dev", 4), ValueError, r"split must be one of \['test', 'train', 'val'\]"),
        (lambda p: data.synthetic(p, "train", 0), ValueError, "n must be >= 1"),
        (lambda p: data.load_folder(p / "nope"), FileNotFoundError, "no image folder at .*nope"),
        (lambda p: data.load_folder(p, alphabet="abca"), ValueError, "alphabet must not repeat"),
        (lambda p: data.load_folder(p, alphabet=""), ValueError, "alphabet must not be empty"),
        (lambda p: data.load_folder(p, alphabet=list("ab")), TypeError, "alphabet must be a str"),
        (lambda p: data.load_folder(p, height=0), ValueError, "height must be >= 1"),
        (lambda p: data.load_folder(p, skip_bad=None), TypeError, "skip_bad must be a bool"),
        (lambda p: data.CaptchaDataset(np.zeros((2, 4, 4), np.float32), np.zeros((2, 1), np.int16),
                                       np.ones(2, np.int16), "ab"), ValueError, "images must be a .* uint8"),
        (lambda p: data.CaptchaDataset(np.zeros((2, 4, 4), np.uint8), np.zeros((3, 1), np.int16),
                                       np.ones(2, np.int16), "ab"), ValueError, r"labels must be a \(2, Lmax\)"),
    ],
)
def test_other_entry_points_reject(call, error, match, tmp_path):
    with pytest.raises(error, match=match):
        call(tmp_path)


# ---------------------------------------------------------------- folders of real images


def write_assorted(folder):
    """Images of assorted sizes, modes and formats, dark marks on light backgrounds; returns {file name: image}."""
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)

    def pattern(h, w):
        a = np.full((h, w), 230, np.uint8)
        a[h // 3 : 2 * h // 3, w // 4 : 3 * w // 4] = rng.integers(0, 60, (2 * h // 3 - h // 3, 3 * w // 4 - w // 4))
        return a

    rgba = np.zeros((30, 90, 4), np.uint8)  # transparent black background: must come out white
    rgba[10:20, 20:70, 3] = 255
    images = {
        "ab12.png": Image.fromarray(np.stack([pattern(40, 150)] * 3, -1), "RGB"),
        "Zz9.jpg": Image.fromarray(pattern(64, 200), "L"),
        "hello.png": Image.fromarray(rgba, "RGBA"),
        "q.gif": Image.fromarray(pattern(20, 60)).convert("P"),
        "deep16.png": Image.fromarray(pattern(50, 120).astype(np.uint16) * 257),
        "bw.bmp": Image.fromarray(pattern(40, 150)).convert("1"),
        "a1b2c3d4.tiff": Image.fromarray(np.stack([pattern(33, 77)] * 3, -1)).convert("CMYK"),
    }
    for name, image in images.items():
        image.save(folder / name)
    (folder / "notes.txt").write_text("not an image, ignored")
    return images


def test_folder_of_assorted_images_loads_with_stem_labels(tmp_path):
    images = write_assorted(tmp_path / "f")
    assert Image.open(tmp_path / "f" / "deep16.png").mode.startswith("I")
    ds = data.load_folder(tmp_path / "f")
    stems = sorted(name.rsplit(".", 1)[0] for name in images)
    assert ds.texts() == stems and ds.skipped == 0
    assert ds.alphabet == "".join(sorted(set("".join(stems))))
    assert ds.images.shape == (len(images), 40, 150) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (len(images), 8) and list(ds.lengths) == [len(s) for s in stems]
    assert ds.labels[stems.index("q"), 1:].tolist() == [-1] * 7
    for stem, image in zip(stems, ds.images):
        light, dark = image[:5].mean(), image[15:25, 60:90].mean()
        assert light > 200 and dark < 130, (stem, light, dark)  # background stays light, marks dark, in every mode


def test_folder_resizes_to_the_requested_size(tmp_path):
    write_assorted(tmp_path / "f")
    ds = data.load_folder(tmp_path / "f", height=32, width=100)
    assert ds.images.shape == (7, 32, 100)


def test_labels_csv_overrides_stems_and_selects_files(tmp_path):
    folder = tmp_path / "f"
    write_assorted(folder)
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "source"])
        writer.writerows([["Zz9.jpg", "wXy7Q", "scan"], ["ab12.png", "98", "scan"]])
    ds = data.load_folder(folder, alphabet="0123456789wxyQX")
    assert ds.texts() == ["wXy7Q", "98"]
    assert ds.alphabet == "0123456789wxyQX"
    assert ds.labels[1].tolist() == [9, 8, -1, -1, -1]
    np.testing.assert_array_equal(ds.images[1], np.asarray(Image.open(folder / "ab12.png").convert("L")))


def test_labels_csv_needs_its_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("file,text\na.png,abc\n")
    with pytest.raises(ValueError, match="labels.csv must have a header row with columns filename,label"):
        data.load_folder(tmp_path)


def test_unknown_characters_are_named_or_skipped(tmp_path):
    write_assorted(tmp_path)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"  # lower case only: Zz9 has a 'Z'
    with pytest.raises(ValueError, match=r"1 of 7 files .* unusable:\n  Zz9.jpg: label 'Zz9' has characters not "
                                         r"in the alphabet: 'Z'\n\(pass skip_bad=True"):
        data.load_folder(tmp_path, alphabet=alphabet)
    with pytest.warns(UserWarning, match=r"(?s)1 of 7 files .*\n  Zz9.jpg: .*\nskipped them"):
        ds = data.load_folder(tmp_path, alphabet=alphabet, skip_bad=True)
    assert ds.skipped == 1 and len(ds) == 6 and "Zz9" not in ds.texts()
    assert ds.alphabet == alphabet


def test_corrupt_and_missing_files_are_named_or_skipped(tmp_path):
    write_assorted(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.open(tmp_path / "ab12.png").save(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"2 of 9 files .*\n  broken.png: cannot read image .*\n  cut.jpg: cannot"):
        data.load_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"(?s)2 of 9 files .*broken.png.*cut.jpg.*skipped them"):
        ds = data.load_folder(tmp_path, skip_bad=True)
    assert ds.skipped == 2 and "broken" not in ds.texts() and len(ds) == 7

    with open(tmp_path / "labels.csv", "w") as f:
        f.write("filename,label\nab12.png,ab12\nmissing.png,xyz\nq.gif,\n")
    with pytest.raises(ValueError, match=r"2 of 3 files .*\n  missing.png: cannot read image \(FileNotFoundError.*"
                                         r"\n  q.gif: empty label"):
        data.load_folder(tmp_path)


def test_nothing_usable_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        data.load_folder(tmp_path)
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="1 of 1 files .*\n  x.png: cannot read image.*\nno usable images are left"):
        data.load_folder(tmp_path, skip_bad=True)


# ---------------------------------------------------------------- command line


def test_cli_writes_a_cache_equal_to_the_api(base, tmp_path, capsys):
    out = tmp_path / "cli"
    data.main(["--n", "4", "--seed", str(SEED), "--out", str(out), "--workers", "1", "--no-progress"])
    assert f"wrote 4 images to {out}" in capsys.readouterr().out
    cli = data.load(out)
    np.testing.assert_array_equal(cli.images, base.images[:4])
    assert cli.texts() == base.texts()[:4]


def test_cli_as_a_module_with_worker_processes(base, tmp_path):
    out = tmp_path / "shard"
    run = subprocess.run(
        [sys.executable, "-m", "crnn_fast.data", "--n", str(N), "--seed", str(SEED), "--out", str(out),
         "--workers", "2", "--start", "14"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert f"wrote 6 images to {out}" in run.stdout
    assert "6/6" in run.stderr  # the progress bar
    np.testing.assert_array_equal(data.load(out).images, base.images[14:])


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--n", "0", "--seed", "0"], "argument --n/--size: must be an integer >= 1, got '0'"),
        (["--n", "ten", "--seed", "0"], "argument --n/--size: must be an integer >= 1, got 'ten'"),
        (["--n", "3", "--seed", "-2"], "argument --seed: must be an integer >= 0"),
        (["--n", "3", "--seed", "0", "--length", "0"], "length must be >= 1"),
        (["--n", "3", "--seed", "0", "--length", "6-4"], "min <= max"),
        (["--n", "3", "--seed", "0", "--length", "five"], "length must be N or MIN-MAX, got 'five'"),
        (["--n", "3", "--seed", "0", "--alphabet", "aab"], "alphabet must not repeat characters"),
        (["--n", "3", "--seed", "0", "--fonts", "nope.ttf"], "fonts: cannot load nope.ttf"),
        (["--n", "3", "--seed", "0", "--height", "0"], "argument --height: must be an integer >= 1"),
        (["--n", "3", "--seed", "0", "--workers", "0"], "argument --workers: must be an integer >= 1"),
        (["--n", "3", "--seed", "0", "--stop", "9"], r"start < stop <= n = 3, got start=0, stop=9"),
        (["--n", "3"], "the following arguments are required: --seed"),
    ],
)
def test_cli_rejects(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        data.main(argv + ["--out", str(tmp_path / "c"), "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert not (tmp_path / "c").exists()


def test_split_holds_out_disjoint_deterministic_parts(base):
    rest, val, test = data.split(base, 0.1, 2, seed=3)
    assert (len(rest), len(val), len(test)) == (len(base) - 2 * round(0.1 * len(base)),) + (round(0.1 * len(base)),) * 2
    texts = [set(part.texts()) for part in (rest, val, test)]
    assert set().union(*texts) == set(base.texts()) and sum(map(len, texts)) == len(set(base.texts()))
    again = data.split(base, 0.1, 2, seed=3)
    assert all(a.texts() == b.texts() and (a.images == b.images).all() for a, b in zip((rest, val, test), again))
    assert data.split(base, 0.1, 2, seed=4)[1].texts() != val.texts()
    assert val.alphabet == base.alphabet


@pytest.mark.parametrize("fraction, parts, match", [(0.0, 1, "between 0 and 1"), (1.0, 1, "between 0 and 1"),
                                                    (0.45, 3, "too few")])
def test_split_rejects(base, fraction, parts, match):
    with pytest.raises(ValueError, match=match):
        data.split(base, fraction, parts, seed=0)



# ---------------------------------------------------------------- styles

FONT = Path(captcha.image.DEFAULT_FONTS[0])  # a font file that every install has


def test_style_options_render_what_they_say(tmp_path):
    style = data.Style(alphabet="digits", length=(3, 6), height=32, width=100, fonts=(str(FONT),), font_sizes=(20, 24))
    cache = data.load(data.generate(40, 0, tmp_path / "c", style=style, workers=1, progress=False))
    assert cache.images.shape == (40, 32, 100) and cache.alphabet == "0123456789"
    assert cache.labels.shape == (40, 6) and set(np.asarray(cache.lengths)) == {3, 4, 5, 6}
    assert all(t.isdigit() for t in cache.texts())
    meta = data.cache._read_meta(tmp_path / "c")
    assert meta["length"] == [3, 6] and meta["fonts"] == [{"name": FONT.name, "sha256": meta["fonts"][0]["sha256"]}]
    assert meta["font_sizes"] == [20, 24] and (meta["height"], meta["width"]) == (32, 100)


def test_styles_never_share_a_cache(tmp_path):
    default = data.synthetic(tmp_path, "val", 4, workers=1, progress=False)
    digits = data.synthetic(tmp_path, "val", 4, style=data.Style(alphabet="digits"), workers=1, progress=False)
    assert default.alphabet == data.ALPHABET and digits.alphabet == "0123456789"
    other = f"val-n4-{data.Style(alphabet='digits').key()}-seed1"
    names = ["val-n4-len5-seed1", other]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names) and other.startswith("val-n4-len5-")
    assert data.Style(alphabet="alnum", length=(5, 5)) == data.Style() and data.Style().key() == "len5"
    assert data.Style(alphabet="digits").key() != data.Style(alphabet="lower").key()
    assert data.Style(fonts=(str(FONT),)).key() != data.Style().key()
    assert data.Style(fonts=FONT) == data.Style(fonts=[str(FONT)])  # one font may be given alone
    # a cache under a style's name that holds another style is refused, not used
    os.rename(tmp_path / names[1], tmp_path / "swap")
    os.rename(tmp_path / names[0], tmp_path / names[1])
    with pytest.raises(ValueError, match="holds CAPTCHAs of another style"):
        data.synthetic(tmp_path, "val", 4, style=data.Style(alphabet="digits"), workers=1, progress=False)


@pytest.mark.parametrize("renderer", ["plain", "mixed"])
def test_other_renderers_are_reproducible_and_keyed(renderer, tmp_path):
    style = data.Style(alphabet="digits", length=(3, 9), height=32, width=90, fonts=(str(FONT),), font_sizes=(24, 40),
                       renderer=renderer)
    a = data.load(data.generate(30, 0, tmp_path / "a", style=style, workers=1, progress=False))
    b = data.load(data.generate(30, 0, tmp_path / "b", style=style, workers=2, progress=False))
    assert_same(a, b)
    assert a.images.shape == (30, 32, 90) and set(np.asarray(a.lengths)) > {3, 9}
    # every image has ink: its darkest pixels well below its median
    images = np.asarray(a.images, dtype=np.int32).reshape(30, -1)
    assert (np.percentile(images, 2, axis=1) < np.median(images, axis=1) - 40).all()
    captcha_style = dataclasses.replace(style, renderer="captcha")
    captcha_made = data.load(data.generate(30, 0, tmp_path / "c", style=captcha_style, workers=1, progress=False))
    assert a.texts() == captcha_made.texts()  # the same labels, drawn another way
    assert not np.array_equal(a.images, captcha_made.images)
    assert style.key() != captcha_style.key() and data.cache._read_meta(tmp_path / "a")["renderer"] == renderer
    assert "renderer" not in data.Style().meta()  # caches made before renderers existed still match
    # a cache of this renderer under the captcha twin's name is refused, not used
    made = data.synthetic(tmp_path / "root", "val", 4, style=style, workers=1, progress=False)
    root = tmp_path / "root"
    os.rename(root / f"val-n4-{style.key()}-seed1", root / f"val-n4-{captcha_style.key()}-seed1")
    with pytest.raises(ValueError, match="holds CAPTCHAs of another style"):
        data.synthetic(tmp_path / "root", "val", 4, style=captcha_style, workers=1, progress=False)
    assert len(made) == 4


@pytest.mark.parametrize("kwargs, match", [(dict(length=(4,)), "int or a \\(min, max\\) pair"),
                                           (dict(renderer="pillow"), "renderer must be one of captcha, plain, mixed"),
                                           (dict(length=0), "length must be >= 1"),
                                           (dict(font_sizes=()), "font_sizes must not be empty"),
                                           (dict(width=0), "width must be >= 1"),
                                           (dict(alphabet=""), "alphabet must not be empty")])
def test_style_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.Style(**kwargs)


def test_cli_style_options(tmp_path, capsys):
    out = tmp_path / "c"
    data.main(["--n", "6", "--seed", "0", "--out", str(out), "--workers", "1", "--no-progress", "--alphabet", "AB12",
               "--length", "2-3", "--width", "80", "--fonts", str(FONT), "--renderer", "plain"])
    cache = data.load(out)
    assert data.cache._read_meta(out)["renderer"] == "plain"
    assert cache.alphabet == "AB12" and cache.images.shape[1:] == (40, 80)
    assert set("".join(cache.texts())) <= set("AB12") and set(np.asarray(cache.lengths)) <= {2, 3}


def test_realstyle_fixture_is_reproducible_and_loads(tmp_path):
    """tests/realstyle.py, the unseen style of the fine-tuning checks, renders the same
    images for the same (seed, index) and loads as a labelled folder."""
    import realstyle

    a, b = realstyle.write(tmp_path / "a", 4, seed=3), realstyle.write(tmp_path / "b", 4, seed=3)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    folder = data.load_folder(tmp_path / "a", alphabet=realstyle.ALPHABET)
    assert len(folder) == 4 and all(len(t) == 5 for t in folder.texts())
    assert folder.texts() != data.load_folder(realstyle.write(tmp_path / "c", 4, seed=4)[0].parent).texts()
