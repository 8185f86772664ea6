"""The README documents every setting of every process with its default."""

from __future__ import annotations

import dataclasses

import pytest

from common.settings import HubSettings, settings_table
from filtered_proxy.settings import ProxySettings
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.sources.pyth.simulator import HermesSimSettings
from firehose_proxy.sources.simulator import SimulatorSettings
from ms_aggregator.settings import AggregatorSettings
from tests.helpers import ROOT


@pytest.mark.parametrize("cls", [HubSettings, FirehoseSettings, AggregatorSettings, ProxySettings, SimulatorSettings,
                                 HermesSimSettings])
def test_readme_has_every_setting_row(cls):
    readme = (ROOT / "README.md").read_text()
    for row in settings_table(cls).splitlines()[2:]:
        assert row in readme, f"README is missing or has a stale row: {row}"
    assert dataclasses.fields(cls)


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/run " in readme and "scripts/test " in readme
