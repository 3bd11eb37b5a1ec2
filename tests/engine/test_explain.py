"""Explanations with known answers: image networks whose label depends only on one 4×4 patch (weights set
by hand, and a trained one) must put their saliency, Grad-CAM and integrated-gradients mass there; integrated
gradients add up to f(x) − f(baseline); permutation importance finds the one feature that decides a label, gives a
pure-noise feature nothing and matches the R² drop a linear model predicts; the project-level entry points on real
templates and a CSV file; the model left as it was; the error messages."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.graphs import chain

import engine
from engine.data import load_data
from engine.errors import DataError
from engine.explain import (
    ExplainError,
    colormap,
    explain,
    explain_features,
    explain_sample,
    grad_cam,
    integrated_gradients,
    overlay,
    permutation_importance,
    saliency,
)
from engine.runner import prepare
from engine.runs import save_weights
from engine.templates import load_template

PATCH = np.zeros((12, 12), dtype=bool)
PATCH[:4, 4:8] = True  # 16 of 144 pixels (11 % of the image), top row, second block: a transposed or mirrored
# heat map would miss it


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py


def patch_images(n, rng):
    """Dim noise in [0, 0.3]; label 1 lights the 4×4 patch up to [0.7, 1]."""
    x = rng.uniform(0.0, 0.3, (n, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 2, n)
    x[y == 1, 0] += 0.7 * PATCH
    return x, y


def mass_in_patch(heat):
    assert heat.shape == (12, 12) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    return float(heat[PATCH].sum() / heat.sum())


@pytest.fixture(scope="module")
def hand_built():
    """conv2d_1: channel 0 = bright-pixel detector relu(x − 0.5), channel 1 = the pixel itself; max pool to 6×6;
    conv2d_2 passes both channels on; the head reads only channel 0 over the patch's 2×2 pooled cells:
    logit 1 = 2·Σ − 1, logit 0 = 0. Channel 1 sees the whole image but nothing reads it."""
    g = chain([1, 12, 12], ("Conv2d", {"out_channels": 2, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("MaxPool2d", {"kernel_size": 2}),
              ("Conv2d", {"out_channels": 2, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("Flatten", {}), ("Linear", {"out_features": 2}))
    model = engine.build_model(g, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv2d_1.weight[:, 0, 1, 1] = 1.0
        model.conv2d_1.bias[0] = -0.5
        model.conv2d_2.weight[0, 0, 1, 1] = 1.0
        model.conv2d_2.weight[1, 1, 1, 1] = 1.0
        head = torch.zeros(2, 6, 6)
        head[0, :2, 2:4] = 2.0
        model.linear_1.weight[1] = head.reshape(-1)
        model.linear_1.bias[1] = -1.0
    return model


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained on the patch images until it is right on all of a held-out set."""
    g = chain([1, 12, 12], ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("MaxPool2d", {"kernel_size": 2}), ("Flatten", {}), ("Linear", {"out_features": 2}))
    rng = np.random.default_rng(0)
    x, y = patch_images(1024, rng)
    model = engine.build_model(g, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xv, yv = patch_images(200, rng)
    model.train(False)
    with torch.no_grad():
        acc = float((model(torch.as_tensor(xv)).argmax(1).numpy() == yv).mean())
    assert acc > 0.97
    return model, xv, yv


def test_hand_built_network_every_method_points_at_the_patch(hand_built):
    x, y = patch_images(40, np.random.default_rng(1))
    for i in np.flatnonzero(y == 1)[:2]:
        s = saliency(hand_built, x[i], 1)
        assert s.method == "saliency" and s.predicted == 1 and s.target == 1 and s.task == "classification"
        assert s.probs.shape == (2,) and s.probs.sum() == pytest.approx(1.0) and s.probs[1] > 0.5
        assert s.attributions.shape == (1, 12, 12)
        assert mass_in_patch(s.heat) > 0.99  # only the patch's bright pixels reach the head

        c = grad_cam(hand_built, x[i], 1)
        assert c.layer == "conv2d_2"  # the last convolution, nearest the head
        assert c.attributions.shape == (1, 12, 12)
        # a 6×6 map stretched bilinearly: the patch's 2×2 cells blur a little past its edge
        assert mass_in_patch(c.heat) > 0.6 and PATCH[np.unravel_index(c.heat.argmax(), (12, 12))]
        first = grad_cam(hand_built, x[i], 1, layer="conv2d_1")
        assert first.layer == "conv2d_1" and mass_in_patch(first.heat) > 0.99

        ig = integrated_gradients(hand_built, x[i], 1, n_steps=100)
        assert mass_in_patch(ig.heat) > 0.99
        assert ig.attributions[0][~PATCH].sum() == 0.0


def test_trained_network_is_explained_by_its_patch(trained):
    model, xv, yv = trained
    for i in np.flatnonzero(yv == 1)[:3]:
        ig = integrated_gradients(model, xv[i])  # the predicted class
        assert ig.predicted == 1 and ig.target == 1
        assert mass_in_patch(ig.heat) > 0.6
        s = saliency(model, xv[i])
        assert mass_in_patch(s.heat) > 0.45
        assert mass_in_patch(grad_cam(model, xv[i]).heat) > 0.6


def logit(model, x, target):
    with torch.no_grad():
        return float(model(torch.as_tensor(np.asarray(x, dtype=np.float32))[None])[0, target])


def test_integrated_gradients_add_up_to_the_change_of_the_score(trained):
    model, xv, yv = trained
    i, j = np.flatnonzero(yv == 1)[0], np.flatnonzero(yv == 0)[0]
    for target in (0, 1):
        ig = integrated_gradients(model, xv[i], target, n_steps=100)
        change = logit(model, xv[i], target) - logit(model, np.zeros_like(xv[i]), target)
        assert abs(change) > 0.5
        assert ig.attributions.sum() == pytest.approx(change, rel=0.02, abs=1e-3)
        assert abs(ig.delta) < 0.02 * abs(change) + 1e-3
    # from another image as the baseline: the shares explain the difference between the two
    ig = integrated_gradients(model, xv[i], 1, baseline=xv[j], n_steps=100)
    change = logit(model, xv[i], 1) - logit(model, xv[j], 1)
    assert ig.attributions.sum() == pytest.approx(change, rel=0.02, abs=1e-3)
    assert mass_in_patch(ig.heat) > 0.6


def test_the_model_is_left_as_it_was():
    g = chain([6], ("Linear", {"out_features": 8}), ("ReLU", {}), ("Dropout", {"p": 0.5}),
              ("Linear", {"out_features": 3}))
    model = engine.build_model(g, seed=0)
    model.train(True)
    model.linear_1.train(False)  # one layer frozen in evaluation mode by its user
    marks = {n: torch.full_like(p, 7.0) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = marks[n].clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = np.random.default_rng(0).normal(size=6).astype(np.float32)
    runs = [explain(model, x, method=m, target=2) for m in ("saliency", "integrated_gradients", "saliency")]
    assert model.training and model.dropout_1.training and not model.linear_1.training  # each as it was
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, marks[n]) and torch.equal(p.detach(), before[n])
    # dropout was off while explaining: the same sample gives the same answer
    np.testing.assert_array_equal(runs[0].attributions, runs[2].attributions)
    assert runs[0].heat.shape == (6,) and runs[0].attributions.shape == (6,)
    model.train(False)
    with torch.enable_grad():
        xt = torch.as_tensor(x)[None].requires_grad_(True)
        model(xt)[0, 2].backward()
    np.testing.assert_allclose(runs[0].attributions, xt.grad[0].numpy(), rtol=1e-6)


def test_overlay_and_colormap():
    heat = np.zeros((5, 7), dtype=np.float32)
    heat[0, 0] = 1.0
    grey = np.linspace(-2, 3, 35, dtype=np.float32).reshape(1, 5, 7)
    only_heat = overlay(grey, heat, alpha=1.0)
    assert only_heat.shape == (5, 7, 3) and only_heat.dtype == np.uint8
    assert tuple(only_heat[0, 0]) == (128, 0, 0) and tuple(only_heat[1, 1]) == (0, 0, 128)  # hot red, cold blue
    np.testing.assert_array_equal(only_heat, colormap(heat))
    only_image = overlay(grey, heat, alpha=0.0)
    assert tuple(only_image[0, 0]) == (0, 0, 0) and tuple(only_image[-1, -1]) == (255, 255, 255)
    assert np.all(only_image[..., 0] == only_image[..., 1])
    half = overlay(grey[0], heat)  # (H, W) works too
    assert tuple(half[0, 0]) == (64, 0, 0) and tuple(half[-1, -1]) == (128, 128, 192)  # black + red, white + blue
    rgb = np.zeros((3, 5, 7), dtype=np.float32)
    rgb[1] = 1.0  # a green image stays green: channels first are read as R, G, B
    assert tuple(overlay(rgb, heat, alpha=0.0)[2, 2]) == (0, 255, 0)
    with pytest.raises(ExplainError, match="heat map is"):
        overlay(grey, np.zeros((7, 5)))
    with pytest.raises(ExplainError, match="alpha"):
        overlay(grey, heat, alpha=1.5)


# ----------------------------------------------------------------------------------------------------
# Permutation importance

class Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_permutation_importance_finds_the_deciding_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = (x[:, 2] > 0).astype(np.int64)  # feature 2 alone decides; 0, 1 and 3 are noise
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    xt, yt = torch.as_tensor(x[:400]), torch.as_tensor(y[:400])
    for _ in range(150):
        loss = F.cross_entropy(net(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = Counting(net)
    names = ["a", "b", "decider", "d"]
    rows = permutation_importance(model, x[400:], y[400:], repeats=5, seed=0, feature_names=names, batch_size=4096)
    assert model.calls == 1 + 4  # the unshuffled pass, then one batched pass per feature (all repeats at once)
    assert [r["name"] for r in rows][0] == "decider" and rows[0]["index"] == 2
    assert rows[0]["metric"] == "accuracy" and rows[0]["baseline"] > 0.95
    assert rows[0]["importance"] > 0.35  # a shuffled decider is right about half the time
    for r in rows[1:]:
        assert abs(r["importance"]) < 0.05
    assert rows[0]["importance"] > 8 * max(abs(r["importance"]) for r in rows[1:])
    assert all(r["std"] >= 0 for r in rows)
    # the same seed gives the same figures; the loss metric agrees on the order
    again = permutation_importance(net, x[400:], y[400:], repeats=5, seed=0, feature_names=names)
    assert [(r["name"], r["importance"]) for r in again] == [(r["name"], r["importance"]) for r in rows]
    by_loss = permutation_importance(net, x[400:], y[400:], metric="loss", feature_names=names)
    assert by_loss[0]["name"] == "decider" and by_loss[0]["metric"] == "loss" and by_loss[0]["importance"] > 1.0


def test_permutation_importance_of_a_linear_regression_matches_theory():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)).astype(np.float32)
    w = np.array([3.0, 0.5, 0.0], dtype=np.float32)
    y = (x @ w + 0.1 * rng.normal(size=4000)).astype(np.float32)[:, None]
    net = torch.nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.as_tensor(w)[None])
        net.bias.zero_()
    rows = permutation_importance(net, x, y, repeats=4, seed=1, output="regression")
    by = {r["name"]: r for r in rows}
    var_y = float(y.var())
    # shuffling x_j adds w_j·(x_j' − x_j), of variance 2·w_j², to the error: R² drops by 2·w_j² / var(y)
    assert rows[0]["metric"] == "r2" and rows[0]["baseline"] > 0.99
    assert by["feature 0"]["importance"] == pytest.approx(2 * 9.0 / var_y, rel=0.08)
    assert by["feature 1"]["importance"] == pytest.approx(2 * 0.25 / var_y, rel=0.15)
    assert by["feature 2"]["importance"] == 0.0 and by["feature 2"]["std"] == 0.0
    assert [r["name"] for r in rows] == ["feature 0", "feature 1", "feature 2"]
    mse = {r["name"]: r["importance"] for r in permutation_importance(net, x, y, metric="loss", output="regression")}
    assert mse["feature 0"] == pytest.approx(18.0, rel=0.08) and mse["feature 1"] == pytest.approx(0.5, rel=0.15)


