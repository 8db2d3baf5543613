"""Measuring the equivariance of any predict function, with no model loading and no output files:
the perturbation families (`families`, the one registry) and their transforms, the predictor and
the sweep over images, how each restored prediction is scored, the stage's validation images, the
per-level tables and the one summary, what exact means, which images can judge, and statistics
over seeds and epochs. Geometry and metrics sit below (`equiseg.geometry`, `equiseg.metrics`);
the audit's model loading, output adapters, folders and files above (`equiseg.audit`)."""
