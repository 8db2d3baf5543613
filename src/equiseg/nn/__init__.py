"""The model core: the groups C4/D4 and their actions, lifting and group convolutions, group norm
and pooling, the one U-Net skeleton (`build_model`), the equivariance test kit, and save/load of
trained models."""
