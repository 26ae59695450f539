"""wav2vec 2.0 (kdjax.models.wav2vec2) against transformers' PyTorch implementation.

Parity: `Wav2Vec2ForSequenceClassification` with random parameters (torch.manual_seed; weights
N(0, 1 / fan_in), norm scales 1 + 0.1 N(0, 1), biases 0.1 N(0, 1): not transformers' 1/0
initial values, with which an unloaded or misplaced bias or scale would pass unnoticed), its
state dict converted by `params_from_torch_state_dict`; logits, every layer's attention
probabilities (`output_attentions=True`, eager attention) and hidden states, the encoder output
and the conv features are compared, float32 on CPU:
  * BASE_TINY: the base structure (GroupNorm on conv layer 0, post-LN, even positional kernel)
    with 2 layers of width 32 and 3 conv layers of 16 channels;
  * LARGE_TINY: the large structure (LayerNorm per conv layer, conv biases, pre-LN "stable
    layer norm", plus an odd positional kernel and the weighted layer sum of SUPERB heads);
  * the full BASE config (95M parameters) on 0.5 s of audio (~10 s on the loaded 2-core CPU:
    under the ~20 s at which it would have been made opt-in), run by default.
Measured max |diff| (transformers 5.24.0, torch 2.13.0, jax 0.10.2 on CPU; values O(1)):
  base_tiny   logits 2.4e-7, attention 1.9e-7, hidden states 1.8e-6, conv features 5.5e-7
  large_tiny  logits 2.4e-7, attention 5.7e-7, hidden states 5.4e-6, conv features 1.4e-6
  full base   logits 9.5e-7, attention 1.3e-6, hidden states 5.4e-6, conv features 6.9e-8
asserted with TOL_TINY (atol = rtol = 1e-5) and TOL_FULL (atol = rtol = 1e-4).

Also: safetensors and .bin round trips, headless checkpoints (head reported missing), the
old weight-norm names and a folded positional conv, error messages, and the `pretrained=`
platform hook through build_program / init_variables / one train step on raw audio.
"""

import functools
import json
import math
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from kdjax.models import wav2vec2 as w2v  # noqa: E402
from kdjax.train.forward import init_variables  # noqa: E402
from kdjax.train.program import build_program  # noqa: E402
from kdjax.train.setup import make_optimizer  # noqa: E402
from kdjax.train.state import TrainState  # noqa: E402
from kdjax.train.step import jit_train_step  # noqa: E402

BASE_TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    conv_dim=(16, 16, 16),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    classifier_proj_size=8,
    num_labels=3,
)
LARGE_TINY = BASE_TINY | dict(
    do_stable_layer_norm=True,
    feat_extract_norm="layer",
    conv_bias=True,
    num_conv_pos_embeddings=15,
    use_weighted_layer_sum=True,
)
# The hook test trains one step: one layer and two conv layers keep its compiles short.
HOOK_TINY = BASE_TINY | dict(
    num_hidden_layers=1, conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2)
)
TOL_TINY = dict(atol=1e-5, rtol=1e-5)
TOL_FULL = dict(atol=1e-4, rtol=1e-4)
S = 1600  # 0.1 s: 79 frames through the tiny conv stack


def rbg(seed):
    return jax.random.key(seed, impl="rbg")  # compiles faster under jit (tests/train/test_zoo.py)


def hf_config(**kw):
    cfg = transformers.Wav2Vec2Config(**kw)
    cfg._attn_implementation = "eager"  # sdpa returns no attention weights
    return cfg


