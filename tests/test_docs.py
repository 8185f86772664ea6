"""The README documents every setting of every process with its default."""

from __future__ import annotations

import dataclasses
import re

import pytest

from common.settings import HubSettings, settings_table
from filtered_proxy.settings import ProxySettings
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.sources.pyth.simulator import HermesSimSettings
from firehose_proxy.sources.simulator import SimulatorSettings
from ms_aggregator.settings import AggregatorSettings
from tests.helpers import ROOT

SETTINGS = [HubSettings, FirehoseSettings, AggregatorSettings, ProxySettings, SimulatorSettings, HermesSimSettings]


@pytest.mark.parametrize("cls", SETTINGS)
def test_readme_has_every_setting_row(cls):
    readme = (ROOT / "README.md").read_text()
    rows = settings_table(cls).splitlines()[2:]
    assert len(rows) == len(dataclasses.fields(cls))
    for row in rows:
        assert row in readme, f"README is missing or has a stale row: {row}"


def test_readme_documents_no_setting_that_does_not_exist():
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| `--", (ROOT / "README.md").read_text(), re.M))
    real = {f.metadata["env"] for cls in SETTINGS for f in dataclasses.fields(cls)}
    assert documented and documented <= real, f"README documents unknown settings: {sorted(documented - real)}"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/run " in readme and "scripts/test " in readme
