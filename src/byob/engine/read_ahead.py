"""Items made on a second thread while the caller works on the previous ones: reading and
casting a transfer's batches overlaps encoding and uploading them."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def read_ahead(make: Callable[[], Iterator[T]], *, depth: int, name: str) -> Iterator[T]:
    """The items of ``make()``, made on a thread named ``name`` at most ``depth`` ahead of
    the consumer (bounded, so memory does not grow with the data). An exception there is
    raised here; a consumer that stops early stops the thread."""
    items: queue.Queue[Any] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        item: Any = done
        try:
            for made in make():
                if stop.is_set() or not put(made):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        put(item)

    # The thread logs with the caller's context (its transfer) too.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(produce,), name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
