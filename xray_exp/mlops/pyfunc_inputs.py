"""What the classifier's and the gated detector's pyfuncs accept as images (shipped inside those models; pandas
and numpy only, no mlflow import: a model-from-code file must be the only one that sets its model).

    classifier_inputs(pd.DataFrame({"image": ["chest.png", png_bytes, base64_text]}))   # -> [bytes, ...]
"""

import base64
from pathlib import Path

import numpy as np
import pandas as pd


def classifier_inputs(model_input) -> list[bytes]:
    """The image bytes of any accepted input (as the detector's pyfunc): a DataFrame (column `image`, else the
    first), a Series, array or list, or one item; each item a file path, the file's bytes or base64 text."""
    if isinstance(model_input, pd.DataFrame):
        items = list(model_input["image"] if "image" in model_input.columns else model_input.iloc[:, 0])
    elif isinstance(model_input, str | bytes | bytearray | Path):
        items = [model_input]
    else:
        items = list(np.asarray(model_input, dtype=object).ravel())
    out = []
    for item in items:
        if isinstance(item, bytes | bytearray | memoryview):
            out.append(bytes(item))
            continue
        text = str(item)
        try:
            if len(text) < 4096 and Path(text).expanduser().is_file():
                out.append(Path(text).expanduser().read_bytes())
                continue
        except OSError:
            pass
        out.append(base64.b64decode(text, validate=True))
    return out
