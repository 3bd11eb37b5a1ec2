"""Data sets drawn from a seed: 2-D point clouds, a noisy line, shape images, wave signals and short reviews."""
from __future__ import annotations

import numpy as np

from ..params import FLOAT, INT, Param
from .base import (
    BINARY,
    CLASSIFICATION,
    FLATTEN_PARAM,
    GENERATED,
    LENGTH_PARAM,
    PADDING_PARAM,
    REGRESSION,
    TARGET_PARAM,
    Context,
    DataBundle,
    SourceSpec,
    assemble,
    channels_check,
    n_samples_param,
    noise_param,
    pad_ids,
    register,
    seed_param,
    vocab_param,
)


def _rng(p: dict, salt: int) -> np.random.Generator:
    return np.random.default_rng([p["seed"], salt])


def _halves(n: int) -> tuple[int, int]:
    return n - n // 2, n // 2


def _shuffled(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(x))
    return x[order], y[order]


# ----------------------------------------------------------------------------------------------------
# 2-D point clouds

def _points(name: str, salt: int, make, class_names: tuple[str, str], blurb: str):
    def load(p: dict, ctx: Context) -> DataBundle:
        rng = _rng(p, salt)
        x, y = make(rng, p)
        x = x + rng.normal(0.0, p["noise"], size=x.shape) if p["noise"] > 0 else x
        x, y = _shuffled(rng, x, y)
        return assemble(ctx, x.astype(np.float32), y, task=CLASSIFICATION, num_classes=2, class_names=class_names,
                        name=name, description=blurb.format(**p), feature_names=("x₁", "x₂"))
    return load


def _spirals(rng: np.random.Generator, p: dict):
    n0, n1 = _halves(p["n_samples"])
    xs, ys = [], []
    for label, n in ((0, n0), (1, n1)):
        t = np.sqrt(rng.random(n)) * p["turns"] * 2 * np.pi  # sqrt: points spread evenly along the arm
        r = t / (p["turns"] * 2 * np.pi) * 2.0 + 0.1
        angle = t + label * np.pi
        xs.append(np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1))
        ys.append(np.full(n, label))
    return np.concatenate(xs), np.concatenate(ys)


def _moons(rng: np.random.Generator, p: dict):
    n0, n1 = _halves(p["n_samples"])
    t0, t1 = rng.random(n0) * np.pi, rng.random(n1) * np.pi
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    return np.concatenate([upper, lower]), np.concatenate([np.zeros(n0), np.ones(n1)])


def _circles(rng: np.random.Generator, p: dict):
    n0, n1 = _halves(p["n_samples"])
    t0, t1 = rng.random(n0) * 2 * np.pi, rng.random(n1) * 2 * np.pi
    outer = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    inner = p["factor"] * np.stack([np.cos(t1), np.sin(t1)], axis=1)
    return np.concatenate([outer, inner]), np.concatenate([np.zeros(n0), np.ones(n1)])


def _xor(rng: np.random.Generator, p: dict):
    x = rng.uniform(-1.0, 1.0, size=(p["n_samples"], 2))
    return x, (x[:, 0] * x[:, 1] < 0).astype(np.int64)


_POINTS = "(2,) float32 points, 2 classes"

register(SourceSpec(
    type="spirals",
    category=GENERATED,
    summary="two interleaved spiral arms: the classic test of a non-linear classifier",
    doc="Points along two spiral arms that wind around each other, one arm per class. No straight line "
        "separates them: a network without hidden layers (or without activations) fails, a small MLP with "
        "ReLU or Tanh learns to follow the arms. More turns make it harder.",
    formula="r = 0.1 + 2t, θ = 2π·turns·t + π·class, t ∈ [0, 1];  x = (r cos θ, r sin θ) + 𝒩(0, noise²)",
    params=(n_samples_param(1000), noise_param(0.1, "standard deviation of the Gaussian jitter added to each "
                                                 "point"),
            Param("turns", FLOAT, 1.5, "how many times each arm winds around the centre", min=0.25, max=5.0,
                  effect="more turns = a harder boundary to learn"),
            seed_param()),
    load=_points("spirals", 1, _spirals, ("arm 0", "arm 1"),
                 "{n_samples} points on two spiral arms ({turns:g} turns, noise {noise:g})."),
    gives=_POINTS,
))

