"""The `mix` stage (placeholder: being implemented)."""
NAME = "mix"
HELP = "mix stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'mix' subcommand is not implemented yet")
