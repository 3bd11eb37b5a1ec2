"""Regenerate resources/templates/*.layerloom from the definitions below (run after changing them)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import Graph, analyze  # noqa: E402
from engine.project import Project, save_project  # noqa: E402

DX, DY = 240, 100


def chain(g: Graph, layers: list[tuple], start: str | None = None, x: float = 0, y0: float = 0) -> list[str]:
    """Add layers one under the other, each fed by the previous; returns their ids."""
    ids, prev, y = [], start, y0
    for spec in layers:
        layer_type, params = spec[0], (spec[1] if len(spec) > 1 else {})
        nid = g.add_node(layer_type, params, position=(x, y))
        if prev is not None:
            g.connect(prev, nid)
        ids.append(nid)
        prev, y = nid, y + DY
    return ids


def _data(source: str, **params) -> dict:
    """A data section: the source with its parameters and a seeded 70/15/15 split."""
    return {"source": source, "params": params, "split": {"val": 0.15, "test": 0.15, "seed": 0}}


CLASSIFY = dict(loss={"type": "CrossEntropy", "params": {}},
                optimizer={"type": "Adam", "params": {"lr": 0.001}})


def linear_regression():
    g = Graph()
    chain(g, [("Input", {"shape": [1]}), ("Linear", {"out_features": 1})])
    return g, "Fits a straight line y = w·x + b to noisy points: the smallest network there is.", dict(
        data=_data("line"), loss={"type": "MSE", "params": {}},
        optimizer={"type": "SGD", "params": {"lr": 0.05}}, training={"epochs": 50, "batch_size": 32})


def mlp_784_64_10():
    g = Graph()
    chain(g, [("Input", {"shape": [784]}), ("Linear", {"out_features": 64}), ("ReLU",),
              ("Linear", {"out_features": 10})])
    return g, "Classifies flattened 28×28 digit images (784 pixels) into 10 classes with one hidden layer.", dict(
        data=_data("digits", size=28, flatten=True), **CLASSIFY, training={"epochs": 10, "batch_size": 64})


def mlp_mnist_128():
    g = Graph()
    chain(g, [("Input", {"shape": [1, 28, 28]}), ("Flatten",), ("Linear", {"out_features": 128}), ("ReLU",),
              ("Linear", {"out_features": 10})])
    return g, "Classifies 28×28 handwritten digits with a 128-unit hidden layer.", dict(
        data=_data("digits", size=28), **CLASSIFY, training={"epochs": 10, "batch_size": 64})


def cnn_cifar():
    g = Graph()
    chain(g, [("Input", {"shape": [3, 32, 32]}),
              ("Conv2d", {"out_channels": 32, "kernel_size": 3}), ("ReLU",), ("MaxPool2d", {"kernel_size": 2}),
              ("Conv2d", {"out_channels": 64, "kernel_size": 3}), ("ReLU",), ("MaxPool2d", {"kernel_size": 2}),
              ("Conv2d", {"out_channels": 64, "kernel_size": 3}), ("ReLU",), ("Flatten",),
              ("Linear", {"out_features": 64}), ("ReLU",), ("Linear", {"out_features": 10})])
    return g, "Classifies 32×32 colour images into 10 classes with three convolution blocks (CIFAR-10 style).", \
        dict(data=_data("shapes", size=32, channels=3), **CLASSIFY, training={"epochs": 15, "batch_size": 64})


def cnn_mnist():
    g = Graph()
    chain(g, [("Input", {"shape": [1, 28, 28]}),
              ("Conv2d", {"out_channels": 32, "kernel_size": 3}), ("ReLU",), ("MaxPool2d", {"kernel_size": 2}),
              ("Conv2d", {"out_channels": 64, "kernel_size": 3}), ("ReLU",), ("MaxPool2d", {"kernel_size": 2}),
              ("Flatten",), ("Linear", {"out_features": 64}), ("ReLU",), ("Linear", {"out_features": 10})])
    return g, "Recognises 28×28 handwritten digits with two convolution blocks: the classic first CNN.", dict(
        data=_data("digits", size=28), loss={"type": "CrossEntropy", "params": {}},
        optimizer={"type": "Adam", "params": {"lr": 0.003}}, training={"epochs": 10, "batch_size": 64})


def lstm_sentiment():
    g = Graph()
    chain(g, [("Input", {"shape": [100], "dtype": "int64"}),
              ("Embedding", {"num_embeddings": 10000, "embedding_dim": 64}),
              ("LSTM", {"hidden_size": 64, "return_sequences": True}), ("LSTM", {"hidden_size": 32}),
              ("Linear", {"out_features": 1}), ("Sigmoid",)])
    return g, "Reads a review of 100 word ids and gives the probability that it is positive.", dict(
        data=_data("sentiment"), loss={"type": "BCE", "params": {}},
        optimizer={"type": "Adam", "params": {"lr": 0.001}}, training={"epochs": 5, "batch_size": 64})


def conv_autoencoder():
    g = Graph()
    chain(g, [("Input", {"shape": [1, 28, 28]}),
              ("Conv2d", {"out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1}), ("ReLU",),
              ("Conv2d", {"out_channels": 32, "kernel_size": 3, "stride": 2, "padding": 1}), ("ReLU",),
              ("ConvTranspose2d", {"out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1,
                                   "output_padding": 1}), ("ReLU",),
              ("ConvTranspose2d", {"out_channels": 1, "kernel_size": 3, "stride": 2, "padding": 1,
                                   "output_padding": 1}), ("Sigmoid",)])
    return g, "Compresses 28×28 images to a 32×7×7 code and rebuilds them: learns without labels.", dict(
        data=_data("digits", size=28, target="input"), loss={"type": "MSE", "params": {}},
        optimizer={"type": "Adam", "params": {"lr": 0.001}}, training={"epochs": 10, "batch_size": 64})


def residual_block():
    g = Graph()
    x, c1, s = chain(g, [("Input", {"shape": [1, 28, 28]}),
                         ("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}), ("ReLU",)])
    body = chain(g, [("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}), ("BatchNorm2d",),
                     ("ReLU",), ("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1})],
                 start=s, x=0, y0=3 * DY)
    tail = chain(g, [("Add",), ("ReLU",), ("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten",),
                     ("Linear", {"out_features": 10})], start=body[-1], y0=7 * DY)
    g.connect(s, tail[0])  # the skip connection: Add(F(s), s)
    g.move(tail[0], 0, 7 * DY)
    return g, "A residual block: the body learns a correction F(s) that is added back to its input s.", dict(
        data=_data("digits", size=28), loss={"type": "CrossEntropy", "params": {}},
        optimizer={"type": "Adam", "params": {"lr": 0.003}}, schedule={"type": "cosine", "params": {}},
        training={"epochs": 20, "batch_size": 16})


def gru_two_branch():
    g = Graph()
    x = g.add_node("Input", {"shape": [50, 4]}, position=(DX / 2, 0))
    (gru,) = chain(g, [("GRU", {"hidden_size": 24})], start=x, x=0, y0=DY)
    conv = chain(g, [("Permute", {"dims": [1, 0]}), ("Conv1d", {"out_channels": 8, "kernel_size": 3,
                                                                 "padding": 1}),
                     ("ReLU",), ("AdaptiveAvgPool1d", {"output_size": 1}), ("Flatten",)], start=x, x=DX, y0=DY)
    cat = g.add_node("Concat", {"dim": 1}, position=(DX / 2, 6 * DY))
    g.connect(gru, cat)
    g.connect(conv[-1], cat)
    chain(g, [("Linear", {"out_features": 3})], start=cat, x=DX / 2, y0=7 * DY)
    return g, "Classifies 50-step, 4-channel signals into 3 classes with a GRU and a 1-D CNN side by side.", dict(
        data=_data("signals"), loss={"type": "CrossEntropy", "params": {}},
        optimizer={"type": "Adam", "params": {"lr": 0.01}}, training={"epochs": 20, "batch_size": 32})


TEMPLATES = [linear_regression, mlp_784_64_10, mlp_mnist_128, cnn_cifar, cnn_mnist, lstm_sentiment,
             conv_autoencoder, residual_block, gru_two_branch]


def main() -> None:
    out = ROOT / "resources" / "templates"
    out.mkdir(parents=True, exist_ok=True)
    for make in TEMPLATES:
        graph, description, settings = make()
        analysis = analyze(graph)
        assert analysis.ok, [(e.node_id, str(e.error)) for e in analysis.errors]
        project = Project(graph=graph, name=make.__name__, description=description, **settings)
        save_project(out / f"{make.__name__}.layerloom", project)
        print(f"{make.__name__:18s} {analysis.total_params:>10,d} params")


if __name__ == "__main__":
    main()
