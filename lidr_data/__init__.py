"""lidr-data: Language Imbalance Driven Rewarding as versioned preference datasets."""

__version__ = "0.1.0"
