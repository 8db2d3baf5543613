"""The model core: the groups C4/D4 and their actions, lifting and group convolutions, group norm
and pooling, the one U-Net skeleton (`build_model`), the equivariance test kit, `symmetrize` (any model averaged over
p4/p4m), and save/load of trained models."""

from equiseg.nn.symmetrize import Symmetrized, symmetrize

__all__ = ["Symmetrized", "symmetrize"]
