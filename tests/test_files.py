"""Every file bayes_scaling writes is read back as what it is, by ``bs.open``; a file of the wrong kind says so."""

import ast
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bayes_scaling as bs
from bayes_scaling.errors import FitFileError, PriorError
from bayes_scaling.storage import file_kind


def test_open_reads_a_fit_and_a_prior_as_what_they_are(small_fit, tmp_path):
    fit_path = small_fit.save(tmp_path / "fit.nc")
    prior_path = bs.PopulationPrior.from_fit(small_fit, draws=200).save(tmp_path / "prior.nc")
    assert (file_kind(fit_path), file_kind(prior_path)) == ("fit", "prior")
    assert isinstance(bs.open(fit_path), bs.inference.ScalingFit)
    assert isinstance(bs.open(prior_path), bs.PopulationPrior)
    assert isinstance(bs.open(bs.model.population_prior.published_prior_path()), bs.PopulationPrior)


def test_a_prior_is_not_read_from_a_fit_file_without_saying_how(small_fit, tmp_path):
    fit_path = small_fit.save(tmp_path / "fit.nc")
    with pytest.raises(FitFileError, match=r"is not a population prior .*bs.open\(.*PopulationPrior.from_fit"):
        bs.PopulationPrior.load(fit_path)


def test_foreign_and_missing_files_are_refused(tmp_path):
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(FitFileError, match="not a readable file bayes_scaling wrote"):
        bs.open(tmp_path / "other.nc")
    with pytest.raises(FitFileError, match="no such file"):
        bs.open(tmp_path / "missing.nc")
    (tmp_path / "text.nc").write_text("not netcdf")
    with pytest.raises(FitFileError, match="not a readable file bayes_scaling wrote"):
        bs.open(tmp_path / "text.nc")


@pytest.mark.slow
def test_borrow_takes_a_prior_or_a_fit_file_and_refuses_other_kinds(small_fit, tmp_path):
    from bayes_scaling.inference.fit import borrowed_prior

    fit_path = small_fit.save(tmp_path / "fit.nc")
    assert borrowed_prior(fit_path).law == small_fit.law.name
    fake = xr.Dataset({"x": ("i", np.arange(3.0))})
    fake.attrs = {}
    post = xr.Dataset({"a": (("chain", "draw"), np.zeros((1, 2)))}, attrs={"bayes_scaling_mixing": "{}"})
    fake.to_netcdf(tmp_path / "mix.nc")
    post.to_netcdf(tmp_path / "mix.nc", group="posterior", mode="a")
    assert file_kind(tmp_path / "mix.nc") == "mixing fit"
    with pytest.raises(PriorError, match="is a mixing fit, which holds no population prior"):
        borrowed_prior(tmp_path / "mix.nc")
    with pytest.raises(FitFileError, match="no such file; .*'published'"):
        borrowed_prior(tmp_path / "nowhere.nc")


def test_the_package_has_no_import_cycles():
    """Every import inside the package, at module level or in a function, forms a graph without cycles."""
    root = Path(bs.__file__).parent
    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    edges[name].add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                edges[name].update(alias.name for alias in node.names)
        edges[name] = {t for t in edges[name] if t in modules and t != name}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(edges[m])
        return False

    cycles = sorted({" <-> ".join(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not cycles, cycles
