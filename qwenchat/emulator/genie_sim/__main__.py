"""Entry point, run by the phone's ``qwenchat-genie-sim`` launcher in the process the
phone's shell exec'd: the clock is read first so Python's own start-up counts as model
init, and the process takes the name it was run by (``ps``/``pidof`` show genie-t2t-run)."""

import time

_T_MAIN = time.monotonic()


def run() -> None:
    import os
    import sys

    from qwenchat.emulator.phoneinit import set_process_name

    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    except OSError:
        argv0 = "genie-t2t-run"
    args = sys.argv[1:]
    set_process_name([argv0 or "genie-t2t-run", *args])

    from qwenchat.emulator.genie_sim.main import main

    code = main(args, t_main=_T_MAIN, prog=argv0 or "genie-t2t-run")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: freeing the loaded tokenizer alone takes ~0.1 s, which
    # the real binary does not spend and which would show up as host overhead in bench.
    os._exit(code)


if __name__ == "__main__":
    run()
