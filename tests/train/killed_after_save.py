"""`python killed_after_save.py N ARGS...` runs `python -m lidr_data.train ARGS...` and SIGKILLs itself as soon as
the Trainer has finished saving checkpoint-N (its `on_save` event comes after `trainer_state.json` is written).

A kill at a known state: a test that polled for checkpoint-N from outside could kill the run before that
checkpoint was complete (nothing to resume from), or miss it and see the run finish first.
"""

import os
import runpy
import signal
import sys

from transformers.trainer_callback import CallbackHandler

KILL_AT = int(sys.argv.pop(1))
_on_save = CallbackHandler.on_save


def on_save(self, args, state, control):
    control = _on_save(self, args, state, control)
    if state.global_step >= KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return control


CallbackHandler.on_save = on_save
runpy.run_module("lidr_data.train", run_name="__main__", alter_sys=True)
