"""Layers with a choice of convolution formulation (`conv_impl`), for speed on XLA:CPU.

`conv_impl` (a model keyword, e.g. `temporal_cnn.Model(conv_impl=...)`):
  "xla"     `lax.conv_general_dilated` (what `flax.linen.Conv` runs). The plain path; best on
            GPU/TPU.
  "matmul"  im2col: the k shifted (strided) views of the padded input are concatenated on the
            channel axis, `[B, T', k*Cin]`, and multiplied by the kernel reshaped to
            `[k*Cin, Cout]` -- ONE matrix multiply. Autodiff then gives the weight gradient as one
            matmul over the shifted patches (`patches^T @ dy`) and the input gradient as one
            matmul (`dy @ W^T`) plus k shifted adds. Same math as "xla" (float32 summation order
            differs: ~1e-6 relative).
  "auto"    (default) "matmul" when tracing for the CPU backend (`jax.default_backend()`),
            "xla" otherwise, so accelerators keep the plain path.

Why (measured on the shared 2-core CPU at load ~6; whole train steps in
benchmarks/results/train_step.md): XLA:CPU's convolution is slow when the sequence is not much
longer than the kernel -- a kernel-9 conv over 7 frames (192 -> 192 channels, batch 32, the fsdd
teacher's last block) took 39 ms forward and 143 ms forward+backward with "xla", 2.8 ms / 6.5 ms
as one matmul; and its weight gradients are slow in general (STACK-NOTES). Cost: compiling a
step takes ~1.3-1.5x longer (more, smaller ops) and the im2col buffers raise peak memory. The parameters ("kernel" `[k, Cin, Cout]`, optional "bias" `[Cout]`)
have the names, shapes and initialisers of `flax.linen.Conv`, so checkpoints and parameter
counts do not depend on `conv_impl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

CONV_IMPLS = ("auto", "xla", "matmul")


def resolve_conv_impl(conv_impl: str) -> str:
    """"auto" -> "matmul" on the CPU backend, "xla" elsewhere; checks the name.

    Raises:
      ValueError: a name not in `CONV_IMPLS`.
    """
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl={conv_impl!r}: expected one of {CONV_IMPLS}")
    if conv_impl == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "xla"
    return conv_impl


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output length and (low, high) padding of a "SAME" convolution (XLA/TF convention).

    out = ceil(length / stride); total pad = max((out - 1) * stride + kernel - length, 0),
    low = total // 2 (the extra frame, if any, goes at the end).
    """
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return out, total // 2, total - total // 2


def conv1d_matmul(x: jax.Array, kernel: jax.Array, stride: int = 1, dilation: int = 1) -> jax.Array:
    """1-D "SAME" convolution as one matmul over shifted patches (im2col).

    Shapes: x `[B, T, Cin]`, kernel `[k, Cin, Cout]` -> `[B, ceil(T / stride), Cout]`. Equals
    `lax.conv_general_dilated(x, kernel, (stride,), "SAME", rhs_dilation=(dilation,),
    dimension_numbers=("NWC", "WIO", "NWC"))`; a dilated kernel (TDNN context, e.g. {t-2, t, t+2}
    is k=3, dilation=2) spans `(k - 1) * dilation + 1` frames and is padded as that span.
    """
    k, cin, cout = kernel.shape
    if x.shape[-1] != cin:
        raise ValueError(f"conv1d_matmul: input has {x.shape[-1]} channels, kernel expects {cin}")
    if dilation < 1:
        raise ValueError(f"conv1d_matmul: dilation must be >= 1, got {dilation}")
    b, t = x.shape[0], x.shape[1]
    out, lo, hi = same_padding(t, (k - 1) * dilation + 1, stride)
    if k == 1:
        cols = x[:, :: stride, :] if stride > 1 else x
    else:
        xp = jnp.pad(x, ((0, 0), (lo, hi), (0, 0)))
        span = (out - 1) * stride + 1
        cols = jnp.concatenate(
            [xp[:, i * dilation : i * dilation + span : stride, :] for i in range(k)], axis=-1
        )
    y = jnp.dot(cols.reshape(b * out, k * cin), kernel.reshape(k * cin, cout))
    return y.reshape(b, out, cout)


def conv1d_xla(x: jax.Array, kernel: jax.Array, stride: int = 1, dilation: int = 1) -> jax.Array:
    """The plain path: `lax.conv_general_dilated`, "SAME" padding, `[B, T, Cin] -> [B, T', Cout]`."""
    return lax.conv_general_dilated(
        x,
        kernel,
        (stride,),
        "SAME",
        rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
    )


class Conv1D(nn.Module):
    """1-D "SAME" convolution over time, `[B, T, Cin] -> [B, ceil(T / stride), features]`.

    A drop-in for `nn.Conv(features, (kernel,), (stride,), use_bias=..., kernel_dilation=...)`
    on 3-D inputs (same parameter names, shapes and initialisers), with the formulation chosen by
    `conv_impl` (module docstring).
    """

    features: int
    kernel: int
    stride: int = 1
    use_bias: bool = False
    conv_impl: str = "auto"
    dtype: Any = None  # computation dtype (None: promote input/params); params stay float32
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    dilation: int = 1  # taps `dilation` frames apart (TDNN context); last: positional args unchanged

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 3:
            raise ValueError(f"Conv1D: expected [B, T, C], got shape {x.shape}")
        impl = resolve_conv_impl(self.conv_impl)
        w = self.param("kernel", self.kernel_init, (self.kernel, x.shape[-1], self.features), jnp.float32)
        x, w = nn.dtypes.promote_dtype(x, w, dtype=self.dtype)
        y = (conv1d_matmul if impl == "matmul" else conv1d_xla)(x, w, self.stride, self.dilation)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(y.dtype)
        return y
