"""Cleaning transforms: the steps a recipe chains to turn a dataset version into a cleaner child version.

Each transform is a small module with a typed (pydantic) config and works on pyarrow tables of one dataset
kind. Two shapes exist (see ``base.py``):

- row-wise steps (normalize, filter, pii, split) look at one row at a time, so they run batch by batch
  anywhere (in-process or on Ray workers);
- global steps (exact and near dedup) compute a small per-row signature batch by batch, then decide on
  the driver in one pass over the signatures only.

Every step reports what it changed or removed, with counts and a few examples (``report.py``).
"""
