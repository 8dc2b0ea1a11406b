"""The experiment grid as data: which dataset, which axes, which fit settings.

A grid is the Cartesian product of its axes; each cell is one fit plus its scores under the
Hitchhiker's protocol (:mod:`bayes_scaling.evaluate.protocol`). Written in TOML or YAML::

    [dataset]
    name = "colpret"                 # a named real dataset (see DATASETS), or:
    # csv = "zoo.csv"                # a CSV with canonical columns (family, params, tokens, loss, run, seed)
    # families = ["OPT", "c4"]       # optional: keep only these families

    [axes]
    heldout = "all"                  # held-out families: "all" (every family with 2+ sizes) or a list
    k = [1, 2, 3]                    # number of its smallest model sizes given to the fit
    fraction = [0.3, 1.0]            # first fraction of each given run's training that is kept
    min_tokens = [0, 1e10]           # drop checkpoints before this many tokens (0: keep all)
    prior = ["none", "borrowed", "pooled"]

    [model]                          # every fit's ModelConfig: any of its settings
    extrapolation = "learn"          # the extrapolation-discrepancy term, or "none"

    [sampler]                        # every fit's SamplerConfig (defaults: 300 draws and tuning steps, 2 chains)
    draws = 300
    random_seed = 0                  # each cell's seed is derived from it and the cell

    [protocol]
    max_checkpoints = 12             # per run, evenly spread in log tokens
    last_fraction = 0.3              # the target is scored on the last 30% of its training

Prior sources: ``none`` fits the held-out family's data alone with the default priors; ``borrowed``
fits them with the population prior of a fit of the other families (:class:`PopulationPrior`);
``pooled`` fits the other families and the held-out family's data jointly in one hierarchical model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..data import ScalingData, loaders
from ..errors import ConfigError, GridConfigError, LawError
from ..inference.config import SamplerConfig
from ..model.config import Config, ModelConfig

#: axis name -> the default values (every axis of a grid, in this order)
AXES = ("heldout", "k", "fraction", "min_tokens", "prior")
PRIOR_SOURCES = ("none", "borrowed", "pooled")


def _colpret() -> ScalingData:
    return ScalingData.concat([loaders.load_opt(), loaders.load_olmo(), loaders.load_datablations(epochs=1)],
                              source="ColPret: OPT, OLMo, datablations (1 epoch)")


#: named real datasets a config may ask for (read from the shared data folder, or bundled)
DATASETS: dict[str, Callable[[], ScalingData]] = {
    "colpret": _colpret,
    "kempner": loaders.load_kempner,
    "porian": loaders.load_porian,
    "gemstone": lambda: loaders.load_gemstone(which="hot", family_by="width"),
    "bundled_porian": lambda: loaders.load_bundled("porian"),
    "bundled_opt": lambda: loaders.load_bundled("opt"),
}


#: the sampler of a grid's fits unless its [sampler] says otherwise: many small fits, each short, each with a
#: fixed number of draws and the fixed whitening, so that a stored grid reproduces draw for draw
GRID_SAMPLER = SamplerConfig(draws=300, tune=300, chains=2, until_converged=False, whiten=True)


@dataclass(frozen=True)
class FitSettings:
    """What every cell's fit uses: the model and sampler configurations and the protocol's settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = GRID_SAMPLER
    max_checkpoints: int | None = 12
    last_fraction: float = 0.3

    @property
    def random_seed(self) -> int:
        return self.sampler.random_seed

    def seeded(self, seed: int) -> SamplerConfig:
        """The sampler of one fit, seeded by ``seed``."""
        return self.sampler.replace(random_seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "sampler": self.sampler.to_dict(),
                "protocol": {"max_checkpoints": self.max_checkpoints, "last_fraction": self.last_fraction}}


