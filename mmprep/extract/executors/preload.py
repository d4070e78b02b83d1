"""Imported once by the worker pool's fork server, so forked workers start warm.

Besides the heavy libraries it loads what the first sample of every worker would
otherwise load on its own: numpy's random module, Pillow's image plugins (imported on
the first save) and the packaged WordPiece vocabulary. Every step is guarded: a library
that fails to load must not take the fork server down (the workers report the failure
themselves, see ``SamplePool``).
"""

import contextlib
import importlib
import signal

# Ctrl-C is the parent's business: never a KeyboardInterrupt traceback from here.
signal.signal(signal.SIGINT, signal.SIG_IGN)

for _name in ("numpy", "numpy.random", "av", "av.subtitles.stream", "PIL.Image",
              "PIL.JpegImagePlugin", "tokenizers", "torch", "torchaudio.compliance.kaldi",
              "mmprep.extract.sample", "mmprep.extract.executors.pool"):
    with contextlib.suppress(Exception):
        importlib.import_module(_name)

with contextlib.suppress(Exception):
    from PIL import Image

    Image.preinit()
with contextlib.suppress(Exception):
    from mmprep.media.text import _bert

    _bert("bert-base-uncased", None)  # the packaged vocabulary, shared by the presets
