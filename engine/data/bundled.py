"""Real data sets that come inside scikit-learn's wheel (no download): digits, iris, wine, breast cancer, diabetes."""
from __future__ import annotations

import functools

import numpy as np

from ..params import BOOL, CHOICE, INT, Param
from .base import (
    BINARY,
    BUNDLED,
    CLASSIFICATION,
    FLATTEN_PARAM,
    REGRESSION,
    STANDARDIZE_PARAM,
    TARGET_PARAM,
    Context,
    DataBundle,
    DataParamError,
    SourceSpec,
    assemble,
    register,
    resize_bilinear,
)


@functools.cache
def _sklearn(name: str):
    """The raw set as scikit-learn ships it (loaded once; callers copy before changing anything)."""
    from sklearn import datasets  # sklearn loads only when a bundled set is used
    return getattr(datasets, f"load_{name}")()


# ----------------------------------------------------------------------------------------------------
# digits

def _digits(p: dict, ctx: Context) -> DataBundle:
    raw = _sklearn("digits")
    images = np.asarray(raw.images, dtype=np.float64) / 16.0  # 0..16 ink levels → [0, 1]
    if p["size"] != 8:
        images = np.clip(resize_bilinear(images, p["size"], p["size"]), 0.0, 1.0)
    x = images.astype(np.float32)[:, None]
    if p["flatten"]:
        x = x.reshape(len(x), -1)
    s = p["size"]
    return assemble(ctx, x, np.asarray(raw.target), task=CLASSIFICATION, num_classes=10,
                    class_names=[str(i) for i in range(10)], name=f"digits {s}×{s}",
                    description=f"1797 handwritten digits 0–9 (UCI, bundled with scikit-learn), 8×8 pixels"
                                f"{f' enlarged to {s}×{s} with bilinear interpolation' if s != 8 else ''}, "
                                f"ink scaled to [0, 1].")


def _check_size(p: dict) -> None:
    if p["size"] not in (8, 28):
        raise DataParamError(f"data source digits: size = {p['size']} is not allowed; it must be 8 or 28", "size")


def _digits_suggest(p: dict, shape: tuple[int, ...]) -> str:
    for size in (8, 28):
        if shape == (1, size, size):
            return f"or set the digits' size to {size} with flatten off"
        if shape == (size * size,):
            return f"or set the digits' size to {size} with flatten on"
    return ""


register(SourceSpec(
    type="digits",
    category=BUNDLED,
    summary="1797 real handwritten digits, 8×8 or enlarged to MNIST's 28×28",
    doc="Handwritten digits 0–9 from the UCI collection that ships with scikit-learn, so no download is "
        "needed. The originals are 8×8 pixels with 17 ink levels; at size 28 each is enlarged to 28×28 with "
        "bilinear interpolation, so networks built for MNIST (1×28×28 input) train on real handwriting. Pixels "
        "are scaled to [0, 1]. Do not use flip augmentation: a mirrored 2 is no longer a 2.",
    params=(Param("size", INT, 28, "image side in pixels: 8 (the originals) or 28 (MNIST's size)",
                  min=8, max=28, effect="28 fits MNIST networks; 8 trains fastest"),
            FLATTEN_PARAM, TARGET_PARAM),
    check=_check_size,
    load=_digits,
    gives="(1, 28, 28) or (1, 8, 8) float32 in [0, 1] ((784,) or (64,) when flattened), 10 classes",
    image=True,
    suggest=_digits_suggest,
))


# ----------------------------------------------------------------------------------------------------
# tables

def _table(name: str, title: str, blurb: str, task: str = CLASSIFICATION):
    def load(p: dict, ctx: Context) -> DataBundle:
        raw = _sklearn(name)
        x = np.asarray(raw.data, dtype=np.float64)
        y = np.asarray(raw.target)
        feature_names = [str(f) for f in raw.feature_names]
        if task == REGRESSION:
            return assemble(ctx, x, y, task=REGRESSION, name=title, description=blurb,
                            feature_names=feature_names, standardize=p["standardize"],
                            standardize_target=p["standardize_target"])
        names = [str(c) for c in raw.target_names]
        if p.get("task") == BINARY:
            return assemble(ctx, x, y.astype(np.float32), task=BINARY, class_names=names, name=title,
                            description=blurb, feature_names=feature_names, standardize=p["standardize"])
        return assemble(ctx, x, y, task=CLASSIFICATION, num_classes=len(names), class_names=names, name=title,
                        description=blurb, feature_names=feature_names, standardize=p["standardize"])
    return load


