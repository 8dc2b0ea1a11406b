"""Posterior reports: contents, formats, input errors, and a render in headless Chromium."""

import base64
import os
import re

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import bayes_scaling as bs
from bayes_scaling.cli import DEMO_PORIAN_FAMILIES, main
from bayes_scaling.report import build_report
from bayes_scaling.report.document import (
    Document,
    Figure,
    Items,
    Section,
    Table,
    Text,
    to_html,
    to_markdown,
)
from bayes_scaling.report.figures import new_figure, to_png
from bayes_scaling.report.format import human, markdown_table, sci

SECTIONS = ["Answer: the targets", "Summary", "Data", "Model and priors", "Diagnostics", "Fitted curves",
            "Parameters", "Noise: seeds and checkpoints", "Posterior predictive check", "Compute-optimal frontier"]
FIGURES = ["loss_vs_tokens", "loss_vs_compute", "parameter_forest", "noise_posteriors", "predictive_check",
           "targets", "frontier"]


@pytest.fixture(scope="module")
def porian_fit():
    """A real-data fit: two of Porian et al.'s bundled RefinedWeb recipes, early points filtered."""
    data = bs.load_bundled("porian").select_families(DEMO_PORIAN_FAMILIES[1:3])
    data = bs.data.apply_filters(data, min_tokens=2e7)
    return bs.fit(data, dict(extrapolation=0.02), sampler=FAST)


@pytest.fixture(scope="module")
def targets():
    return [{"family": DEMO_PORIAN_FAMILIES[1], "params": 7e9, "tokens": 1.4e11},
            {"family": "an unseen recipe", "params": 7e9, "tokens": 1.4e11, "new_family": True}]


@pytest.fixture(scope="module")
def report_dir(porian_fit, targets, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    porian_fit.save(out / "fit.nc")
    argv = ["report", str(out / "fit.nc"), "--out", str(out), "--markdown"]
    for t in targets:
        argv += ["--target", f"family={t['family']},params={t['params']:g},tokens={t['tokens']:g}"
                 + (",new_family=yes" if t.get("new_family") else "")]
    assert main(argv) == 0
    return out


def test_markdown_table_formats_a_header_and_rows():
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, "y"]]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y |"
    assert markdown_table(["only"], []) == "| only |\n|---|"


@pytest.mark.slow
def test_report_has_every_section_and_figure(report_dir, porian_fit):
    page = (report_dir / "report.html").read_text()
    for title in SECTIONS:
        assert f">{title}</h2>" in page, title
    titles = re.findall(r"<h2 id='[^']*'>([^<]*)</h2>", page)
    assert titles == SECTIONS  # the answer first
    for name in FIGURES:
        assert f"alt='{name}'" in page, name
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "<script" not in page and "http" not in page.split("<body>")[1]  # offline, self-contained
    # rows removed by the filter are reported with their reason
    assert "min_tokens" in page and str(porian_fit.spec.filters[-1]["rows"]) in page
    # humans read sizes as 7B params and 140B tokens
    assert ">7B<" in page and ">140B<" in page and "(new)" in page
    md = (report_dir / "report.md").read_text()
    assert all(f"## {t}" in md for t in SECTIONS)
    assert sorted(p.stem for p in (report_dir / "figures").glob("*.png")) == sorted(FIGURES)


@pytest.mark.slow
def test_report_targets_match_the_fit(porian_fit, targets):
    doc = build_report(porian_fit, targets, interval=0.8)
    assert doc.sections[0].title == "Answer: the targets"
    table = next(b.frame for b in doc.sections[0].blocks if isinstance(b, Table))
    p = porian_fit.predict(targets[0]["family"], targets[0]["params"], targets[0]["tokens"], interval=0.8)
    median, lo, hi = (float(p[k].values[0]) for k in ("run_median", "run_lower", "run_upper"))
    assert table.loc[0, "one-run loss"] == f"{median:.4g} [{lo:.4g}, {hi:.4g}]"
    assert table.loc[1, "family"].endswith("(new)")
    # whether to trust each: a fit that failed its checks is not to be trusted; this one's discrepancy is fixed
    # by hand, so where it passed them neither target is vouched for by hold-outs
    expected = ("partly: the discrepancy scale was fixed" if porian_fit.diagnostics.ok
                else "no: sampling failed its checks")
    assert table["trust"].str.startswith(expected).all()


