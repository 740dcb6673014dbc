import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import torch

from dreamvid.images import fit, to_tensor
from dreamvid.model import load_model

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def net():
    return load_model("inception_v3")


@pytest.fixture(scope="session")
def photo():
    """A real photo (skimage's astronaut), HxWx3 float32 RGB in [0, 1]."""
    return skimage.data.astronaut().astype(np.float32) / 255.0


@pytest.fixture()
def photo_tensor(photo):
    return to_tensor(fit(photo, (128, 128)))


def run_cli(*args, cwd=None, timeout=300):
    """Run ``python -m dreamvid ARGS`` in a subprocess; returns CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "dreamvid", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
