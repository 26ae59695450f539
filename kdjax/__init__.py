"""kdjax: knowledge distillation for audio classification in JAX/Flax.

Subpackages:
  kdjax.losses     pure jnp distillation losses (imports only jax)
  kdjax.frontends  jnp spectral front-ends (STFT, log-mel, MFCC, CQT)
  kdjax.models     Flax teachers and students returning (logits, feats)
  kdjax.data       dataset sources and grain pipelines
  kdjax.train      train state, jitted steps, loop, checkpoints, metrics
"""

__version__ = "0.1.0"
