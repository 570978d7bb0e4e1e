"""Drop Lightning's NVML-based CUDA check where NVML cannot load: it then costs a failed dlopen per optimizer step.

``lightning_fabric`` sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` on import, so ``torch.cuda.is_available()`` asks
NVML instead of initializing CUDA (which would poison later forks). Every ``optimizer.step()`` asks it (the
CUDA-graph capture check), and before CUDA is initialized torch does not cache the answer. Without an NVIDIA
driver, each call tries ``dlopen("libnvidia-ml.so.1")``, fails, and falls back to the CUDA runtime's count,
which is also exactly what torch does with the variable unset. So unsetting it there changes no answer and no
fork safety; it only removes about 0.3 ms per optimizer step (measured on the 2-core CPU machine).
"""

import ctypes
import functools
import os

NVML_CHECK_VAR = "PYTORCH_NVML_BASED_CUDA_CHECK"
NVML_LIBRARY = "libnvidia-ml.so.1"


@functools.cache
def nvml_loads() -> bool:
    """Whether the NVML library can be loaded at all (asked once per process)."""
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return False
    return True


def skip_unloadable_nvml_check() -> bool:
    """Unset the NVML-based check when NVML cannot load (torch would fall back anyway); returns whether it did.

    Call it after ``pytorch_lightning`` is imported (that import sets the variable).
    """
    if os.environ.get(NVML_CHECK_VAR) != "1" or nvml_loads():
        return False
    del os.environ[NVML_CHECK_VAR]
    return True
