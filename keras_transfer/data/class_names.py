"""The rule every class name must meet to reach the export: one line.

An export's `labels.txt` holds one name a line, and TF Serving clients and
the predictor read it line by line. A folder named with a newline would
train to the end and then fail at export, every time the run is resumed; so
the data is refused by this rule before the first epoch, and the export
checks the same rule.
"""

from keras_transfer.checks import ConfigError


class ClassNameError(ConfigError):
    """A class name cannot be exported; the message names it."""


def check_one_line(class_names, flag="dataset"):
    """Raises `ClassNameError` for a name holding a line break."""
    for name in class_names:
        if "\n" in name or "\r" in name:
            raise ClassNameError(
                f"class names must be one line (an export's labels.txt holds one a line); "
                f"rename the class folder. Received: {flag} class {name!r}")
