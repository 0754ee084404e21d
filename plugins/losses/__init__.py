"""Multi-label losses: ``bce``, ``wbce`` and ``selective`` (:mod:`plugins.losses.modules`).

The modules need torch, so they are imported only when the registry asks
for the losses: loading the built-in plugins (``auh --help``, ``auh score``)
never imports torch.
"""
from harness import hookimpl


@hookimpl
def auh_losses() -> dict[str, type]:
    from plugins.losses.modules import BCELoss, SelectiveLoss, WeightedBCELoss

    return {"bce": BCELoss, "wbce": WeightedBCELoss, "selective": SelectiveLoss}
