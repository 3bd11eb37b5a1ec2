"""The bundled example networks in resources/templates, found by name."""
from __future__ import annotations

from pathlib import Path

from .errors import ProjectError
from .project import SUFFIX, Project, load_project


def templates_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources" / "templates"


def template_names() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob(f"*{SUFFIX}"))


def template_path(name: str) -> Path:
    path = templates_dir() / f"{name}{SUFFIX}"
    if not path.is_file():
        raise ProjectError(f"there is no template {name!r}; templates: {', '.join(template_names())}")
    return path


def load_template(name: str) -> Project:
    return load_project(template_path(name))
