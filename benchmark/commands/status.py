"""The `status` stage (placeholder: being implemented)."""
NAME = "status"
HELP = "status stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'status' subcommand is not implemented yet")
