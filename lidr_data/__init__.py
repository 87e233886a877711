"""lidr-data: Language Imbalance Driven Rewarding as versioned preference datasets."""

from lidr_data.version import __version__

__all__ = ["__version__", "load_version"]


def __getattr__(name: str):
    # Lazy: `import lidr_data` (and so the CLI's start-up) must not import `datasets` or torch.
    if name == "load_version":
        from lidr_data.dataset.load import load_version

        return load_version
    raise AttributeError(f"module 'lidr_data' has no attribute {name!r}")
