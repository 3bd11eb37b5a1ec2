"""Export a LayerLoom network: weights as safetensors, ONNX, a torch.export program (.pt2), TorchScript, a
standalone PyTorch script (.py, see codegen.py), or int8: its Linear, LSTM and GRU layers dynamically quantised, as
TorchScript or ONNX, with size and accuracy before and after on the project's data (see int8.py).

Every export is read back and run against the PyTorch model before it is reported done. Importing this
package does not import torch; an export does.

    from engine.export import export_model
    report = export_model(project.graph, "runs/try1/final.safetensors", "onnx", "model.onnx")
    print(report.to_dict())
"""
from __future__ import annotations

from .codegen import generate_code
from .core import ALL_FORMATS, export_model, make_model, make_sample
from .report import FORMATS, ExportError, ExportReport
from .report import SUFFIXES as _SUFFIXES
from .weights import check_state_dict, load_weights, read_safetensors, write_safetensors

__all__ = ["FORMATS", "SUFFIXES", "ExportError", "ExportReport", "check_state_dict", "export_model", "load_weights",
           "make_model", "make_sample", "read_safetensors", "write_safetensors", "ALL_FORMATS", "generate_code"]

SUFFIXES = {**_SUFFIXES, ".py": "python"}  # by output suffix, the generated script included
