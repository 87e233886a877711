"""`python ray_build_driver.py RECIPE WORKDIR MODEL ADDRESS LOG DELAY`: a build on Ray whose workers log every
request key they generate (a separate process, so a test can kill it with SIGKILL)."""

import sys
from pathlib import Path

from ray_logging import logging_loader

from lidr_data.build.pipeline import build
from lidr_data.build.recipe import load_recipe
from lidr_data.generation.ray_executor import RayConfig, ray_loader

if __name__ == "__main__":
    recipe, workdir, model, address, log, delay = sys.argv[1:]
    loader = ray_loader(RayConfig(address=address, workers=2), load=logging_loader(Path(log), float(delay)))
    build(load_recipe(recipe), workdir=workdir, model=model, load_generator=loader)
