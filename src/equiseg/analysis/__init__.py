"""Measuring equivariance of any predict function: geometry (rotate/unrotate, valid regions),
perturbations, metrics, the sweep over images, its one summary (`summary`), and the audit's
orchestration with its model loading and output adapters."""
