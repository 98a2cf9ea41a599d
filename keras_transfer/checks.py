"""The words of a refused setting, in the Keras voice: what is wrong and what
was received (`ValueError("epochs must be >= 0. Received: epochs=-1")`)."""

import math


class ConfigError(ValueError):
    """A setting is invalid; the message names the flag and the value."""


def require(condition, message):
    if not condition:
        raise ConfigError(message)


def validate_choice(name, value, choices):
    require(
        value in choices,
        f"{name} must be one of {list(choices)}. Received: {name}={value!r}",
    )


def validate_range(name, value, low, high=None, low_inclusive=True):
    ok = value >= low if low_inclusive else value > low
    if high is not None:
        ok = ok and value <= high
    bound = (">= " if low_inclusive else "> ") + str(low)
    if high is not None:
        bound += f" and <= {high}"
    # inf passes `> 0` and trains a model of NaNs; nan fails every comparison
    # but deserves the same words.
    finite = math.isfinite(value)
    require(ok and finite, f"{name} must be {'a finite number ' * (not finite)}{bound}. "
            f"Received: {name}={value}")
