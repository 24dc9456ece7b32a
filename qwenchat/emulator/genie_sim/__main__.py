"""Entry point. The clock is read first so Python's own start-up counts as model init."""

import time

_T_MAIN = time.monotonic()

import sys  # noqa: E402

from qwenchat.emulator.genie_sim.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], t_main=_T_MAIN))
