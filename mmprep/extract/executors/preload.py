"""Imported once by the worker pool's fork server, so forked workers start warm.

Every import is guarded: a library that fails to load must not take the fork server
down (the workers report the failure themselves, see ``SamplePool``).
"""

import contextlib
import importlib
import signal

# Ctrl-C is the parent's business: never a KeyboardInterrupt traceback from here.
signal.signal(signal.SIGINT, signal.SIG_IGN)

for _name in ("numpy", "av", "PIL.Image", "tokenizers", "torch", "torchaudio.compliance.kaldi",
              "mmprep.extract.sample", "mmprep.extract.executors.pool"):
    with contextlib.suppress(Exception):
        importlib.import_module(_name)
