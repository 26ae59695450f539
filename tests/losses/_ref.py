"""NumPy float64 references, written from the papers' formulas (independent of kdjax.losses)."""

import numpy as np


def normalize_rows(x, p):
    n = np.abs(x).sum(-1, keepdims=True) if p == 1 else np.sqrt((x * x).sum(-1, keepdims=True))
    return x / np.maximum(n, 1e-12)


def sp(s, t, row_norm="l2", normalize="gram"):
    b = s.shape[0]
    p = 2 if row_norm == "l2" else 1

    def g(a):
        a = a.reshape(a.shape[0], -1)
        if normalize == "gram":
            return normalize_rows(a @ a.T, p)
        a = normalize_rows(a, p)
        return a @ a.T

    return ((g(t) - g(s)) ** 2).sum() / b**2


def interp_linear(x, t_out):
    """Half-pixel-centre linear interpolation along axis 1 of [B, T, D] via np.interp."""
    t_in = x.shape[1]
    src = np.clip((np.arange(t_out) + 0.5) * t_in / t_out - 0.5, 0, t_in - 1)
    out = np.empty((x.shape[0], t_out, x.shape[2]))
    for b in range(x.shape[0]):
        for d in range(x.shape[2]):
            out[b, :, d] = np.interp(src, np.arange(t_in), x[b, :, d])
    return out


def repeat_truncate(x, t_out):
    k = max(1, -(-t_out // x.shape[1]))
    return np.repeat(x, k, axis=1)[:, :t_out]


def iusp(s, t, align="interpolate"):
    t = interp_linear(t, s.shape[1]) if align == "interpolate" else repeat_truncate(t, s.shape[1])
    out = []
    for qs, qt in zip(s, t, strict=True):
        gs, gt = normalize_rows(qs @ qs.T, 2), normalize_rows(qt @ qt.T, 2)
        out.append(((gt - gs) ** 2).sum() / qs.shape[0] ** 2)
    return np.array(out)


def dcor_loss(s, t):
    """EAsT: s, t [B, T, D] already aligned."""
    vals = []
    for k in range(s.shape[1]):

        def centred(x):
            d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) + 1e-12)
            return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()

        a, b = centred(s[:, k]), centred(t[:, k])
        vals.append(1 - (a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean() + 1e-9))
    return np.mean(vals)


def cos_gram(s, t):
    vals = []
    for k in range(s.shape[1]):
        a, b = normalize_rows(s[:, k], 2), normalize_rows(t[:, k], 2)
        vals.append(np.abs(a @ a.T - b @ b.T))
    return np.mean(vals)


def huber(d):
    return np.where(np.abs(d) < 1, 0.5 * d * d, np.abs(d) - 0.5)


def rkd(s, t, wd=1.0, wa=2.0):
    def dist(x):
        d = np.sqrt(((x[None] - x[:, None]) ** 2).sum(-1))
        n = x.shape[0]
        return d / (d.sum() / (n * n - n))

    def angle(x):
        e = x[None, :, :] - x[:, None, :]
        e = normalize_rows(e, 2)
        return np.einsum("ijd,ikd->ijk", e, e)

    return wd * huber(dist(s) - dist(t)).mean() + wa * huber(angle(s) - angle(t)).mean()


def rollout(attn):
    L, B, H, N, _ = attn.shape
    out = np.zeros((B, N, N))
    for b in range(B):
        r = np.eye(N)
        for layer in range(L):
            a = attn[layer, b].mean(0) + np.eye(N)
            a = a / a.sum(-1, keepdims=True)
            r = a @ r
        out[b] = r
    return out


# ---------------------------------------------------------------- jitted calls for tests
# Eager JAX compiles every primitive separately (seconds per loss call on 2 cores); the tests
# therefore call the losses through `J.<name>(...)`, one cached jit per (function, static kwargs).
_JIT_CACHE: dict = {}


def _is_static(v):
    return v is None or isinstance(v, str | bool | int | float) or callable(v)


class _Jitted:
    def __getattr__(self, name):
        import jax

        from kdjax import losses

        fn = getattr(losses, name)

        def call(*args, **kw):
            static = {k: v for k, v in kw.items() if _is_static(v)}
            dyn = {k: v for k, v in kw.items() if k not in static}
            key = (
                name,
                tuple(sorted((k, v if not callable(v) else id(v)) for k, v in static.items())),
            )
            if key not in _JIT_CACHE:
                _JIT_CACHE[key] = jax.jit(lambda *a, **d: fn(*a, **d, **static))
            return _JIT_CACHE[key](*args, **dyn)

        return call


J = _Jitted()
