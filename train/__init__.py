"""The DPO(+NLL) trainer (installed as `lidr_data.train`). Empty until the trainer issue lands: it will train
M_t on a dataset reference with TRL `DPOTrainer` (loss_type=["sigmoid", "sft"])."""
