"""Measuring the equivariance of any predict function, with no files and no model loading: the
perturbation families (`families`, the one registry) and their transforms, the sweep over images
and how each restored prediction is scored, the per-level tables and the one summary, what exact
means, which images can judge, and statistics over seeds and epochs. Geometry and metrics sit
below (`equiseg.geometry`, `equiseg.metrics`); the audit's model loading and files above it
(`equiseg.audit`)."""
