"""`make demo`: the whole operator end to end on this machine, narrated for a newcomer.

``python -m hubspot_token_operator.demo up`` starts a local control plane (devcluster), the HubSpot
simulator and the operator as background processes under ``<repo>/demo-state/``, creates an OAuth token
and a private-app token, and shows refreshes, a rotation and the workload restart it causes.
``... down`` stops all of it and removes ``demo-state/``. See docs/demo.md.
"""

from .run import down, up

__all__ = ["down", "up"]
