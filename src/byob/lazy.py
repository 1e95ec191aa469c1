"""Attributes made, and their module imported, on first use: a command loads the use cases and
repositories it touches, not all of them (start-up time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Lazy(Generic[T]):
    """A class attribute whose value is made on an instance's first access: the class (or
    function) at ``path`` (``package.module.Name``), called with what ``args`` takes from the
    instance, then kept on the instance
    (whose own attribute then answers every later access, without this descriptor).

    Made once even when threads ask at once (the web app and the workers share one
    `Services`): the lock is per attribute, and an attribute's ``args`` only ask for
    attributes it depends on, so locks are always taken in one order."""

    def __init__(self, path: str, args: Callable[[Any], tuple[Any, ...]]) -> None:
        self._module, _, self._name = path.rpartition(".")
        self._args = args
        self._lock = threading.RLock()
        self._attr = self._name

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr = attr

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Lazy[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> Lazy[T] | T:
        if instance is None:
            return self
        with self._lock:
            made: T | None = instance.__dict__.get(self._attr)
            if made is None:
                factory = getattr(import_module(self._module), self._name)
                made = instance.__dict__[self._attr] = factory(*self._args(instance))
            return made
