"""LayerLoom's engine: graph, layer catalogue, shape inference, model builder and project files (no Qt).

`import engine` loads neither torch nor Qt; torch is imported when a model is built.
"""
from __future__ import annotations

from .builder import build_model
from .errors import (
    BuildError,
    CycleError,
    DataError,
    GraphError,
    LayerLoomError,
    NodeNotFoundError,
    ParamError,
    PortError,
    ProjectError,
    ShapeError,
    SpecError,
    TrainingError,
    UnknownLayerError,
)
from .graph import Edge, Graph, Node
from .layers import all_specs, by_category, get_spec
from .project import Project, load_project, save_project
from .shapes import Analysis, NodeInfo, analyze, infer_shapes

__version__ = "0.1.0"

__all__ = [
    "Analysis", "BuildError", "CycleError", "DataError", "Edge", "Graph", "GraphError", "LayerLoomError", "Node",
    "NodeInfo", "NodeNotFoundError", "ParamError", "PortError", "Project", "ProjectError", "ShapeError", "SpecError",
    "TrainingError", "UnknownLayerError", "all_specs", "analyze", "build_model", "by_category", "get_spec",
    "infer_shapes", "load_project", "save_project",
]
