"""Compiled models kept on disk, so that a new process skips numba's compile.

A model's log density + gradient, and the function that expands a draw into the traced variables, are two
numba graph functions, each called by a C entry point (a numba ``cfunc``) that nutpie calls
(:mod:`.compile_numba`). numba will not cache the entry points itself (they are generated per model), and
PyTensor's graph work before them takes seconds: paid again by every CLI call and every new notebook kernel.
:mod:`.compile_cache` reuses a compiled model within a process; this module keeps it across processes.

After a compile, the machine code of each graph function and of its entry point, which calls it by symbol
(numba's ``serialize_using_object_code``, as numba's own cache stores it), is written with what nutpie needs
around it (the names, dtypes and ranks of the shared variables, the values of those that the model does not
swap in: :func:`.compile_numba.swappable_names`) to one file named after the model's
:func:`.compile_cache.structure_key` and the environment (Python, NumPy, numba, llvmlite, PyTensor, PyMC and
nutpie versions; the CPU and its features; numba's optimisation level). A later process with a model of the
same structure loads the machine code instead of compiling (about 1 s), swaps in its own data, coordinates and
initial point, and draws exactly what a fresh compile would: the code is the same computation and only its
data pointers differ.

Where: ``BAYES_SCALING_COMPILE_CACHE_DIR`` (``""``, ``0`` or ``off``: no disk cache), else
``$XDG_CACHE_HOME/bayes_scaling/compiled`` (``~/.cache/...``). ``BAYES_SCALING_COMPILE_CACHE=0`` turns
off this cache with the in-process one. At most ``MAX_ENTRIES`` files (2-6 MB each) are kept, the
least recently used removed first. A file that cannot be read back (truncated, another format) is
removed with a :class:`CompileStoreWarning` and the model compiled again; each file carries the SHA-256
of its bytes, checked before anything in it is unpickled or run, so a file damaged anywhere is caught there
instead of aborting the process when its code runs. Like numba's own cache,
the files are machine code this process will run: keep the folder private to the user.
:func:`entries` lists the files, :func:`clear` removes them (CLI ``bayes-scaling cache [--clear]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import pickle
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .compile_numba import assemble, graph_code, swappable_names

#: version of the file layout below; a file of another version is ignored and replaced
FORMAT = 4
#: a file starts with this tag and the SHA-256 of the pickled payload after it: a file damaged anywhere (not
#: only truncated) is detected before its machine code is loaded, which could otherwise abort the process
MAGIC = b"bayes_scaling compiled model\n"
#: compiled models kept on disk (least recently used removed first)
MAX_ENTRIES = 25
_OFF = ("", "0", "off", "false", "no", "none")
#: machine code loaded in this process, by file: loading a file twice would define its symbols twice
_LOADED: dict[str, tuple[Any, Any]] = {}


class CompileStoreWarning(UserWarning):
    """A compiled model could not be written to or read back from the disk cache (the fit goes on)."""


def directory() -> Path | None:
    """The disk cache's folder, or None when ``BAYES_SCALING_COMPILE_CACHE_DIR`` turns it off."""
    value = os.environ.get("BAYES_SCALING_COMPILE_CACHE_DIR")
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayes_scaling" / "compiled"


