import pytest

from tests.toy_data import write_export


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """2 samples x tasks 1-2, 2 rejected each: 4 examples, short sequences (fast)."""
    return write_export(tmp_path_factory.mktemp("export12"), n_samples=2, tasks=(1, 2))


@pytest.fixture(scope="session")
def full_export(tmp_path_factory):
    """3 samples x tasks 1-3: every HDPO term has pairs."""
    return write_export(tmp_path_factory.mktemp("export123"), n_samples=3, tasks=(1, 2, 3))
