"""Each bundled template against the same network written by hand in plain PyTorch.

For every template the hand model below is what a person would write from the architecture description
(scripts/make_templates.py); nothing in it comes from the engine. The test then checks that the engine
agrees with it: the same parameter count (analysis, built model, hand model), the same output once the
hand model's weights are copied into the built one (paired by order, each pair's shape checked, never by
name), and the same shape for every node as the hand model's intermediate tensor.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
from engine.templates import load_template, template_names

BATCH = 4
ATOL, RTOL = 1e-6, 1e-5


class Recorder:
    """Keeps each intermediate tensor of a hand model under the name of the graph node it stands for."""

    def __init__(self, trace: dict[str, torch.Tensor] | None):
        self.trace = trace

    def __call__(self, name: str, t: torch.Tensor) -> torch.Tensor:
        if self.trace is not None:
            assert name not in self.trace, f"{name} recorded twice"
            self.trace[name] = t
        return t


# ---- the nine networks, by hand ------------------------------------------------------------------------

class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 1)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        return r("linear_1", self.fc(x))


class MLP784(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        h = r("linear_1", self.fc1(x))
        h = r("relu_1", F.relu(h))
        return r("linear_2", self.fc2(h))


class MLPMnist128(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        h = r("flatten_1", x.reshape(x.shape[0], -1))
        h = r("linear_1", self.fc1(h))
        h = r("relu_1", F.relu(h))
        return r("linear_2", self.fc2(h))


class CNNCifar(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(64 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        h = r("conv2d_1", self.conv1(x))
        h = r("relu_1", F.relu(h))
        h = r("maxpool2d_1", F.max_pool2d(h, 2))
        h = r("conv2d_2", self.conv2(h))
        h = r("relu_2", F.relu(h))
        h = r("maxpool2d_2", F.max_pool2d(h, 2))
        h = r("conv2d_3", self.conv3(h))
        h = r("relu_3", F.relu(h))
        h = r("flatten_1", torch.flatten(h, 1))
        h = r("linear_1", self.fc1(h))
        h = r("relu_4", F.relu(h))
        return r("linear_2", self.fc2(h))


class CNNMnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.fc1 = nn.Linear(64 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        h = r("conv2d_1", self.conv1(x))
        h = r("relu_1", F.relu(h))
        h = r("maxpool2d_1", F.max_pool2d(h, kernel_size=2))
        h = r("conv2d_2", self.conv2(h))
        h = r("relu_2", F.relu(h))
        h = r("maxpool2d_2", F.max_pool2d(h, kernel_size=2))
        h = r("flatten_1", h.view(h.size(0), -1))
        h = r("linear_1", self.fc1(h))
        h = r("relu_3", F.relu(h))
        return r("linear_2", self.fc2(h))


class LSTMSentiment(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10000, 64)
        self.lstm1 = nn.LSTM(64, 64, batch_first=True)
        self.lstm2 = nn.LSTM(64, 32, batch_first=True)
        self.fc = nn.Linear(32, 1)

    def forward(self, ids, trace=None):
        r = Recorder(trace)
        r("input_1", ids)
        e = r("embedding_1", self.embed(ids))
        seq, _ = self.lstm1(e)
        r("lstm_1", seq)
        _, (h_n, _c_n) = self.lstm2(seq)
        last = r("lstm_2", h_n[-1])
        z = r("linear_1", self.fc(last))
        return r("sigmoid_1", torch.sigmoid(z))


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.enc2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.dec1 = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
        self.dec2 = nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        h = r("conv2d_1", self.enc1(x))
        h = r("relu_1", F.relu(h))
        h = r("conv2d_2", self.enc2(h))
        code = r("relu_2", F.relu(h))
        h = r("convtranspose2d_1", self.dec1(code))
        h = r("relu_3", F.relu(h))
        h = r("convtranspose2d_2", self.dec2(h))
        return r("sigmoid_1", torch.sigmoid(h))


class ResidualBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.body_conv1 = nn.Conv2d(16, 16, 3, padding=1)
        self.body_bn = nn.BatchNorm2d(16)
        self.body_conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        s = r("conv2d_1", self.stem(x))
        s = r("relu_1", F.relu(s))
        f = r("conv2d_2", self.body_conv1(s))
        f = r("batchnorm2d_1", self.body_bn(f))
        f = r("relu_2", F.relu(f))
        f = r("conv2d_3", self.body_conv2(f))
        y = r("add_1", f + s)
        y = r("relu_3", F.relu(y))
        y = r("adaptiveavgpool2d_1", y.mean(dim=(2, 3), keepdim=True))
        y = r("flatten_1", torch.flatten(y, 1))
        return r("linear_1", self.head(y))


class GRUTwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(input_size=4, hidden_size=24, batch_first=True)
        self.conv = nn.Conv1d(4, 8, kernel_size=3, padding=1)
        self.fc = nn.Linear(24 + 8, 3)

    def forward(self, x, trace=None):
        r = Recorder(trace)
        r("input_1", x)
        _, h_n = self.gru(x)
        a = r("gru_1", h_n[-1])
        c = r("permute_1", x.transpose(1, 2))
        c = r("conv1d_1", self.conv(c))
        c = r("relu_1", F.relu(c))
        c = r("adaptiveavgpool1d_1", c.mean(dim=2, keepdim=True))
        c = r("flatten_1", c.squeeze(2))
        both = r("concat_1", torch.cat([a, c], dim=1))
        return r("linear_1", self.fc(both))


def _floats(*shape: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda g: torch.randn(BATCH, *shape, generator=g)


def _word_ids(g: torch.Generator) -> torch.Tensor:
    ids = torch.randint(0, 10000, (BATCH, 100), generator=g, dtype=torch.int64)
    ids[0, 0], ids[0, 1] = 0, 9999  # both ends of the vocabulary
    return ids


CASES: dict[str, tuple[type[nn.Module], Callable[[torch.Generator], torch.Tensor]]] = {
    "linear_regression": (LinearRegression, _floats(1)),
    "mlp_784_64_10": (MLP784, _floats(784)),
    "mlp_mnist_128": (MLPMnist128, _floats(1, 28, 28)),
    "cnn_cifar": (CNNCifar, _floats(3, 32, 32)),
    "cnn_mnist": (CNNMnist, _floats(1, 28, 28)),
    "lstm_sentiment": (LSTMSentiment, _word_ids),
    "conv_autoencoder": (ConvAutoencoder, _floats(1, 28, 28)),
    "residual_block": (ResidualBlock, _floats(1, 28, 28)),
    "gru_two_branch": (GRUTwoBranch, _floats(50, 4)),
}
NAMES = list(CASES)


# ---- helpers ---------------------------------------------------------------------------------------------

def _hand(name: str, seed: int = 1234) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CASES[name][0]()
        # Non-trivial running statistics, so that eval-mode BatchNorm really uses the copied buffers.
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return model.eval()


def _batch(name: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    return CASES[name][1](g)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def copy_by_order(src: nn.Module, dst: nn.Module) -> int:
    """Copy src's parameters, then its buffers, into dst's, pairing them by registration order (names are
    ignored) and asserting that each pair has the same shape. Returns the number of pairs."""
    pairs = 0
    for kind in ("parameters", "buffers"):
        s_list = list(getattr(src, kind)())
        d_list = list(getattr(dst, kind)())
        assert len(s_list) == len(d_list), f"{kind}: hand model has {len(s_list)}, built model {len(d_list)}"
        with torch.no_grad():
            for i, (s, d) in enumerate(zip(s_list, d_list)):
                assert s.shape == d.shape, f"{kind}[{i}]: hand {tuple(s.shape)} vs built {tuple(d.shape)}"
                assert s.dtype == d.dtype, f"{kind}[{i}]: hand {s.dtype} vs built {d.dtype}"
                d.copy_(s)
                pairs += 1
    return pairs


def _as_dtype_name(t: torch.Tensor) -> str:
    return {torch.float32: "float32", torch.int64: "int64"}[t.dtype]


# ---- tests ------------------------------------------------------------------------------------------------

def test_every_template_has_a_hand_model():
    assert sorted(template_names()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_hand_model(name):
    graph = load_template(name).graph
    analysis = engine.analyze(graph)
    assert analysis.ok
    built = engine.build_model(graph, seed=0)
    hand = _hand(name)
    assert analysis.total_params == _n_params(built) == _n_params(hand)
    # and node by node: the analysis's count for each node is what its built submodule holds
    for nid, info in analysis.nodes.items():
        if graph.nodes[nid].type != "Input":
            assert info.params == _n_params(getattr(built, nid)), nid


@pytest.mark.parametrize("name", NAMES)
def test_output_equals_hand_model_with_the_same_weights(name):
    graph = load_template(name).graph
    built = engine.build_model(graph, seed=0).eval()
    hand = _hand(name)
    x = _batch(name)
    with torch.no_grad():
        expected = hand(x)
        before = built(x)
        assert before.shape == expected.shape
        # different weights give a different answer, so the comparison below is not vacuous
        assert not torch.allclose(before, expected, atol=ATOL, rtol=RTOL)
        assert copy_by_order(hand, built) > 0
        got = built(x)
    assert isinstance(got, torch.Tensor)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", NAMES)
def test_every_node_shape_equals_hand_intermediate(name):
    graph = load_template(name).graph
    hand = _hand(name)
    trace: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        hand(_batch(name), trace=trace)
    assert set(trace) == set(graph.nodes), "the hand model must record one tensor per node"
    shapes = engine.infer_shapes(graph)
    analysis = engine.analyze(graph)
    for nid, t in trace.items():
        assert t.shape[0] == BATCH
        assert shapes[nid] == tuple(t.shape[1:]), f"{nid}: inferred {shapes[nid]}, hand {tuple(t.shape[1:])}"
        assert analysis.nodes[nid].dtype == _as_dtype_name(t), nid


@pytest.mark.parametrize("name", NAMES)
def test_inferred_output_shape_is_the_hand_model_output(name):
    graph = load_template(name).graph
    (sink,) = graph.sink_nodes()
    hand = _hand(name)
    with torch.no_grad():
        out = hand(_batch(name))
    assert engine.infer_shapes(graph)[sink] == tuple(out.shape[1:])
    built = engine.build_model(graph, seed=0).eval()
    with torch.no_grad():
        assert tuple(built(_batch(name)).shape) == tuple(out.shape)
    assert built.output_shapes == {sink: tuple(out.shape[1:])}


def test_lstm_sentiment_takes_word_ids_across_the_vocabulary():
    graph = load_template("lstm_sentiment").graph
    assert engine.analyze(graph).nodes["input_1"].dtype == "int64"
    built = engine.build_model(graph, seed=0).eval()
    ids = torch.tensor([[9999] * 100, [0] * 100], dtype=torch.int64)
    with torch.no_grad():
        p = built(ids)
    assert p.shape == (2, 1)
    assert bool(((p > 0) & (p < 1)).all())
