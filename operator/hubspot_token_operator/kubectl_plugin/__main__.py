"""``python -m hubspot_token_operator.kubectl_plugin``: the same as the ``kubectl-hubspot`` console script
(the krew launcher, plugins/krew/kubectl-hubspot, runs the plugin this way)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
