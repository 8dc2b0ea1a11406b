"""What a fit models, as one object: :class:`ModelConfig` (the law, the likelihood, the checkpoint noise, the
treatments, the extrapolation discrepancy), and :class:`Config`, the behaviour every configuration shares.

A configuration is a frozen value with documented defaults, validated when it is made, written into the fit
file with :data:`CONFIG_VERSION` and read back from it. ``bs.fit`` takes it whole, as do the mixture prior,
the backtest, the harness, the grid and the command line. A ``dict`` stands for the configuration its keys
change from the defaults (``{"likelihood": "student_t"}``), as in pymc-marketing's model config.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Mapping, TypeVar

from ..errors import ConfigError
from ..laws import Law, get_law
from .spec import CHECKPOINT_NOISES, LIKELIHOOD_CHOICES

#: the layout of the configurations stored in a fit file; a file of another layout is refused by name
CONFIG_VERSION = 1

#: the depths of the nested leave-out: each family's largest level of a direction, then its two largest
DEFAULT_DEPTHS = (1, 2)

C = TypeVar("C", bound="Config")


class Config:
    """Shared behaviour of the frozen configuration dataclasses (:class:`ModelConfig`, ``SamplerConfig``)."""

    #: the argument of ``bs.fit`` (and the key in the fit file) this configuration is passed as
    argument: ClassVar[str] = ""

    @classmethod
    def coerce(cls: type[C], value: C | Mapping[str, Any] | None) -> C:
        """``value`` as a configuration: itself, the defaults (None), or the defaults changed by a dict's keys."""
        return cls().merged(value)

    def merged(self: C, value: C | Mapping[str, Any] | None) -> C:
        """``value`` over this configuration: itself if a configuration, this one changed by a dict's keys, or
        this one (None). How a caller's ``sampler={"draws": 200}`` changes a default other than the class's."""
        if value is None:
            return self
        if isinstance(value, type(self)):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - self.keys())
            if unknown:
                raise ConfigError(f"{self.argument}= has no setting {', '.join(map(repr, unknown))}; its settings are "
                                  f"{', '.join(sorted(self.keys()))}")
            return self.replace(**value)
        raise ConfigError(f"{self.argument}= must be a {type(self).__name__}, a dict of its settings or None, "
                          f"got {type(value).__name__} {value!r}")

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (validated like a new configuration)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults (how the configuration is printed and logged)."""
        default = type(self)()
        return {k: v for k, v in self.to_dict().items() if default.to_dict()[k] != v}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe settings (a law by its registered name)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps({"version": CONFIG_VERSION, **self.to_dict()})

    @classmethod
    def from_json(cls: type[C], text: str, *, source: str = "the file", **known: Any) -> C:
        """Read :meth:`to_json`; a file of another :data:`CONFIG_VERSION` is refused, naming both versions.
        ``known``: settings the caller holds as objects (a fit's own :class:`Law`), used in place of the stored."""
        stored = json.loads(text)
        version = stored.pop("version", None)
        if version != CONFIG_VERSION:
            raise ConfigError(f"{source} stores its {cls.argument} configuration in layout {version!r}; this version of "
                              f"bayes_scaling reads layout {CONFIG_VERSION}: refit with this version")
        return cls.from_dict({**stored, **known})

    @classmethod
    def from_dict(cls: type[C], stored: Mapping[str, Any]) -> C:
        """Read :meth:`to_dict` (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})

    def __str__(self) -> str:
        changed = self.changed()
        inner = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({inner})" + ("" if changed else "  # the defaults")


def _plain(value: Any) -> Any:
    if isinstance(value, Law):
        return value.name
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


#: how a learned discrepancy's shape is set: normal, or chosen from the held-out runs
DISCREPANCY_TAIL_CHOICES = ("normal", "choose")
#: the learned discrepancy's scale: its own per direction, or shared by the directions (partially pooled)
DISCREPANCY_POOLINGS = ("none", "directions")
#: what the learned discrepancy is a relative error of: the reducible loss L - E, or the whole loss
DISCREPANCY_SCALES = ("reducible", "loss")


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """The model's choices; every field has a default, so ``ModelConfig()`` is the default model.

    Parameters
    ----------
    law:
        ``"chinchilla"`` (L = E + A N^-alpha + B D^-beta), ``"compute"`` (L = E + A C^-alpha),
        ``"data_constrained"`` (repeated tokens; the data need ``unique_tokens``), or your own
        :class:`~bayes_scaling.laws.Law` (docs/howto/your_own_law.md). None (default): the law of a borrowed
        prior, else ``"chinchilla"``.
    likelihood:
        ``"normal"`` (default; the notes name the runs that are outliers under it), ``"student_t"``: a robust
        multivariate-t run marginal that down-weights runs or points far off the law (the Bayesian counterpart
        of a Huber fit; the notes name the runs it down-weights), or ``"auto"``: fit with ``"normal"`` and refit
        with ``"student_t"`` when some run is an outlier under it (the choice and the runs are in
        ``fit.spec.likelihood_choice`` and the notes).
    checkpoint_noise:
        ``"independent"`` (default): each checkpoint scatters on its own around its run's curve. ``"ou"``: an
        Ornstein-Uhlenbeck drift along each run in log tokens plus each evaluation's white jitter, so densely
        logged curves count as the fewer independent points they are (:mod:`.checkpoint_noise`); it needs
        runs with several checkpoints.
    treatments:
        ``{treated family: untreated twin}``, e.g. ``{"7b-stacked": "7b-scratch"}``: a treated family's law
        parameters are its twin's plus a shift (``treatment_shift`` in the posterior) instead of a draw from
        the population (:mod:`bayes_scaling.decisions.growth`).
    extrapolation:
        ``"learn"`` (default): learn the extrapolation discrepancy in every direction a prediction can leave
        the data (compute, model size, tokens per parameter) by nested leave-out; a number: a fixed kappa (sd
        of the log reducible loss per decade of compute beyond the data); None: no discrepancy term.
    holdout_depths:
        The depths of the nested leave-out: ``(1, 2)`` (default) holds out each family's largest, then its two
        largest, compute budgets, model sizes and tokens-per-parameter levels, one calibration fit each.
    discrepancy_tails:
        ``"normal"`` (default): the learned discrepancy is normal. ``"choose"``: the nested leave-out also
        chooses its shape, the normal or a variance-gamma of the same variance (a narrower centre, longer tails),
        whichever predicts its held-out runs best (:func:`bayes_scaling.inference.extrapolation.choose_tails`).
    discrepancy_pooling:
        ``"none"`` (default): the learned discrepancy has its own scale (and drift scale) in each direction, each
        with its prior. ``"directions"``: the directions share them, partially pooled (``kappa_d = kappa_0
        exp(s eta_d)``, the drift's scale common), so a direction that few held-out runs reach borrows the scale
        the others learned instead of keeping its prior's width.
    discrepancy_scale:
        ``"reducible"`` (default): the learned discrepancy is a relative error of the reducible loss ``L - E``
        (its effect on the log loss is that share ``1 - E / L`` of it). ``"loss"``: a relative error of the whole
        loss, learned from the held-out runs' log-loss residuals as they are; where it lowers the loss it shrinks
        the reducible part instead, so the expected loss still stays above E. Its size then does not rest on
        the fitted E of each family, which a law's data often leave loose.
    """

    argument: ClassVar[str] = "model"

    law: str | Law | None = None
    likelihood: str = "normal"
    checkpoint_noise: str = "independent"
    treatments: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extrapolation: str | float | None = "learn"
    holdout_depths: tuple[int, ...] = DEFAULT_DEPTHS
    discrepancy_tails: str = "normal"
    discrepancy_pooling: str = "none"
    discrepancy_scale: str = "reducible"

    def __post_init__(self) -> None:
        if self.law is not None:
            get_law(self.law)  # a LawError names the laws there are
        if self.likelihood not in LIKELIHOOD_CHOICES:
            raise ConfigError(f"likelihood must be one of {LIKELIHOOD_CHOICES}, got {self.likelihood!r}")
        if self.checkpoint_noise not in CHECKPOINT_NOISES:
            raise ConfigError(f"checkpoint_noise must be one of {CHECKPOINT_NOISES}, got {self.checkpoint_noise!r}")
        if not isinstance(self.treatments, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.treatments.items()):
            raise ConfigError(f"treatments must map each treated family to its untreated twin, e.g. "
                              f"{{'7b-stacked': '7b-scratch'}}, got {self.treatments!r}")
        object.__setattr__(self, "treatments", dict(self.treatments))
        e = self.extrapolation
        if not (e is None or e == "learn" or (isinstance(e, (int, float)) and not isinstance(e, bool) and e >= 0)):
            raise ConfigError(f"extrapolation must be 'learn', a kappa >= 0 (sd of the log reducible loss per decade) "
                              f"or None, got {e!r}")
        depths = tuple(self.holdout_depths)
        if not depths or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in depths):
            raise ConfigError(f"holdout_depths must be whole numbers of at least 1, e.g. (1, 2), got {self.holdout_depths!r}")
        object.__setattr__(self, "holdout_depths", depths)
        if self.discrepancy_tails not in DISCREPANCY_TAIL_CHOICES:
            raise ConfigError(f"discrepancy_tails must be one of {DISCREPANCY_TAIL_CHOICES}, got "
                              f"{self.discrepancy_tails!r}")
        if self.discrepancy_pooling not in DISCREPANCY_POOLINGS:
            raise ConfigError(f"discrepancy_pooling must be one of {DISCREPANCY_POOLINGS}, got "
                              f"{self.discrepancy_pooling!r}")
        if self.discrepancy_scale not in DISCREPANCY_SCALES:
            raise ConfigError(f"discrepancy_scale must be one of {DISCREPANCY_SCALES}, got "
                              f"{self.discrepancy_scale!r}")

    def law_for(self, borrowed_law: Law | None) -> str | Law:
        """The law to fit: this configuration's, else the borrowed prior's, else Chinchilla's."""
        if self.law is not None:
            return self.law
        return borrowed_law if borrowed_law is not None else "chinchilla"

    @classmethod
    def coerce(cls, value: "ModelConfig | Mapping[str, Any] | str | Law | None") -> "ModelConfig":
        """As :meth:`Config.coerce`; a law (its name or a :class:`Law`) alone stands for ``ModelConfig(law=...)``."""
        if isinstance(value, (str, Law)):
            return cls(law=value)
        return super().coerce(value)
