"""equiseg: equivariant segmentation models and label-free equivariance audits."""
