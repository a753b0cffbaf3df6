"""The search space answers "the first configuration" (what `loran-search train` runs)."""

from __future__ import annotations

import pytest

from activations import resolve_names
from loran_search.config import SearchSection, StudyConfig, StudySection
from loran_search.search.space import build_space
from loran_search.search.types import SpaceError


def _cfg(**search: object) -> StudyConfig:
    return StudyConfig(study=StudySection(seeds=[5]), search=SearchSection(**search))


def test_defaults_fixed_values_and_first_choices() -> None:
    cfg = _cfg(
        activations=["sinter"],
        rank=[16, 8],
        params={"sinter.amplitude": {"low": 1e-6, "high": 1e-2, "log": True}},
        training={"learning_rate": [3e-4, 1e-3]},
    )
    first = build_space(cfg).first_configuration()
    assert (first.activation, first.rank) == ("sinter", 16)
    assert first.training_overrides == {"learning_rate": 3e-4}
    assert first.activation_params == {"amplitude": 5e-5, "frequency": 1e4}  # registry defaults
    cfg.search.params["sinter.amplitude"] = 1e-3
    assert build_space(cfg).first_configuration().activation_params["amplitude"] == 1e-3
    cfg.search.params["sinter.amplitude"] = [2e-3, 1e-3]
    assert build_space(cfg).first_configuration().activation_params["amplitude"] == 2e-3


def test_family_expands_to_its_first_member_and_ranges_leave_training_alone() -> None:
    cfg = _cfg(
        activations=["fourier"],
        rank=[4],
        training={"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}},
    )
    first = build_space(cfg).first_configuration()
    assert first.activation == resolve_names(["fourier"], "test")[0]
    assert first.training_overrides == {}


def test_glob_keys_apply_to_the_first_configuration() -> None:
    cfg = _cfg(activations=["sinter"], rank=[8], params={"*.amplitude": 1e-3})
    first = build_space(cfg).first_configuration()
    assert first.activation_params == {"amplitude": 1e-3, "frequency": 1e4}


def test_empty_rank_is_refused_with_the_fix() -> None:
    space = build_space(_cfg(activations=["relu"], rank=[8]))
    space.ranks = []
    with pytest.raises(SpaceError, match=r"search\.rank is empty"):
        space.first_configuration()
