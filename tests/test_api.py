"""The public surface: a few top-level names by job, the rest in the subpackages, and a pointer for the rest."""

import pytest

import bayes_scaling as bs


def test_the_top_level_is_small_and_every_name_resolves():
    assert len(bs.__all__) <= 15
    for name in bs.__all__:
        assert getattr(bs, name) is not None, name
    assert set(bs.__all__) <= set(dir(bs))


@pytest.mark.parametrize("name, home", [("thin_checkpoints", "data"), ("compute_optimal", "decisions"),
                                        ("fit_mixing", "mixing"), ("ScalingFit", "inference"), ("are", "evaluate")])
def test_a_subpackage_name_asked_for_at_the_top_says_where_it_lives(name, home):
    with pytest.raises(AttributeError, match=rf"bs\.{home}\.{name}"):
        getattr(bs, name)
    assert getattr(getattr(bs, home), name) is not None


def test_reading_a_file_back_is_bs_open():
    with pytest.raises(AttributeError, match=r"bs\.open\(path\) reads any file"):
        bs.load  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        bs.nonsense  # noqa: B018