@dataclass(frozen=True)
class GridConfig:
    """A validated grid: the dataset to load, the values of every axis and the fit settings."""

    dataset: dict[str, Any]
    axes: dict[str, tuple]
    fit: FitSettings = field(default_factory=FitSettings)
    base_dir: str = "."

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base_dir: str | Path = ".") -> "GridConfig":
        """Validate a parsed TOML/YAML mapping; raises :class:`GridConfigError` naming what is wrong."""
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise GridConfigError(f"unknown section(s) {sorted(unknown)}; a grid config has "
                                  f"{', '.join(f'[{k}]' for k in SECTIONS)}")
        ds = dict(raw.get("dataset") or {})
        if ("name" in ds) == ("csv" in ds):
            raise GridConfigError("[dataset] needs exactly one of name = one of "
                                  f"{sorted(DATASETS)} or csv = 'path/to/zoo.csv'")
        if "name" in ds and ds["name"] not in DATASETS:
            raise GridConfigError(f"unknown dataset name {ds['name']!r}; choose one of {sorted(DATASETS)} "
                                  "or give csv = 'path'")
        extra = set(ds) - {"name", "csv", "families"}
        if extra:
            raise GridConfigError(f"unknown [dataset] key(s) {sorted(extra)}; allowed: name, csv, families")
        axes_raw = dict(raw.get("axes") or {})
        bad = set(axes_raw) - set(AXES)
        if bad:
            raise GridConfigError(f"unknown axis/axes {sorted(bad)}; the axes are {list(AXES)}")
        axes = {
            "heldout": axes_raw.get("heldout", "all"),
            "k": _values(axes_raw.get("k", [1]), "k", int, lambda v: v >= 1, "an integer >= 1"),
            "fraction": _values(axes_raw.get("fraction", [1.0]), "fraction", float, lambda v: 0 < v <= 1,
                                "in (0, 1]"),
            "min_tokens": _values(axes_raw.get("min_tokens", [0.0]), "min_tokens", float, lambda v: v >= 0,
                                  ">= 0 (0: keep every checkpoint)"),
            "prior": _values(axes_raw.get("prior", ["borrowed"]), "prior", str, lambda v: v in PRIOR_SOURCES,
                             f"one of {list(PRIOR_SOURCES)}"),
        }
        h = axes["heldout"]
        if h != "all":
            axes["heldout"] = _values(h, "heldout", str, lambda v: bool(v), "a family name")
        fit = FitSettings(model=_section(raw, "model", ModelConfig(), none_keys=("extrapolation",)),
                          sampler=_section(raw, "sampler", GRID_SAMPLER),
                          **_protocol(dict(raw.get("protocol") or {})))
        return cls(dataset=ds, axes=axes, fit=fit, base_dir=str(base_dir))

    @classmethod
    def load(cls, path: str | Path) -> "GridConfig":
        """Read a ``.toml``, ``.yaml`` or ``.yml`` config."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"grid config {path} does not exist")
        if path.suffix == ".toml":
            raw = tomllib.loads(path.read_text())
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(path.read_text()) or {}
        else:
            raise GridConfigError(f"grid config {path} must end in .toml, .yaml or .yml")
        return cls.from_dict(raw, base_dir=path.resolve().parent)

    # ------------------------------------------------------------------ use
    def load_data(self) -> ScalingData:
        """The dataset, restricted to ``families`` when given."""
        if "name" in self.dataset:
            data = DATASETS[self.dataset["name"]]()
        else:
            import pandas as pd

            path = Path(self.base_dir) / self.dataset["csv"]
            if not path.exists():
                raise FileNotFoundError(f"[dataset] csv {path} does not exist")
            df = pd.read_csv(path)
            data = ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                          run="run" if "run" in df else None, seed="seed" if "seed" in df else None,
                                          source=str(self.dataset["csv"]))
        fams = self.dataset.get("families")
        if fams:
            missing = [f for f in fams if f not in data.families]
            if missing:
                raise GridConfigError(f"[dataset] families {missing} are not in the data; it has {data.families}")
            data = data.select_families(list(fams))
        return data

    def resolved_axes(self, data: ScalingData) -> dict[str, tuple]:
        """Axis values with ``heldout = "all"`` replaced by every family that has 2 or more sizes."""
        from ..evaluate import eligible_families

        axes = dict(self.axes)
        if axes["heldout"] == "all":
            axes["heldout"] = tuple(eligible_families(data))
        else:
            missing = [f for f in axes["heldout"] if f not in data.families]
            if missing:
                raise GridConfigError(f"held-out families {missing} are not in the data; it has {data.families}")
        if len(data.families) < 3 and {"borrowed", "pooled"} & set(axes["prior"]):
            raise GridConfigError("borrowed and pooled priors need at least 3 families (2+ to learn the population "
                                  f"from while one is held out); the data has {data.families}")
        return {a: tuple(axes[a]) for a in AXES}

    def cells(self, axes: Mapping[str, tuple]) -> list[dict[str, Any]]:
        """Every cell of the grid as a mapping axis -> value, in a fixed order."""
        return [dict(zip(AXES, combo)) for combo in itertools.product(*(axes[a] for a in AXES))]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "axes": {a: list(v) if not isinstance(v, str) else v
                                                 for a, v in self.axes.items()}, **self.fit.to_dict()}

    def fingerprint(self) -> str:
        """A hash of everything that changes a cell's result (a results file remembers it)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _values(raw: Any, name: str, cast: type, ok: Callable[[Any], bool], what: str) -> tuple:
    vals = raw if isinstance(raw, (list, tuple)) else [raw]
    if not vals:
        raise GridConfigError(f"axis {name!r} has no values")
    out = []
    for v in vals:
        try:
            c = cast(v)
        except (TypeError, ValueError):
            raise GridConfigError(f"axis {name!r}: value {v!r} is not {what}") from None
        if cast is int and c != v:
            raise GridConfigError(f"axis {name!r}: value {v!r} is not {what}")
        if not ok(c):
            raise GridConfigError(f"axis {name!r}: value {v!r} is not {what}")
        out.append(c)
    if len(set(out)) != len(out):
        raise GridConfigError(f"axis {name!r} repeats a value: {vals}")
    return tuple(out)


#: the sections of a grid config
SECTIONS = ("dataset", "axes", "model", "sampler", "protocol")


def _section(raw: Mapping[str, Any], name: str, default: Config, none_keys: tuple[str, ...] = ()) -> Any:
    """The [name] section as ``default`` changed by its keys; TOML has no null, so ``"none"`` stands for None
    in ``none_keys``."""
    given = dict(raw.get(name) or {})
    for k in none_keys:
        if str(given.get(k, "")).lower() in ("none", "false", "off"):
            given[k] = None
    unknown = sorted(set(given) - default.keys())
    if unknown:
        raise GridConfigError(f"unknown [{name}] key(s) {unknown}; allowed: {sorted(default.keys())}")
    try:
        return default.merged(given)
    except (ConfigError, LawError) as e:
        raise GridConfigError(f"[{name}] {e}") from None


def _protocol(given: dict[str, Any]) -> dict[str, Any]:
    allowed = {"max_checkpoints", "last_fraction"}
    if set(given) - allowed:
        raise GridConfigError(f"unknown [protocol] key(s) {sorted(set(given) - allowed)}; allowed: {sorted(allowed)}")
    if not 0 < given.get("last_fraction", 0.3) <= 1:
        raise GridConfigError(f"[protocol] last_fraction must be in (0, 1], got {given['last_fraction']}")
    return given
