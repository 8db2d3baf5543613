"""The model core: the groups (p4/p4m exact, C8/D8 steerable) and their actions, lifting and
group convolutions, group norm and pooling, the seed's blocks and U-Net skeleton (`build_model`),
the equivariance test kit, `symmetrize` (any model averaged over p4/p4m), and save/load of
trained models."""

from equiseg.nn.symmetrize import Symmetrized, symmetrize

__all__ = ["Symmetrized", "symmetrize"]
