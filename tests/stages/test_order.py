"""One ordered list of stages (`stages/order.py`); each stage module declares its own entry, so a new stage is one
new file and one line in the list."""

from __future__ import annotations

import importlib
import pkgutil

import lidr_data.stages
from lidr_data.stages.base import Stage
from lidr_data.stages.order import STAGES

MACHINERY = {"base", "order", "tables"}  # the modules of stages/ that are not stages


def test_every_stage_module_declares_one_entry_and_the_list_holds_each_once():
    declared = {}
    for info in pkgutil.iter_modules(lidr_data.stages.__path__):
        if info.name in MACHINERY:
            continue
        module = importlib.import_module(f"lidr_data.stages.{info.name}")
        assert isinstance(getattr(module, "ENTRY", None), Stage), f"stages/{info.name}.py declares no ENTRY"
        declared[module.ENTRY.name] = module
    assert sorted(s.name for s in STAGES) == sorted(declared)
    assert len({s.name for s in STAGES}) == len(STAGES)
    for stage in STAGES:  # the function that runs a stage lives beside it
        assert stage is declared[stage.name].ENTRY
        assert stage.run.__module__ == declared[stage.name].__name__
