"""Reference networks with named blocks, so layers can be picked by name."""
from .small import MLP, SmallCNN

__all__ = ["MLP", "SmallCNN"]
