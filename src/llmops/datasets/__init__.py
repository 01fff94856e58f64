"""Datasets: immutable, content-addressed Parquet snapshots with stats, recipes and lineage."""
