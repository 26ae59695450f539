"""ESC-10 mixtures: a multi-label tagging set made from real ESC-10 clips.

Mixture i of a split is 1-3 ESC-10 clips of *distinct classes*, all from the
same official fold (so cross-validation folds stay disjoint), each scaled by a
random gain (uniform in `gain_db` dB) and summed; a mixture whose peak exceeds
1 is scaled down to peak 1. Labels are the multi-hot of the mixed classes `[10]`.
The recipe of mixture i (fold, clips, gains) is drawn from
`np.random.default_rng([seed, i])` when the source is created: deterministic,
independent of access order.

Splits: those of `kdjax.data.esc50` (foldK, train_foldK, test_foldK,
validation_foldK, fit_foldK, all); a mixture draws its fold with probability
proportional to the fold's clip count.

Source: built here from ESC-10 (Piczak 2015, CC BY 3.0) so multi-label
(tagging) recipes can be exercised on the shared data.
"""

from __future__ import annotations

import os

import numpy as np

from kdjax.data import esc50
from kdjax.data.base import ClipRecord, ClipSource


class ESC10Mix(ClipSource):
    """Mixtures `[N]` (N = 5 s at the files' rate) with multi-hot labels `[10]`.

    Args:
      base: an ESC-10 ClipSource of one split.
      num_mixtures: examples in this source (default len(base)).
      seed: recipe seed.
      max_components: 1..max clips per mixture (uniform count), <= 10.
      gain_db: (low, high) gain range in dB per component.

    Raises:
      ValueError: max_components out of 1..10 or a bad gain range.
    """

    def __init__(self, base: ClipSource, *, num_mixtures: int | None = None, seed: int = 0,
                 max_components: int = 3, gain_db: tuple[float, float] = (-6.0, 0.0)):
        if not 1 <= max_components <= base.num_classes:
            raise ValueError(f"esc10_mix: max_components={max_components}, expected 1..{base.num_classes}")
        if gain_db[0] > gain_db[1]:
            raise ValueError(f"esc10_mix: gain_db={gain_db}, expected (low, high)")
        n = len(base) if num_mixtures is None else int(num_mixtures)
        folds = np.array([r.meta["fold"] for r in base.records])
        classes = base.label_ids()
        recs = []
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            anchor = int(rng.integers(len(base)))
            pool = np.flatnonzero(folds == folds[anchor])
            k = int(rng.integers(1, max_components + 1))
            chosen, seen = [anchor], {int(classes[anchor])}
            for j in rng.permutation(pool):
                if len(chosen) == k:
                    break
                if int(classes[j]) not in seen:
                    chosen.append(int(j))
                    seen.add(int(classes[j]))
            gains = 10.0 ** (rng.uniform(gain_db[0], gain_db[1], len(chosen)) / 20.0)
            labels = np.zeros(base.num_classes, np.float32)
            labels[[int(classes[j]) for j in chosen]] = 1.0
            recs.append(ClipRecord(
                path=base.records[anchor].path, labels=labels,
                meta={"fold": int(folds[anchor]), "components": chosen, "gains": gains.tolist()},
            ))
        super().__init__(recs, sample_rate=base.sample_rate, class_names=base.class_names,
                         multi_label=True, name=f"esc10_mix/{base.name}")
        self._base = base

    def load(self, i: int) -> np.ndarray:
        """float32 mixture `[N]` of record i's components."""
        m = self.records[i].meta
        waves = [g * self._base.load(j) for j, g in zip(m["components"], m["gains"])]
        n = max(len(w) for w in waves)
        out = np.zeros(n, np.float32)
        for w in waves:
            out[: len(w)] += w
        peak = float(np.max(np.abs(out)))
        return out / peak if peak > 1.0 else out


def source(split: str, *, num_mixtures: int | None = None, seed: int = 0, max_components: int = 3,
           gain_db: tuple[float, float] = (-6.0, 0.0), data_dir: str | os.PathLike | None = None,
           cache: bool = False) -> ESC10Mix:
    """ESC-10 mixtures of `split` (esc50 split names); see `ESC10Mix`.

    Raises:
      DatasetNotFoundError / ValueError: as `esc50.source(subset="esc10")`, plus bad arguments.
    """
    base = esc50.source(split, subset="esc10", data_dir=data_dir, cache=cache)
    return ESC10Mix(base, num_mixtures=num_mixtures, seed=seed, max_components=max_components, gain_db=gain_db)
