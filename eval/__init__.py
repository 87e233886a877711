"""The evaluator (installed as `lidr_data.eval`): MGSM accuracy and off-target rate (`mgsm`), win rate against
reference outputs with a pluggable judge (`winrate`, `judges`), reference log-likelihood (`refnll`), and
side-by-side tables (`compare`); `registry` lists the evaluations, each declared in its own module (what an
entry holds: `evaluation`). Every run writes a results folder of Parquet tables that `lidr sql` can query."""
