"""Dataset sources (one module per corpus), grain pipelines and TFDS builders.

`get_source(name, split, **kw)` finds `kdjax.data.<name>.source`.
"""

from kdjax import _extras

_extras.require("kdjax.data", ("soundfile", "grain", "absl"))  # without kdjax[train]: one line

from kdjax.data.audio import AudioError, DatasetNotFoundError, load_audio
from kdjax.data.base import ClipRecord, ClipSource, data_root, get_source

__all__ = [
    "AudioError",
    "ClipRecord",
    "ClipSource",
    "DatasetNotFoundError",
    "data_root",
    "get_source",
    "load_audio",
]
