"""Logit losses: cross-entropies, Hinton KD, multi-label (Bernoulli) KD, Deep Mutual Learning.

All functions are per-example: they return ``[B]`` (``mutual_kl``: ``[K, B]``), so the caller
(the train step) reduces with ``masked_mean`` and a batch mask. Labels are probabilities
``[B, C]`` (one-hot, soft or multi-hot), never integer ids.

Teachers' (targets') logits are wrapped in ``jax.lax.stop_gradient``: the loss never sends a
gradient into a teacher or, in mutual learning, into a peer's target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp

from kdjax.losses._utils import check_ndim, check_same_shape, masked_mean

Array = jax.Array

__all__ = [
    "softmax_xent",
    "sigmoid_xent",
    "kd_kl",
    "kd_bernoulli_kl",
    "mutual_kl",
]


def _check_pair(name_a: str, a: Array, name_b: str, b: Array) -> None:
    check_ndim(name_a, a, 2, "[B, C]")
    check_ndim(name_b, b, 2, "[B, C]")
    check_same_shape(name_a, a, name_b, b)


def _check_class_mask(mask: Array | None, like: Array) -> None:
    if mask is not None and tuple(jnp.shape(mask)) != tuple(like.shape):
        raise ValueError(
            f"mask must have shape [B, C]={tuple(like.shape)}, got {tuple(jnp.shape(mask))}"
        )


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, int | float) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def softmax_xent(logits: Array, labels: Array, *, mask: Array | None = None) -> Array:
    """Softmax cross-entropy with probability labels.

    Formula: ``L_b = -sum_c y_bc log softmax(z_b)_c``.
    With a class mask ``m``, masked classes are removed from the softmax (their logits do not
    enter the normaliser) and from the sum: ``L_b = -sum_{c: m_bc} y_bc log softmax_{m_b}(z_b)_c``.

    Args:
      logits: ``[B, C]`` unnormalised scores ``z``.
      labels: ``[B, C]`` target probabilities ``y`` (rows normally sum to 1).
      mask: optional ``[B, C]`` class mask (non-zero = keep).

    Returns:
      ``[B]`` per-example loss.

    Raises:
      ValueError: if ``logits``/``labels`` are not ``[B, C]`` of equal shape, or ``mask`` is not ``[B, C]``.

    Source: standard (e.g. optax.softmax_cross_entropy); the recipe "fsdd main job" uses it as the
    task loss.
    """
    _check_pair("logits", logits, "labels", labels)
    _check_class_mask(mask, logits)
    if mask is None:
        return -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    keep = mask != 0
    logp = jax.nn.log_softmax(jnp.where(keep, logits, -jnp.inf), axis=-1)
    # where() after the product keeps -inf * 0 out of both value and gradient.
    return -jnp.sum(jnp.where(keep, labels * jnp.where(keep, logp, 0.0), 0.0), axis=-1)


def sigmoid_xent(
    logits: Array,
    labels: Array,
    *,
    mask: Array | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> Array:
    """Binary (sigmoid) cross-entropy for multi-label tagging, reduced over classes.

    Formula (numerically stable form of ``-y log s(z) - (1-y) log(1-s(z))``):
    ``l_bc = max(z, 0) - z y + log(1 + exp(-|z|))``; ``L_b = mean_c l_bc`` (default) or ``sum_c``.

    Args:
      logits: ``[B, C]`` logits ``z``.
      labels: ``[B, C]`` target probabilities ``y`` in ``[0, 1]`` (multi-hot or soft).
      mask: optional ``[B, C]`` class mask; masked entries are excluded (the mean is over unmasked
        classes; a row with every class masked gives 0). EAsT masks OpenMIC's ``y == 0.5`` entries.
      reduction: ``"mean"`` (default, like ``torch.nn.BCEWithLogitsLoss``) or ``"sum"`` over classes.

    Returns:
      ``[B]`` per-example loss.

    Raises:
      ValueError: on mismatched shapes, a mask not ``[B, C]``, or an unknown ``reduction``.

    Source: standard; IUSP and EAsT use it as the task loss.
    """
    _check_pair("logits", logits, "labels", labels)
    _check_class_mask(mask, logits)
    per_class = jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return _reduce_classes(per_class, mask, reduction)


def _reduce_classes(per_class: Array, mask: Array | None, reduction: str) -> Array:
    if reduction == "mean":
        return masked_mean(per_class, mask, axis=-1)
    if reduction == "sum":
        if mask is None:
            return jnp.sum(per_class, axis=-1)
        return jnp.sum(jnp.where(mask != 0, per_class, 0.0), axis=-1)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _kl_categorical(logp_target: Array, logp: Array) -> Array:
    """``sum_c p_t (log p_t - log p)`` over the last axis; 0 * log 0 = 0."""
    p_t = jnp.exp(logp_target)
    return jnp.sum(jnp.where(p_t > 0, p_t * (logp_target - logp), 0.0), axis=-1)


def kd_kl(
    student_logits: Array,
    teacher_logits: Array,
    *,
    temperature: float = 1.0,
    t2_scale: bool = True,
) -> Array:
    """Hinton knowledge distillation: KL from the teacher's to the student's softened distribution.

    Formula: ``p^t = softmax(z_t / T)``, ``p^s = softmax(z_s / T)``,
    ``L_b = T^2 * KL(p^t || p^s) = T^2 * sum_c p^t_c (log p^t_c - log p^s_c)``.

    The ``T^2`` factor (Hinton et al. 2015, Sec. 2: "multiply them by T^2" so gradient magnitudes
    stay comparable to the hard-label term when T changes) is on by default; ``t2_scale=False``
    gives the bare KL (as some codebases do). As ``T -> inf``, ``T^2 KL -> (1/(2C)) *
    sum_c ((z_s - mean(z_s)) - (z_t - mean(z_t)))_c^2`` (the logit-matching limit of Sec. 2.1).
    The teacher gets ``stop_gradient``. This is the KL direction of the paper and of torchdistill
    (``KLDivLoss(log p_s, p_t)``).

    Args:
      student_logits: ``[B, C]``.
      teacher_logits: ``[B, C]``.
      temperature: ``T > 0`` (Hinton: 1-20; EAsT "+KD": 2; IUSP third-party: 2).
      t2_scale: multiply by ``T^2`` (default True).

    Returns:
      ``[B]`` per-example loss (>= 0; 0 when the logits are equal up to a per-row constant).

    Raises:
      ValueError: on shapes other than equal ``[B, C]``, or a non-positive temperature.

    Source: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network" (2015), Sec. 2;
    torchdistill ``KDLoss``.
    """
    _check_pair("student_logits", student_logits, "teacher_logits", teacher_logits)
    _check_temperature(temperature)
    teacher_logits = jax.lax.stop_gradient(teacher_logits)
    logp_t = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    logp_s = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = _kl_categorical(logp_t, logp_s)
    return kl * temperature**2 if t2_scale else kl


def kd_bernoulli_kl(
    student_logits: Array,
    teacher_logits: Array,
    *,
    temperature: float = 1.0,
    t2_scale: bool = True,
    mask: Array | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> Array:
    """Multi-label KD: per-class Bernoulli KL between teacher and student sigmoid outputs.

    Formula: ``p^t = sigmoid(z_t / T)``, ``p^s = sigmoid(z_s / T)``,
    ``kl_bc = p^t log(p^t / p^s) + (1 - p^t) log((1 - p^t) / (1 - p^s))``,
    ``L_b = T^2 * mean_c kl_bc`` (default; ``reduction="sum"`` sums over classes,
    ``t2_scale=False`` drops ``T^2``). Computed with ``log_sigmoid`` for stability. The teacher
    gets ``stop_gradient``.

    Args:
      student_logits: ``[B, C]``.
      teacher_logits: ``[B, C]``.
      temperature: ``T > 0`` (EAsT "+KD": 2).
      t2_scale: multiply by ``T^2`` (default True, as in the EAsT code).
      mask: optional ``[B, C]`` class mask (mean over unmasked classes).
      reduction: ``"mean"`` (default) or ``"sum"`` over classes.

    Returns:
      ``[B]`` per-example loss.

    Raises:
      ValueError: on mismatched shapes, bad mask, non-positive temperature or unknown reduction.

    Source: Ding & Lerch, EAsT (ISMIR 2023), "+KD" variant; official code
    suncerock/EAsT-music-classification (binary KL per class at tau = 2, x tau^2).
    """
    _check_pair("student_logits", student_logits, "teacher_logits", teacher_logits)
    _check_class_mask(mask, student_logits)
    _check_temperature(temperature)
    zt = jax.lax.stop_gradient(teacher_logits) / temperature
    zs = student_logits / temperature
    pt = jax.nn.sigmoid(zt)
    log_pt, log_1mpt = jax.nn.log_sigmoid(zt), jax.nn.log_sigmoid(-zt)
    log_ps, log_1mps = jax.nn.log_sigmoid(zs), jax.nn.log_sigmoid(-zs)
    per_class = pt * (log_pt - log_ps) + (1.0 - pt) * (log_1mpt - log_1mps)
    out = _reduce_classes(per_class, mask, reduction)
    return out * temperature**2 if t2_scale else out


def mutual_kl(
    logits: Array | Sequence[Array],
    *,
    temperature: float = 1.0,
    reduction: Literal["mean", "sum"] = "mean",
    target: Literal["peers", "ensemble"] = "peers",
    t2_scale: bool = True,
) -> Array:
    """Deep Mutual Learning: each of K peers is distilled from the other peers (as stop-gradient targets).

    With ``p_k = softmax(z_k / T)`` and ``sg`` = stop_gradient, for peer ``i``:

    * ``target="peers"`` (default, DML Eq. 10): ``L_i = w * sum_{j != i} KL(sg(p_j) || p_i)`` with
      ``w = 1/(K-1)`` for ``reduction="mean"`` (paper, default) or ``w = 1`` for ``reduction="sum"``
      (the official DML code adds the K-1 terms).
    * ``target="ensemble"``: ``L_i = KL(sg(mean_{j != i} p_j) || p_i)`` (the other peers' ensemble
      as teacher); ``reduction`` is ignored since there is one term.

    Times ``T^2`` if ``t2_scale`` (default True; DML uses T = 1, where it makes no difference).
    The training objective of peer ``i`` is ``CE(y, p_i) + L_i``; summing ``L_i`` over peers in one
    jitted step gives each peer exactly its own gradient because the targets are stop-gradient
    (simultaneous, not DML's sequential, updates).

    Args:
      logits: ``[K, B, C]`` stacked logits or a sequence of K ``[B, C]`` arrays, K >= 2.
      temperature: ``T > 0``.
      reduction: ``"mean"`` or ``"sum"`` over the K-1 other peers (``target="peers"`` only).
      target: ``"peers"`` or ``"ensemble"``.
      t2_scale: multiply by ``T^2``.

    Returns:
      ``[K, B]``: row ``i`` is peer ``i``'s loss per example.

    Raises:
      ValueError: if K < 2, logits are not ``[K, B, C]`` / equal-shape ``[B, C]`` arrays, or an
        option is unknown.

    Source: Zhang, Xiang, Hospedales, Lu, "Deep Mutual Learning", CVPR 2018, Eq. 9-10; official
    code YingZhangDUT/Deep-Mutual-Learning (sum over peers). The base assumed for the
    multi-representation KD recipe (Gao et al. 2020), whose exact loss is unpublished.
    """
    if isinstance(logits, list | tuple):
        if len(logits) < 2:
            raise ValueError(f"logits must hold K >= 2 peers, got {len(logits)}")
        for k, z in enumerate(logits):
            check_ndim(f"logits[{k}]", z, 2, "[B, C]")
            check_same_shape("logits[0]", logits[0], f"logits[{k}]", z)
        z = jnp.stack(logits)
    else:
        z = jnp.asarray(logits)
        check_ndim("logits", z, 3, "[K, B, C]")
    k_peers = z.shape[0]
    if k_peers < 2:
        raise ValueError(f"logits must hold K >= 2 peers (shape [K, B, C]), got K={k_peers}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if target not in ("peers", "ensemble"):
        raise ValueError(f"target must be 'peers' or 'ensemble', got {target!r}")
    _check_temperature(temperature)

    logp = jax.nn.log_softmax(z / temperature, axis=-1)  # [K, B, C], with gradient (students)
    logp_sg = jax.lax.stop_gradient(logp)  # targets
    others = 1.0 - jnp.eye(k_peers, dtype=z.dtype)  # [K(i), K(j)]: 1 where j != i
    if target == "peers":
        # kl[i, j, b] = KL(p_j || p_i)
        kl = jax.vmap(lambda lp_i: jax.vmap(lambda lp_j: _kl_categorical(lp_j, lp_i))(logp_sg))(
            logp
        )
        out = jnp.einsum("ij,ijb->ib", others, kl)
        if reduction == "mean":
            out = out / (k_peers - 1)
    else:
        p_sg = jnp.exp(logp_sg)
        p_ens = jnp.einsum("ij,jbc->ibc", others, p_sg) / (k_peers - 1)  # [K, B, C]
        log_ens = jnp.log(jnp.where(p_ens > 0, p_ens, 1.0))
        out = jnp.sum(jnp.where(p_ens > 0, p_ens * (log_ens - logp), 0.0), axis=-1)
    return out * temperature**2 if t2_scale else out