def test_permutation_importance_errors():
    net = torch.nn.Linear(3, 1)
    x, y = np.zeros((10, 3), np.float32), np.zeros((10, 1), np.float32)
    with pytest.raises(ExplainError, match="one name per feature"):
        permutation_importance(net, x, y, feature_names=["a", "b"])
    with pytest.raises(ExplainError, match="use r2 or loss"):
        permutation_importance(net, x, y, metric="accuracy")
    with pytest.raises(DataError, match="one target per sample"):
        permutation_importance(net, x, y[:5])
    with pytest.raises(ExplainError, match="repeats"):
        permutation_importance(net, x, y, repeats=0)
    with pytest.raises(ExplainError, match="unknown metric"):
        permutation_importance(net, x, y, metric="f1")


def tabular_csv(path, n=300):
    rng = np.random.default_rng(0)
    signal, noise_a, noise_b = rng.normal(size=(3, n))
    lines = ["noise_a,signal,noise_b,label"]
    lines += [f"{a:.4f},{s:.4f},{b:.4f},{'yes' if s > 0 else 'no'}" for a, s, b in zip(noise_a, signal, noise_b)]
    path.write_text("\n".join(lines) + "\n")


def test_explain_features_on_a_csv_project_names_the_deciding_column(tmp_path):
    tabular_csv(tmp_path / "table.csv")
    project = engine.Project(graph=chain([3], ("Linear", {"out_features": 8}), ("ReLU", {}),
                                         ("Linear", {"out_features": 1})),
                             data={"source": "csv", "params": {"path": "table.csv"}},
                             loss={"type": "BCEWithLogits", "params": {}},
                             optimizer={"type": "Adam", "params": {"lr": 0.05}},
                             training={"epochs": 15, "batch_size": 32})
    run = prepare(project, base_dir=tmp_path)
    assert run.bundle.task == "binary"
    assert run.trainer.fit(run.data).ok
    weights = {k: v.clone() for k, v in run.trainer.module.state_dict().items()}
    path = save_weights(weights, tmp_path / "w.safetensors")
    rows = explain_features(project, path, base_dir=tmp_path)
    assert [r["name"] for r in rows][0] == "signal"
    assert rows[0]["metric"] == "accuracy" and rows[0]["importance"] > 0.25
    assert all(abs(r["importance"]) < 0.08 for r in rows[1:])
    # a bundle and a split given: the same names; the loss metric uses the project's loss
    test_rows = explain_features(project, weights, run.bundle, "test", metric="loss")
    assert test_rows[0]["name"] == "signal" and {r["name"] for r in test_rows} == {"noise_a", "signal", "noise_b"}
    # a Split alone has no names
    assert {r["name"] for r in explain_features(project, weights, run.bundle.val)} == {
        "feature 0", "feature 1", "feature 2"}


