"""Speech Commands mixtures: a multi-label keyword-tagging set made from real Speech Commands clips.

Construction (example i of split S, drawn from `np.random.default_rng([seed, i])` when the
source is created: deterministic, independent of access order and workers):
  * background: `duration_s` seconds of real background noise, the concatenation of randomly
    chosen `_silence_` clips (1 s cuts of the corpus' background-noise recordings) of split S
    only, scaled by `noise_gain`;
  * 1..`max_keywords` (uniform count) keyword clips of *distinct* words among the 10 keywords
    (yes no up down left right on off stop go), all from split S, each scaled by a random gain
    (uniform in `gain_db` dB), placed in distinct 1 s slots of the clip (slot order random,
    so keywords never overlap) and added to the background; a mixture whose peak exceeds 1 is
    scaled down to peak 1.
  * labels: the multi-hot `[10]` of the words present (`_unknown_` words and `_silence_` are
    never labels); every label is known (label_mask 1).
Splits (train / validation / test / all) are those of `kdjax.data.speech_commands`: speaker-
disjoint (salted `which_set` hashing of the speaker id) and noise-disjoint, so no speaker or
noise cut crosses splits.

Sizes (shared `speech_commands_v2_test` copy, 16 kHz): `num_mixtures` per split (default: the
number of keyword clips of the split); clips are `duration_s * 16000` samples (default 3 s).

Source: built here so multi-label (tagging) recipes have a second real multi-label set next to
`esc10_mix`. Underlying corpus: Speech Commands v0.02 (P. Warden 2018, arXiv:1804.03209),
CC BY 4.0: attribute the corpus when redistributing derived clips.
"""

from __future__ import annotations

import os

import numpy as np

from kdjax.data import speech_commands
from kdjax.data.audio import load_audio
from kdjax.data.base import ClipRecord, ClipSource

CLASS_NAMES = list(speech_commands.KEYWORDS)


class SpeechCommandsMix(ClipSource):
    """Keyword mixtures `[duration_s * sample_rate]` with multi-hot labels `[10]`.

    Args:
      base: a Speech Commands ClipSource of one split (12-class one-hot labels).
      num_mixtures: examples in this source (default: the split's number of keyword clips).
      seed: recipe seed.
      duration_s: clip length in seconds (integer, >= max_keywords: one 1 s slot per keyword).
      max_keywords: 1..max keywords per mixture (uniform count), <= 10.
      gain_db: (low, high) gain range in dB per keyword.
      noise_gain: factor applied to the background noise (1.0 = recorded level).

    Raises:
      ValueError: max_keywords out of 1..10, duration_s < max_keywords or not integral, a bad
        gain range, or a split without keyword or `_silence_` clips.
    """

    def __init__(self, base: ClipSource, *, num_mixtures: int | None = None, seed: int = 0,
                 duration_s: int = 3, max_keywords: int = 3, gain_db: tuple[float, float] = (-6.0, 0.0),
                 noise_gain: float = 1.0):
        if not 1 <= max_keywords <= len(CLASS_NAMES):
            raise ValueError(f"speech_commands_mix: max_keywords={max_keywords}, expected 1..{len(CLASS_NAMES)}")
        if int(duration_s) != duration_s or duration_s < max_keywords:
            raise ValueError(f"speech_commands_mix: duration_s={duration_s}, expected an integer >= "
                             f"max_keywords={max_keywords} (one 1 s slot per keyword)")
        if gain_db[0] > gain_db[1]:
            raise ValueError(f"speech_commands_mix: gain_db={gain_db}, expected (low, high)")
        sr = base.sample_rate
        ids = base.label_ids()
        silence = speech_commands.CLASS_NAMES.index("_silence_")
        keyword_idx = np.flatnonzero(ids < len(CLASS_NAMES))
        noise_idx = np.flatnonzero(ids == silence)
        if keyword_idx.size == 0 or noise_idx.size == 0:
            raise ValueError(f"speech_commands_mix: {base.name} has {keyword_idx.size} keyword and "
                             f"{noise_idx.size} _silence_ clips; need both")
        n = keyword_idx.size if num_mixtures is None else int(num_mixtures)
        slots = int(duration_s)
        recs = []
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            k = int(rng.integers(1, max_keywords + 1))
            chosen, seen = [], set()
            for j in rng.permutation(keyword_idx):
                if len(chosen) == k:
                    break
                if int(ids[j]) not in seen:
                    chosen.append(int(j))
                    seen.add(int(ids[j]))
            gains = 10.0 ** (rng.uniform(gain_db[0], gain_db[1], len(chosen)) / 20.0)
            starts = (rng.permutation(slots)[: len(chosen)] * sr).tolist()
            noise = [int(x) for x in rng.choice(noise_idx, slots)]
            labels = np.zeros(len(CLASS_NAMES), np.float32)
            labels[[int(ids[j]) for j in chosen]] = 1.0
            recs.append(ClipRecord(path=base.records[chosen[0]].path, labels=labels, meta={
                "keywords": chosen, "gains": gains.tolist(), "starts": starts, "noise": noise,
                "speakers": [base.records[j].meta.get("speaker", "") for j in chosen]}))
        super().__init__(recs, sample_rate=sr, class_names=CLASS_NAMES, multi_label=True,
                         name=f"speech_commands_mix/{base.name}")
        self._base = base
        self.num_samples = slots * sr
        self.noise_gain = float(noise_gain)
        self._clips: dict[int, np.ndarray] = {}

    def _clip(self, j: int) -> np.ndarray:
        if j not in self._clips:  # ~32 KB per 1 s clip: a whole split fits in memory
            self._clips[j] = load_audio(self._base.records[j].path, expected_sr=self.sample_rate)
        return self._clips[j]

    def load(self, i: int) -> np.ndarray:
        """float32 `[duration_s * sample_rate]`: background noise + gained keywords in their slots."""
        m = self.records[i].meta
        sr = self.sample_rate
        noise = np.concatenate([self._clip(j)[:sr] for j in m["noise"]])[: self.num_samples]
        out = self.noise_gain * np.pad(noise, (0, self.num_samples - len(noise)))
        for j, g, s in zip(m["keywords"], m["gains"], m["starts"], strict=True):
            w = self._clip(j)[:sr]
            out[s: s + len(w)] += g * w
        peak = float(np.max(np.abs(out)))
        return (out / peak if peak > 1.0 else out).astype(np.float32)


def source(split: str, *, num_mixtures: int | None = None, seed: int = 0, duration_s: int = 3,
           max_keywords: int = 3, gain_db: tuple[float, float] = (-6.0, 0.0), noise_gain: float = 1.0,
           data_dir: str | os.PathLike | None = None) -> SpeechCommandsMix:
    """Speech Commands mixtures of `split` (train/validation/test/all); see `SpeechCommandsMix`.

    Raises:
      DatasetNotFoundError / ValueError: as `speech_commands.source`, plus bad arguments.
    """
    base = speech_commands.source(split, data_dir=data_dir)
    return SpeechCommandsMix(base, num_mixtures=num_mixtures, seed=seed, duration_s=duration_s,
                             max_keywords=max_keywords, gain_db=tuple(gain_db), noise_gain=noise_gain)
