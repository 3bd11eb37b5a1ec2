"""What an export gives back (ExportReport) and what it raises (ExportError); no torch needed here."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import LayerLoomError
from ..units import format_bytes

FORMATS = ("safetensors", "onnx", "pt2", "torchscript")
FORMAT_NAMES = {"safetensors": "safetensors weights", "onnx": "ONNX", "pt2": "torch.export program (.pt2)",
                "torchscript": "TorchScript"}
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

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as a person reads it (what `layerloom export` prints)."""
        diff = "—" if self.max_abs_diff is None else f"{self.max_abs_diff:.2e}"
        limit = f" (limit {self.tolerance:.0e})" if self.tolerance is not None else ""
        batches = f" on batches of {' and '.join(map(str, self.batch_sizes))}" if self.batch_sizes else ""
        return [
            f"path:           {self.path}",
            f"format:         {FORMAT_NAMES.get(self.format, self.format)}",
            f"size:           {_size(self.size_bytes)}",
            f"check passed:   {'yes' if self.check_passed else 'NO'}{batches}",
            f"max difference: {diff}{limit}",
            f"time:           {self.seconds:.1f} s",
        ] + [f"note: {line}" for line in self.message.split("\n") if line.strip()]


def _size(n: int) -> str:
    return f"{format_bytes(n)} ({n:,d} bytes)" if n >= 1 << 10 else f"{n} bytes"