@pytest.mark.slow
def test_predictive_check_coverage_is_computed_from_the_data(porian_fit):
    doc = build_report(porian_fit)
    sec = next(s for s in doc.sections if s.title == "Posterior predictive check")
    cov = next(b.frame for b in sec.blocks if isinstance(b, Table))
    assert list(cov["family"]) == porian_fit.families
    assert cov["observations"].sum() == len(porian_fit.data)
    share = cov["inside 90%"].str.rstrip("%").astype(float)
    assert ((share > 50) & (share <= 100)).all()


@pytest.mark.slow
def test_diagnostics_failures_are_explained_in_plain_language(porian_fit):
    import copy
    import json

    from bayes_scaling.inference.fitted import DIAG_ATTR

    bad = copy.copy(porian_fit)
    bad.idata = porian_fit.idata.copy()
    d = json.loads(porian_fit.idata.posterior.attrs[DIAG_ATTR])
    d.update(divergences=7, max_rhat=1.08, problems=["7 divergent transitions", "max R-hat 1.080"])
    bad.idata.posterior.attrs[DIAG_ATTR] = json.dumps(d)
    page = to_html(build_report(bad))
    assert "Sampling diagnostics FAILED" in page
    assert "divergences failed: The sampler met regions" in page and "max R-hat failed: The chains disagree" in page


@pytest.mark.slow
def test_report_input_errors(porian_fit, tmp_path):
    with pytest.raises(ValueError, match="lacks \\['tokens'\\]"):
        bs.write_report(porian_fit, tmp_path, targets=[{"family": "x", "params": 1e9}])
    with pytest.raises(ValueError, match="formats must be among"):
        bs.write_report(porian_fit, tmp_path, formats=("pdf",))
    with pytest.raises(ValueError, match="interval"):
        bs.write_report(porian_fit, tmp_path, interval=1.5)


def test_human_numbers():
    assert [human(x) for x in (1.3e9, 5e10, 2.5e12, 7.5e5, 12)] == ["1.3B", "50B", "2.5T", "750K", "12"]
    assert [sci(x) for x in (1.25e16, 5.76e23, 3.0)] == ["1.2e16", "5.8e23", "3"]


def test_document_renderings_escape_and_embed(tmp_path):
    png = to_png(new_figure()[0])
    doc = Document("T <&>", "sub", [Section("S", [Text("a < b", "warn"), Table(pd.DataFrame({"x|y": [1.23456]})),
                                                   Figure(png, "fig", "cap")])])
    page = to_html(doc)
    assert "T &lt;&amp;&gt;" in page and "a &lt; b" in page and "1.235" in page
    assert base64.b64encode(png).decode() in page
    md = to_markdown(doc, tmp_path / "figs", "figs")
    assert "**a < b**" in md and "![fig](figs/fig.png)" in md and (tmp_path / "figs" / "fig.png").read_bytes() == png