register(SourceSpec(
    type="moons",
    category=GENERATED,
    summary="two interlocking half-moons",
    doc="Two half circles that hook into each other, one per class (like scikit-learn's make_moons). A "
        "straight line gets about 85 % right; a small MLP bends its boundary around the moons.",
    formula="upper: (cos t, sin t); lower: (1 − cos t, ½ − sin t), t ∈ [0, π]; + 𝒩(0, noise²)",
    params=(n_samples_param(1000), noise_param(0.1, "standard deviation of the Gaussian jitter added to each "
                                                 "point"), seed_param()),
    load=_points("moons", 2, _moons, ("upper moon", "lower moon"),
                 "{n_samples} points on two half-moons (noise {noise:g})."),
    gives=_POINTS,
))

register(SourceSpec(
    type="circles",
    category=GENERATED,
    summary="a small circle inside a large one",
    doc="Points on two concentric circles, one per class (like scikit-learn's make_circles). No straight "
        "line separates them, but a network that can learn x₁² + x₂² can: one hidden layer is enough.",
    formula="outer: (cos t, sin t); inner: factor·(cos t, sin t), t ∈ [0, 2π); + 𝒩(0, noise²)",
    params=(n_samples_param(1000), noise_param(0.05, "standard deviation of the Gaussian jitter added to each "
                                                  "point"),
            Param("factor", FLOAT, 0.5, "radius of the inner circle relative to the outer one", min=0.05,
                  max=0.95, effect="closer to 1 = the circles nearly touch, harder"),
            seed_param()),
    load=_points("circles", 3, _circles, ("outer circle", "inner circle"),
                 "{n_samples} points on two circles (inner radius {factor:g}, noise {noise:g})."),
    gives=_POINTS,
))

register(SourceSpec(
    type="xor",
    category=GENERATED,
    summary="the XOR problem: the class is whether the two coordinates have opposite signs",
    doc="Points spread evenly over the square [−1, 1]², labelled 1 when x₁ and x₂ have opposite signs "
        "(top-left and bottom-right) and 0 otherwise. The famous problem a single layer cannot solve: it needs "
        "a hidden layer with a non-linear activation. Noise jitters the points after they are labelled, so "
        "some cross the axes.",
    formula="y = 1 if x₁·x₂ < 0 else 0,  x ~ U[−1, 1]²;  then x += 𝒩(0, noise²)",
    params=(n_samples_param(1000), noise_param(0.05, "standard deviation of the jitter added after labelling"),
            seed_param()),
    load=_points("xor", 4, _xor, ("same sign", "opposite signs"),
                 "{n_samples} points in [−1, 1]², class = opposite signs (noise {noise:g})."),
    gives=_POINTS,
))


# ----------------------------------------------------------------------------------------------------
# line

def _line(p: dict, ctx: Context) -> DataBundle:
    rng = _rng(p, 5)
    x = rng.uniform(-1.0, 1.0, size=(p["n_samples"], 1))
    y = p["slope"] * x + p["intercept"] + rng.normal(0.0, p["noise"], size=x.shape)
    return assemble(ctx, x.astype(np.float32), y.astype(np.float32), task=REGRESSION, name="line",
                    description=f"{p['n_samples']} noisy points around y = {p['slope']:g}x + {p['intercept']:g} "
                                f"(noise {p['noise']:g}), x in [−1, 1].", feature_names=("x",))


register(SourceSpec(
    type="line",
    category=GENERATED,
    summary="noisy points around the line y = 2x + 1: the data of the linear-regression example",
    doc="x is drawn evenly from [−1, 1] and y = slope·x + intercept plus Gaussian noise. A single Linear "
        "layer (1 in, 1 out) trained with MSE should find weight ≈ slope and bias ≈ intercept: watch them "
        "converge. Nothing is standardised, so the learnt numbers can be read directly.",
    formula="y = slope·x + intercept + ε,  x ~ U[−1, 1],  ε ~ 𝒩(0, noise²)",
    params=(n_samples_param(200),
            noise_param(0.1, "standard deviation of the noise added to y"),
            Param("slope", FLOAT, 2.0, "the true slope (what the weight should learn)", min=-1000.0, max=1000.0),
            Param("intercept", FLOAT, 1.0, "the true intercept (what the bias should learn)", min=-1000.0,
                  max=1000.0),
            seed_param()),
    load=_line,
    gives="(1,) float32, a number target of shape (1,)",
))


# ----------------------------------------------------------------------------------------------------
# shapes

SHAPE_NAMES = ("circle", "square", "triangle", "cross", "horizontal bar", "vertical bar", "diagonal", "ring",
               "plus", "dots")


