"""The `train` stage (placeholder: being implemented)."""
NAME = "train"
HELP = "train stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'train' subcommand is not implemented yet")
