"""Pipeline stages, each a function from tables to tables with the column contract of `schema.py`:
respond, translate, pairs (generation side) and tag, filter, dedup (post-processing, streamed in batches)."""
