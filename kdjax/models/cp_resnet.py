"""CP-ResNet: a 2-D ResNet whose receptive field is limited by the argument `rho`.

Koutini, Eghbal-zadeh, Dorfer, Widmer, "The Receptive Field as a Regularizer in Deep
Convolutional Neural Networks for Acoustic Scene Classification" (EUSIPCO 2019) and Koutini,
Eghbal-zadeh, Widmer, "Receptive-Field-Regularized CNN Variants for Acoustic Scene
Classification" (DCASE 2019 workshop). Reference implementation: kkoutini/cpjku_dcase19,
`models/cp_resnet.py` (`Network`, `get_model_based_on_rho`); EAsT (suncerock/EAsT-music-
classification) uses it as the OpenMIC student.

Layout (reference, depth 26): in_c = 5x5 conv stride 2 (padding 1) + BN + ReLU; three stages of
basic blocks (conv k1 -> BN -> ReLU -> conv k2 -> BN, + identity or 1x1-conv/BN shortcut, ReLU),
channels `base, 2 base, 4 base`, 2x2 max pools after stage-1 blocks 1, 2 and 4; head = 1x1 conv to
the classes + BN + global average pooling (the logits are class maps averaged over time and
frequency). Each kernel is 3x3 or 1x1; `rho` decides which (`rho_kernels`), so a small `rho` gives
a small receptive field (the paper's regulariser). The input `[B, T, F]` is a one-channel image
`[B, T, F, 1]` (the reference's `[B, C, F, T]` transposed; square kernels and pools make the order
irrelevant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, check_min_size, f32

# The reference initialises convolutions with He (kaiming) normal, fan-in.
_HE = nn.initializers.kaiming_normal()


def rho_kernels(
    rho: int, blocks_per_stage: Sequence[int] = (4, 4, 4)
) -> list[list[tuple[int, int]]]:
    """Kernel sizes `(k1, k2)` of every basic block for a receptive-field budget `rho`.

    Rule (equal to the reference's `get_model_based_on_rho` for depth 26, i.e. 4 blocks per
    stage, for every `rho`; tested): the first block of stage 1 is `(3, 1)`; after it, the
    convolutions in network order are 3x3 while fewer than `rho` of them have been placed, then
    1x1. For other depths the same rule is applied (an extension; the paper only uses depth 26).

    Returns:
      one list per stage of `(k1, k2)` per block.
    """
    if rho < 0:
        raise ValueError(f"cp_resnet: rho must be >= 0, got {rho}")
    out, n = [], 0
    for s, nb in enumerate(blocks_per_stage):
        stage = []
        for b in range(nb):
            if s == 0 and b == 0:
                stage.append((3, 1))
                continue
            k1 = 3 if n < rho else 1
            k2 = 3 if n + 1 < rho else 1
            n += 2
            stage.append((k1, k2))
        out.append(stage)
    return out


class BasicBlock(nn.Module):
    """conv k1 -> BN -> ReLU -> conv k2 -> BN, + shortcut, ReLU: `[B, T, F, Cin] -> [B, T, F, width]`.

    The shortcut is the identity, or a 1x1 conv + BN when the channel count changes (reference).
    """

    width: int
    k1: int = 3
    k2: int = 3
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        def conv(k, name):
            return nn.Conv(
                self.width,
                (k, k),
                padding="SAME",
                use_bias=False,
                kernel_init=_HE,
                dtype=self.dtype,
                name=name,
            )

        y = nn.relu(batch_norm(train, self.dtype, "bn1")(conv(self.k1, "conv1")(x)))
        y = batch_norm(train, self.dtype, "bn2")(conv(self.k2, "conv2")(y))
        if x.shape[-1] != self.width:
            x = batch_norm(train, self.dtype, "shortcut_bn")(conv(1, "shortcut")(x))
        return nn.relu(y + x)


class Model(nn.Module):
    """CP-ResNet classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      base_channels: channels of in_c and stage 1; stages 2 and 3 have 2x and 4x (reference: 128;
        small default 16).
      rho: receptive-field budget (`rho_kernels`); the reference's DCASE 2019 submissions used
        rho 5-7 (paper Table 1 sweeps it).
      blocks_per_stage: basic blocks per stage (reference: depth 26 = (4, 4, 4)).
      maxpool: per stage, the block indices after which a 2x2 max pool follows (0 = before the
        first block); reference ((1, 2, 4), (), ()).
      dtype: computation dtype (None: float32); params and BN statistics stay float32, logits
        and feats are returned as float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `fmap{i}` stage outputs
    `[B, T_i, F_i, C_i]`, `frames` = last stage averaged over frequency `[B, T', 4 base]`,
    `embedding` = last stage averaged over time and frequency `[B, 4 base]` (= frames' time
    mean).

    Raises:
      ValueError: input not `[B, T, F]`, or too short for the poolings.
    """

    num_classes: int
    base_channels: int = 16
    rho: int = 7
    blocks_per_stage: Sequence[int] = (4, 4, 4)
    maxpool: Sequence[Sequence[int]] = ((1, 2, 4), (), ())
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("cp_resnet", x)
        if len(self.maxpool) != len(self.blocks_per_stage):
            raise ValueError(
                f"cp_resnet: maxpool {self.maxpool} needs one entry per stage {self.blocks_per_stage}"
            )
        n_pool = sum(len(m) for m in self.maxpool)
        # in_c: 5x5 stride 2 padding 1 gives floor((L - 3) / 2) + 1; each pool halves (floor).
        check_min_size("cp_resnet", x, 3 + 2 ** (n_pool + 1) - 2, 3 + 2 ** (n_pool + 1) - 2)
        h = cast_input(x, self.dtype)[..., None]
        h = nn.Conv(
            self.base_channels,
            (5, 5),
            strides=(2, 2),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=_HE,
            dtype=self.dtype,
            name="in_c",
        )(h)
        h = nn.relu(batch_norm(train, self.dtype, "in_c_bn")(h))
        kernels = rho_kernels(self.rho, self.blocks_per_stage)
        feats = {}
        for s, (nb, pools) in enumerate(zip(self.blocks_per_stage, self.maxpool, strict=True)):
            width = self.base_channels * 2**s
            if 0 in pools:
                h = nn.max_pool(h, window_shape=(2, 2), strides=(2, 2))
            for b in range(nb):
                k1, k2 = kernels[s][b]
                h = BasicBlock(width, k1, k2, self.dtype, name=f"stage{s + 1}_block{b + 1}")(
                    h, train=train
                )
                if b + 1 in pools:
                    h = nn.max_pool(h, window_shape=(2, 2), strides=(2, 2))
            feats[f"fmap{s}"] = h
        frames = h.mean(axis=2)
        feats["frames"] = frames
        feats["embedding"] = frames.mean(axis=1)
        # Head (reference `feed_forward`): 1x1 conv to class maps, BN, global average pooling.
        z = nn.Conv(
            self.num_classes, (1, 1), use_bias=False, kernel_init=_HE, dtype=self.dtype, name="head"
        )(h)
        z = batch_norm(train, self.dtype, "head_bn")(z)
        logits = z.mean(axis=(1, 2))
        return logits.astype(jnp.float32), f32(feats)
