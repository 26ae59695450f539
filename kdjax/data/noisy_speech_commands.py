"""Noisy, longer Speech Commands clips for temporal KD: a keyword inside 2-8 s of real noise.

Each example i of split S is the i-th clip of `speech_commands.source(S)`
placed at a random offset inside `duration_s` seconds of background noise.
The noise is a concatenation of `_silence_` clips (real background-noise
recordings) of the same split S only, so noise never crosses splits. The
offset and the noise clips are drawn from `np.random.default_rng([seed, i])`:
deterministic per (seed, index), independent of access order and workers.

Source: built here for Temporal Knowledge Distillation experiments (keyword
localisation in long clips); the underlying corpus is Speech Commands v0.02
(Warden 2018, CC BY 4.0). Labels are the 12 classes of `speech_commands`.
"""

from __future__ import annotations

import os

import numpy as np

from kdjax.data import speech_commands
from kdjax.data.audio import load_audio
from kdjax.data.base import ClipSource

DURATIONS_S = (2, 4, 6, 8)


class NoisySpeechCommands(ClipSource):
    """Keyword clips `[duration_s * 16000]` embedded in same-split background noise.

    Args:
      base: a Speech Commands ClipSource (one split).
      duration_s: clip length in seconds (2, 4, 6 or 8 in the recipes; any >= 1 works).
      seed: placement/noise seed.
      noise_gain: factor applied to the noise (1.0 = recorded level).
      cache: keep the decoded keyword clips in memory (~32 KB per 1 s clip; the noise clips
        are always kept).

    Raises:
      ValueError: duration < 1 s, or the split has no `_silence_` clip to build noise from.
    """

    def __init__(self, base: ClipSource, *, duration_s: float, seed: int = 0, noise_gain: float = 1.0,
                 cache: bool = False):
        if duration_s < 1:
            raise ValueError(f"noisy_speech_commands: duration_s={duration_s}, expected >= 1 s")
        super().__init__(
            base.records, sample_rate=base.sample_rate, class_names=base.class_names,
            name=f"noisy_{base.name}_{duration_s}s",
        )
        self._base = base
        self.duration_s = duration_s
        self.num_samples = int(round(duration_s * base.sample_rate))
        self.seed = seed
        self.noise_gain = float(noise_gain)
        silence = speech_commands.CLASS_NAMES.index("_silence_")
        self.noise_indices = [i for i, r in enumerate(base.records) if int(np.argmax(r.labels)) == silence]
        if not self.noise_indices:
            raise ValueError(f"noisy_speech_commands: {base.name} has no _silence_ clip to build noise from")
        self._noise: dict[int, np.ndarray] = {}
        self._keywords: dict[str, np.ndarray] | None = {} if cache else None

    def _noise_clip(self, j: int) -> np.ndarray:
        if j not in self._noise:
            self._noise[j] = self._base.load(j)
        return self._noise[j]

    def placement(self, i: int) -> tuple[int, list[int]]:
        """(keyword start in samples, base indices of the noise clips used) for example i."""
        rng = np.random.default_rng([self.seed, int(i)])
        kw_len = min(int(self.records[i].meta.get("num_samples", self.sample_rate)), self.num_samples)
        n_noise = -(-self.num_samples // self.sample_rate)
        noise = [int(self.noise_indices[k]) for k in rng.integers(0, len(self.noise_indices), n_noise)]
        start = int(rng.integers(0, self.num_samples - kw_len + 1))
        return start, noise

    def load(self, i: int) -> np.ndarray:
        """float32 `[duration_s * sample_rate]`: noise + keyword at `placement(i)[0]`."""
        start, noise_ids = self.placement(i)
        noise = np.concatenate([self._noise_clip(j) for j in noise_ids])[: self.num_samples]
        noise = np.pad(noise, (0, self.num_samples - len(noise)))
        # self.records (not the base's): a subset (get_source max_examples) keeps labels and audio paired
        path = self.records[i].path
        kw = None if self._keywords is None else self._keywords.get(path)
        if kw is None:
            kw = load_audio(path, expected_sr=self.sample_rate)
            if self._keywords is not None:
                self._keywords[path] = kw
        kw = kw[: self.num_samples - start]
        out = self.noise_gain * noise
        out[start : start + len(kw)] += kw
        return out.astype(np.float32)


def source(
    split: str,
    *,
    duration_s: float = 4,
    seed: int = 0,
    noise_gain: float = 1.0,
    cache: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> NoisySpeechCommands:
    """Noisy Speech Commands of `split` (train/validation/test/all), labels one-hot `[12]`.

    Raises:
      DatasetNotFoundError / ValueError: as `speech_commands.source`, plus bad duration.
    """
    base = speech_commands.source(split, data_dir=data_dir)
    return NoisySpeechCommands(base, duration_s=duration_s, seed=seed, noise_gain=noise_gain, cache=cache)
