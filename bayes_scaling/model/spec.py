"""What is needed to rebuild a model: law, reference scales, priors, families, runs.

A :class:`ModelSpec` is plain data; it is stored as JSON inside the fit's NetCDF file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..data import ScalingData
from ..data.extent import family_extents
from ..errors import PriorError
from ..laws import Law, get_law, reference_scales
from ..laws.forms import BUILT_IN_LAWS
from .population_prior import PopulationPrior
from .priors import Priors

#: 2: the priors are stored as values (``Priors.to_dict``); a version-1 file's numbers are read as the same priors
SPEC_VERSION = 2
#: ``normal``: Gaussian seed and checkpoint noise; ``student_t``: robust multivariate-t run marginal
LIKELIHOODS = ("normal", "student_t")
#: what ``ModelConfig(likelihood=...)`` accepts: a likelihood, or "auto" (chosen from the runs, see inference/outliers.py)
LIKELIHOOD_CHOICES = ("auto", *LIKELIHOODS)
#: ``independent``: each checkpoint's noise on its own; ``ou``: an Ornstein-Uhlenbeck drift along each run in
#: log tokens plus white jitter (dense checkpoints of one run are correlated; see :mod:`.checkpoint_noise`)
CHECKPOINT_NOISES = ("independent", "ou")


@dataclass
class ModelSpec:
    law: str
    reference: dict[str, float]
    priors: Priors
    families: list[str]
    runs: list[str]
    run_family: list[str]
    family_max_log10_flops: dict[str, float]
    filters: list[dict] = field(default_factory=list)
    source: str = ""
    likelihood: str = "normal"
    #: sampling parameter -> degree: its family values are non-centred given the others (see build_model),
    #: fully at 1, partially in (0, 1); absent: centred
    noncentering: dict[str, float] = field(default_factory=dict)
    #: a borrowed population prior moved to this data's reference scales (see population_prior.py)
    borrowed: dict | None = None
    #: treated family -> its untreated twin (e.g. a grown family -> its from-scratch family)
    treatments: dict[str, str] = field(default_factory=dict)
    checkpoint_noise: str = "independent"
    #: each family's extent in every extrapolation direction (:mod:`bayes_scaling.data.extent`)
    family_extent: dict[str, dict[str, float]] = field(default_factory=dict)
    #: what was assumed about the input data where it did not say (:attr:`ScalingData.assumptions`)
    assumptions: list[str] = field(default_factory=list)
    #: how the likelihood was chosen with ``likelihood="auto"`` (:func:`..inference.outliers.choose_likelihood`)
    likelihood_choice: dict | None = None
    #: the law's declaration (:meth:`Law.to_dict`) when it is not built in, so that the fit file rebuilds it
    law_definition: dict | None = None
    version: int = SPEC_VERSION

    @property
    def extents(self) -> dict[str, dict[str, float]]:
        """Each family's extent, the distances of predictions are measured from (a fit stored before the
        extent was kept has the compute direction alone)."""
        return self.family_extent or {f: {"flops": v} for f, v in self.family_max_log10_flops.items()}

    @property
    def law_obj(self) -> Law:
        return Law.from_dict(self.law_definition) if self.law_definition else get_law(self.law)

    @classmethod
    def from_data(cls, data: ScalingData, law: str | Law = "chinchilla", priors: Priors | None = None,
                  likelihood: str = "normal", borrow: "PopulationPrior | None" = None,
                  noncentering: dict[str, float] | None = None,
                  treatments: dict[str, str] | None = None,
                  checkpoint_noise: str = "independent") -> "ModelSpec":
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        check_checkpoint_noise(checkpoint_noise, likelihood, data)
        lw = get_law(law)
        check_law_inputs(lw, data)
        df = data.frame
        ref = reference_scales(lw, {c: df[c].to_numpy() for c in lw.inputs})
        if priors is None:
            priors = Priors.default(lw, float(np.median(df["loss"])))
        priors.validate(lw)
        noncentering = check_noncentering(dict(noncentering or {}), lw)
        treatments = check_treatments(dict(treatments or {}), data.families)
        if treatments and not priors.treatment_priors(lw):
            raise PriorError(f"the {lw.name!r} law declares no parameter a treatment shifts (Parameter(..., "
                             "treatment=sd)); give priors.treatment, e.g. {'log_B_ref': Prior('Normal', mu=0, "
                             "sigma=0.4)}, to fit treated families")
        borrowed = None
        if borrow is not None:
            if len(data.families) != 1:
                raise PriorError(f"a borrowed population prior fits one new family at a time; the data has "
                                 f"{len(data.families)} ({data.families}). Select one with data.select_families.")
            # a prior of another law supplies the parameters the two laws declare alike; the rest get priors
            observed = {c: df[c].to_numpy(float) for c in ("loss", "flops", *lw.inputs)}
            borrowed = borrow.as_spec_entry(ref, law=lw, priors=priors, observed=observed)
        runs = data.runs
        rt = data.run_table()
        fam_max = df.groupby("family")["flops"].max()
        return cls(
            law=lw.name,
            reference=ref,
            priors=priors,
            families=data.families,
            runs=runs,
            run_family=rt.loc[runs, "family"].tolist(),
            family_max_log10_flops={f: float(np.log10(v)) for f, v in fam_max.items()},
            filters=[r.to_dict() for r in data.dropped],
            source=data.source,
            likelihood=likelihood,
            borrowed=borrowed,
            noncentering=noncentering,
            treatments=treatments,
            checkpoint_noise=checkpoint_noise,
            family_extent=family_extents(df),
            assumptions=list(data.assumptions),
            law_definition=None if lw.name in BUILT_IN_LAWS or not lw.storable else lw.to_dict(),
        )

    @property
    def noncentred(self) -> list[str]:
        """The sampling parameters whose family values are non-centred, in the law's order."""
        return [p for p in self.law_obj.sampling if p in self.noncentering]

    @property
    def treated(self) -> list[str]:
        """Families whose parameters are their twin's plus a treatment shift."""
        return [f for f in self.families if f in self.treatments]

    @property
    def untreated(self) -> list[str]:
        """Families drawn from the population."""
        return [f for f in self.families if f not in self.treatments]

    def to_json(self) -> str:
        d = asdict(self)
        d["priors"] = self.priors.to_dict()
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        """Read a stored spec; a spec written by a newer version of the package, or one with fields this
        version does not know, is refused with what to do."""
        from ..errors import FitFileError

        d = json.loads(text)
        version = int(d.get("version", 0))
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if version > SPEC_VERSION or unknown:
            raise FitFileError(
                f"this fit was written by a newer bayes_scaling (model spec version {version}"
                + (f", with fields {unknown}" if unknown else "") + f"; this version reads up to {SPEC_VERSION}). "
                "Upgrade bayes_scaling (pip install -U bayes_scaling), or fit the data again with this version.")
        d["priors"] = Priors.from_dict(d["priors"])
        return cls(**d)


