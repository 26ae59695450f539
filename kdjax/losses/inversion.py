"""Data-free KD (model inversion) losses: DeepInversion BN statistics, priors, adversarial JS,
the contrastive loss of contrastive model inversion (FRAMI's feature-invariant contrastive loss).

Imports only jax and the Python standard library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import jax
import jax.numpy as jnp

from kdjax.losses._utils import (
    check_batch_mask,
    check_ndim,
    check_same_shape,
    masked_mean,
    safe_norm,
)

Array = jax.Array
BNStats = tuple[Array, Array, Array, Array]

__all__ = [
    "bn_batch_moments",
    "bn_statistics_loss",
    "feature_invariant_contrastive",
    "total_variation",
    "l2_prior",
    "adversarial_js",
]

_HI = jax.lax.Precision.HIGHEST


def bn_batch_moments(x: Array) -> tuple[Array, Array]:
    """Per-channel batch mean and biased variance of a BatchNorm input ``x [B, ..., C]`` -> ``([C], [C])``.

    (As ``torch`` ``input.mean([0, 2, 3])`` / ``var([0, 2, 3], unbiased=False)`` in DeepInversion's hook.)
    """
    axes = tuple(range(x.ndim - 1))
    mu = jnp.mean(x, axis=axes)
    return mu, jnp.mean((x - mu) ** 2, axis=axes)


def bn_statistics_loss(
    stats: Sequence[BNStats] | Mapping[str, BNStats],
    *,
    first_layer_weight: float = 10.0,
) -> Array:
    """DeepInversion feature-distribution regulariser over BatchNorm layers.

    Formula: ``R = sum_l w_l (||mu_l(x) - mu_l^BN||_2 + ||sigma^2_l(x) - sigma^2_l^BN||_2)``,
    ``w_1 = first_layer_weight``, ``w_l = 1`` otherwise. Norms are plain (not squared) L2 norms,
    as in the paper's Eq. 4 and the official code. Default ``first_layer_weight = 10``: the
    official ImageNet script's ``--first_bn_multiplier 10`` (the paper's Eq. 4 has no multiplier:
    pass 1.0).

    Args:
      stats: per BatchNorm layer (a sequence, or a mapping in insertion order; the first entry
        is the first layer), a tuple ``(batch_mean [C], batch_var [C], running_mean [C],
        running_var [C])``; ``bn_batch_moments`` computes the first two from the layer's input.
        Running statistics get ``stop_gradient``.
      first_layer_weight: multiplier of the first layer's term.

    Returns:
      scalar.

    Raises:
      ValueError: if ``stats`` is empty, an entry is not a 4-tuple, or shapes within an entry differ.

    Source: Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
    CVPR 2020, Eq. 4; code NVlabs/DeepInversion (``DeepInversionFeatureHook``).
    """
    entries = list(stats.values()) if isinstance(stats, Mapping) else list(stats)
    if not entries:
        raise ValueError(
            "stats must hold at least one (batch_mean, batch_var, running_mean, running_var) tuple"
        )
    total: Array | float = 0.0
    for i, e in enumerate(entries):
        if len(e) != 4:
            raise ValueError(
                f"stats[{i}] must be (batch_mean, batch_var, running_mean, running_var), got {len(e)} items"
            )
        mu, var, rmu, rvar = e
        for name, v in (("batch_var", var), ("running_mean", rmu), ("running_var", rvar)):
            check_same_shape(f"stats[{i}].batch_mean", mu, f"stats[{i}].{name}", v)
        rmu, rvar = jax.lax.stop_gradient(rmu), jax.lax.stop_gradient(rvar)
        term = safe_norm(mu - rmu, axis=None) + safe_norm(var - rvar, axis=None)
        total = total + (first_layer_weight if i == 0 else 1.0) * term
    return jnp.asarray(total)


def feature_invariant_contrastive(
    z1: Array,
    z2: Array,
    *,
    temperature: float = 0.1,
    memory_bank: Array | None = None,
    mask: Array | None = None,
    symmetric: bool = True,
) -> Array:
    """InfoNCE between the teacher features of two augmented views of each synthetic sample.

    Formula: ``u = z1 / ||z1||``, ``v = z2 / ||z2||`` per row; for anchor ``i`` (view 1) the
    positive is ``v_i``, the negatives are ``v_j`` (``j != i``, kept examples) and the memory bank
    rows ``m_k`` (normalised, ``stop_gradient``):
    ``l_i = -log( exp(u_i.v_i/tau) / (sum_j exp(u_i.v_j/tau) + sum_k exp(u_i.m_k/tau)) )``.
    ``symmetric=True`` (default) averages with the same loss anchored on view 2 (as SimCLR's
    two-view form, without same-view negatives). ``L = masked_mean_i l_i``. Minimising it makes
    each sample's features invariant to the augmentation and distinct from the other samples.

    Args:
      z1: ``[B, D]`` teacher (or projection-head) features of view 1.
      z2: ``[B, D]`` of view 2.
      temperature: ``tau > 0`` (default 0.1; FRAMI's value is unpublished).
      memory_bank: optional ``[M, D]`` features of earlier synthetic samples (extra negatives).
      mask: optional ``[B]``: masked samples are neither anchors nor negatives.
      symmetric: average the two anchor directions.

    Returns:
      scalar.

    Raises:
      ValueError: on shapes other than documented, a bad mask, or a non-positive temperature.

    Source: Fang et al., "Contrastive Model Inversion for Data-Free Knowledge Distillation",
    IJCAI 2021 (instance discrimination with a memory bank); Oord et al. 2018 (InfoNCE); used by
    FRAMI (Kang et al., ICASSP 2023; exact form unpublished).
    """
    check_ndim("z1", z1, 2, "[B, D]")
    check_same_shape("z1", z1, "z2", z2)
    b = z1.shape[0]
    check_batch_mask(mask, b)
    if isinstance(temperature, int | float) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = jnp.ones((b,), bool) if mask is None else jnp.asarray(mask) != 0
    norm = lambda z: z / jnp.maximum(safe_norm(z, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    u = norm(jnp.where(m[:, None], z1, 0.0))
    v = norm(jnp.where(m[:, None], z2, 0.0))
    bank = None
    if memory_bank is not None:
        check_ndim("memory_bank", memory_bank, 2, f"[M, D={z1.shape[1]}]")
        if memory_bank.shape[1] != z1.shape[1]:
            raise ValueError(
                f"memory_bank must have shape [M, D={z1.shape[1]}], got {tuple(memory_bank.shape)}"
            )
        bank = norm(jax.lax.stop_gradient(memory_bank).astype(z1.dtype))

    def one_way(a: Array, p: Array) -> Array:
        logits = jnp.einsum("id,jd->ij", a, p, precision=_HI) / temperature
        logits = jnp.where(m[None, :], logits, -jnp.inf)  # masked negatives out
        if bank is not None:
            logits = jnp.concatenate(
                [logits, jnp.einsum("id,kd->ik", a, bank, precision=_HI) / temperature], -1
            )
        pos = jnp.einsum("id,id->i", a, p, precision=_HI) / temperature
        l_i = jax.nn.logsumexp(logits, axis=-1) - pos
        return masked_mean(jnp.where(m, l_i, 0.0), m)

    loss = one_way(u, v)
    return 0.5 * (loss + one_way(v, u)) if symmetric else loss


def total_variation(
    x: Array,
    *,
    norm: Literal["l2", "l1"] = "l2",
    diagonals: bool = True,
    per_element: bool = False,
) -> Array:
    """Total-variation prior on spectrograms (smoothness over time and frequency).

    Formula with differences ``d1 = x[:, 1:, :] - x[:, :-1, :]`` (time), ``d2 = x[:, :, 1:] -
    x[:, :, :-1]`` (frequency) and, if ``diagonals`` (DeepInversion's 4 directions), ``d3 =
    x[:, 1:, 1:] - x[:, :-1, :-1]``, ``d4 = x[:, 1:, :-1] - x[:, :-1, 1:]``:
    ``"l2"`` (default, DeepInversion ``loss_var_l2``): ``sum_k ||d_k||_2``;
    ``"l1"`` (``loss_var_l1``): ``sum_k mean|d_k|``. Per example (DeepInversion takes the norm over
    the whole batch; per-example values keep the ``[B]`` contract).

    Per input element (``per_element=True``): each direction's sum is divided by the number of
    input elements ``n = T * F`` instead, ``"l2"``: ``sum_k ||d_k||_2 / sqrt(n)`` (a root mean
    square), ``"l1"``: ``sum_k sum|d_k| / n``, so the value does not grow with the input's size
    and one weight transfers across input sizes (e.g. a 5 s ESC-10 log-mel ``[501, 64]`` has
    7.9x the elements of a 1 s FSDD one ``[101, 40]``): an input tiled 2x along time whose
    first and last frames are equal and flat over frequency (e.g. silent) has exactly the
    value of the original. For ``"l2"`` the per-element value is the sum-scale value divided
    by ``sqrt(n)``, so a sum-scale weight ``w_sum`` at size ``n_ref`` is the per-element weight
    ``w_sum * sqrt(n_ref)`` (the same objective at that size).

    Args:
      x: ``[B, T, F]`` spectrograms.
      norm: ``"l2"`` | ``"l1"``.
      diagonals: include the two diagonal directions (default True, as DeepInversion).
      per_element: normalise by the number of input elements (default False: DeepInversion's
        sum scale, as before).

    Returns:
      ``[B]``.

    Raises:
      ValueError: if ``x`` is not ``[B, T, F]`` or ``norm`` is unknown.

    Source: Mahendran & Vedaldi 2015; Yin et al. (DeepInversion) CVPR 2020, ``get_image_prior_losses``.
    """
    check_ndim("x", x, 3, "[B, T, F]")
    diffs = [x[:, 1:, :] - x[:, :-1, :], x[:, :, 1:] - x[:, :, :-1]]
    if diagonals:
        diffs += [x[:, 1:, 1:] - x[:, :-1, :-1], x[:, 1:, :-1] - x[:, :-1, 1:]]
    n = x.shape[1] * x.shape[2]
    if norm == "l2":
        tv = sum(safe_norm(d, axis=(1, 2)) for d in diffs)
        return tv / math.sqrt(n) if per_element else tv
    if norm == "l1":
        if per_element:
            return sum(jnp.sum(jnp.abs(d), axis=(1, 2)) for d in diffs) / n
        return sum(jnp.mean(jnp.abs(d), axis=(1, 2)) for d in diffs)
    raise ValueError(f"norm must be 'l2' or 'l1', got {norm!r}")


def l2_prior(x: Array, *, squared: bool = False, per_element: bool = False) -> Array:
    """L2 prior ``||x_b||_2`` (or ``||x_b||_2^2`` with ``squared=True``) per spectrogram.

    Per input element (``per_element=True``): ``||x_b||_2 / sqrt(n)`` (the root mean square of
    the ``n = T * F`` elements; ``squared``: ``||x_b||_2^2 / n``, their mean square), invariant
    to tiling ``x`` along time, so one weight transfers across input sizes; a sum-scale weight
    ``w_sum`` at size ``n_ref`` is the per-element weight ``w_sum * sqrt(n_ref)``
    (``squared``: ``w_sum * n_ref``).

    Args:
      x: ``[B, T, F]``.
      squared: square the norm (default False, DeepInversion's ``torch.norm(x, 2)``).
      per_element: normalise by the number of elements (default False: the sum scale).

    Returns:
      ``[B]``.

    Raises:
      ValueError: if ``x`` is not ``[B, T, F]``.

    Source: Yin et al. (DeepInversion) CVPR 2020, the ``a_l2 R_l2`` term.
    """
    check_ndim("x", x, 3, "[B, T, F]")
    n = x.shape[1] * x.shape[2] if per_element else 1
    if squared:
        return jnp.sum(x * x, axis=(1, 2)) / n
    return safe_norm(x, axis=(1, 2)) / math.sqrt(n)


def adversarial_js(
    student_logits: Array,
    teacher_logits: Array,
    *,
    temperature: float = 1.0,
) -> Array:
    """Jensen-Shannon divergence between teacher and student predictions (DeepInversion's
    "adaptive" competition term).

    Formula: ``p = softmax(z_s / T)``, ``q = softmax(z_t / T)``, ``M = (p + q) / 2``,
    ``JS = (KL(p || M) + KL(q || M)) / 2`` (natural log, in ``[0, ln 2]``). The mixture is
    computed in log space, ``log M = logaddexp(log p, log q) - log 2``, so a class whose
    probability underflows in both distributions (logit gaps beyond ~100 in float32) adds
    ``0`` to value and gradient instead of ``0 * log 0 = NaN``. No stop-gradient:
    the synthesis step maximises it through both networks to the inputs; DeepInversion
    minimises ``1 - clip(JS, 0, 1)`` (compose that in the recipe).

    Args:
      student_logits: ``[B, C]``; teacher_logits: ``[B, C]``.
      temperature: ``T > 0``.

    Returns:
      ``[B]``.

    Raises:
      ValueError: on shapes other than equal ``[B, C]`` or a non-positive temperature.

    Source: Yin et al., DeepInversion, CVPR 2020, Eq. 7-8; code NVlabs/DeepInversion.
    """
    check_ndim("student_logits", student_logits, 2, "[B, C]")
    check_ndim("teacher_logits", teacher_logits, 2, "[B, C]")
    check_same_shape("student_logits", student_logits, "teacher_logits", teacher_logits)
    if isinstance(temperature, int | float) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    lp = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    lq = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    p, q = jnp.exp(lp), jnp.exp(lq)
    lm = jnp.logaddexp(lp, lq) - math.log(2.0)
    return 0.5 * (jnp.sum(p * (lp - lm), axis=-1) + jnp.sum(q * (lq - lm), axis=-1))
