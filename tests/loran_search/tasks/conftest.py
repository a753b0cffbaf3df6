"""Fixtures for the task tests: a session asset cache and the glassllm tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def _asset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def glass_tokenizer(_asset_cache: None) -> Any:
    from transformers import AutoTokenizer

    from loran_search.assets import ensure

    return AutoTokenizer.from_pretrained(ensure("glassllm", progress=False))


@pytest.fixture(scope="session")
def glass_model(_asset_cache: None) -> Any:
    from loran_search.config import ModelSection
    from loran_search.models import load_model

    return load_model(ModelSection(name="glassllm", quantization="none"))[0]
