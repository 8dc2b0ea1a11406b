"""A model compiled by one process is read back from disk by the next, which draws exactly the same."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.inference import compile_store
from bayes_scaling.inference.compile_cache import structure_key
from bayes_scaling.inference.fit import model_spec
from bayes_scaling.model import build_model

# fits in a new process: argv[3] synthetic families simulated with seed argv[2]; saves
# each fit's draws and prints where its compiled model came from. With argv[4] == "fresh" it fits again
# with the caches off: a model compiled here and now. The likelihood is $FIT_LIKELIHOOD's (normal by default).
_FIT = textwrap.dedent("""
    import os, sys, warnings
    import numpy as np
    import bayes_scaling as bs
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs

    warnings.simplefilter("ignore")
    warnings.simplefilter("always", bs.inference.compile_store.CompileStoreWarning)
    rng = np.random.default_rng(int(sys.argv[2]))
    df = simulate_runs(simulate_family_parameters(int(sys.argv[3]), rng), rng, sizes=(5e7, 2e8), checkpoints=4, seeds=1)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    for label in ["cached", "fresh"][:len(sys.argv) - 3]:
        if label == "fresh":
            os.environ["BAYES_SCALING_COMPILE_CACHE"] = "0"
        fit = bs.fit(data, {"extrapolation": None, "likelihood": os.environ.get("FIT_LIKELIHOOD", "normal")},
                     {"draws": 40, "tune": 40, "chains": 2, "random_seed": 4, "backend": "numba"})
        np.save(f"{sys.argv[1]}_{label}.npy", fit.idata.posterior["theta"].to_numpy())
        print(fit.sampler_info["compile_source"])
