"""Every loader reads the real published files into a valid container."""

import pytest

import bayes_scaling as bs
from bayes_scaling.data import LOADERS, BUNDLED

EXPECTED = {  # rows, families, runs
    "kempner": (529, 6, 529),
    "epoch_chinchilla": (245, 1, 245),
    "opt": (142, 1, 6),
    "olmo": (1708, 1, 3),
    "t5_pile": (803, 1, 4),
    "datablations": (9261, 2, 48),
    "datablations_code": (296, 9, 18),
    "porian": (1745, 15, 1745),
    "gemstone": (1100, 11, 22),
    "misfitting": (255, 5, 255),  # run ends: 5 peak learning rates, 12M-1B, 100M-21B tokens; repeats are seeds
    "olmo_ladder": (32, 1, 32),  # run ends: 30 ladder runs (5 sizes x 5 multipliers + 5 repeats), the 7B and 13B
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_loader(name, shared_root):
    d = LOADERS[name](shared_root)
    assert (len(d), len(d.families), len(d.runs)) == EXPECTED[name]
    assert (d.frame["loss"] > 0).all() and d.frame["loss"].median() < 12
    assert d.source


def test_loader_records_what_it_drops(shared_root):
    t5 = LOADERS["t5_pile"](shared_root)
    assert t5.dropped[0].filter == "step_zero" and t5.dropped[0].rows == 4
    epoch = LOADERS["epoch_chinchilla"](shared_root, drop_highest_losses=5)
    assert len(epoch) == 240 and epoch.dropped[-1].rows == 5


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_datasets_ship_with_licence(name):
    from bayes_scaling.data.loaders import bundled_path

    path = bundled_path(name)
    assert "Permission is hereby granted, free of charge" in (path.parent / "LICENSE").read_text()  # MIT
    assert "Cite" in (path.parent / "SOURCE.md").read_text()
    assert len(bs.load_bundled(name)) > 100
