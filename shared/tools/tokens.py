"""Development staff tokens: `python -m shared.tools.tokens mint --sub u1 --role officer --unit G12`
prints a token signed by the local development issuer (refused in production)."""

import argparse
import os
import sys
from collections.abc import Sequence

from shared.runtime.auth.dev_issuer import DEV_AUDIENCE, DEV_ISSUER, DevIssuer, is_production
from shared.runtime.auth.identity import Role


def main(argv: Sequence[str] | None = None) -> int:
    """Print a development token (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.tools.tokens", description="Development staff tokens."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a token signed by the development issuer")
    mint.add_argument("--sub", required=True, help="staff subject (user id)")
    mint.add_argument(
        "--role",
        action="append",
        required=True,
        choices=[r.value for r in Role],
        help="repeat for several roles",
    )
    mint.add_argument("--unit", help="unit code, e.g. G12")
    mint.add_argument("--name", help="display name")
    mint.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    mint.add_argument("--dir", help="key directory (default: $DVC_DEV_ISSUER_DIR or ~/.config/...)")
    mint.add_argument("--issuer", help="iss claim (default: DVC_JWT_ISSUER or dvc-dev-issuer)")
    mint.add_argument("--audience", help="aud claim (default: DVC_JWT_AUDIENCE or dvc-platform)")
    args = parser.parse_args(argv)

    if is_production():
        print("refusing to mint development tokens: a production environment", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    issuer = DevIssuer(
        args.dir,
        issuer=args.issuer or os.environ.get("DVC_JWT_ISSUER") or DEV_ISSUER,
        audience=args.audience or os.environ.get("DVC_JWT_AUDIENCE") or DEV_AUDIENCE,
    )
    print(issuer.mint(args.sub, args.role, args.unit, name=args.name, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
