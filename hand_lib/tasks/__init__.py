"""Training tasks: a network, its renderer and its loss terms for one method and stage.

The one trainer (:mod:`hand_lib.train`) trains any task: an ``nn.Module`` whose
``training_step(batch, step)`` returns named, weighted loss terms.
"""

from hand_lib.tasks.hamuco import POINT_UNIT_M, HaMuCoTask
from hand_lib.tasks.s2hand import STAGES as S2HAND_STAGES
from hand_lib.tasks.s2hand import S2HandTask

__all__ = ["S2HAND_STAGES", "S2HandTask"]
__all__ += ["POINT_UNIT_M", "HaMuCoTask"]