# ------------------------------------------------------------------ headless Chromium
def _browser_or_skip():
    from browser import find_chromium

    try:
        import playwright  # noqa: F401
    except ImportError as exc:
        reason = f"playwright is not installed ({exc})"
    else:
        if find_chromium():
            return
        reason = "no chromium executable (apt-get install chromium; .ci/run does)"
    if os.environ.get("BAYES_SCALING_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.slow
def test_real_data_report_renders_in_headless_chromium(report_dir):
    _browser_or_skip()
    from browser import check_page

    shot = report_dir / "screenshot.png"
    first = report_dir / "first_screen.png"
    res = check_page(report_dir / "report.html", shot, first_screen=first)
    assert res.problems == []
    # the first screen (1200 x 900) opens with the answer: both targets, their intervals and the trust column
    assert "Answer: the targets" in res.first_screen_text
    assert DEMO_PORIAN_FAMILIES[1] in res.first_screen_text and "an unseen recipe (new)" in res.first_screen_text
    assert "one-run loss" in res.first_screen_text and "trust" in res.first_screen_text
    assert len(res.images) == len(FIGURES) and all(im["width"] > 300 for im in res.images)
    # the screenshot shows the whole page, and it is not blank
    from PIL import Image

    im = np.asarray(Image.open(shot).convert("L"))
    assert im.shape[0] > 3000 and (im < 200).mean() > 0.02
    art = os.environ.get("BAYES_SCALING_ARTIFACTS")
    if art:
        os.makedirs(art, exist_ok=True)
        Image.open(shot).save(os.path.join(art, "report_screenshot.png"))
        Image.open(first).save(os.path.join(art, "report_first_screen.png"))


def _page(tmp_path, body: str):
    p = tmp_path / "page.html"
    p.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
    return p


def _img(png: bytes, alt: str = "fig") -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _data_figure() -> bytes:
    fig, ax = new_figure()
    ax.plot([1, 2, 3], [3, 1, 2], color="tab:blue", lw=2)
    return to_png(fig)


def test_browser_check_passes_a_good_page_and_catches_each_failure(tmp_path):
    _browser_or_skip()
    from browser import check_page

    shot = tmp_path / "s.png"
    good = check_page(_page(tmp_path, _img(_data_figure())), shot)
    assert good.problems == [] and good.images[0]["coloured"] > 0

    js = check_page(_page(tmp_path, "<p>x</p><script>undefinedFunction()</script>"), shot)
    assert any("JavaScript error" in p and "undefinedFunction" in p for p in js.problems)

    missing = check_page(_page(tmp_path, "<img alt='gone' src='no_such_figure.png'>"), shot)
    assert any("did not load" in p for p in missing.problems)
    assert any("failed request" in p for p in missing.problems)

    broken = check_page(_page(tmp_path, "<img alt='broken' src='data:image/png;base64,AAAA'>"), shot)
    assert any("did not load" in p for p in broken.problems)

    fig, _ax = new_figure()  # axes, no data
    blank, _ = new_figure()  # no axes at all
    empty = check_page(_page(tmp_path, _img(to_png(fig), "axes only") + _img(to_png(blank), "blank")), shot)
    assert len([p for p in empty.problems if "empty figure" in p]) == 2, empty.problems
    assert re.search(r"axes only", " ".join(empty.problems))


def test_a_family_whose_optimum_the_search_cannot_reach_is_named_and_the_rest_shown(small_fit, monkeypatch):
    import bayes_scaling.decisions as decisions
    from bayes_scaling.report.sections import frontier_section

    real = decisions.compute_optimal
    beyond = "the optimum of some draws lies beyond 3 decades of N from sqrt(C / 120); check the FLOPs function"

    def new_family_beyond_reach(fit, budgets, *, family, new_family=False, random_seed=0):
        if new_family:  # the condition a law's extreme population draws meet (the search raises it)
            raise ValueError(beyond)
        return real(fit, budgets, family=family, new_family=new_family, random_seed=random_seed)

    monkeypatch.setattr(decisions, "compute_optimal", new_family_beyond_reach)
    section = frontier_section(small_fit, 0.9)
    warned = [b for b in section.blocks if isinstance(b, Items) and b.kind == "warn"]
    assert warned and warned[0].items == (f"new family: not shown, {beyond}",)
    shown = [b for b in section.blocks if isinstance(b, Table)][0].frame
    assert set(shown["family"]) == set(small_fit.families)  # the fitted families' frontier is still there