def environment_key() -> str:
    """What the machine code depends on besides the model: library versions, the CPU, numba's settings."""
    import llvmlite
    import numba
    import nutpie
    import pymc
    import pytensor
    from numba.core.registry import cpu_target

    parts = [f"format {FORMAT}", sys.version, f"numpy {np.__version__}", f"numba {numba.__version__}",
             f"llvmlite {llvmlite.__version__}", f"pytensor {pytensor.__version__}", f"pymc {pymc.__version__}",
             f"nutpie {nutpie.__version__}", repr(cpu_target.target_context.codegen().magic_tuple()),
             f"opt {numba.core.config.OPT}"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def entry_path(key: str, folder: Path) -> Path:
    """The file of the model with structure ``key`` in ``folder``."""
    return folder / f"{hashlib.sha256((key + environment_key()).encode()).hexdigest()[:40]}.nutpie"


@dataclasses.dataclass(frozen=True)
class LoadedFunction:
    """A C entry point read back from disk: nutpie needs its ``address``; the libraries (the graph function's
    and the entry point's) and numba environments it uses are kept alive with it."""

    address: int
    libraries: tuple
    environments: tuple


def _pack_library(state: tuple, module: Any) -> dict:
    """A serialised numba library with the environments (``module`` 's NumbaEnv globals) its code uses."""
    from numba.core import serialize
    from numba.core.environment import lookup_environment

    envs = [lookup_environment(gv.name) for gv in module.global_variables if gv.name.startswith("_ZN08NumbaEnv")]
    envs = [(e.globals.get("__name__"), list(e.consts), e.env_name) for e in envs if e is not None]
    return {"library": state, "environments": serialize.dumps(envs)}


def _pack_function(cfunc: Any) -> dict:
    """An entry point of :func:`.compile_numba.compile_model`: the graph function's machine code, then the
    entry point's (which calls it by symbol), plus the LLVM bitcode from which numba learns the symbols each
    defines."""
    graph = cfunc.graph.library
    return {"graph": _pack_library(graph_code(cfunc), graph._get_module_for_linking()),
            "entry": _pack_library(cfunc._library.serialize_using_object_code(), cfunc._library._final_module),
            "name": cfunc.native_name}


def _unpack_library(packed: dict) -> tuple[Any, list]:
    from numba.core import serialize
    from numba.core.environment import Environment, lookup_environment
    from numba.core.registry import cpu_target

    context = cpu_target.target_context
    context.refresh()  # numba's runtime (NRT) is set up on a context's first compile; nothing compiled yet
    library = context.codegen().unserialize_library(packed["library"])
    envs = []
    for module, consts, name in serialize.loads(packed["environments"]):
        env = lookup_environment(name)
        if env is None:
            try:  # None or a module that cannot be imported: a generated function's, whose globals are unused
                namespace = importlib.import_module(module).__dict__ if module else {"__name__": module}
            except ImportError:
                namespace = {"__name__": module}
            env = Environment(namespace)
            env.consts[:] = consts
            env.env_name = name
            Environment._memo[name] = env
        library.codegen.set_env(name, env)
        envs.append(env)
    return library, envs


def _unpack_function(packed: dict) -> LoadedFunction:
    graph, graph_envs = _unpack_library(packed["graph"])  # first: the JIT resolves the entry point's call by it
    entry, entry_envs = _unpack_library(packed["entry"])
    address = entry.get_pointer_to_function(packed["name"])
    if not address:
        raise ValueError(f"the stored machine code does not define {packed['name']}")
    return LoadedFunction(address, (graph, entry), tuple(graph_envs + entry_envs))


def save(key: str, compiled: Any, model: Any) -> Path | None:
    """Write nutpie's numba-compiled ``model`` (with structure ``key``) to the disk cache; its path, or None
    when the cache is off or the code refers to this process's memory (numba's dynamic globals)."""
    folder = directory()
    if folder is None:
        return None
    functions = (compiled.compiled_logp_func, compiled.compiled_expand_func)
    if any(f._library.has_dynamic_globals or f.graph.library.has_dynamic_globals for f in functions):
        return None  # e.g. a constant array over 1 MB: numba embeds its address, valid in this process only
    swapped = swappable_names(model)
    path = entry_path(key, folder)
    handle = None
    try:
        payload = {
            "format": FORMAT, "environment": environment_key(), "structure": key,
            "shared": [(name, value.dtype.str, value.ndim) for name, value in compiled.shared_data.items()],
            "fixed": {name: value for name, value in compiled.shared_data.items() if name not in swapped},
            "logp": _pack_function(compiled.compiled_logp_func),
            "expand": _pack_function(compiled.compiled_expand_func),
        }
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
            handle.write(framed(payload))
        os.replace(handle.name, path)  # atomic: a concurrent reader sees the old file or the whole new one
    except OSError as exc:
        _discard(handle)
        warnings.warn(f"could not write the compiled model to {folder} ({exc}); the next process compiles "
                      "it again (set BAYES_SCALING_COMPILE_CACHE_DIR to a writable folder)",
                      CompileStoreWarning, stacklevel=2)
        return None
    except Exception as exc:  # the cache only saves time: a model numba cannot serialise must not end the fit
        _discard(handle)
        warnings.warn(f"could not serialise the compiled model ({type(exc).__name__}: {exc}); it is not "
                      "stored and the next process compiles it again (please report this with the model's "
                      "options)", CompileStoreWarning, stacklevel=2)
        return None
    prune(folder)
    return path


def _discard(handle) -> None:
    """Remove a half-written temporary file, if any."""
    if handle is not None:
        Path(handle.name).unlink(missing_ok=True)


def entries(folder: Path | None = None) -> list[dict[str, Any]]:
    """The compiled models on disk (path, MB, last used), most recently used first."""
    folder = directory() if folder is None else folder
    if folder is None or not folder.exists():
        return []
    found = [(p, p.stat()) for p in folder.glob("*.nutpie")]
    found.sort(key=lambda item: item[1].st_mtime, reverse=True)
    return [{"path": str(p), "megabytes": st.st_size / 1e6, "last_used": st.st_mtime} for p, st in found]


def clear(folder: Path | None = None) -> int:
    """Remove every compiled model from the disk cache (the next fit of each structure compiles again);
    returns how many were removed."""
    found = entries(folder)
    for entry in found:
        Path(entry["path"]).unlink(missing_ok=True)
    return len(found)


def prune(folder: Path, keep: int = MAX_ENTRIES) -> None:
    """Remove all but the ``keep`` most recently used files of ``folder``."""
    for entry in entries(folder)[keep:]:
        Path(entry["path"]).unlink(missing_ok=True)


def stored(key: str) -> bool:
    """True when the disk cache holds a model of structure ``key`` for this environment."""
    folder = directory()
    return folder is not None and entry_path(key, folder).exists()


def load(key: str, model: Any, initial_points: dict, jitter_rvs: set | None) -> Any | None:
    """nutpie's compiled ``model`` read back from the disk cache, with ``model``'s data, coordinates and
    initial point; None when the cache is off or holds no model of structure ``key``."""
    folder = directory()
    if folder is None:
        return None
    path = entry_path(key, folder)
    if not path.exists():
        return None
    try:
        payload = pickle.loads(_checked_body(path.read_bytes()))
        if payload.get("format") != FORMAT or payload.get("environment") != environment_key() \
                or payload.get("structure") != key:
            raise ValueError("written for another model, environment or file format")
        if str(path) not in _LOADED:
            _LOADED[str(path)] = (_unpack_function(payload["logp"]), _unpack_function(payload["expand"]))
        logp, expand = _LOADED[str(path)]
        compiled = _assemble(payload, logp, expand, model, initial_points, jitter_rvs)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is dropped and the model compiled again
        warnings.warn(f"the compiled model in {path} could not be read back ({type(exc).__name__}: {exc}); "
                      "it is removed and the model compiled again", CompileStoreWarning, stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # recently used: pruned last
    return compiled


def framed(payload: dict) -> bytes:
    """A file's bytes: the tag, the SHA-256 of the pickled ``payload``, then the pickle."""
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def _checked_body(raw: bytes) -> bytes:
    """The pickled payload of a file's bytes, after checking its tag and checksum (ValueError if they fail)."""
    if not raw.startswith(MAGIC):
        raise ValueError("not a compiled-model file of this format")
    digest, sep, body = raw[len(MAGIC):].partition(b"\n")
    if not sep or hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError("its checksum does not match its bytes (the file is damaged)")
    return body


def _assemble(payload: dict, logp: LoadedFunction, expand: LoadedFunction, model: Any, initial_points: dict,
              jitter_rvs: set | None) -> Any:
    shared = {}
    for name, dtype, ndim in payload["shared"]:
        # what the model swaps in (its data, dimension lengths and layout) is a placeholder of the stored rank here
        value = payload["fixed"].get(name, np.zeros((0,) * ndim))
        value = np.array(value, dtype=np.dtype(dtype), order="C", copy=True)
        if value.ndim != ndim:
            raise ValueError(f"shared variable {name} has rank {value.ndim}, the stored code expects {ndim}")
        shared[name] = value
    missing = {name for name, _, _ in payload["shared"]} - set(payload["fixed"]) - swappable_names(model)
    if missing:
        raise ValueError(f"the model does not supply the shared variables {sorted(missing)}")
    return assemble(logp, expand, shared, model, initial_points, jitter_rvs)