_TABLE_DOC = (" Features are standardised (mean 0, standard deviation 1) with the statistics of the training split "
              "only, so nothing about the validation or test samples leaks into training.")

register(SourceSpec(
    type="iris",
    category=BUNDLED,
    summary="150 iris flowers, 4 measurements, 3 species",
    doc="Fisher's iris flowers (bundled with scikit-learn): sepal and petal length and width in cm, and the "
        "species (setosa, versicolor, virginica). One species is easy to tell apart, the other two overlap a "
        "little: a small MLP reaches about 95 %." + _TABLE_DOC,
    params=(STANDARDIZE_PARAM,),
    load=_table("iris", "iris", "150 iris flowers: 4 measurements (cm), 3 species."),
    gives="(4,) float32, 3 classes",
))

register(SourceSpec(
    type="wine",
    category=BUNDLED,
    summary="178 Italian wines, 13 chemical measurements, 3 cultivars",
    doc="The UCI wine recognition set (bundled with scikit-learn): alcohol, acidity, phenols, colour and "
        "other chemical measurements of wines from three grape cultivars. The features have very different "
        "scales (magnesium around 100, hue around 1), which is why standardising them matters." + _TABLE_DOC,
    params=(STANDARDIZE_PARAM,),
    load=_table("wine", "wine", "178 wines: 13 chemical measurements, 3 cultivars."),
    gives="(13,) float32, 3 classes",
))

register(SourceSpec(
    type="breast_cancer",
    category=BUNDLED,
    summary="569 breast tumour biopsies, 30 cell measurements, malignant or benign",
    doc="The Wisconsin diagnostic breast cancer set (bundled with scikit-learn): 30 measurements of cell "
        "nuclei from a biopsy image and the diagnosis (malignant = 0, benign = 1). As classification it gives "
        "class indices for CrossEntropy with 2 outputs; with task = binary it gives 0/1 targets of shape (1,) "
        "for BCEWithLogits with 1 output." + _TABLE_DOC,
    params=(STANDARDIZE_PARAM,
            Param("task", CHOICE, CLASSIFICATION, "classification: class indices (CrossEntropy); binary: 0/1 "
                  "floats of shape (1,) (BCE, BCEWithLogits)", choices=(CLASSIFICATION, BINARY))),
    load=_table("breast_cancer", "breast cancer", "569 biopsies: 30 cell measurements, malignant (0) or "
                "benign (1)."),
    gives="(30,) float32, 2 classes (or a 0/1 target of shape (1,) with task = binary)",
))

register(SourceSpec(
    type="diabetes",
    category=BUNDLED,
    summary="442 diabetes patients, 10 measurements, disease progression a year later (regression)",
    doc="The diabetes set of Efron et al. (bundled with scikit-learn): age, sex, body-mass index, blood "
        "pressure and six blood serum measurements, and a number measuring how far the disease progressed one "
        "year later (25 to 346). A regression task for MSE, L1 or Huber with one output." + _TABLE_DOC +
        " With standardize_target on (the default) the target is standardised the same way, so the loss "
        "starts near 1 instead of in the thousands; the bundle's stats y_mean and y_std turn a prediction back "
        "into the original units (prediction · y_std + y_mean). Turn it off to train on the raw numbers.",
    params=(STANDARDIZE_PARAM,
            Param("standardize_target", BOOL, True, "rescale the target to mean 0 and standard deviation 1 "
                  "(training statistics)", effect="off = predict the raw progression numbers (25 to 346)")),
    load=_table("diabetes", "diabetes", "442 patients: 10 measurements, disease progression after one year.",
                task=REGRESSION),
    gives="(10,) float32, a number target of shape (1,)",
))
