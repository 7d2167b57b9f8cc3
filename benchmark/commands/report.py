"""The `report` stage (placeholder: being implemented)."""
NAME = "report"
HELP = "report stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'report' subcommand is not implemented yet")
