"""Pipeline stages, each a function from tables to tables with the column contract of `lidr_data/schema.py`:
prompts, respond, translate, pairs (generation side) and tag, filter, dedup (post-processing, streamed in
batches). Each module ends with its entry in the build (`base.Stage`); `order.py` lists them in build order."""
