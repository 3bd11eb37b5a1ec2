"""LiveExtras on real training: the decision boundary of 2-D classifiers (two classes as a probability, more as
class indices, binary logits) checked against the network itself, autoencoder reconstructions, nothing for other
models, and the network left in training mode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import engine
from engine.live import LiveExtras
from engine.runner import prepare
from engine.training import ACCURACY, BINARY_LOGIT, REGRESSION, TensorData, TrainConfig, Trainer


def mlp(n_in=2, n_out=2, dropout=0.0):
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(16, n_out))


def fit(model, data, loss, metric, callbacks, epochs=2):
    torch.manual_seed(0)
    trainer = Trainer(model, loss, torch.optim.Adam(model.parameters(), lr=0.02),
                      TrainConfig(epochs=epochs, batch_size=16), metric=metric, callbacks=callbacks)
    assert trainer.fit(data).ok
    return trainer


def test_moons_boundary_is_the_networks_class_1_probability_on_the_grid():
    g = engine.Graph()
    prev = g.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 2})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    project = engine.Project(graph=g, data={"source": "moons", "params": {"n_samples": 900}},
                             loss={"type": "CrossEntropy", "params": {}},
                             optimizer={"type": "Adam", "params": {"lr": 0.02}}, training={"epochs": 2})
    snaps = []
    live = LiveExtras(every=5, sink=snaps.append)
    run = prepare(project, callbacks=[live])
    assert run.trainer.fit(run.data).ok
    assert live.active and len(snaps) == run.trainer.global_step // 5 >= 4
    b = snaps[-1]["boundary"]
    assert b["grid"].shape == (80, 80) and b["grid"].dtype == np.float32
    assert b["kind"] == "probability" and b["n_classes"] == 2
    assert b["points"].shape == (len(run.bundle.val), 2) and b["points"].dtype == np.float32
    np.testing.assert_array_equal(b["labels"], run.bundle.val.y)
    xmin, xmax, ymin, ymax = b["extent"]
    train = run.bundle.train.x
    assert xmin < train[:, 0].min() and xmax > train[:, 0].max() and ymin < train[:, 1].min()
    assert not np.allclose(snaps[0]["boundary"]["grid"], b["grid"])  # it moved while learning
    # the grid after fit is the network's softmax of class 1 at each grid point (row = y, column = x)
    final = live.take(run.trainer)["boundary"]["grid"]
    i, j = 17, 61
    point = torch.tensor([[xmin + j * (xmax - xmin) / 79, ymin + i * (ymax - ymin) / 79]])
    with torch.no_grad():
        expected = torch.softmax(run.trainer.module(point), 1)[0, 1]
    assert final[i, j] == pytest.approx(float(expected), abs=1e-5)
    assert ((final >= 0) & (final <= 1)).all() and "reconstruction" not in snaps[-1]
    assert snaps[-1]["step"] == 5 * len(snaps) and not b["points"].flags.writeable


def blobs(n=160, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    centres = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])[:k]
    return centres[y] + 0.4 * torch.randn(n, 2, generator=g), y


def test_more_classes_give_class_indices_and_training_mode_is_restored():
    x, y = blobs()
    snaps = []
    model = mlp(n_out=4, dropout=0.3)
    trainer = fit(model, TensorData(x[:120], y[:120], x[120:], y[120:]), torch.nn.CrossEntropyLoss(), ACCURACY,
                  [LiveExtras(every=3, sink=snaps.append, grid=20)])
    b = snaps[-1]["boundary"]
    assert b["kind"] == "class" and b["n_classes"] == 4 and b["grid"].shape == (20, 20)
    assert set(np.unique(b["grid"])) <= {0.0, 1.0, 2.0, 3.0} and len(np.unique(b["grid"])) == 4
    # corners of the grid lie past the blobs: each corner is its blob's class
    assert b["grid"][-1, -1] == 0 and b["grid"][-1, 0] == 1 and b["grid"][0, -1] == 2 and b["grid"][0, 0] == 3
    model.train()
    live = LiveExtras()
    live.setup(trainer)
    live.take(trainer)
    assert model.training  # back in training mode after each picture


def test_binary_logits_become_probabilities():
    x, y = blobs(k=2)
    yb = y.float().reshape(-1, 1)
    snaps = []
    trainer = fit(mlp(n_out=1), TensorData(x, yb), torch.nn.BCEWithLogitsLoss(), BINARY_LOGIT,
                  [LiveExtras(every=4, sink=snaps.append, max_points=50)])
    b = snaps[-1]["boundary"]
    assert b["kind"] == "probability" and b["n_classes"] == 2 and b["points"].shape == (50, 2)
    np.testing.assert_array_equal(b["labels"], y[:50].numpy())  # no validation split: training points
    xmin, xmax, ymin, ymax = b["extent"]
    with torch.no_grad():
        p = torch.sigmoid(trainer.module(torch.tensor([[xmin, ymin]])))[0, 0]
    assert live_grid(trainer, b)[0, 0] == pytest.approx(float(p), abs=1e-5)


def live_grid(trainer, boundary):
    live = LiveExtras(grid=boundary["grid"].shape[0])
    live.setup(trainer)
    return live.take(trainer)["boundary"]["grid"]


def test_autoencoder_reconstructions_of_fixed_validation_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=g)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 1, 3, padding=1), torch.nn.Sigmoid())
    snaps = []
    trainer = fit(model, TensorData(x[:48], x[:48], x[48:], x[48:], target_is_input=True), torch.nn.MSELoss(),
                  REGRESSION, [LiveExtras(every=2, sink=snaps.append)])
    r = snaps[-1]["reconstruction"]
    assert r["inputs"].shape == r["outputs"].shape == (8, 1, 8, 8) and "boundary" not in snaps[-1]
    np.testing.assert_allclose(r["inputs"], x[48:56].numpy())
    assert not np.allclose(snaps[0]["reconstruction"]["outputs"], r["outputs"])
    model.train(False)
    with torch.no_grad():
        final = model(x[48:56]).numpy()
    assert LiveExtras().take(trainer) == {"step": trainer.global_step, "epoch": trainer.epoch}  # not set up
    live = LiveExtras()
    live.setup(trainer)
    np.testing.assert_allclose(live.take(trainer)["reconstruction"]["outputs"], final, rtol=1e-5, atol=1e-6)


def test_nothing_for_regression_or_image_classifiers():
    x, y = blobs()
    sink = []
    fit(mlp(n_out=1), TensorData(x, y.float().reshape(-1, 1)), torch.nn.MSELoss(), REGRESSION,
        [LiveExtras(every=1, sink=sink.append)], epochs=1)
    images = torch.rand(32, 1, 4, 4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    live = LiveExtras(every=1, sink=sink.append)
    fit(model, TensorData(images, torch.arange(32) % 2), torch.nn.CrossEntropyLoss(), ACCURACY, [live], epochs=1)
    assert sink == [] and not live.active
