"""Entry point, run by the phone's ``qwenchat-genie-app-sim`` launcher in the process the
phone's shell exec'd (``ps``/``pidof`` show genie-app)."""


def run() -> None:
    import os
    import sys

    from qwenchat.emulator.phoneinit import set_process_name

    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    except OSError:
        argv0 = "genie-app"
    args = sys.argv[1:]
    set_process_name([argv0 or "genie-app", *args])

    from qwenchat.emulator.genie_app_sim.app import main

    code = main(args, prog=argv0 or "genie-app")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown (threads, the loaded tokenizer): the real binary's
    # memory goes with the process.
    os._exit(code)


if __name__ == "__main__":
    run()
