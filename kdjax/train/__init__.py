"""Training: state, jitted train/eval steps, the loop, checkpoints, metrics."""

from kdjax import _extras

_extras.require("kdjax.train")  # without kdjax[train]: a one-line error
