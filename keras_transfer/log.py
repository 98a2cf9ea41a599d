"""The package's one logger, `logging.getLogger("keras_transfer")`.

Library code logs through `logger`; it never prints. A command line calls
`show_on_console` once, which writes the logger's records to stdout as
`[keras_transfer] message` lines, the run's progress as the user reads it.
Without that call (the Python API in a notebook, a test) the records go
wherever the application's own logging configuration sends them.
"""

import logging
import sys
import time

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


# Under `--verbose=2` (output to a file, a CI log) a pass prints at least this
# often, so a long epoch never looks like a hang.
PROGRESS_EVERY_SECONDS = 30.0


def _describe(values):
    return "".join(f", {name} {value:.4g}" for name, value in values.items())


class Progress:
    """The progress of one pass (an epoch of a phase, its validation, the
    test, a recording), every line labelled with the pass.

    `verbose=1` (a terminal): a line naming the pass, then Keras' progress bar
    updated in place. `verbose=2`: a line at least every
    `PROGRESS_EVERY_SECONDS` while the pass runs, and one when it ends (only
    when `announce_end`: a validation pass reports through its epoch's line).
    `verbose=0`: nothing.
    """

    def __init__(self, label, total, unit, verbose, *, announce_end=True):
        self.label, self.total, self.unit = label, total, unit
        self.verbose, self.announce_end = verbose, announce_end
        self.started = self.last_line = time.monotonic()
        self.done = 0
        self._bar = None
        if verbose == 1:
            import keras  # Only a terminal's bar needs Keras.

            logger.info(label)
            self._bar = keras.utils.Progbar(total or None, verbose=1, unit_name=unit)

    def _of_total(self):
        if not self.total:
            return f"{self.unit} {self.done:,}"
        return f"{self.unit} {self.done:,}/{self.total:,} ({100 * self.done // self.total} %)"

    def update(self, done, values=None):
        """`values`: a callable returning {name: float}, called only when a
        line is written (reading metrics can mean a device sync)."""
        self.done = done
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(done, list(values().items()) if values else None)
        elif self.verbose == 2 and now - self.last_line >= PROGRESS_EVERY_SECONDS:
            self.last_line = now
            elapsed = now - self.started
            left = ""
            if self.total and 0 < done < self.total:
                left = f", about {elapsed * (self.total - done) / done:.0f} s left"
            logger.info(f"{self.label}: {self._of_total()}, {elapsed:.0f} s{left}"
                        f"{_describe(values()) if values else ''}")

    def finish(self, values=None):
        """Ends the pass; `values` {name: float} for its closing line."""
        values = values or {}
        if self._bar is not None:
            self._bar.update(self.done, list(values.items()), finalize=True)
        elif self.verbose == 2 and self.announce_end:
            plural = "" if self.done == 1 else "es" if self.unit.endswith("ch") else "s"
            logger.info(f"{self.label}: {self.done:,} {self.unit}{plural} in "
                        f"{time.monotonic() - self.started:.0f} s{_describe(values)}")