def test_explain_features_takes_iris_names_and_refuses_images():
    project = engine.Project(graph=chain([4], ("Linear", {"out_features": 3})), data={"source": "iris"},
                             loss={"type": "CrossEntropy", "params": {}})
    weights = engine.build_model(project.graph, seed=0).state_dict()
    rows = explain_features(project, weights, repeats=2)
    assert {r["name"] for r in rows} == set(load_data({"source": "iris"}).feature_names)
    assert any("petal" in r["name"] for r in rows)
    mnist = load_template("cnn_mnist")
    with pytest.raises(ExplainError, match="tables of features"):
        explain_features(mnist, engine.build_model(mnist.graph, seed=0).state_dict())


# ----------------------------------------------------------------------------------------------------
# From a project

@pytest.fixture(scope="module")
def mnist():
    project = load_template("cnn_mnist")
    bundle = load_data(project.data)
    return project, engine.build_model(project.graph, seed=0).state_dict(), bundle.test.x[:2]


def test_explain_sample_on_the_cnn_mnist_template(mnist):
    project, weights, xs = mnist
    for method in ("saliency", "gradcam", "integrated_gradients"):
        e = explain_sample(project, weights, xs[0], method=method)
        assert e.heat.shape == (28, 28) and e.heat.dtype == np.float32
        assert e.heat.min() >= 0.0 and e.heat.max() <= 1.0 and e.heat.max() > 0.0
        assert e.attributions.shape == (1, 28, 28)
        assert e.probs.shape == (10,) and e.target == e.predicted == int(e.probs.argmax())
        assert e.layer == ("conv2d_2" if method == "gradcam" else None)
        picture = overlay(xs[0], e.heat)
        assert picture.shape == (28, 28, 3) and picture.dtype == np.uint8
        plain = json.loads(json.dumps(e.to_dict(lists=True)))
        assert plain["method"] == method and len(plain["heat"]) == 28
    e = explain_sample(project, weights, xs[1][None], method="grad-cam", target=3, layer="conv2d_1")
    assert e.target == 3 and e.layer == "conv2d_1" and e.heat.shape == (28, 28)


