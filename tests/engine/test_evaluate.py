"""evaluate() against hand-written PyTorch: a trained classifier's confusion matrix, accuracy, confidences and
per-sample losses; binary, regression and reconstruction tasks; the split fallback; weights from a file and
weights that do not fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.graphs import chain

import engine
from engine.data import load_data
from engine.evaluate import evaluate
from engine.export import ExportError
from engine.runner import prepare
from engine.runs import save_weights
from engine.templates import load_template


def moons_project(**split):
    graph = chain([2], ("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 2}))
    return engine.Project(graph=graph, name="moons",
                          data={"source": "moons", "params": {"n_samples": 300, "noise": 0.2},
                                "split": {"val": 0.2, "test": 0.2, **split}},
                          loss={"type": "CrossEntropy", "params": {}},
                          optimizer={"type": "Adam", "params": {"lr": 0.02}},
                          training={"epochs": 4, "batch_size": 16})


@pytest.fixture(scope="module")
def trained():
    project = moons_project()
    run = prepare(project)
    assert run.trainer.fit(run.data).ok
    return project, run.bundle, {k: v.clone() for k, v in run.trainer.module.state_dict().items()}


def reference(project, weights, x):
    model = engine.build_model(project.graph)
    model.load_state_dict(weights)
    model.train(False)
    with torch.no_grad():
        return model(torch.as_tensor(x))


def test_classification_matches_a_hand_written_reference(trained):
    project, bundle, weights = trained
    r = evaluate(project, weights, bundle=bundle)
    x, y = bundle.test.x, torch.as_tensor(bundle.test.y)
    logits = reference(project, weights, x)
    pred = logits.argmax(1)
    confusion = np.zeros((2, 2), dtype=np.int64)
    for t, p in zip(y.tolist(), pred.tolist()):
        confusion[t, p] += 1
    losses = F.cross_entropy(logits, y, reduction="none").numpy()
    assert r["split"] == "test" and r["n"] == len(x) == r["n_total"] and r["task"] == "classification"
    assert r["classes"] == list(bundle.class_names)
    assert r["confusion"].dtype == np.int64 and np.array_equal(r["confusion"], confusion)
    assert r["metrics"]["acc"] == pytest.approx(float((pred == y).float().mean())) and r["metrics"]["acc"] > 0.8
    assert r["metrics"]["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    np.testing.assert_allclose(r["losses"], losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(r["y_true"], y.numpy())
    np.testing.assert_array_equal(r["y_pred"], pred.numpy())
    np.testing.assert_allclose(r["confidence"], torch.softmax(logits, 1).max(1).values.numpy(), rtol=1e-6)
    assert list(r["worst"]) == list(np.argsort(-losses, kind="stable")[:64])
    assert losses[r["worst"][0]] == losses.max()
    assert r["x"].shape == (len(x), 2) and not r["is_image"] and r["reconstructions"] is None


def test_weights_from_a_file_max_samples_and_another_split(trained, tmp_path):
    project, bundle, weights = trained
    save_weights(weights, tmp_path / "final.safetensors")
    r = evaluate(project, str(tmp_path / "final.safetensors"), split="val", bundle=bundle, max_samples=10,
                 batch_size=3)
    logits = reference(project, weights, bundle.val.x[:10])
    assert r["split"] == "val" and r["n"] == 10 and r["n_total"] == len(bundle.val)
    np.testing.assert_array_equal(r["y_pred"], logits.argmax(1).numpy())
    assert r["confusion"].sum() == 10 and len(r["worst"]) == 10


def test_an_empty_test_split_falls_back_to_validation_and_says_so():
    project = moons_project(test=0.0)
    weights = engine.build_model(project.graph, seed=0).state_dict()
    r = evaluate(project.to_dict(), weights)  # a plain project dict works as well
    assert r["split"] == "val" and r["requested_split"] == "test"
    with pytest.raises(engine.DataError, match="no split 'dev'"):
        evaluate(project, weights, split="dev")


def test_weights_that_do_not_fit_name_the_layer(trained):
    project, bundle, weights = trained
    wrong = dict(weights, **{"linear_1.weight": torch.zeros(3, 2)})
    with pytest.raises(ExportError, match=r"linear_1.weight is 3×2 in the weights but 16×2 in the network"):
        evaluate(project, wrong, bundle=bundle)
    with pytest.raises(ExportError, match="there is no weights file"):
        evaluate(project, "/nonexistent/final.safetensors", bundle=bundle)


def test_binary_with_logits():
    graph = chain([30], ("Linear", {"out_features": 1}))
    project = engine.Project(graph=graph, data={"source": "breast_cancer", "params": {"task": "binary"}},
                             loss={"type": "BCEWithLogits", "params": {}})
    weights = engine.build_model(graph, seed=3).state_dict()
    bundle = load_data(project.data)
    r = evaluate(project, weights, bundle=bundle)
    logits = reference(project, weights, bundle.test.x).reshape(-1)
    p = torch.sigmoid(logits)
    truth = torch.as_tensor(bundle.test.y).reshape(-1).long()
    pred = (p > 0.5).long()
    confusion = np.array([[int(((truth == t) & (pred == q)).sum()) for q in (0, 1)] for t in (0, 1)])
    assert r["task"] == "binary" and np.array_equal(r["confusion"], confusion) and len(r["classes"]) == 2
    assert r["metrics"]["acc"] == pytest.approx(float((pred == truth).float().mean()))
    np.testing.assert_allclose(r["confidence"], torch.where(pred == 1, p, 1 - p).numpy(), rtol=1e-6)
    losses = F.binary_cross_entropy_with_logits(logits, truth.float(), reduction="none").numpy()
    np.testing.assert_allclose(r["losses"], losses, rtol=1e-5, atol=1e-6)


def test_regression_figures():
    graph = chain([1], ("Linear", {"out_features": 1}))
    project = engine.Project(graph=graph, data={"source": "line"}, loss={"type": "MSE", "params": {}})
    weights = engine.build_model(graph, seed=1).state_dict()
    bundle = load_data(project.data)
    r = evaluate(project, weights, bundle=bundle)
    out = reference(project, weights, bundle.test.x).numpy()
    y = bundle.test.y
    err = out - y
    assert r["task"] == "regression" and r["confusion"] is None and r["classes"] is None
    assert r["metrics"]["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert r["metrics"]["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-5)
    assert r["metrics"]["r2"] == pytest.approx(1 - (err ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-4)
    assert r["metrics"]["loss"] == pytest.approx((err ** 2).mean(), rel=1e-5)
    np.testing.assert_allclose(r["y_pred"], out, rtol=1e-6)
    np.testing.assert_allclose(r["losses"], (err ** 2).reshape(-1), rtol=1e-5)


def test_reconstruction_gives_outputs_of_the_first_inputs():
    project = load_template("conv_autoencoder")
    weights = engine.build_model(project.graph, seed=0).state_dict()
    r = evaluate(project, weights, max_samples=40)
    bundle = load_data(project.data)
    out = reference(project, weights, bundle.test.x[:40]).numpy()
    assert r["task"] == "reconstruction" and r["is_image"] and r["image_shape"] == (1, 28, 28)
    assert r["x"].shape == (40, 1, 28, 28) and r["x"].dtype == np.float32
    assert r["reconstructions"].shape == (16, 1, 28, 28) and r["y_true"] is None and r["confusion"] is None
    np.testing.assert_allclose(r["reconstructions"], out[:16], rtol=1e-5, atol=1e-6)
    per_sample = ((out - bundle.test.x[:40]) ** 2).reshape(40, -1).mean(1)
    np.testing.assert_allclose(r["losses"], per_sample, rtol=1e-5, atol=1e-7)
    assert r["metrics"]["mae"] == pytest.approx(np.abs(out - bundle.test.x[:40]).mean(), rel=1e-5)


def test_flattened_images_still_say_their_image_shape():
    graph = chain([64], ("Linear", {"out_features": 10}))
    project = engine.Project(graph=graph, data={"source": "digits", "params": {"size": 8, "flatten": True}},
                             loss={"type": "CrossEntropy", "params": {}})
    r = evaluate(project, engine.build_model(graph, seed=0).state_dict(), max_samples=20)
    assert not r["is_image"] and r["image_shape"] == (1, 8, 8) and r["confusion"].shape == (10, 10)
