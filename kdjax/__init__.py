"""kdjax: knowledge distillation for audio classification in JAX/Flax.

Subpackages, by install (setup.cfg; a package whose extra is missing fails on import with one line
naming it, kdjax/_extras.py):
  core (`pip install kdjax`: jax, numpy)
    kdjax.losses      pure jnp distillation losses (imports only jax)
    kdjax.frontends   jnp spectral front-ends (STFT, log-mel, MFCC, CQT)
    kdjax.augment     mixup, SpecAugment, gain, time shift (explicit PRNG keys)
  `pip install 'kdjax[train]'`
    kdjax.models      Flax teachers and students returning (logits, feats)
    kdjax.data        dataset sources and grain pipelines
    kdjax.train       train state, jitted steps, loop, checkpoints, metrics
    kdjax.report      tables, verdicts and pictures of a workdir's runs
    kdjax.main        the `python -m kdjax.main` entry point
  kdjax.embeddings    pre-trained embedding teachers (BirdNET: `kdjax[birdnet]`)
  kdjax.export        ONNX / TFLite / StableHLO files of a trained student (`kdjax[export]`)
"""

__version__ = "0.1.0"