def test_flattened_images_token_ids_and_sequences():
    mlp = load_template("mlp_784_64_10")
    x = np.random.default_rng(0).random(784).astype(np.float32)
    e = explain_sample(mlp, engine.build_model(mlp.graph, seed=0).state_dict(), x, image_shape=(1, 28, 28))
    assert e.heat.shape == (28, 28) and e.attributions.shape == (784,)

    sentiment = load_template("lstm_sentiment")  # token ids, an Embedding, a Sigmoid output (BCE)
    model = engine.build_model(sentiment.graph, seed=0)
    ids = np.random.default_rng(0).integers(2, 50, 100)
    s = explain_sample(sentiment, model.state_dict(), ids)
    assert s.task == "binary" and s.probs.shape == (2,) and s.heat.shape == (100,) and s.attributions.shape == (100,)
    ig = explain_sample(sentiment, model.state_dict(), ids, method="integrated_gradients", target=1,
                      n_steps=20)
    model.train(False)
    with torch.no_grad():
        change = float(model(torch.as_tensor(ids)[None]) - model(torch.zeros(1, 100, dtype=torch.int64)))
    assert ig.attributions.sum() == pytest.approx(change, rel=0.05, abs=1e-4)
    with pytest.raises(ExplainError, match="has none"):
        explain_sample(sentiment, model.state_dict(), ids, method="gradcam")

    two = load_template("gru_two_branch")  # (steps, features), permuted before a Conv1d over the steps
    seq = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    c = explain_sample(two, engine.build_model(two.graph, seed=0).state_dict(), seq, method="gradcam")
    assert c.layer == "conv1d_1" and c.heat.shape == (50,) and c.attributions.shape == (50, 4)


