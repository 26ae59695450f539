"""kdjax.export: ONNX / StableHLO (/ TFLite) files of a tiny FSDD student, parity with the JAX model.

The run is the tiny FSDD config's `student` stage, written the way training writes it
(`kdjax.train.checkpoint.Checkpointer`, best-on-validation variables), with random parameters
and random BatchNorm running statistics (so a file that used batch statistics would differ).
The reference is written here from the config by hand (front-end preset + module in eval mode),
not with kdjax.export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

pytest.importorskip(
    "onnxruntime", reason="export requirements not installed (requirements-export*.txt)"
)
pytest.importorskip(
    "jax2onnx", reason="export requirements not installed (requirements-export*.txt)"
)

from kdjax import frontends, models  # noqa: E402
from kdjax.export import __main__ as cli  # noqa: E402
from kdjax.export import formats, parity  # noqa: E402
from kdjax.export.exporter import export_run  # noqa: E402
from kdjax.export.model import load_run, serving_fn  # noqa: E402
from kdjax.train.checkpoint import Checkpointer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "fsdd.py") + ":variant=tiny"
N = 8000  # FSDD: 1 s at 8 kHz
MAX_CLIPS = 16


def _student():
    from configs import fsdd

    return models.build("temporal_cnn", num_classes=10, **fsdd.STUDENT)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """<root>/student/seed0 of the tiny FSDD config: one checkpoint of a random student."""
    root = tmp_path_factory.mktemp("fsdd_tiny")
    wd = root / "student" / "seed0"
    v = _student().init(jax.random.key(0), np.zeros((1, 101, 40), np.float32), train=False)
    rng = np.random.default_rng(1)
    stats = jax.tree.map(
        lambda a: (rng.uniform(0.5, 2.0, a.shape) if a.ndim else a).astype(np.float32),
        v["batch_stats"],
    )
    best = {
        "student": {
            "params": v["params"],
            "batch_stats": stats,
            "metric": np.float32(0.5),
            "step": np.int32(2),
        }
    }
    ck = Checkpointer(wd / "ckpt")
    ck.save(2, {"step": np.int32(2)}, best, {"step": 2})
    ck.wait()
    ck.close()
    return str(wd)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("export"))
    run = load_run(run_dir, CONFIG)
    card = export_run(run, out, ["onnx", "stablehlo"], max_clips=MAX_CLIPS, config_spec=CONFIG)
    return run, out, card


def _reference(run_dir, audio):
    """Logits of the checkpoint's variables through the config's front-end, eval mode (by hand)."""
    from kdjax.train.checkpoint import load_best_variables

    v = load_best_variables(run_dir, "student")
    feats = frontends.make_frontend("logmel40_8k")(audio)
    logits, _ = _student().apply(v, feats, train=False)
    return np.asarray(logits, np.float64)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_run_is_found_from_the_stage_folder(exported):
    run, _, card = exported
    assert (run.stage, run.name, run.sample_rate, run.clip_samples) == (
        "student",
        "student",
        8000,
        N,
    )
    assert card["classes"] == [str(k) for k in range(10)]
    assert card["num_params"] == models.count_params(run.variables["params"]) == 33498
    assert card["frontend"]["n_mels"] == 40 and card["frontend"]["hop_length"] == 80
    assert card["parity"]["test_clips"] == MAX_CLIPS and card["parity"]["silence_clips"] == 3


@pytest.mark.parametrize("fmt", ["onnx", "stablehlo"])
def test_file_matches_the_hand_written_reference_on_real_clips_and_silence(exported, run_dir, fmt):
    run, out, card = exported
    audio, labels = parity.split_clips(run, "test", MAX_CLIPS)
    x = np.concatenate([audio, parity.near_silence(N)])
    ref = _reference(run_dir, x)
    logits, probs = formats.RUNNERS[fmt](os.path.join(out, formats.FILE_NAMES[fmt]))(x)
    assert logits.shape == probs.shape == (MAX_CLIPS + 3, 10)
    np.testing.assert_allclose(logits, ref, atol=1e-4)
    np.testing.assert_allclose(probs, _softmax(ref), atol=1e-5)
    assert np.array_equal(logits.argmax(-1), ref.argmax(-1))
    acc = float(np.mean(ref[:MAX_CLIPS].argmax(-1) == labels))
    assert card["parity"]["formats"][fmt]["test_accuracy"] == pytest.approx(acc)
    assert card["parity"]["formats"][fmt]["max_abs_logit_diff"] <= 1e-4


def test_eval_mode_batchnorm_differs_from_batch_statistics(run_dir, exported):
    # The random running statistics matter: train-mode BatchNorm gives other logits, so the
    # parity test above would catch a file that normalised with batch statistics.
    run = exported[0]
    audio, _ = parity.split_clips(run, "test", 4)
    feats = frontends.make_frontend("logmel40_8k")(audio)
    (z_train, _), _ = _student().apply(run.variables, feats, train=True, mutable=["batch_stats"])
    assert np.abs(np.asarray(z_train) - _reference(run_dir, audio)).max() > 1e-2


def test_stablehlo_has_a_dynamic_batch_and_loads_without_flax_or_kdjax(exported, run_dir):
    run, out, card = exported
    assert card["files"]["stablehlo"]["batch"] == "dynamic"
    audio, _ = parity.split_clips(run, "test", 3)
    ref = _reference(run_dir, audio)
    np.save(os.path.join(out, "audio.npy"), audio)
    code = (
        "import sys, numpy as np, jax\n"
        "sys.modules['flax'] = None; sys.modules['kdjax'] = None  # importing either fails\n"
        f"exp = jax.export.deserialize(bytearray(open({os.path.join(out, 'model.stablehlo')!r}, 'rb').read()))\n"
        f"x = np.load({os.path.join(out, 'audio.npy')!r})\n"
        "rows = [np.asarray(exp.call(x[k:k + 1])[0]) for k in range(3)]\n"
        "np.save(sys.argv[1], np.concatenate([np.asarray(exp.call(x)[0])] + rows))\n"
    )
    res = os.path.join(out, "res.npy")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    p = subprocess.run(
        [sys.executable, "-c", code, res], capture_output=True, text=True, env=env, cwd=out
    )
    assert p.returncode == 0, p.stderr[-2000:]
    got = np.load(res)
    np.testing.assert_allclose(got[:3], ref, atol=1e-4)  # batch 3
    np.testing.assert_allclose(got[3:], ref, atol=1e-4)  # batch 1, row by row


def test_onnx_file_is_valid_with_named_input_and_outputs(exported):
    import onnx

    _, out, card = exported
    m = onnx.load(os.path.join(out, "model.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert [i.name for i in m.graph.input] == ["audio"]
    assert [o.name for o in m.graph.output] == ["logits", "probabilities"]
    dims = [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
    # the default DFT-matmul front-end: a dynamic batch, run as one batch in onnxruntime
    assert dims == ["B", N] and card["files"]["onnx"]["batch"] == "dynamic"
    assert card["stft_impl"] == "dft" and card["frontend"]["framing"] == "slices"


def test_compare_refuses_a_logit_difference_or_another_top1():
    ref = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    ok = parity.compare("onnx", ref + 5e-5, _softmax(ref), ref)
    assert ok["max_abs_logit_diff"] == pytest.approx(5e-5) and ok["top1_mismatches"] == 0
    bad = ref.copy()
    bad[1, 2] += 2e-4
    with pytest.raises(
        parity.ParityError,
        match=r"^tflite: max \|logit difference\| 0.0002 > 0.0001 \(clip 1 of 2\)",
    ):
        parity.compare("tflite", bad, _softmax(bad), ref)
    tie = np.array([[1.0, 1.0 + 1e-5, 0.0]])  # top-1 flips within the tolerance
    with pytest.raises(parity.ParityError, match="^stablehlo: top-1 class differs on 1 of 1 clips"):
        parity.compare("stablehlo", tie, _softmax(tie), np.array([[1.0 + 1e-5, 1.0, 0.0]]))
    with pytest.raises(parity.ParityError, match="max \\|logit difference\\| nan"):
        parity.compare("onnx", ref * np.nan, _softmax(ref), ref)


def _cli(run_dir, out, *args: str) -> int:
    return cli.main(["--workdir", str(run_dir), "--config", CONFIG, "--out", str(out), *args])


def test_cli_writes_the_card_and_fails_in_one_line(run_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert _cli(run_dir, out, "--format", "stablehlo", "--max-clips", "4") == 0
    card = json.loads((out / "model_card.json").read_text())
    assert list(card["files"]) == ["stablehlo"] and card["source"]["stage"] == "student"
    # a folder that is no run of the config; a tflite export without a TensorFlow Python
    assert _cli(tmp_path, out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a stage run of this config" in err[0]
    assert _cli(run_dir, out, "--format", "tflite", "--tf-python", "") == 1
    assert "needs --tf-python" in capsys.readouterr().err


def _tf_python() -> str | None:
    py = os.environ.get("KDJAX_TF_PYTHON")
    return py if py and os.path.exists(py) and formats.python_has("tensorflow", py) else None


@pytest.mark.skipif(
    _tf_python() is None,
    reason="TensorFlow absent: set KDJAX_TF_PYTHON to a Python with "
    "tensorflow and jax (requirements-tflite-convert.txt) to test the TFLite export",
)
def test_tflite_matches_the_reference(run_dir, tmp_path):
    pytest.importorskip("ai_edge_litert")
    run = load_run(run_dir, CONFIG)
    path = str(tmp_path / "model.tflite")
    formats.export_tflite(serving_fn(run), path, N, tf_python=_tf_python())
    audio, _ = parity.split_clips(run, "test", 4)
    x = np.concatenate([audio, parity.near_silence(N)])
    logits, probs = formats.run_tflite(path)(x)
    ref = _reference(run_dir, x)
    np.testing.assert_allclose(logits, ref, atol=1e-4)
    np.testing.assert_allclose(probs, _softmax(ref), atol=1e-5)


def test_row_mapped_dynamic_batch_equals_the_reference(exported, run_dir, tmp_path):
    # batch_rows="map": the batch-1 computation mapped over a symbolic batch (for front-ends
    # that cannot trace one directly); batches of 2 and 1 give the reference's rows.
    run = exported[0]
    path = str(tmp_path / "map.stablehlo")
    formats.export_stablehlo(serving_fn(run, batch_rows="map"), path, N, dynamic_batch=True)
    audio, _ = parity.split_clips(run, "test", 2)
    run_file = formats.run_stablehlo(path)
    ref = _reference(run_dir, audio)
    np.testing.assert_allclose(run_file(audio)[0], ref, atol=1e-4)
    np.testing.assert_allclose(run_file(audio[1:])[0], ref[1:], atol=1e-4)


def test_rfft_frontend_exports_at_batch_1(exported, run_dir, tmp_path):
    # --stft-impl rfft: the training front-end's rfft (the ONNX DFT op); onnxruntime does not
    # load it with a dynamic batch, so the ONNX file has batch 1 (run row by row here).
    run = exported[0]
    card = export_run(run, str(tmp_path), ["onnx", "stablehlo"], stft_impl="rfft", max_clips=4)
    assert card["files"]["onnx"]["batch"] == 1 and card["files"]["stablehlo"]["batch"] == "dynamic"
    assert "stft_impl" not in card["frontend"] and card["stft_impl"] == "rfft"
    audio, _ = parity.split_clips(run, "test", 3)
    for fmt in ("onnx", "stablehlo"):
        logits, _ = formats.RUNNERS[fmt](str(tmp_path / formats.FILE_NAMES[fmt]))(audio)
        np.testing.assert_allclose(logits, _reference(run_dir, audio), atol=1e-4)


def test_cli_refuses_a_file_that_differs(run_dir, tmp_path, capsys, monkeypatch):
    # A StableHLO runtime that shifts one logit by 1e-3: exit 1, one line naming the format,
    # no model card.
    real = formats.RUNNERS["stablehlo"]

    def shifted(path):
        run_file = real(path)

        def run(audio):
            logits, probs = run_file(audio)
            return logits + 1e-3 * np.eye(1, logits.shape[1], 3, dtype=logits.dtype), probs

        return run

    monkeypatch.setitem(formats.RUNNERS, "stablehlo", shifted)
    out = tmp_path / "bad"
    assert _cli(run_dir, out, "--format", "stablehlo", "--max-clips", "2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("kdjax.export: parity failed: stablehlo: max |logit difference| 0.001")
    assert not (out / "model_card.json").exists()
