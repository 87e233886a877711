"""The DPO(+NLL) trainer (installed as `lidr_data.train`): `lidr train REF --model M --output DIR`.

dpo.py is the script (TrlParser over TrainArguments, DPOConfig and ModelConfig), loss.py the paper's objective
(DPO sigmoid + per-sequence NLL on the chosen side), data.py the checks on the pairs, output.py the output folder
(staging, train_manifest.json, model card, push; `files.swap_into_place` moves it into place).
"""