def torch_model(cls, cfg, seed=0):
    """transformers' model with random parameters drawn here (module docstring).

    Built on the meta device and filled in place: transformers' own initialisation of the
    95M-parameter base model took ~3 s of the test's time on a loaded 2-core CPU.
    """
    with torch.device("meta"):
        m = cls(cfg)
    m = m.to_empty(device="cpu").eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        params = dict(m.named_parameters())
        # weight_norm's g after its v (named_parameters lists g first): ||v|| per tap, perturbed.
        for name, p in sorted(params.items(), key=lambda kv: kv[0].endswith("original0")):
            if name.endswith("original0"):
                v = params[name[:-1] + "1"]
                p.copy_(v.norm(dim=(0, 1), keepdim=True) * (1 + 0.1 * torch.randn_like(p)))
            elif name.endswith("original1") or p.dim() > 1:  # N(0, 1 / fan_in)
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:  # biases, layer_weights, masked_spec_embed
                p.copy_(0.1 * torch.randn_like(p))
    return m


@functools.lru_cache
def _apply(kw_items):
    model = w2v.Model(**dict(kw_items))
    return jax.jit(lambda params, x: model.apply({"params": params}, x))


def apply(kw, params, x):
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kw.items()))
    return _apply(items)(params, jnp.asarray(x))


def reference(m, x):
    """transformers' outputs: logits, attentions, hidden states, encoder output, conv features."""
    xt = torch.from_numpy(x)
    with torch.no_grad():
        out = m(xt, output_attentions=True, output_hidden_states=True)
        base = m.wav2vec2(xt)
        conv = m.wav2vec2.feature_extractor(xt).transpose(1, 2)
    ref = dict(
        logits=out.logits.numpy(),
        attentions=[a.numpy() for a in out.attentions],
        hidden=[h.numpy() for h in out.hidden_states],
        frames=base.last_hidden_state.numpy(),
        conv=conv.numpy(),
    )
    assert all(
        np.isfinite(a).all() for a in jax.tree.leaves(ref)
    )  # assert_allclose passes NaN == NaN
    return ref


def assert_parity(cfg, m, x, tol):
    conv = w2v.params_from_torch_state_dict(m.state_dict(), cfg)
    assert conv.missing == [] and conv.ignored == ["wav2vec2.masked_spec_embed"]
    kw = w2v.config_to_kwargs(cfg)
    logits, feats = apply(kw, conv.params, x)
    ref = reference(m, x)
    L = cfg.num_hidden_layers
    assert (
        feats["attention"].shape
        == (L, x.shape[0], cfg.num_attention_heads) + ref["attentions"][0].shape[-2:]
    )
    np.testing.assert_allclose(logits, ref["logits"], **tol)
    for i in range(L):
        np.testing.assert_allclose(
            feats["attention"][i], ref["attentions"][i], **tol, err_msg=f"attention {i}"
        )
        np.testing.assert_allclose(
            feats[f"fmap{i}"], ref["hidden"][i + 1], **tol, err_msg=f"layer {i}"
        )
    np.testing.assert_allclose(feats["frames"], ref["frames"], **tol)
    # No normalisation after conv layer 0 (base): the conv features grow large, and float32
    # rounding with them, so their tolerance is relative to their scale.
    scale = max(1.0, float(np.abs(ref["conv"]).max()))
    np.testing.assert_allclose(
        feats["conv_features"], ref["conv"], atol=tol["atol"] * scale, rtol=tol["rtol"]
    )
    assert feats["embedding"].shape == (x.shape[0], cfg.classifier_proj_size)
    return kw, conv.params, logits


def wave(n=S, b=2, seed=0):
    return np.random.default_rng(seed).standard_normal((b, n)).astype(np.float32)


@pytest.fixture(scope="module")
def base_tiny():
    cfg = hf_config(**BASE_TINY)
    return cfg, torch_model(transformers.Wav2Vec2ForSequenceClassification, cfg)


@pytest.mark.parametrize("arch", ["base_tiny", "large_tiny"])
def test_parity_with_transformers(arch, base_tiny):
    cfg, m = (
        base_tiny
        if arch == "base_tiny"
        else (
            (c := hf_config(**LARGE_TINY)),
            torch_model(transformers.Wav2Vec2ForSequenceClassification, c),
        )
    )
    assert_parity(cfg, m, wave(), TOL_TINY)


