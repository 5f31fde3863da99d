"""Data sets that ship inside packages, generated toy manifolds, local CIFAR folders,
subsets and loaders."""
from .builtin import Split, load_digits, load_mnist5k
from .cifar import CIFARDataset, load_cifar
from .loading import load_npz, make_loader, per_class_subset
from .toy import entangled_rings, noisy_torus

__all__ = [
    "CIFARDataset",
    "Split",
    "entangled_rings",
    "load_cifar",
    "load_digits",
    "load_mnist5k",
    "load_npz",
    "make_loader",
    "noisy_torus",
    "per_class_subset",
]
