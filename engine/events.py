"""A tiny observer: objects emit named events to connected callbacks, with no Qt involved."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any


class Events:
    """Named events with connect / disconnect / emit; callbacks run synchronously in connect order."""

    def __init__(self, *names: str):
        self._names = frozenset(names)
        self._callbacks: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._blocked = 0

    def _check(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(f"unknown event {name!r}; known: {', '.join(sorted(self._names))}")

    def connect(self, name: str, callback: Callable[..., Any]) -> None:
        self._check(name)
        self._callbacks[name].append(callback)

    def disconnect(self, name: str, callback: Callable[..., Any]) -> None:
        self._check(name)
        try:
            self._callbacks[name].remove(callback)
        except ValueError:
            pass

    def emit(self, name: str, *args: Any) -> None:
        self._check(name)
        if self._blocked:
            return
        # Copy: a callback may disconnect itself while we iterate.
        for callback in list(self._callbacks[name]):
            callback(*args)

    class _Blocker:
        def __init__(self, events: "Events"):
            self._events = events

        def __enter__(self) -> None:
            self._events._blocked += 1

        def __exit__(self, *exc: object) -> None:
            self._events._blocked -= 1

    def blocked(self) -> "Events._Blocker":
        """Context manager that silences every event (used while loading a whole file)."""
        return Events._Blocker(self)
