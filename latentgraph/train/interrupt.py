"""Ctrl-C handling of the training loop: a step is never cut in half."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupt_after_step() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt;
    a second Ctrl-C raises at once. Only in the main thread (elsewhere the block
    runs unguarded, as Python delivers signals to the main thread only).

    Example:
        >>> with interrupt_after_step():
        ...     done = True
        >>> done
        True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt
