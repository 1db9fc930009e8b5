"""``python -m hubspot_token_operator.demo up|down`` (``make demo`` / ``make demo-down``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubspot_token_operator.demo", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where processes, logs and the cluster live (default: <repo>/demo-state)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up_p = sub.add_parser("up", help="start everything and narrate the demo (leaves it running)")
    up_p.add_argument("--real-node", action="store_true",
                      help="also start a real node (kubelet + containerd + runc, root only) and run the operator "
                           "as a pod from its own image, installed by the chart; the consumers run there too "
                           "(first run builds the image: ~1-2 min; see docs/real-node.md)")
    sub.add_parser("down", help="stop everything the demo started and remove the state directory")
    args = parser.parse_args(argv)

    from .run import default_state_dir, down, up

    state_dir = (args.state_dir or default_state_dir()).resolve()
    return up(state_dir, real_node=args.real_node) if args.cmd == "up" else down(state_dir)


if __name__ == "__main__":
    sys.exit(main())
