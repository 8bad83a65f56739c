"""A small generic registry: register, get with "did you mean", list with shell patterns."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Generic, Iterator, TypeVar

from .errors import ClipbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def register(self, name: str, item: T, origin: str = "") -> T:
        if name in self._items:
            where = f" (already defined in {self._origin[name]})" if self._origin[name] else ""
            raise ClipbenchError(f"duplicate {self.kind} name '{name}' in {origin or 'code'}{where}; rename one of them")
        self._items[name] = item
        self._origin[name] = origin
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ClipbenchError(self.unknown_message(name), exit_code=2) from None

    def origin(self, name: str) -> str:
        """Where `name` was defined (a file path), or "" when it was registered in code."""
        return self._origin.get(name, "")

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"Unknown {self.kind} '{name}'.{hint} See 'clipbench list {self.kind}s'."

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self, pattern: str = "*") -> list[str]:
        return [n for n in sorted(self._items) if fnmatch.fnmatch(n, pattern)]

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in sorted(self._items)]
