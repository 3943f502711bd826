"""Run the newest request in a background thread and drop the stale ones.

Dragging across the latent plot asks for a new volume many times a second;
decoding one takes a good fraction of a second. :class:`LatestOnly` runs one
request at a time in a napari thread worker, keeps only the newest request
that arrives meanwhile (older waiting ones are dropped unrun), and drops a
result whose request is no longer the newest, so the volume on screen always
catches up with the last point under the mouse and the UI never waits.
"""

from __future__ import annotations

from collections.abc import Callable


class LatestOnly:
    """One-at-a-time runner of ``fn(*args)`` calls in a napari thread worker.

    ``on_result(value)`` and ``on_error(exception)`` are called in the main
    thread, for the newest request only. ``dropped`` counts the requests
    that were replaced before they ran or whose result came too late.
    """

    def __init__(self, on_result: Callable, on_error: Callable):
        self._on_result = on_result
        self._on_error = on_error
        self._pending: tuple[int, Callable, tuple] | None = None
        self._worker = None
        self._newest = 0
        self.dropped = 0

    @property
    def busy(self) -> bool:
        """A request is running or waiting."""
        return self._worker is not None or self._pending is not None

    def submit(self, fn: Callable, *args) -> int:
        """Ask for ``fn(*args)``; returns the request's number (1, 2, ...)."""
        self._newest += 1
        if self._pending is not None:
            self.dropped += 1
        self._pending = (self._newest, fn, args)
        if self._worker is None:
            self._start()
        return self._newest

    def cancel(self) -> None:
        """Drop the waiting request and the result of the running one."""
        if self._pending is not None:
            self.dropped += 1
            self._pending = None
        self._newest += 1

    def _start(self) -> None:
        from napari.qt.threading import create_worker

        number, fn, args = self._pending
        self._pending = None
        self._worker = create_worker(fn, *args, _start_thread=False, _connect={
            "returned": lambda value: self._deliver(number, self._on_result, value),
            "errored": lambda err: self._deliver(number, self._on_error, err),
            "finished": self._finished,
        })
        self._worker.start()

    def _deliver(self, number: int, callback: Callable, value) -> None:
        if number == self._newest:
            callback(value)
        else:
            self.dropped += 1

    def _finished(self) -> None:
        self._worker = None
        if self._pending is not None:
            self._start()
