"""Data sets that ship inside packages, subsets and loaders."""
from .builtin import Split, load_digits, load_mnist5k
from .loading import load_npz, make_loader, per_class_subset

__all__ = ["Split", "load_digits", "load_mnist5k", "load_npz", "make_loader", "per_class_subset"]
