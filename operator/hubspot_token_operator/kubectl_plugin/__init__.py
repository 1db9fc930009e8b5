"""``kubectl-hubspot``: a kubectl plugin for HubSpotToken objects.

Commands: rotate, status, list, refresh, version, check, inspect secret, completion (docs/kubectl-plugin.md).
``kubectl_complete-hubspot`` (:func:`complete_main`) is kubectl's completion hook for it.

``main(argv, api=..., stdin=..., stdout=...)`` is the entry point; Kubernetes I/O goes through
:class:`KubeAPI` (or any object with the same methods, see :class:`PluginAPI`). See docs/kubectl-plugin.md.
"""

from .api import ApiError, Conflict, KubeAPI, NotFound, PluginAPI, PluginError
from .cli import complete_main, main
from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT

__all__ = [
    "main", "complete_main", "KubeAPI", "PluginAPI", "PluginError", "ApiError", "NotFound", "Conflict",
    "EXIT_OK", "EXIT_ERROR", "EXIT_REJECTED", "EXIT_TIMEOUT", "EXIT_INTERRUPTED",
]
