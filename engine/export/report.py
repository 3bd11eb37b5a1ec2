"""What an export gives back (ExportReport) and what it raises (ExportError); no torch needed here."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import LayerLoomError
from ..units import format_bytes

FORMATS = ("safetensors", "onnx", "pt2", "torchscript")
FORMAT_NAMES = {"safetensors": "safetensors weights", "onnx": "ONNX", "pt2": "torch.export program (.pt2)",
                "torchscript": "TorchScript", "int8": "int8 (dynamic quantisation)"}
SUFFIXES = {".safetensors": "safetensors", ".onnx": "onnx", ".pt2": "pt2", ".ts": "torchscript",
            ".torchscript": "torchscript"}


class ExportError(LayerLoomError):
    """An export that was refused or failed its check. `str(e)` is one line for the user; `details` holds the
    exporter's own output (kept from the console) when there is any; `report` is the failed export's report
    when the export ran; `missing`, `unexpected` and `wrong_shape` list the tensors of weights that do not fit;
    `node_id` names the layer a format cannot carry."""

    def __init__(self, message: str, *, details: str = "", report: "ExportReport | None" = None,
                 missing: list[str] | None = None, unexpected: list[str] | None = None,
                 wrong_shape: list[str] | None = None, node_id: str | None = None):
        super().__init__(message)
        self.details = details
        self.report = report
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.wrong_shape = wrong_shape or []
        self.node_id = node_id


@dataclass
class ExportReport:
    """The result of one export; `check_passed` is only True after the written file was read back and its
    outputs compared with the PyTorch model's."""

    path: str
    format: str
    size_bytes: int = 0
    check_passed: bool = False
    max_abs_diff: float | None = None
    seconds: float = 0.0
    message: str = ""
    tolerance: float | None = None
    batch_sizes: list[int] = field(default_factory=list)
    # int8 only: the same network in float32 in the same container, the largest output difference from it, the
    # layers quantised and those left float32 (node ids), and the metric of the project's loss ("accuracy", or
    # "mae" and "r2") of the float network and of the int8 file on `eval_samples` samples of its data's
    # `eval_split` ("validation", else "test" or "training"); empty when the data could not be used (the message
    # says why).
    float_size_bytes: int | None = None
    float_max_abs_diff: float | None = None
    quantized_layers: list[str] = field(default_factory=list)
    float_layers: list[str] = field(default_factory=list)
    eval_split: str = ""
    eval_samples: int = 0
    metrics_float: dict[str, float] = field(default_factory=dict)
    metrics_int8: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as a person reads it (what `layerloom export` prints)."""
        diff = "—" if self.max_abs_diff is None else f"{self.max_abs_diff:.2e}"
        limit = f" (limit {self.tolerance:.0e})" if self.tolerance is not None else ""
        batches = f" on batches of {' and '.join(map(str, self.batch_sizes))}" if self.batch_sizes else ""
        name = FORMAT_NAMES.get(self.format, self.format)
        size = _size(self.size_bytes)
        if self.format == "int8":
            name += ", ONNX" if self.path.lower().endswith(".onnx") else ", TorchScript"
            if self.float_size_bytes:
                ratio = self.float_size_bytes / max(self.size_bytes, 1)
                than = ("; about the size of" if 0.95 < ratio < 1.05 else f"; {ratio:.1f}× smaller than" if ratio > 1
                        else "; larger than")  # a tiny network: the int8 packing outweighs its weights
                size += f"{than} the float network in the same container ({_size(self.float_size_bytes)})"
        lines = [
            f"path:           {self.path}",
            f"format:         {name}",
            f"size:           {size}",
            f"check passed:   {'yes' if self.check_passed else 'NO'}{batches}",
            f"max difference: {diff}{limit}",
        ]
        if self.float_max_abs_diff is not None:
            lines.append(f"from float:     {self.float_max_abs_diff:.2e} largest output difference from the float "
                         f"network")
        lines += [f"{key + ':':<15} {line}" for key, line in self._metric_lines()]
        return lines + [f"time:           {self.seconds:.1f} s"] + [
            f"note: {line}" for line in self.message.split("\n") if line.strip()]

    def _metric_lines(self) -> list[tuple[str, str]]:
        """Each metric: float → int8 and the change, on how many samples of which split."""
        out = []
        on = f"on {self.eval_samples:,d} {self.eval_split} samples"
        for key, before in self.metrics_float.items():
            after = self.metrics_int8.get(key)
            if after is None:
                continue
            if key == "accuracy":
                out.append((key, f"{before:.2%} float → {after:.2%} int8 ({(after - before) * 100:+.2f} points) {on}"))
            else:
                out.append((key.upper() if key == "mae" else "R²",
                            f"{before:.4g} float → {after:.4g} int8 ({after - before:+.2g}) {on}"))
        return out


def _size(n: int) -> str:
    return f"{format_bytes(n)} ({n:,d} bytes)" if n >= 1 << 10 else f"{n} bytes"
