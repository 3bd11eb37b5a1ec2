"""Data sources: every source loads what it says, splits and standardises honestly, reads real files, and refuses
with a message that names the fix."""
from __future__ import annotations

import collections
import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import engine
import engine.data as data
from engine.data import DataBundle, DataParamError, augment_batch, check_fit, load_data
from engine.errors import DataError, ParamError, SpecError
from engine.templates import load_template

ROOT = Path(__file__).resolve().parents[2]


def load(source: str, params: dict | None = None, **split) -> DataBundle:
    settings: dict = {"source": source, "params": params or {}}
    if split:
        settings["split"] = split
    return load_data(settings)


def all_x(b: DataBundle) -> np.ndarray:
    """The samples back in their original order."""
    x = np.empty((b.num_samples,) + b.train.x.shape[1:], dtype=b.train.x.dtype)
    for s in (b.train, b.val, b.test):
        x[s.indices] = s.x
    return x


# ----------------------------------------------------------------------------------------------------
# The catalogue

def test_importing_the_data_engine_loads_neither_torch_nor_sklearn_nor_pillow():
    code = ("import sys, engine.data\n"
            "engine.data.sources(); engine.data.normalize_settings({'source': 'digits'})\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sklearn', 'PIL', 'PySide6'}))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


EXPECTED = ["digits", "iris", "wine", "breast_cancer", "diabetes", "spirals", "moons", "circles", "xor", "line",
            "shapes", "signals", "sentiment", "csv", "npz", "idx", "image_folder", "text"]


def test_sources_are_listed_with_explanations():
    specs = data.sources()
    assert [s.type for s in specs] == EXPECTED
    for spec in specs:
        assert spec.category in ("bundled", "generated", "file")
        assert spec.summary and len(spec.doc) > 80 and spec.gives
        text = spec.explain()
        assert text.startswith(f"{spec.type} — {spec.summary}") and spec.doc in text
        for p in spec.params:
            assert p.doc and f"  {p.name} (default" in text
        if spec.category != "file":
            assert data.default_settings(spec.type)["params"] == spec.defaults()
    assert data.get_source("Breast-Cancer") is data.get_source("breast_cancer")
    assert {s.type for s in specs if s.image} == {"digits", "shapes", "idx", "image_folder"}


def test_settings_are_completed_with_defaults():
    s = data.normalize_settings({"source": "DIGITS", "params": {"size": 8}})
    assert s == {"source": "digits", "params": {"size": 8, "flatten": False, "target": "label"},
                 "split": {"val": 0.15, "test": 0.15, "seed": 0, "stratify": True},
                 "augment": {"flip": False, "shift": 0, "rotate": 0.0}}
    assert json.loads(json.dumps(s)) == s  # plain data for the project file


# ----------------------------------------------------------------------------------------------------
# Every bundled and generated source

CASES = [
    # source, params, sample shape, dtype, task, classes, target shape
    ("digits", {}, (1, 28, 28), "float32", "classification", 10, ()),
    ("digits", {"size": 8}, (1, 8, 8), "float32", "classification", 10, ()),
    ("digits", {"flatten": True}, (784,), "float32", "classification", 10, ()),
    ("digits", {"size": 8, "flatten": True}, (64,), "float32", "classification", 10, ()),
    ("digits", {"target": "input"}, (1, 28, 28), "float32", "reconstruction", None, (1, 28, 28)),
    ("iris", {}, (4,), "float32", "classification", 3, ()),
    ("wine", {}, (13,), "float32", "classification", 3, ()),
    ("breast_cancer", {}, (30,), "float32", "classification", 2, ()),
    ("breast_cancer", {"task": "binary"}, (30,), "float32", "binary", None, (1,)),
    ("diabetes", {}, (10,), "float32", "regression", None, (1,)),
    ("spirals", {}, (2,), "float32", "classification", 2, ()),
    ("moons", {}, (2,), "float32", "classification", 2, ()),
    ("circles", {}, (2,), "float32", "classification", 2, ()),
    ("xor", {}, (2,), "float32", "classification", 2, ()),
    ("line", {}, (1,), "float32", "regression", None, (1,)),
    ("shapes", {"n_samples": 300}, (1, 28, 28), "float32", "classification", 10, ()),
    ("shapes", {"n_samples": 300, "size": 32, "channels": 3}, (3, 32, 32), "float32", "classification", 10, ()),
    ("shapes", {"n_samples": 300, "target": "input"}, (1, 28, 28), "float32", "reconstruction", None, (1, 28, 28)),
    ("signals", {"n_samples": 300}, (50, 4), "float32", "classification", 3, ()),
    ("sentiment", {"n_samples": 300}, (100,), "int64", "binary", None, (1,)),
]


@pytest.mark.parametrize("source,params,shape,dtype,task,classes,target",
                         CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_every_source_loads_with_the_right_shapes(source, params, shape, dtype, task, classes, target):
    b = load(source, params)
    assert (b.sample_shape, b.dtype, b.task, b.num_classes, b.target_shape) == (shape, dtype, task, classes, target)
    assert b.source == source and b.name and b.description
    assert b.settings["source"] == source
    for s in (b.train, b.val, b.test):
        assert s.x.shape == (len(s),) + shape and s.x.dtype == np.dtype(dtype)
        assert s.y.shape == (len(s),) + target and len(s.indices) == len(s)
        if task == "classification":
            assert s.y.dtype == np.int64 and 0 <= s.y.min() and s.y.max() < classes
        else:
            assert s.y.dtype == np.float32
        if dtype == "float32":
            assert np.isfinite(s.x).all()
    if task == "classification":
        assert len(b.class_names) == classes
        assert set(np.unique(b.train.y)) == set(range(classes))  # every class is in training
    if task == "binary":
        assert set(np.unique(b.train.y)) == {0.0, 1.0}
        assert len(b.class_names) == 2
    if task == "reconstruction":
        assert b.train.y is b.train.x and b.class_names is None
    assert len(b.train) > len(b.val) > 0


def test_tables_name_their_features_and_classes():
    iris = load("iris")
    assert iris.feature_names[0] == "sepal length (cm)" and len(iris.feature_names) == 4
    assert iris.class_names == ("setosa", "versicolor", "virginica")
    assert load("breast_cancer").class_names == ("malignant", "benign")
    assert load("spirals").class_names == ("arm 0", "arm 1")
    assert load("signals", {"n_samples": 30}).class_names == ("sine", "square", "sawtooth")
    assert load("shapes", {"n_samples": 30}).class_names[:3] == ("circle", "square", "triangle")


def test_generated_sources_obey_their_params():
    b = load("moons", {"n_samples": 200}, val=0.0, test=0.0)
    assert len(b.train) == 200 and len(b.val) == len(b.test) == 0
    assert b.val.x.shape == (0, 2) and b.val.y.shape == (0,)
    sig = load("signals", {"n_samples": 60, "steps": 20, "channels": 2})
    assert sig.sample_shape == (20, 2)
    line = load("line", {"noise": 0.0, "slope": -3.0, "intercept": 0.5})
    np.testing.assert_allclose(line.train.y, -3.0 * line.train.x + 0.5, atol=1e-5)
    assert -1 <= line.train.x.min() and line.train.x.max() <= 1
    assert line.stats == {}  # nothing standardised: the learnt weight reads as the slope
    circles = load("circles", {"noise": 0.0, "factor": 0.3})
    radius = np.linalg.norm(all_x(circles), axis=1)
    labels = np.concatenate([circles.train.y, circles.val.y, circles.test.y])[
        np.argsort(np.concatenate([circles.train.indices, circles.val.indices, circles.test.indices]))]
    np.testing.assert_allclose(radius[labels == 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(radius[labels == 1], 0.3, atol=1e-5)
    xor = load("xor", {"noise": 0.0})
    assert ((xor.train.x[:, 0] * xor.train.x[:, 1] < 0) == (xor.train.y == 1)).all()
    shapes = load("shapes", {"n_samples": 100, "size": 32, "channels": 3, "noise": 0.0, "flatten": True})
    assert shapes.sample_shape == (3 * 32 * 32,) and 0 <= shapes.train.x.min() and shapes.train.x.max() <= 1


def test_sentiment_is_word_ids_with_padding_and_a_vocabulary():
    b = load("sentiment", {"n_samples": 400, "vocab_size": 500, "length": 60})
    x = np.concatenate([b.train.x, b.val.x, b.test.x])
    assert x.shape[1] == 60 and x.min() >= 0 and x.max() < 500
    assert (x == 1).any()  # words past the vocabulary are 'unknown'
    assert (x[:, 0] == 0).any() and not (x[:, -1] == 0).any()  # padded in front by default
    assert len(b.vocabulary) == 500 and b.vocabulary[:3] == ("<pad>", "<unk>", "not")
    post = load("sentiment", {"n_samples": 400, "vocab_size": 500, "length": 60, "padding": "post"})
    px = np.concatenate([post.train.x, post.val.x, post.test.x])
    assert not (px[:, 0] == 0).any() and (px[:, -1] == 0).any()
    words = [b.vocabulary[i] for i in b.train.x[0] if i > 1]
    assert words and all(isinstance(w, str) for w in words)
    assert 0.3 < b.train.y.mean() < 0.7  # both verdicts


def test_sentiment_needs_word_order_but_word_counts_get_far():
    """A counting rule is fooled by 'not bad'; a rule that reads the negation gets nearly everything."""
    from engine.data.generated import NEGATIONS, NEGATIVE, NEUTRAL, POSITIVE
    b = load("sentiment", {"n_samples": 2000, "label_noise": 0.0})
    first_pos = 2 + len(NEGATIONS) + len(NEUTRAL)
    first_neg, first_fill = first_pos + len(POSITIVE), first_pos + len(POSITIVE) + len(NEGATIVE)
    x, y = b.train.x, b.train.y.ravel()
    polarity = np.where((x >= first_pos) & (x < first_neg), 1, np.where((x >= first_neg) & (x < first_fill), -1, 0))
    negated = np.zeros_like(x, dtype=bool)
    negated[:, 1:] = (x[:, :-1] >= 2) & (x[:, :-1] < 2 + len(NEGATIONS))
    counting = ((polarity.sum(1) > 0) == y).mean()
    reading = (((polarity * np.where(negated, -1, 1)).sum(1) > 0) == y).mean()
    assert 0.6 < counting < 0.92 and reading > 0.95


# ----------------------------------------------------------------------------------------------------
# Digits at 28×28

def test_digits_28_are_the_8x8_digits_enlarged():
    small, big = load("digits", {"size": 8}), load("digits")
    np.testing.assert_array_equal(small.train.indices, big.train.indices)  # same samples, same split
    assert 0.0 <= big.train.x.min() and big.train.x.max() <= 1.0 and big.train.x.max() > 0.99
    assert small.train.x.max() == 1.0 and np.all(small.train.x * 16 == np.round(small.train.x * 16))
    # the enlargement is PyTorch's bilinear interpolation (pixel centres aligned)
    ref = F.interpolate(torch.from_numpy(small.train.x[:50]), size=(28, 28), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(big.train.x[:50], ref.numpy(), atol=1e-5)
    # shrunk back, each image still matches its 8×8 original
    back = F.adaptive_avg_pool2d(torch.from_numpy(big.train.x), 8).numpy().reshape(len(big.train), -1)
    orig = small.train.x.reshape(len(small.train), -1)
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(back, orig)]
    assert min(corr) > 0.85 and np.mean(corr) > 0.95
    # and not just any digit: the original is the closest of all to its own enlargement
    d = ((back[:100, None] - orig[None, :100]) ** 2).sum(-1)
    assert (d.argmin(axis=1) == np.arange(100)).all()


# ----------------------------------------------------------------------------------------------------
# Determinism and splits

@pytest.mark.parametrize("source,params", [("spirals", {}), ("moons", {}), ("circles", {}), ("xor", {}),
                                           ("line", {}), ("shapes", {"n_samples": 200}),
                                           ("signals", {"n_samples": 200}), ("sentiment", {"n_samples": 200})])
def test_same_seed_same_data_other_seed_other_data(source, params):
    a, b = load(source, params), load(source, params)
    for sa, sb in zip((a.train, a.val, a.test), (b.train, b.val, b.test)):
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
        np.testing.assert_array_equal(sa.indices, sb.indices)
    c = load(source, {**params, "seed": 1})
    assert not np.array_equal(all_x(a), all_x(c))
    d = load(source, params, seed=7)  # another split of the same samples
    np.testing.assert_array_equal(all_x(a), all_x(d))
    assert not np.array_equal(a.train.indices, d.train.indices)


@pytest.mark.parametrize("source", ["digits", "wine", "diabetes", "sentiment"])
def test_splits_are_disjoint_and_cover_everything(source):
    b = load(source, {"n_samples": 500} if source == "sentiment" else {}, val=0.2, test=0.1, seed=3)
    idx = [b.train.indices, b.val.indices, b.test.indices]
    n = b.num_samples
    assert sorted(np.concatenate(idx).tolist()) == list(range(n))
    assert len(b.val) == round(0.2 * n) and len(b.test) == round(0.1 * n)
    assert len(b.train) + len(b.val) + len(b.test) == n
    for i in idx:
        assert (np.diff(i) > 0).all()  # sorted, no repeats


def test_classification_splits_are_stratified():
    b = load("digits", {"size": 8}, val=0.2, test=0.2, seed=5)
    n = b.num_samples
    full = np.bincount(np.concatenate([b.train.y, b.val.y, b.test.y]), minlength=10) / n
    for s in (b.val, b.test):  # each class's count is within a sample or two of its share
        assert np.abs(np.bincount(s.y, minlength=10) - full * len(s)).max() <= 2
    off = load("digits", {"size": 8}, val=0.2, test=0.2, seed=5, stratify=False)
    assert not np.array_equal(off.val.indices, b.val.indices)


def test_standardisation_uses_the_training_split_only():
    from sklearn.datasets import load_wine
    raw = load_wine().data
    b = load("wine", val=0.2, test=0.2)
    np.testing.assert_allclose(b.train.x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(b.train.x.std(axis=0), 1.0, atol=1e-4)
    mean, std = raw[b.train.indices].mean(axis=0), raw[b.train.indices].std(axis=0)
    np.testing.assert_allclose(b.stats["x_mean"], mean, rtol=1e-6)
    for s in (b.val, b.test):  # transformed with train's statistics, not their own
        np.testing.assert_allclose(s.x, (raw[s.indices] - mean) / std, rtol=1e-4, atol=1e-5)
        assert np.abs(s.x.mean(axis=0)).max() > 0.01
    unscaled = load("wine", {"standardize": False})
    np.testing.assert_allclose(unscaled.train.x, raw[unscaled.train.indices], rtol=1e-6)


def test_diabetes_target_is_standardised_on_train_and_can_be_turned_back():
    from sklearn.datasets import load_diabetes
    raw_y = load_diabetes().target
    b = load("diabetes")
    assert abs(b.train.y.mean()) < 1e-5 and abs(b.train.y.std() - 1) < 1e-4
    back = b.test.y * b.stats["y_std"] + b.stats["y_mean"]
    np.testing.assert_allclose(back.ravel(), raw_y[b.test.indices], rtol=1e-5)
    raw = load("diabetes", {"standardize_target": False})
    np.testing.assert_allclose(raw.train.y.ravel(), raw_y[raw.train.indices], rtol=1e-6)
    assert "y_mean" not in raw.stats


# ----------------------------------------------------------------------------------------------------
# CSV

CSV = """age,colour,income,bought
34,red,52000,yes
29,blue,48000,no
41,green,61000,yes
25,red,39000,no
38,blue,57000,yes
52,green,75000,yes
23,red,31000,no
47,blue,66000,no
31,green,45000,yes
36,red,50000,no
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_reads_a_header_categories_and_a_target(tmp_path):
    path = write(tmp_path / "shop.csv", CSV)
    b = load_data({"source": "csv", "params": {"path": str(path), "target": "bought"},
                   "split": {"val": 0.2, "test": 0.2}})
    assert b.task == "binary" and b.class_names == ("no", "yes") and b.target_shape == (1,)
    assert b.feature_names == ("age", "colour=blue", "colour=green", "colour=red", "income")
    assert b.sample_shape == (5,) and b.num_samples == 10
    x = all_x(b)
    onehot = x[:, 1:4]
    assert set(np.unique(onehot)) == {0.0, 1.0} and (onehot.sum(axis=1) == 1).all()  # one-hot is not rescaled
    assert onehot[0].tolist() == [0, 0, 1]  # line 2: red
    ages = np.array([34, 29, 41, 25, 38, 52, 23, 47, 31, 36], dtype=float)
    train_ages = ages[b.train.indices]
    np.testing.assert_allclose(x[:, 0], (ages - train_ages.mean()) / train_ages.std(), rtol=1e-5)
    y = np.concatenate([b.train.y, b.val.y, b.test.y])[np.argsort(np.concatenate(
        [b.train.indices, b.val.indices, b.test.indices]))]
    assert y.ravel().tolist() == [1, 0, 1, 0, 1, 1, 0, 0, 1, 0]
    # by position, as classification, with categories as indices
    c = load_data({"source": "csv", "params": {"path": str(path), "target": 3, "task": "classification",
                                               "categorical": "index", "standardize": False}})
    assert c.task == "classification" and c.num_classes == 2 and c.feature_names == ("age", "colour", "income")
    assert all_x(c)[:3].tolist() == [[34, 2, 52000], [29, 0, 48000], [41, 1, 61000]]
    # a numeric target with many values is regression; relative paths start at base_dir
    r = load_data({"source": "csv", "params": {"path": "shop.csv", "target": "income", "ignore": "bought",
                                               "standardize_target": False}}, base_dir=tmp_path)
    assert r.task == "regression" and r.feature_names == ("age", "colour=blue", "colour=green", "colour=red")
    assert sorted(np.concatenate([r.train.y, r.val.y, r.test.y]).ravel().tolist())[0] == 31000


def test_csv_without_header_and_with_semicolons(tmp_path):
    path = write(tmp_path / "plain.csv", "".join(f"{i};{i * 0.5};{i % 3}\n" for i in range(30)))
    b = load_data({"source": "csv", "params": {"path": str(path)}})
    assert b.feature_names == ("column 0", "column 1") and b.task == "classification" and b.num_classes == 3
    assert b.num_samples == 30  # the first line is data, not a header


def test_csv_refuses_a_word_in_a_number_column_naming_line_and_column(tmp_path):
    bad = CSV.replace("25,red,39000,no\n", "25,red,39000,no\n\nabc,blue,57000,yes\n").replace(
        "38,blue,57000,yes\n", "")
    path = write(tmp_path / "bad.csv", bad)
    with pytest.raises(DataError, match=r"line 7, column 'age': 'abc' is not a number"):
        load_data({"source": "csv", "params": {"path": str(path), "target": "bought"}})
    empty = write(tmp_path / "empty_cell.csv", CSV.replace("41,green,61000", "41,green,"))
    with pytest.raises(DataError, match=r"line 4, column 'income' is empty"):
        load_data({"source": "csv", "params": {"path": str(empty), "target": "bought"}})
    ragged = write(tmp_path / "ragged.csv", CSV.replace("29,blue,48000,no", "29,blue,48000"))
    with pytest.raises(DataError, match=r"line 3 has 3 values but the header has 4 columns"):
        load_data({"source": "csv", "params": {"path": str(ragged)}})


def test_csv_missing_target_column_lists_the_columns(tmp_path):
    path = write(tmp_path / "shop.csv", CSV)
    with pytest.raises(DataError, match=r"no column 'bougth': did you mean 'bought'\? .*age, colour, income, bought"):
        load_data({"source": "csv", "params": {"path": str(path), "target": "bougth"}})
    with pytest.raises(DataError, match=r"no column at position 9"):
        load_data({"source": "csv", "params": {"path": str(path), "target": 9}})


# ----------------------------------------------------------------------------------------------------
# IDX

def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trips_exact_pixels(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 7, 5), dtype=np.uint8)
    images[0] = 255
    labels = (np.arange(40) % 4).astype(np.uint8)
    opener = gzip.compress if gz else (lambda b: b)
    suffix = ".gz" if gz else ""
    (tmp_path / f"img{suffix}").write_bytes(opener(idx_bytes(images, 0x08)))
    (tmp_path / f"lab{suffix}").write_bytes(opener(idx_bytes(labels, 0x08)))
    b = load_data({"source": "idx", "params": {"images": str(tmp_path / f"img{suffix}"),
                                               "labels": str(tmp_path / f"lab{suffix}")}})
    assert b.sample_shape == (1, 7, 5) and b.num_classes == 4 and b.class_names == ("0", "1", "2", "3")
    x = all_x(b)
    assert x.max() == 1.0 and x.min() >= 0.0
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255).astype(np.uint8), images)
    for s in (b.train, b.val, b.test):
        np.testing.assert_array_equal(s.y, labels[s.indices])
    flat = load_data({"source": "idx", "params": {"images": str(tmp_path / f"img{suffix}"), "target": "input",
                                                  "flatten": True}})
    assert flat.task == "reconstruction" and flat.sample_shape == (35,)


def test_idx_refuses_broken_files(tmp_path):
    images = np.zeros((10, 4, 4), dtype=np.uint8)
    (tmp_path / "img").write_bytes(idx_bytes(images, 0x08))
    (tmp_path / "short").write_bytes(idx_bytes(images, 0x08)[:-3])
    (tmp_path / "lab9").write_bytes(idx_bytes(np.zeros(9, dtype=np.uint8), 0x08))
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="is cut short"):
        load_data({"source": "idx", "params": {"images": str(tmp_path / "short"), "labels": str(tmp_path / "lab9")}})
    with pytest.raises(DataError, match="has 10 images but lab9 has 9 labels"):
        load_data({"source": "idx", "params": {"images": str(tmp_path / "img"), "labels": str(tmp_path / "lab9")}})
    with pytest.raises(DataError, match="is not an IDX file"):
        load_data({"source": "idx", "params": {"images": str(tmp_path / "junk"), "labels": str(tmp_path / "lab9")}})
    with pytest.raises(DataError, match="needs the labels file"):
        load_data({"source": "idx", "params": {"images": str(tmp_path / "img")}})


def test_idx_gzip_that_unpacks_past_the_cap_is_refused(tmp_path, monkeypatch):
    import gzip

    import engine.data.files as files
    monkeypatch.setattr(files, "MAX_UNPACKED", 10_000)  # the real cap is 4 GB: the same check, a small file
    bomb = idx_bytes(np.zeros((200, 28, 28), dtype=np.uint8), 0x08)  # 156 KB of zeros: ~200 bytes gzipped
    (tmp_path / "img.gz").write_bytes(gzip.compress(bomb))
    (tmp_path / "lab").write_bytes(idx_bytes(np.zeros(200, dtype=np.uint8), 0x08))
    with pytest.raises(DataError, match="unpacks to more than"):
        load_data({"source": "idx", "params": {"images": str(tmp_path / "img.gz"), "labels": str(tmp_path / "lab")}})


# ----------------------------------------------------------------------------------------------------
# Image folder

def make_image_folder(root: Path) -> Path:
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (12 + i, 10), rgb).save(root / name / f"{i}.png")
        Image.new("L", (8, 8), 128).save(root / name / "grey.png")  # a grey image among the colour ones
    (root / "red" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root


def test_image_folder_reads_classes_in_grey_and_rgb(tmp_path):
    root = make_image_folder(tmp_path / "colours")
    rgb = load_data({"source": "image_folder", "params": {"path": str(root), "size": 6, "channels": 3},
                     "split": {"val": 0.0, "test": 0.0}})
    assert rgb.class_names == ("blue", "green", "red") and rgb.num_classes == 3
    assert rgb.sample_shape == (3, 6, 6) and rgb.num_samples == 15
    x, y = rgb.train.x, rgb.train.y
    for label, channel in ((0, 2), (1, 1), (2, 0)):
        mine = x[y == label]
        assert len(mine) == 5
        solid = [im for im in mine if im.max() == 1.0]
        assert len(solid) == 4
        for im in solid:
            assert (im[channel] == 1.0).all() and im.sum() == 36.0
        greys = [im for im in mine if im.max() < 1.0]
        np.testing.assert_allclose(greys[0], 128 / 255, rtol=1e-6)
    grey = load_data({"source": "image_folder", "params": {"path": str(root), "size": 28}})
    assert grey.sample_shape == (1, 28, 28) and 0.0 <= grey.train.x.min() and grey.train.x.max() <= 1.0
    pure_red = Image.new("RGB", (1, 1), (255, 0, 0)).convert("L").getpixel((0, 0))  # 76: the eye's weight of red
    reds = grey.train.x[grey.train.y == 2]
    assert np.unique(np.rint(reds * 255)).tolist() == sorted([pure_red, 128])


def test_image_folder_never_follows_links_outside_it(tmp_path):
    root = make_image_folder(tmp_path / "colours")
    outside = tmp_path / "secret"
    outside.mkdir()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(outside / "private.png")
    os.symlink(outside / "private.png", root / "red" / "link.png")
    os.symlink(outside, root / "stolen")
    b = load_data({"source": "image_folder", "params": {"path": str(root), "channels": 3}})
    assert b.class_names == ("blue", "green", "red") and b.num_samples == 15
    assert "outside the folder skipped" in b.description


def test_image_folder_needs_class_folders(tmp_path):
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "one" / "cats" / "a.png")
    with pytest.raises(DataError, match="one sub-folder per class, at least two"):
        load_data({"source": "image_folder", "params": {"path": str(tmp_path / "one")}})
    (tmp_path / "one" / "dogs").mkdir()
    with pytest.raises(DataError, match="'dogs' .* has no images"):
        load_data({"source": "image_folder", "params": {"path": str(tmp_path / "one")}})
    (tmp_path / "one" / "dogs" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read the image dogs/b.png"):
        load_data({"source": "image_folder", "params": {"path": str(tmp_path / "one")}})
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_data({"source": "image_folder", "params": {"path": str(tmp_path / "one" / "cats" / "a.png")}})


# ----------------------------------------------------------------------------------------------------
# Text

TEXT = ["pos\tA great film, I loved it!", "neg\tboring and far too long", "pos\tgreat acting, great music",
        "neg\tI hated it. Boring!", "pos\tloved the story", "neg\tthe plot was dull and boring",
        "pos\tjust great", "neg\tdull", "", "pos\tDon't miss it: great fun", "neg\ta boring mess"]


def test_text_becomes_padded_word_ids_with_a_training_vocabulary(tmp_path):
    path = write(tmp_path / "reviews.txt", "\n".join(TEXT) + "\n")
    b = load_data({"source": "text", "params": {"path": str(path), "length": 8, "vocab_size": 12},
                   "split": {"val": 0.2, "test": 0.0}})
    assert b.task == "binary" and b.class_names == ("neg", "pos") and b.dtype == "int64"
    assert b.sample_shape == (8,) and b.num_samples == 10 and len(b.vocabulary) == 12
    assert b.vocabulary[:2] == ("<pad>", "<unk>")
    docs = [line.split("\t")[1] for line in TEXT if line]
    counts = collections.Counter(w for i in b.train.indices for w in data.files.tokenize(docs[i]))
    kept = [counts[w] for w in b.vocabulary[2:]]
    assert all(kept) and kept == sorted(kept, reverse=True)  # the most frequent words of the training split
    assert all(c <= kept[-1] for w, c in counts.items() if w not in b.vocabulary)
    x = all_x(b)
    assert x.max() < 12 and (x == 0).any()
    short = x[7]  # "dull": one word, padded in front
    assert short[:-1].tolist() == [0] * 7 and b.vocabulary[short[-1]] in ("dull", "<unk>")
    assert data.files.tokenize("Don't  STOP, it's 3D!") == ["don't", "stop", "it's", "3d"]
    post = load_data({"source": "text", "params": {"path": str(path), "length": 3, "padding": "post"},
                      "split": {"val": 0.0, "test": 0.0}})
    first = all_x(post)[0]
    assert [post.vocabulary[i] for i in first] == ["a", "great", "film"]  # cut after the first words
    three = write(tmp_path / "three.txt", "a\tx y\nb\ty z\nc\tz x\n" * 5)
    c = load_data({"source": "text", "params": {"path": str(three)}})
    assert c.task == "classification" and c.num_classes == 3 and c.target_shape == ()


def test_text_lines_need_a_label_and_a_tab(tmp_path):
    path = write(tmp_path / "bad.txt", "pos\tgood\nneg bad\n")
    with pytest.raises(DataError, match=r"line 2 has no tab between the label and the text: write each line as "
                                        r"label<TAB>text"):
        load_data({"source": "text", "params": {"path": str(path)}})
    comma = write(tmp_path / "comma.txt", "pos,good\nneg,bad\npos,fine\nneg,awful\n")
    assert load_data({"source": "text", "params": {"path": str(comma), "separator": ","}}).num_samples == 4


# ----------------------------------------------------------------------------------------------------
# NPZ

def test_npz_reads_named_arrays(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 1, 4, 4), dtype=np.uint8)
    labels = np.arange(30) % 3
    np.savez(tmp_path / "set.npz", images=images, labels=labels, class_names=np.array(["a", "b", "c"]))
    b = load_data({"source": "npz", "params": {"path": str(tmp_path / "set.npz"), "x_key": "images",
                                               "y_key": "labels"}})
    assert b.sample_shape == (1, 4, 4) and b.dtype == "float32" and b.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(np.rint(all_x(b) * 255), images)
    with pytest.raises(DataError, match=r"no array 'x': set params.x_key to one of the arrays in it: images, labels, "
                                        r"class_names"):
        load_data({"source": "npz", "params": {"path": str(tmp_path / "set.npz")}})
    np.savez(tmp_path / "reg.npz", x=rng.normal(size=(20, 3)), y=rng.normal(size=20))
    r = load_data({"source": "npz", "params": {"path": str(tmp_path / "reg.npz")}})
    assert r.task == "regression" and r.target_shape == (1,) and r.sample_shape == (3,)
    np.savez(tmp_path / "bin.npz", x=rng.integers(0, 50, size=(20, 6)), y=np.arange(20) % 2)
    t = load_data({"source": "npz", "params": {"path": str(tmp_path / "bin.npz")}})
    assert t.task == "binary" and t.dtype == "int64" and t.target_shape == (1,)
    with pytest.raises(DataError, match="word ids, which cannot be standardised"):
        load_data({"source": "npz", "params": {"path": str(tmp_path / "bin.npz"), "standardize": True}})
    scaled = load_data({"source": "npz", "params": {"path": str(tmp_path / "bin.npz"), "x_dtype": "float32",
                                                    "standardize": True}})
    assert scaled.dtype == "float32" and abs(scaled.train.x.mean()) < 1e-5
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 3, dtype=object), y=np.zeros(3))
    with pytest.raises(DataError, match="cannot be read without running code"):
        load_data({"source": "npz", "params": {"path": str(tmp_path / "obj.npz")}})


# ----------------------------------------------------------------------------------------------------
# Augmentation

def image_batch() -> torch.Tensor:
    return torch.from_numpy(load("shapes", {"n_samples": 64, "channels": 3, "size": 16}).train.x)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augmentation_off_returns_the_batch_itself():
    x = image_batch()
    assert augment_batch(x, {"flip": False, "shift": 0, "rotate": 0.0}, gen()) is x
    assert augment_batch(x, {}, gen()) is x


def test_flip_mirrors_about_half_the_images_exactly():
    x = image_batch()
    out = augment_batch(x, {"flip": True}, gen())
    assert out.shape == x.shape
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(m and not s for s, m in zip(same, mirrored)) < len(x) - 10


def test_shift_moves_whole_pixels_with_zeros_filling_in():
    x = torch.arange(1, 2 * 3 * 5 * 6 + 1, dtype=torch.float32).reshape(2, 3, 5, 6)
    out = augment_batch(x, {"shift": 2}, gen(3))
    for o, i in zip(out, x):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(o, _shifted(i, dy, dx))]
        assert len(found) == 1


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[:, max(-dy, 0):h - max(dy, 0),
                                                                          max(-dx, 0):w - max(dx, 0)]
    return out


def test_augmentation_is_deterministic_with_the_generator_and_keeps_shapes():
    x = image_batch()
    settings = {"flip": True, "shift": 3, "rotate": 15.0}
    before = x.clone()
    a, b = augment_batch(x, settings, gen(1)), augment_batch(x, settings, gen(1))
    c = augment_batch(x, settings, gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    assert torch.equal(x, before)  # the input is not changed in place


def test_rotation_turns_about_the_centre():
    img = torch.zeros(1, 1, 21, 21)
    img[0, 0, 10, 3:18] = 1.0  # a horizontal bar through the centre
    out = augment_batch(img.repeat(8, 1, 1, 1), {"rotate": 30.0}, gen(0))
    assert torch.allclose(out[:, 0, 10, 10], torch.ones(8), atol=1e-5)  # the centre stays
    assert (out.sum(dim=(1, 2, 3)) > 10).all() and not torch.equal(out[0], img[0])
    tiny = augment_batch(img, {"rotate": 1e-6}, gen(0))
    assert torch.allclose(tiny, img, atol=1e-4)


def test_augmentation_refuses_what_is_not_images():
    with pytest.raises(DataError, match=r"batches of images \(N, C, H, W\).*turn flip, shift and rotate off"):
        augment_batch(torch.zeros(4, 10), {"flip": True}, gen())
    with pytest.raises(DataError, match=r"augmentation .* works on images .* iris gives \(4,\) float32"):
        load_data({"source": "iris", "augment": {"shift": 2}})
    with pytest.raises(DataError, match="set flatten off"):
        load_data({"source": "digits", "params": {"flatten": True}, "augment": {"rotate": 5}})
    with pytest.raises(ParamError, match="shift"):
        augment_batch(torch.zeros(1, 1, 4, 4), {"shift": -1}, gen())


# ----------------------------------------------------------------------------------------------------
# Mistakes are refused with their fix

def test_unknown_source_suggests_the_nearest():
    with pytest.raises(DataError, match=r"no data source 'digts'; did you mean digits .*The data sources are: "
                                        r"digits, iris"):
        load_data({"source": "digts"})
    with pytest.raises(DataError, match="no data chosen"):
        load_data(None)  # type: ignore[arg-type]


def test_unknown_and_bad_params_are_data_and_param_errors():
    with pytest.raises(DataParamError, match=r"digits has no parameter 'sise'; its parameters are: size") as e:
        load_data({"source": "digits", "params": {"sise": 28}})
    assert isinstance(e.value, DataError) and isinstance(e.value, ParamError) and e.value.param == "sise"
    with pytest.raises(DataParamError, match="must be 8 or 28"):
        load_data({"source": "digits", "params": {"size": 16}})
    with pytest.raises(DataParamError, match="channels .* must be 1 .* or 3"):
        load_data({"source": "shapes", "params": {"channels": 2}})
    with pytest.raises(DataParamError, match="leaves nothing to train on"):
        load_data({"source": "iris", "split": {"val": 0.5, "test": 0.5}})
    with pytest.raises(DataParamError, match="no key 'spilt': did you mean split"):
        load_data({"source": "iris", "spilt": {}})


def test_missing_files_are_named(tmp_path):
    for source, key in (("csv", "path"), ("npz", "path"), ("text", "path"), ("idx", "images")):
        with pytest.raises(DataError, match=rf"no such file: .*nothing\.dat \(params\.{key}\)"):
            load_data({"source": source, "params": {key: str(tmp_path / "nothing.dat")}})
        with pytest.raises(DataError, match=rf"{source} needs a file: set params\.{key}"):
            load_data({"source": source})
    with pytest.raises(DataError, match="no such folder"):
        load_data({"source": "image_folder", "params": {"path": str(tmp_path / "none")}})


def test_check_fit_names_the_fix():
    digits = load("digits")
    check_fit(digits, (1, 28, 28), "float32", (10,), "CrossEntropy")
    with pytest.raises(DataError, match=r"^Input expects \(1, 28, 28\) but the data gives \(784,\): set the Input "
                                        r"shape to \(784,\) or add a Reshape"):
        check_fit(load("digits", {"flatten": True}), (1, 28, 28), "float32", (10,), "CrossEntropy")
    with pytest.raises(DataError, match=r"gives \(1, 8, 8\).*or set the digits' size to 28 with flatten off"):
        check_fit(load("digits", {"size": 8}), (1, 28, 28), "float32", None, None)
    with pytest.raises(DataError, match=r"^10 classes but the last layer gives 3: set out_features to 10$"):
        check_fit(digits, (1, 28, 28), "float32", (3,), "CrossEntropy")
    with pytest.raises(DataError, match="Input expects int64 word ids but the data gives float32"):
        check_fit(digits, (1, 28, 28), "int64", (10,), "CrossEntropy")
    sentiment = load("sentiment", {"n_samples": 100})
    check_fit(sentiment, (100,), "int64", (1,), "BCE")
    with pytest.raises(DataError, match="data gives int64 word ids but the Input expects float32 numbers: set the "
                                        "Input dtype to int64"):
        check_fit(sentiment, (100,), "float32", (1,), "BCE")
    with pytest.raises(DataError, match=r"set the Input shape to \(100,\), or set the data's length to 80"):
        check_fit(sentiment, (80,), "int64", (1,), "BCE")
    with pytest.raises(DataError, match="CrossEntropy needs classification data .* binary .* use BCEWithLogits"):
        check_fit(sentiment, (100,), "int64", (2,), "CrossEntropy")
    line = load("line")
    check_fit(line, (1,), "float32", (1,), "MSE")
    with pytest.raises(DataError, match="NLL needs classification data .* regression .* use MSE, L1 or Huber"):
        check_fit(line, (1,), "float32", (1,), "NLL")
    with pytest.raises(DataError, match=r"Huber needs targets of the output's shape.*\(1,\).*\(4,\): set "
                                        r"out_features to 1"):
        check_fit(line, (1,), "float32", (4,), "Huber")
    with pytest.raises(DataError, match="BCE needs binary 0/1 targets .* go from"):
        check_fit(line, (1,), "float32", (1,), "BCE")
    with pytest.raises(DataError, match="MSE needs number targets .* class indices .* use CrossEntropy"):
        check_fit(digits, (1, 28, 28), "float32", (10,), "MSE")
    cancer = load("breast_cancer")
    with pytest.raises(DataError, match="BCEWithLogits needs binary 0/1 targets of the output's shape.*set the "
                                        "data's task to binary"):
        check_fit(cancer, (30,), "float32", (1,), "BCEWithLogits")
    with pytest.raises(DataError, match=r"binary 0/1 targets of the output's shape.*\(1,\).*\(2,\)"):
        check_fit(load("breast_cancer", {"task": "binary"}), (30,), "float32", (2,), "BCEWithLogits")
    with pytest.raises(SpecError):
        check_fit(line, (1,), "float32", (1,), "Hinge")
    auto = load("digits", {"target": "input"})
    check_fit(auto, (1, 28, 28), "float32", (1, 28, 28), "BCE")  # pixels in [0, 1] suit BCE after a Sigmoid
    with pytest.raises(DataError, match=r"last layer gives \(1, 14, 14\): change the last layers so that the "
                                        r"output is \(1, 28, 28\)"):
        check_fit(auto, (1, 28, 28), "float32", (1, 14, 14), "MSE")
    assert data.fit_problems(digits, (784,), "int64", (3,), "CrossEntropy") and len(
        data.fit_problems(digits, (784,), "int64", (3,), "CrossEntropy")) == 3


TEMPLATE_DATA = {
    "cnn_mnist": {"source": "digits"},
    "mlp_mnist_128": {"source": "digits"},
    "residual_block": {"source": "digits"},
    "mlp_784_64_10": {"source": "digits", "params": {"flatten": True}},
    "cnn_cifar": {"source": "shapes", "params": {"size": 32, "channels": 3, "n_samples": 100}},
    "conv_autoencoder": {"source": "digits", "params": {"target": "input"}},
    "gru_two_branch": {"source": "signals", "params": {"n_samples": 100}},
    "linear_regression": {"source": "line"},
    "lstm_sentiment": {"source": "sentiment", "params": {"n_samples": 100}},
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_DATA))
def test_every_template_has_data_that_fits_it(name):
    project = load_template(name)
    analysis = engine.analyze(project.graph)
    (inp,) = project.graph.input_nodes()
    (sink,) = project.graph.sink_nodes()
    bundle = load_data(project.data or TEMPLATE_DATA[name])  # the template's own data section, once it has one
    node = project.graph.node(inp)
    check_fit(bundle, node.params["shape"], node.params["dtype"], analysis.nodes[sink].shape,
              project.loss["type"])
    # and one batch goes through the real model and its loss
    model = engine.build_model(project.graph, seed=0)
    from engine.losses import get_loss
    loss_spec = get_loss(project.loss["type"])
    loss = loss_spec.build(loss_spec.validate_params(project.loss.get("params", {})))
    x, y = torch.from_numpy(bundle.train.x[:4]), torch.from_numpy(bundle.train.y[:4])
    assert torch.isfinite(loss(model(x), y))
