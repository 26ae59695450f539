"""kdjax.losses imports only jax and the standard library (checked statically and at run time)."""

import ast
import pathlib
import re
import subprocess
import sys

import kdjax.losses

LOSSES_DIR = pathlib.Path(kdjax.losses.__file__).parent
STDLIB = set(sys.stdlib_module_names)


def test_sources_import_only_jax_stdlib_and_themselves():
    files = sorted(LOSSES_DIR.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: use absolute imports"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = (
                    top == "jax"
                    or top in STDLIB
                    or name == "kdjax.losses"
                    or name.startswith("kdjax.losses.")
                )
                assert ok, (
                    f"{path.name} imports {name!r}: kdjax.losses may import only jax and the stdlib"
                )
                if top == "jax":
                    # public jax API only (jax, jax.numpy, jax.nn, jax.lax, ...), never jax._src
                    assert "._" not in name, f"{path.name} imports private {name!r}"


def test_import_pulls_in_no_framework_or_other_kdjax_module():
    code = (
        "import sys, kdjax.losses\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flax', 'optax', 'tensorflow', 'torch', 'orbax', 'grain')]\n"
        "bad += [m for m in sys.modules if m.startswith('kdjax.') and not m.startswith('kdjax.losses')]\n"
        "print(repr(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=LOSSES_DIR.parents[1],
        env={"JAX_PLATFORMS": "cpu", "PATH": ""},
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_public_api_is_documented():
    for name in kdjax.losses.__all__:
        fn = getattr(kdjax.losses, name)
        doc = fn.__doc__ or ""
        assert fn.__annotations__, f"{name} lacks type annotations"
        assert len(doc) > 80, f"{name} lacks a docstring"
        if name not in ("masked_mean", "time_alignment_matrix", "bn_batch_moments", "stats_pool"):
            has_shape = re.search(r"\[[A-Z]", doc) is not None  # e.g. [B, T, D] or [C]
            assert "Source" in doc and "Raises" in doc and has_shape, (
                f"{name}: docstring needs shapes, Raises, Source"
            )