def _shape_mask(kind: int, dx: np.ndarray, dy: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Boolean masks (n, H, W) of one kind of shape; dx, dy are pixel offsets from each shape's centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    box = np.maximum(ax, ay) <= r
    d = np.sqrt(dx ** 2 + dy ** 2)
    if kind == 0:
        return d <= r
    if kind == 1:
        return np.maximum(ax, ay) <= 0.8 * r
    if kind == 2:  # point up, base at the bottom
        top, bottom = -r, 0.75 * r
        frac = (dy - top) / (bottom - top)
        return (dy >= top) & (dy <= bottom) & (ax <= frac * r)
    if kind == 3:
        return box & ((np.abs(dx - dy) <= t * 1.4) | (np.abs(dx + dy) <= t * 1.4))
    if kind == 4:
        return (ay <= t) & (ax <= r)
    if kind == 5:
        return (ax <= t) & (ay <= r)
    if kind == 6:
        return box & (np.abs(dx - dy) <= t * 1.4)
    if kind == 7:
        return np.abs(d - 0.85 * r) <= t
    if kind == 8:
        return box & ((ax <= t) | (ay <= t))
    # dots: four dots at the corners of a square
    dot = np.maximum(1.2, 0.25 * r)
    off = 0.6 * r
    return np.sqrt((ax - off) ** 2 + (ay - off) ** 2) <= dot


def _shapes(p: dict, ctx: Context) -> DataBundle:
    rng = _rng(p, 6)
    n, s, c = p["n_samples"], p["size"], p["channels"]
    y = rng.permutation(np.arange(n) % len(SHAPE_NAMES))
    r = rng.uniform(0.2 * s, 0.36 * s, size=n)
    cx = rng.uniform(r + 0.5, s - r - 0.5)
    cy = rng.uniform(r + 0.5, s - r - 0.5)
    t = np.maximum(1.0, 0.16 * r)
    grid = np.arange(s) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    masks = np.zeros((n, s, s), dtype=bool)
    for kind in range(len(SHAPE_NAMES)):
        sel = np.flatnonzero(y == kind)
        if len(sel):
            rr, tt = r[sel, None, None], t[sel, None, None]
            masks[sel] = _shape_mask(kind, np.broadcast_to(dx[sel], (len(sel), s, s)),
                                     np.broadcast_to(dy[sel], (len(sel), s, s)), rr, tt)
    if c == 1:
        fg = rng.uniform(0.6, 1.0, size=(n, 1, 1, 1))
        bg = rng.uniform(0.0, 0.15, size=(n, 1, 1, 1))
    else:
        fg = rng.uniform(0.35, 1.0, size=(n, c, 1, 1))
        bg = rng.uniform(0.0, 0.25, size=(n, c, 1, 1))
    m = masks[:, None].astype(np.float64)
    x = bg + (fg - bg) * m
    if p["noise"] > 0:
        x = x + rng.normal(0.0, p["noise"], size=x.shape)
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    if p["flatten"]:
        x = x.reshape(n, -1)
    return assemble(ctx, x, y, task=CLASSIFICATION, num_classes=len(SHAPE_NAMES), class_names=SHAPE_NAMES,
                    name=f"shapes {c}×{s}×{s}",
                    description=f"{n} images of 10 simple shapes at random places and sizes, {s}×{s} pixels, "
                                f"{'grey' if c == 1 else 'colour'}, noise {p['noise']:g}.")


def _shapes_suggest(p: dict, shape: tuple[int, ...]) -> str:
    if len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2] and 8 <= shape[1] <= 128:
        return f"or set the shapes' channels to {shape[0]} and size to {shape[1]} with flatten off"
    return ""


register(SourceSpec(
    type="shapes",
    category=GENERATED,
    summary="images of 10 simple shapes (circle, square, triangle, cross, bars, ring, ...) for CNNs",
    doc="Each image shows one shape — circle, square, triangle, cross (×), horizontal bar, vertical bar, "
        "diagonal, ring, plus (+) or four dots — at a random place and size, in a random shade (or colour) on "
        "a darker background, with Gaussian pixel noise. Size 28 with 1 channel fits MNIST-style networks, "
        "size 32 with 3 channels fits CIFAR-style ones. A small CNN learns it in a few epochs; an MLP finds it "
        "much harder, because the shapes move around.",
    params=(n_samples_param(3000),
            Param("size", INT, 28, "image side in pixels (28 for MNIST-style networks, 32 for CIFAR-style)",
                  min=8, max=128),
            Param("channels", INT, 1, "1 for grey images, 3 for colour", min=1, max=3),
            noise_param(0.1, "standard deviation of the Gaussian noise added to every pixel", hi=1.0),
            FLATTEN_PARAM, TARGET_PARAM, seed_param()),
    load=_shapes,
    check=channels_check("shapes", "colour"),
    gives="(channels, size, size) float32 in [0, 1], 10 classes",
    image=True,
    suggest=_shapes_suggest,
))


