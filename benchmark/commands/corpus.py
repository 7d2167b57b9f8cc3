"""The `corpus` stage (placeholder: being implemented)."""
NAME = "corpus"
HELP = "corpus stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'corpus' subcommand is not implemented yet")
