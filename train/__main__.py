"""`python -m lidr_data.train ...` / `accelerate launch -m lidr_data.train ...` / `torchrun -m lidr_data.train ...`."""

import sys

from lidr_data.train.dpo import main

if __name__ == "__main__":
    sys.exit(main())
