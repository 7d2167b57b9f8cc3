"""The `score` stage (placeholder: being implemented)."""
NAME = "score"
HELP = "score stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'score' subcommand is not implemented yet")
