"""The evaluator (installed as `lidr_data.eval`): MGSM accuracy and off-target rate (`mgsm`), win rate against
reference outputs with a pluggable judge (`winrate`, `judges`), and side-by-side tables (`compare`). Every run
writes a results folder of Parquet tables that `lidr sql` can query."""
