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


@pytest.fixture(autouse=True)
def no_shipped_filter(monkeypatch, tmp_path_factory):
    """In-process sessions serve no learned filter unless a test gives one: the shipped default would hold back
    some of the answers other tests ask for (tests of the filter load theirs, or the shipped one, explicitly)."""
    import server.filter_files
    import server.session
    none = tmp_path_factory.getbasetemp() / "no-shipped-filter"
    for module in (server.filter_files, server.session):
        monkeypatch.setattr(module, "SHIPPED", none)


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
