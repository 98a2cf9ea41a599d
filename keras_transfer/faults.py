"""Crash points for the kill-and-resume tests.

With `KERAS_TRANSFER_KILL_AT=<point>` in its environment the process sends
itself SIGKILL on reaching <point>: a real kill (no clean-up, no `finally`,
no flushing of TensorFlow's files), but at an exact place, where a kill from
outside lands wherever the process happens to be. Points:

    <phase>:<epoch>          after that epoch's backup is complete
    <phase>:<epoch>:saving   that epoch's weights written under their
                             temporary name, before the rename
    export                   the version staged, not yet published

Without the variable, `reached` costs one dictionary lookup.
"""

import os
import signal
import sys

ENV = "KERAS_TRANSFER_KILL_AT"


def reached(point):
    if os.environ.get(ENV) == point:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
