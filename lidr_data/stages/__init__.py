"""Pipeline stages, each a function from tables to tables with the column contract of `lidr_data/schema.py`:
respond, translate, pairs (generation side) and tag, filter, dedup (post-processing, streamed in batches)."""
