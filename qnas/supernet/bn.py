"""BatchNorm recalibration of a cut subnet (METHOD.md §4, thesis 3.3.4).

A subnet shares its BatchNorm parameters with every other subnet, but its activation
statistics are its own: the running statistics the supernet accumulated while training a
mix of subnets are wrong for any particular one. They are recomputed here as the exact
average over a few batches of training data.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: Iterable[Tensor]) -> int:
    """Replace every BatchNorm's running mean/var by their average over ``images`` batches (moved to the
    model's device).

    The model's weights are untouched, and its training mode and BN momenta are restored.
    Returns the number of batches seen; raises ValueError if there were none.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: the exact mean over the batches
    batches = 0
    try:
        model.train()
        device = next(model.parameters()).device
        for x in images:
            model(x.to(device))
            batches += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    if batches == 0:
        raise ValueError("BatchNorm recalibration needs at least one batch")
    return batches