def check_law_inputs(law: Law, data: ScalingData) -> None:
    """Raise when the law reads a column the data do not have (``unique_tokens`` is optional in the data)."""
    missing = [c for c in law.inputs if c not in data.frame.columns]
    if missing:
        from ..errors import MissingColumnError

        raise MissingColumnError(
            f"the {law.name!r} law reads {missing}, which the data do not have. Name the column when building the "
            f"data, e.g. ScalingData.from_frame(df, ..., {missing[0]}='your column') (CLI: --{missing[0].replace('_', '-')} "
            "COLUMN)")


def checkpoint_noise_for(requested: str, data: ScalingData) -> str:
    """The checkpoint noise to fit ``data`` with: ``requested``, except ``"independent"`` for an ``"ou"``
    request on data where no run has two checkpoints (nothing to correlate: there the two are one model,
    and only the independent one accepts such data)."""
    return "independent" if requested == "ou" and not data.has_checkpoint_curves else requested


def check_checkpoint_noise(checkpoint_noise: str, likelihood: str, data: ScalingData) -> None:
    """Raise if ``checkpoint_noise`` is unknown, or is ``"ou"`` with the Student-t likelihood or for data
    without a run of two checkpoints."""
    if checkpoint_noise not in CHECKPOINT_NOISES:
        raise ValueError(f"checkpoint_noise must be one of {CHECKPOINT_NOISES}, got {checkpoint_noise!r}")
    if checkpoint_noise == "ou" and likelihood == "student_t":
        raise ValueError("checkpoint_noise='ou' is Gaussian (a Kalman filter along each run); it cannot be combined "
                         "with likelihood='student_t'")
    if checkpoint_noise == "ou" and not data.has_checkpoint_curves:
        from ..errors import DataValidationError

        raise DataValidationError(
            "checkpoint_noise='ou' models the correlation between checkpoints of one run, but every run here has "
            "a single point (final-loss data); use checkpoint_noise='independent'")


def check_noncentering(noncentering: dict[str, float], law: Law) -> dict[str, float]:
    """Validate ``{sampling parameter: degree in [0, 1]}``; keep the parameters with a degree above 0.

    1 is non-centred, 0 centred, in between partially non-centred (:func:`..model.hierarchical._block_noncentred`).
    """
    unknown = sorted(set(noncentering) - set(law.sampling))
    if unknown:
        raise ValueError(f"noncentering names {unknown}, which are not sampling parameters of the {law.name!r} law "
                         f"{list(law.sampling)}")
    bad = {k: v for k, v in noncentering.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise ValueError(f"noncentering {bad}: each value must lie in [0, 1] (1 non-centred, 0 centred, "
                         "in between partially non-centred)")
    return {k: float(v) for k, v in noncentering.items() if float(v) > 0.0}


def check_treatments(treatments: dict[str, str], families: list[str]) -> dict[str, str]:
    """Validate ``{treated family: untreated twin}``; raise a specific error for each mistake."""
    from ..errors import UnknownFamilyError

    for treated, twin in treatments.items():
        for name in (treated, twin):
            if name not in families:
                raise UnknownFamilyError(f"treatment {treated!r} -> {twin!r} names {name!r}, which is not among the "
                                         f"data's families {families}")
        if treated == twin:
            raise ValueError(f"family {treated!r} cannot be its own twin in a treatment")
        if twin in treatments:
            raise ValueError(f"the twin {twin!r} of {treated!r} is itself treated; a twin must be an untreated "
                             "(from-scratch) family")
    return treatments
