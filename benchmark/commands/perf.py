"""The `perf` stage (placeholder: being implemented)."""
NAME = "perf"
HELP = "perf stage (not implemented yet)"


def add_arguments(p):
    p.add_argument("rest", nargs="*")


def run(args) -> int:
    raise SystemExit("the 'perf' subcommand is not implemented yet")
