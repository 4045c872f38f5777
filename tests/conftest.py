import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = [sys.executable, "-m", "server"]


def model_available() -> bool:
    try:
        from server.models import resolve
        resolve(None)
        return True
    except Exception:
        return False


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true",
                     help="run the LSP fuzzer for 10,000+ messages instead of a few hundred")


def pytest_collection_modifyitems(config, items):
    # Model tests are part of `make test` (which provisions the model); outside it say why they skip.
    if model_available() or os.environ.get("GHOSTLINE_REQUIRE_MODEL"):
        return
    skip = pytest.mark.skip(reason="default model not provisioned: run `python -m server.models pull`")
    for item in items:
        if "model" in item.keywords:
            item.add_marker(skip)