def test_error_messages(mnist):
    project, weights, xs = mnist
    with pytest.raises(DataError, match=r"shape \(28, 28\).*takes \(1, 28, 28\)"):
        explain_sample(project, weights, xs[0][0])
    with pytest.raises(ExplainError, match="class 10 is out of range.*0 to 9"):
        explain_sample(project, weights, xs[0], target=10)
    with pytest.raises(ExplainError, match="linear_1 is a Linear layer, not a convolution.*conv2d_1, conv2d_2"):
        explain_sample(project, weights, xs[0], method="gradcam", layer="linear_1")
    with pytest.raises(ExplainError, match="no layer 'conv9'"):
        explain_sample(project, weights, xs[0], method="gradcam", layer="conv9")
    with pytest.raises(ExplainError, match="unknown explanation method"):
        explain_sample(project, weights, xs[0], method="lime")
    with pytest.raises(DataError, match="baseline has shape"):
        explain_sample(project, weights, xs[0], method="integrated_gradients", baseline=np.zeros(3))
    mlp = load_template("mlp_mnist_128")
    with pytest.raises(ExplainError, match="Grad-CAM needs a convolution layer.*saliency"):
        explain_sample(mlp, engine.build_model(mlp.graph, seed=0).state_dict(), xs[0], method="gradcam")
    line = load_template("linear_regression")
    lw = engine.build_model(line.graph, seed=0).state_dict()
    with pytest.raises(ExplainError, match="regression.*no classes"):
        explain_sample(line, lw, np.array([0.5], np.float32), target=1)
    e = explain_sample(line, lw, np.array([0.5], np.float32), method="integrated_gradients")
    assert e.task == "regression" and e.predicted is None and e.probs is None and e.target is None
    assert e.attributions[0] == pytest.approx(float(lw["linear_1.weight"][0, 0]) * 0.5, rel=1e-4)
    auto = load_template("conv_autoencoder")
    with pytest.raises(ExplainError, match="no single score"):
        explain_sample(auto, engine.build_model(auto.graph, seed=0).state_dict(), xs[0])
