"""Training: state, jitted train/eval steps, the loop, checkpoints, metrics."""