# ----------------------------------------------------------------------------------------------------
# signals

SIGNAL_NAMES = ("sine", "square", "sawtooth")


def _signals(p: dict, ctx: Context) -> DataBundle:
    rng = _rng(p, 7)
    n, steps, ch = p["n_samples"], p["steps"], p["channels"]
    y = rng.permutation(np.arange(n) % 3)
    t = np.arange(steps) / steps
    freq = rng.uniform(1.0, 4.0, size=(n, 1, ch))     # cycles over the whole sequence
    phase = rng.random(size=(n, 1, ch))
    amp = rng.uniform(0.5, 1.5, size=(n, 1, ch))
    offset = rng.uniform(-0.5, 0.5, size=(n, 1, ch))
    u = freq * t[None, :, None] + phase                 # (n, steps, channels), in cycles
    waves = np.stack([np.sin(2 * np.pi * u), np.where(np.sin(2 * np.pi * u) >= 0, 1.0, -1.0),
                      2.0 * (u - np.floor(u + 0.5))])
    x = waves[y, np.arange(n)] * amp + offset
    if p["noise"] > 0:
        x = x + rng.normal(0.0, p["noise"], size=x.shape)
    return assemble(ctx, x.astype(np.float32), y, task=CLASSIFICATION, num_classes=3, class_names=SIGNAL_NAMES,
                    name="signals", description=f"{n} signals of {steps} steps × {ch} channels: sine, square or "
                                                f"sawtooth waves (noise {p['noise']:g}).")


register(SourceSpec(
    type="signals",
    category=GENERATED,
    summary="sequences of sine, square or sawtooth waves, for recurrent and 1-D convolutional networks",
    doc="Each sample is a sequence of `steps` time steps with `channels` values per step (batch-first "
        "(steps, channels), as GRU, LSTM and RNN take it; a Conv1d wants (channels, steps), so put a Permute "
        "with dims [1, 0] before it). All channels of a sample carry the same kind of wave — sine, square or "
        "sawtooth, the class — each with its own random frequency (1 to 4 cycles), phase, amplitude and offset, "
        "plus Gaussian noise.",
    formula="x[t, c] = a_c · wave(f_c · t/steps + φ_c) + b_c + ε",
    params=(n_samples_param(1500),
            Param("steps", INT, 50, "time steps per sequence", min=8, max=10_000),
            Param("channels", INT, 4, "values per time step", min=1, max=256),
            noise_param(0.25, "standard deviation of the Gaussian noise added to every value"),
            seed_param()),
    load=_signals,
    gives="(steps, channels) float32, 3 classes",
))


# ----------------------------------------------------------------------------------------------------
# sentiment

NEGATIONS = ("not", "never", "hardly")
NEUTRAL = (
    "the", "a", "and", "of", "to", "is", "it", "this", "in", "that", "was", "movie", "film", "with", "for", "as",
    "but", "on", "its", "story", "plot", "by", "at", "from", "an", "acting", "actors", "scene", "scenes",
    "director", "characters", "character", "ending", "music", "script", "cast", "time", "minutes", "role",
    "screen", "audience", "sequel", "book", "version", "camera", "dialogue", "very", "really", "quite", "so",
    "i", "we", "they", "he", "she", "my", "their", "one", "two", "first", "last", "again", "watched", "saw",
    "seen", "think", "found", "felt", "about", "there", "were", "are", "be", "had", "has", "have", "just", "also",
)
POSITIVE = (
    "good", "great", "excellent", "wonderful", "amazing", "brilliant", "superb", "enjoyable", "delightful",
    "fantastic", "lovely", "perfect", "beautiful", "charming", "fun", "moving", "touching", "funny", "clever",
    "impressive", "outstanding", "memorable", "masterpiece", "best", "loved", "gripping", "powerful",
    "engaging", "entertaining", "stunning",
)
NEGATIVE = (
    "bad", "terrible", "awful", "boring", "dull", "poor", "horrible", "weak", "worst", "waste", "disappointing",
    "mediocre", "stupid", "annoying", "predictable", "painful", "forgettable", "mess", "hated", "ugly", "slow",
    "pointless", "lame", "tedious", "clumsy", "bland", "silly", "unwatchable", "flat", "tiresome",
)