def test_parity_full_base_config():
    """The BASE architecture itself (transformers' defaults = facebook/wav2vec2-base) on 0.5 s."""
    cfg = hf_config(num_labels=4)
    m = torch_model(transformers.Wav2Vec2ForSequenceClassification, cfg)
    kw, _, _ = assert_parity(cfg, m, wave(8000), TOL_FULL)
    assert {k: v for k, v in kw.items() if k != "num_classes"} == {
        f: getattr(w2v.Model, f) for f in w2v.CONFIG_FIELDS
    }  # Model's defaults are the base config


def test_round_trips_and_key_variants(base_tiny, tmp_path):
    cfg, m = base_tiny
    x = wave()
    ref = reference(m, x)["logits"]
    m.save_pretrained(tmp_path / "st")  # config.json + model.safetensors
    ck = w2v.load_hf_checkpoint(tmp_path / "st")
    assert ck.missing == [] and ck.kwargs == w2v.config_to_kwargs(cfg)
    np.testing.assert_allclose(apply(ck.kwargs, ck.params, x)[0], ref, **TOL_TINY)
    # pytorch_model.bin (read with torch), with the pre-parametrisation weight_norm names.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    old = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in m.state_dict().items()
    }
    assert any(k.endswith("weight_g") for k in old)
    torch.save(old, tmp_path / "bin" / "pytorch_model.bin")
    ck_bin = w2v.load_hf_checkpoint(tmp_path / "bin")
    jax.tree.map(np.testing.assert_array_equal, ck_bin.params, ck.params)
    # bfloat16 safetensors (no NumPy dtype: read through torch, converted to float32).
    from safetensors.torch import save_file

    (tmp_path / "bf16").mkdir()
    (tmp_path / "bf16" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    save_file(
        {k: v.to(torch.bfloat16) for k, v in m.state_dict().items()},
        tmp_path / "bf16" / "model.safetensors",
    )
    ck_bf16 = w2v.load_hf_checkpoint(tmp_path / "bf16")
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2),
        ck_bf16.params,
        ck.params,
    )
    assert ck_bf16.params["classifier"]["kernel"].dtype == np.float32
    # A positional conv saved with its weight norm folded in (plain `conv.weight`).
    sd = dict(m.state_dict())
    g, v = sd.pop(w2v._G), sd.pop(w2v._V)
    sd[w2v._POS + "weight"] = g * v / v.norm(dim=(0, 1), keepdim=True)
    folded = w2v.params_from_torch_state_dict(sd, cfg).params
    np.testing.assert_allclose(apply(ck.kwargs, folded, x)[0], ref, **TOL_TINY)


def test_headless_checkpoints_load_with_the_head_missing(base_tiny, tmp_path):
    cfg, _ = base_tiny
    head = ["classifier.bias", "classifier.weight", "projector.bias", "projector.weight"]
    backbone = torch_model(transformers.Wav2Vec2Model, cfg, seed=1)
    backbone.save_pretrained(tmp_path)
    ck = w2v.load_hf_checkpoint(tmp_path)
    assert ck.missing == head and ck.kwargs["num_classes"] == 3
    np.testing.assert_array_equal(ck.params["classifier"]["bias"], 0.0)  # fresh init
    np.testing.assert_array_equal(
        ck.params["encoder"]["layers_1"]["attention"]["q_proj"]["kernel"],
        backbone.state_dict()["encoder.layers.1.attention.q_proj.weight"].numpy().T,
    )
    x = wave()
    with torch.no_grad():
        frames = backbone(torch.from_numpy(x)).last_hidden_state.numpy()
    assert np.isfinite(frames).all()
    np.testing.assert_allclose(apply(ck.kwargs, ck.params, x)[1]["frames"], frames, **TOL_TINY)
    # Another number of classes: a full checkpoint's classifier is replaced.
    sd = base_tiny[1].state_dict()
    conv = w2v.params_from_torch_state_dict(sd, cfg, num_classes=6)
    assert (
        conv.missing == ["classifier.bias", "classifier.weight"]
        and "classifier.weight" in conv.ignored
    )
    assert conv.params["classifier"]["kernel"].shape == (8, 6)
    np.testing.assert_array_equal(conv.params["projector"]["bias"], sd["projector.bias"].numpy())
    # The pretraining model (facebook/wav2vec2-base's class): quantizer and projections ignored.
    pre = torch_model(
        transformers.Wav2Vec2ForPreTraining,
        hf_config(
            **BASE_TINY, codevector_dim=8, proj_codevector_dim=8, num_codevectors_per_group=4
        ),
    )
    conv = w2v.params_from_torch_state_dict(pre.state_dict(), cfg)
    assert conv.missing == head
    assert {k.split(".")[0] for k in conv.ignored} == {
        "wav2vec2",
        "quantizer",
        "project_q",
        "project_hid",
    }