""")


def _in_new_processes(tmp_path, runs, **env) -> tuple[list[str], str]:
    """``_FIT`` in a new process for each of ``runs`` (its arguments after the file prefix), one after another,
    sharing a compiled-model store: where each fit's model came from, and the last process's stderr."""
    script = tmp_path / "fit.py"
    script.write_text(_FIT)
    env = {**os.environ, "BAYES_SCALING_COMPILE_CACHE_DIR": str(tmp_path / "compiled"), **env}
    sources = []
    for args in runs:
        out = subprocess.run([sys.executable, str(script), str(tmp_path / args[0]), *args[1:]], env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        sources += out.stdout.split()
    return sources, out.stderr


@pytest.mark.slow
def test_a_new_process_reads_the_compiled_model_back_and_draws_as_a_fresh_compile(tmp_path):
    # the second process: other data and another number of families, the same structure
    sources, _ = _in_new_processes(tmp_path, (["first", "3", "2"], ["second", "5", "3", "fresh"]))
    assert sources == ["compiled", "disk", "compiled"]
    stored = list((tmp_path / "compiled").glob("*.nutpie"))
    assert len(stored) == 1
    loaded = np.load(tmp_path / "second_cached.npy")
    np.testing.assert_array_equal(loaded, np.load(tmp_path / "second_fresh.npy"))
    assert loaded.shape[2] == 3  # (chain, draw, family, param): its own three families, not the first's two
    # bytes damaged in the middle of the machine code: caught by the checksum, removed, compiled again
    raw = bytearray(stored[0].read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)
    stored[0].write_bytes(bytes(raw))
    sources, stderr = _in_new_processes(tmp_path, (["third", "3", "2"],))
    assert sources == ["compiled"] and "checksum does not match" in stderr


@pytest.mark.slow
def test_a_student_t_model_is_read_back_and_draws_as_a_fresh_compile(tmp_path):
    """Its gradient's digamma is numba's own (:mod:`bayes_scaling.inference.stable_cache_keys`), not a call
    through a pointer into scipy, which only the process that compiled it could make."""
    sources, _ = _in_new_processes(tmp_path, (["first", "3", "2"], ["second", "5", "2", "fresh"]),
                                   FIT_LIKELIHOOD="student_t")
    assert sources == ["compiled", "disk", "compiled"]
    np.testing.assert_array_equal(np.load(tmp_path / "second_cached.npy"), np.load(tmp_path / "second_fresh.npy"))


@pytest.fixture
def model_and_key(frame):
    data = bs.ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss")
    spec, _ = model_spec(data, "chinchilla", None)
    model = build_model(data, spec)
    return model, structure_key(model)


@pytest.mark.parametrize("content", [b"not a pickle", "other environment", "damaged"])
def test_an_unreadable_file_is_removed_with_a_warning_and_the_model_compiled_again(content, model_and_key,
                                                                                   tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path))
    model, key = model_and_key
    path = compile_store.entry_path(key, tmp_path)
    if content == "other environment":  # e.g. written by another numba version
        content = compile_store.framed({"format": compile_store.FORMAT, "environment": "numba 0.0", "structure": key})
    elif content == "damaged":  # bytes changed mid-file: it would still unpickle, and its code could abort
        whole = bytearray(compile_store.framed({"format": compile_store.FORMAT, "environment": "x" * 200,
                                                "structure": key}))
        whole[len(whole) // 2] ^= 0x55
        content = bytes(whole)
    path.write_bytes(content)
    assert compile_store.stored(key)
    with pytest.warns(compile_store.CompileStoreWarning, match="could not be read back"):
        assert compile_store.load(key, model, {}, None) is None
    assert not path.exists() and not compile_store.stored(key)


def test_where_the_disk_cache_lives(monkeypatch, tmp_path):
    for off in ("", "0", "off", "none"):
        monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", off)
        assert compile_store.directory() is None
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path / "here"))
    assert compile_store.directory() == tmp_path / "here"
    monkeypatch.delenv("BAYES_SCALING_COMPILE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_store.directory() == tmp_path / "xdg" / "bayes_scaling" / "compiled"


def test_the_file_depends_on_the_structure_and_the_environment(model_and_key, tmp_path, monkeypatch):
    import numba

    _, key = model_and_key
    path = compile_store.entry_path(key, tmp_path)
    assert path == compile_store.entry_path(key, tmp_path)
    assert path != compile_store.entry_path(key + "x", tmp_path)
    monkeypatch.setattr(numba.core.config, "OPT", 0)  # code optimised at another level: another file
    assert compile_store.entry_path(key, tmp_path) != path


def test_prune_keeps_the_most_recently_used_files(tmp_path):
    for i in range(5):
        path = tmp_path / f"{i}.nutpie"
        path.write_bytes(b"x")
        os.utime(path, (1000 + i, 1000 + i))
    compile_store.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.nutpie")) == ["3.nutpie", "4.nutpie"]


def test_cli_lists_and_clears_the_disk_cache(tmp_path, monkeypatch, capsys):
    from bayes_scaling.cli import main

    for i in range(3):
        (tmp_path / f"{i}.nutpie").write_bytes(b"x" * 1000)
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path))
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"3 compiled models in {tmp_path}") and "2.nutpie" in out
    assert main(["cache", "--clear"]) == 0
    assert "removed 3 compiled models" in capsys.readouterr().out and not list(tmp_path.glob("*.nutpie"))
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", "off")
    assert main(["cache"]) == 0 and "is off" in capsys.readouterr().out


def test_a_model_that_cannot_be_serialised_is_not_stored_and_says_so(model_and_key, tmp_path, monkeypatch):
    """Only OSError was caught before: any other failure to pack the compiled code would have ended the fit."""
    from types import SimpleNamespace

    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path))
    model, key = model_and_key
    library = SimpleNamespace(has_dynamic_globals=False)
    function = SimpleNamespace(_library=library, graph=SimpleNamespace(library=library))
    compiled = SimpleNamespace(compiled_logp_func=function, compiled_expand_func=function, n_dim=3, n_expanded=3,
                               shape_info=(), shared_data={})

    def refuse(cfunc):
        raise TypeError("cannot pickle this")

    monkeypatch.setattr(compile_store, "_pack_function", refuse)
    with pytest.warns(compile_store.CompileStoreWarning, match="could not serialise.*TypeError"):
        assert compile_store.save(key, compiled, model) is None
    assert list(tmp_path.iterdir()) == []
