"""The `run` stage (placeholder: being implemented)."""
NAME = "run"
HELP = "run stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'run' subcommand is not implemented yet")
