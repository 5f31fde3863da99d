"""Data sets that ship inside packages, generated toy manifolds, local CIFAR folders,
users' image folders and array files, subsets and loaders."""
from .builtin import Split, load_digits, load_mnist5k
from .cifar import CIFARDataset, load_cifar
from .image_folder import load_image_folder
from .loading import load_npz, load_tensors, make_loader, per_class_subset
from .toy import entangled_rings, noisy_torus

__all__ = [
    "CIFARDataset",
    "Split",
    "entangled_rings",
    "load_cifar",
    "load_digits",
    "load_image_folder",
    "load_mnist5k",
    "load_npz",
    "load_tensors",
    "make_loader",
    "noisy_torus",
    "per_class_subset",
]
