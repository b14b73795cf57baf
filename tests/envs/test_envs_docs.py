"""The pages about rlgrad.envs name every task: a task added to ENVIRONMENTS without its line on
docs/envs.md and its module on docs/api/envs.md fails here, not silently."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from rlgrad.envs import ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env_id", sorted(ENVIRONMENTS))
def test_the_guide_lists_each_task_and_the_api_page_renders_its_module(env_id):
    guide = (ROOT / "docs" / "envs.md").read_text(encoding="utf-8")
    assert f"| `{env_id}` |" in guide
    module = inspect.getmodule(ENVIRONMENTS[env_id]).__name__
    api = (ROOT / "docs" / "api" / "envs.md").read_text(encoding="utf-8")
    assert f"::: {module}\n" in api, f"docs/api/envs.md: add '::: {module}'"
