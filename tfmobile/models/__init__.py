"""The architecture zoo: `available()`, `build(name, ...)`, `identity(name, ...)`, `get_spec(...)`,
`port_weights(...)`. Importing it imports no TensorFlow; building a model does.

Every network is a layer table (see `spec.py` and the per-network modules) built by one
dispatcher (`assemble.py`) from one builder per block type (`blocks.py`).
"""

# Importing the network modules registers them, in this order.
from tfmobile.models import (  # noqa: F401
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    fd_mobilenet,
    shufflenet,
    mobilenet_edgetpu,
    detectors,  # after the networks: every one of them is a backbone
)
from tfmobile.models.registry import (all_variants, available, build, build_backbone, entry,
                                      get_spec, identity)
from tfmobile.models.weights import port_weights

__all__ = ["all_variants", "available", "build", "build_backbone", "entry", "get_spec", "identity",
           "port_weights"]
