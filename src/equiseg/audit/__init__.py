"""`equiseg audit`: the pipeline's measurements on any model and any folder of images.

The top layer: `options` (what was asked), `models` (loading a user's model), `gates` (the CI
gate), `run` (the orchestration: sweep, summary, output folder) and `report` (its document).
Measurement itself lives in `equiseg.analysis`, which never imports this package.
"""
