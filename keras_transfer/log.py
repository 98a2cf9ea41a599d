"""The package's one logger, `logging.getLogger("keras_transfer")`.

Library code logs through `logger`; it never prints. A command line calls
`show_on_console` once, which writes the logger's records to stdout as
`[keras_transfer] message` lines, the run's progress as the user reads it.
Without that call (the Python API in a notebook, a test) the records go
wherever the application's own logging configuration sends them.
"""

import logging
import sys

logger = logging.getLogger("keras_transfer")

CONSOLE_FORMAT = "[keras_transfer] %(message)s"


class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time of the record, so a
    redirected stdout (pytest's capture, `contextlib.redirect_stdout`) gets
    the lines; `StreamHandler` would keep the stream it was created with."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        del value  # Always the current sys.stdout.


def show_on_console(verbose=1):
    """Routes the logger to stdout (idempotent); `verbose=0` silences it."""
    if not any(isinstance(handler, _CurrentStdout) for handler in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        logger.addHandler(handler)
    # The console shows the run's own lines once; the root logger (absl's
    # handler, a notebook's configuration) does not repeat them.
    logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
