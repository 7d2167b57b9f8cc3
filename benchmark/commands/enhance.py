"""The `enhance` stage (placeholder: being implemented)."""
NAME = "enhance"
HELP = "enhance stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'enhance' subcommand is not implemented yet")
