"""One exception type for every user-facing failure: the CLI prints its message on one line and exits 1."""


class NanodetError(Exception):
    """A failure the user can act on (bad input, missing tool, device disagreement)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (kill, a CI timeout, a closed terminal), raised by the CLI's handler: it unwinds like Ctrl-C,
    so an emulator is stopped and staged outputs are removed on the way out, and the CLI exits 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
