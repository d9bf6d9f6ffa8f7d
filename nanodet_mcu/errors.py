"""One exception type for every user-facing failure: the CLI prints its message on one line and exits 1."""


class NanodetError(Exception):
    """A failure the user can act on (bad input, missing tool, device disagreement)."""