def test_errors_name_the_problem(base_tiny, tmp_path):
    cfg, m = base_tiny
    kw = w2v.config_to_kwargs(cfg)
    model = w2v.Model(**kw)
    assert w2v.min_samples(kw["conv_kernel"], kw["conv_stride"]) == 40
    assert w2v.min_samples(w2v.Model.conv_kernel, w2v.Model.conv_stride) == 400  # base: 25 ms
    assert w2v.num_frames(16000, w2v.Model.conv_kernel, w2v.Model.conv_stride) == 49
    with pytest.raises(
        ValueError,
        match=r"wav2vec2: the conv feature encoder needs at least 40 samples .* \(2, 39\)",
    ):
        model.init(jax.random.key(0), jnp.zeros((2, 39)))
    with pytest.raises(
        ValueError, match=r"wav2vec2: expected a raw waveform \[B, S\], got shape \(2, 100, 1\)"
    ):
        model.init(jax.random.key(0), jnp.zeros((2, 100, 1)))
    with pytest.raises(FileNotFoundError, match=r"nowhere/config.json not found"):
        w2v.load_hf_checkpoint(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(
        FileNotFoundError, match=r"no model.safetensors, .* or pytorch_model.bin in"
    ):
        w2v.load_hf_checkpoint(tmp_path)
    m.save_pretrained(tmp_path)
    edit = json.loads((tmp_path / "config.json").read_text()) | {"intermediate_size": 48}
    (tmp_path / "config.json").write_text(json.dumps(edit))
    with pytest.raises(
        ValueError,
        match=r"model.safetensors: shape mismatch .*intermediate_dense.weight \(64, 32\) "
        r"\(as Flax \(32, 64\), expected \(32, 48\)\)",
    ):
        w2v.load_hf_checkpoint(tmp_path)
    sd = m.state_dict()
    with pytest.raises(
        ValueError, match=r"unexpected keys .*\(1 layers.*wav2vec2.encoder.layers.1.attention"
    ):
        w2v.params_from_torch_state_dict(sd, cfg.to_dict() | {"num_hidden_layers": 1})
    short = {k: v for k, v in sd.items() if "layers.0.final_layer_norm" not in k}
    with pytest.raises(
        ValueError, match=r"x.bin: missing keys: wav2vec2.encoder.layers.0.final_layer_norm.bias"
    ):
        w2v.params_from_torch_state_dict(short, cfg, source="x.bin")
    with pytest.raises(ValueError, match="model_type='hubert'"):
        w2v.config_to_kwargs(cfg.to_dict() | {"model_type": "hubert"})


def _hook_config(path):
    c = ml_collections.ConfigDict()
    c.models = {
        "student": dict(
            model="wav2vec2", input="batch.audio", pretrained=str(path), kw=dict(hidden_dropout=0.0)
        )
    }
    c.losses = {"ce": dict(fn="softmax_xent", inputs=["student.logits", "batch.labels"])}
    c.optimizer = dict(name="adamw", kw={})
    c.schedule = dict(name="constant", lr=1e-3, warmup_steps=0)
    c.num_steps = 1
    return c


def test_pretrained_config_hook(tmp_path):
    """`models.<name>.pretrained`: build_program reads the architecture, init_variables the
    parameters, and the model trains on raw audio (`input="batch.audio"`)."""
    cfg = hf_config(**HOOK_TINY)
    m = torch_model(transformers.Wav2Vec2ForSequenceClassification, cfg)
    m.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    sd = m.state_dict()
    c = _hook_config(tmp_path)
    prog = build_program(c, 3, 16000)
    mod = prog.nodes[0].module
    assert (mod.hidden_size, mod.num_hidden_layers, mod.normalize, mod.hidden_dropout) == (
        32,
        1,
        True,
        0.0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="wav2vec2:")  # a full checkpoint: nothing missing
        params, stats = init_variables(prog, rbg(0), S)
    p = params["student"]
    np.testing.assert_array_equal(
        p["encoder"]["layers_0"]["feed_forward"]["output_dense"]["kernel"],
        sd["wav2vec2.encoder.layers.0.feed_forward.output_dense.weight"].numpy().T,
    )
    np.testing.assert_array_equal(p["classifier"]["bias"], sd["classifier.bias"].numpy())
    # One train step on raw audio (dropout and layerdrop active), compiled as test_zoo does.
    tx, _ = make_optimizer(c)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    batch = {
        "audio": jnp.asarray(wave(b=4)),
        "labels": jax.nn.one_hot(jnp.arange(4) % 3, 3),
        "mask": jnp.ones(4),
    }
    step = jit_train_step(prog)
    new, metrics = step(state, {}, batch, rbg(1))
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    assert not np.array_equal(
        new.params["student"]["classifier"]["bias"], sd["classifier.bias"].numpy()
    )
    # Another label set (the same hook on a 5-class model): the classifier keeps its values.
    init5 = jax.tree.map(
        lambda s: np.full(s.shape, 0.5, s.dtype),
        w2v.param_shapes(w2v.config_to_kwargs(cfg) | {"num_classes": 5}),
    )
    with pytest.warns(
        UserWarning, match="has no classifier.bias, classifier.weight; kept at their initialisation"
    ):
        p5 = w2v.load_pretrained(tmp_path, init5)
    np.testing.assert_array_equal(p5["classifier"]["kernel"], np.full((8, 5), 0.5))
    np.testing.assert_array_equal(p5["projector"]["kernel"], sd["projector.weight"].numpy().T)
    # kw that change the architecture cannot take the checkpoint's parameters.
    other = w2v.config_to_kwargs(cfg) | {"intermediate_size": 48}
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), w2v.param_shapes(other))
    with pytest.raises(
        ValueError,
        match=r"architecture differs .*intermediate_dense.*model \(32, 48\) checkpoint \(32, 64\)",
    ):
        w2v.load_pretrained(tmp_path, zeros)


def test_pretrained_hook_errors(tmp_path):
    c = _hook_config(tmp_path)
    with c.unlocked():
        c.models.student.model = "transformer"
    with pytest.raises(ValueError, match=r"models.student.pretrained=.*defines no load_pretrained"):
        build_program(c, 3, 16000)
    with c.unlocked():
        c.models.student.model = "wav2vec2"
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        build_program(c, 3, 16000)
    with c.unlocked():
        c.teachers = {"t": dict(model="wav2vec2", input="batch.audio", pretrained=str(tmp_path))}
        del c.models["student"]
    with pytest.raises(
        ValueError, match=r"teachers.t.pretrained: frozen teachers load kdjax checkpoints"
    ):
        build_program(c, 3, 16000)