def sentiment_vocabulary(vocab_size: int) -> tuple[str, ...]:
    """The words by id: 0 padding, 1 unknown, then the named words, then filler words w<id> up to vocab_size."""
    named = ("<pad>", "<unk>") + NEGATIONS + NEUTRAL + POSITIVE + NEGATIVE
    return named[:vocab_size] + tuple(f"w{i}" for i in range(len(named), vocab_size))


def _sentiment(p: dict, ctx: Context) -> DataBundle:
    rng = _rng(p, 8)
    n, length, vocab = p["n_samples"], p["length"], p["vocab_size"]
    first_neutral = 2 + len(NEGATIONS)
    first_pos = first_neutral + len(NEUTRAL)
    first_neg = first_pos + len(POSITIVE)
    first_filler = first_neg + len(NEGATIVE)
    n_filler = max(1, 10_000 - first_filler)  # the generator's own word list; ids past vocab_size become unknown
    filler_cdf = np.cumsum(1.0 / np.arange(1, n_filler + 1))        # Zipf: a few filler words are common
    neutral_cdf = np.cumsum(1.0 / np.arange(1, len(NEUTRAL) + 1) ** 0.7)

    def draw(cdf: np.ndarray, k: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right"), len(cdf) - 1)

    y = (rng.random(n) < 0.5).astype(np.int64)
    x = np.zeros((n, length), dtype=np.int64)
    for i in range(n):
        k = int(rng.integers(2, 7))                     # sentiment mentions in this review
        against = int(rng.integers(0, k // 2))          # mentions that disagree with the verdict (a minority)
        polarity = np.array([1] * (k - against) + [-1] * against) * (1 if y[i] else -1)
        lo, hi = max(8, length // 6), max(8, int(length * 0.6))
        if rng.random() < 0.1:  # a few long reviews, cut to length
            lo, hi = max(8, length // 2), max(8, int(length * 1.5))
        total = int(rng.integers(lo, hi + 1))
        n_fill = max(0, total - k)
        is_neutral = rng.random(n_fill) < 0.65
        fill = np.where(is_neutral, first_neutral + draw(neutral_cdf, n_fill), first_filler + draw(filler_cdf, n_fill))
        words = [int(w) for w in fill]
        for pol in polarity:
            negate = rng.random() < 0.2                 # "not bad" is positive, "never good" negative
            shown = -pol if negate else pol
            word = (first_pos + rng.integers(len(POSITIVE)) if shown > 0
                    else first_neg + rng.integers(len(NEGATIVE)))
            phrase = [2 + int(rng.integers(len(NEGATIONS))), int(word)] if negate else [int(word)]
            at = int(rng.integers(0, len(words) + 1))
            words[at:at] = phrase
        ids = np.asarray(words, dtype=np.int64)
        ids = np.where(ids >= vocab, 1, ids)
        x[i] = pad_ids(ids, length, p["padding"])
    flip = rng.random(n) < p["label_noise"]
    y = np.where(flip, 1 - y, y)
    return assemble(ctx, x, y.astype(np.float32), task=BINARY, class_names=("negative", "positive"),
                    name="sentiment", vocabulary=sentiment_vocabulary(vocab),
                    description=f"{n} synthetic movie reviews as {length} word ids (vocabulary {vocab}), "
                                f"positive (1) or negative (0).")


register(SourceSpec(
    type="sentiment",
    category=GENERATED,
    summary="synthetic movie reviews as word ids, positive or negative, for an Embedding + LSTM",
    doc="Short reviews made of common words, rarer filler words and a few opinion words (great, dull, ...). "
        "Most opinion words agree with the verdict, a minority disagree, and about a third are negated ('not "
        "bad' is positive), so counting words gets far but a network that reads the order does better; a few "
        "labels are flipped at random (label_noise). Each review becomes `length` word ids (0 = padding, 1 = "
        "unknown word, ids below vocab_size), padded in front by default. The targets are 0/1 floats of shape "
        "(1,) for BCE (after a Sigmoid) or BCEWithLogits.",
    params=(n_samples_param(5000), vocab_param(10_000), LENGTH_PARAM, PADDING_PARAM,
            Param("label_noise", FLOAT, 0.02, "share of reviews whose label is flipped at random", min=0.0,
                  max=0.5, effect="the best possible accuracy is about 1 − label_noise"),
            seed_param()),
    load=_sentiment,
    gives="(length,) int64 word ids, a 0/1 float target of shape (1,)",
))
