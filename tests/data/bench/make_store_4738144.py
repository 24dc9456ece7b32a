"""How store-4738144.db was made: qwenchat at commit 4738144 (bench trials stored as dicts,
no model column), against the emulated phone (SIMULATED), time scale 0.01, jitter on.

One finished run (64 and 300 tokens, 1 warm-up + 3 reps, seed 5) and one run interrupted by
Ctrl-C after two of four trials (128 and 256 tokens, 2 reps, seed 9). Kept to show that a
store written by that code still opens, reports and resumes (tests/test_bench_store_compat.py).
Run it only from a checkout of that commit: ``python tests/data/bench/make_store_4738144.py``.
"""

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

tmp = Path(tempfile.mkdtemp(prefix="oldstore-"))
os.environ["QWENCHAT_HOME"] = str(tmp / "home")
os.environ.setdefault("QWENCHAT_CACHE", str(Path(__file__).resolve().parents[3] / ".cache"))

from qwenchat.assets.bundle import plan_bundle  # noqa: E402
from qwenchat.assets.push import push_assets  # noqa: E402
from qwenchat.bench import runner as runner_mod  # noqa: E402
from qwenchat.cli import app  # noqa: E402
from qwenchat.cli.errors import run_app  # noqa: E402
from qwenchat.device.direct import DirectDevice  # noqa: E402
from qwenchat.emulator.bundle import make_bundle  # noqa: E402
from qwenchat.emulator.config import EmulatorConfig  # noqa: E402
from qwenchat.emulator.server import EmulatorServer  # noqa: E402
from qwenchat.layout import PhoneLayout  # noqa: E402

bundle = make_bundle(tmp / "bundle", bin_size_mb=1, arch="v79", parts=4)
config = EmulatorConfig(root=tmp / "phone", time_scale=0.01, jitter=True, auth=False)
server = EmulatorServer(config, port=0)
server.start()
dev = DirectDevice.connect_tcp("127.0.0.1", server.port, auth_timeout=5)
plan = plan_bundle(bundle.bundle, bundle.qairt, "SM8750", tokenizer=bundle.tokenizer)
push_assets(dev, plan, PhoneLayout(), overlap=False)
dev.close()
common = ["bench", "--connect", server.address, "--transport", "direct", "--cooldown", "0",
          "--gen-len", "4", "-o", "json"]
code = run_app(app, [*common, "-p", "64,300", "-r", "3", "--warmup", "1", "--seed", "5"])
print("done run", code, file=sys.stderr)
original = runner_mod.BenchRun._one
calls = {"n": 0}


def stop_third(self, *args):
    calls["n"] += 1
    if calls["n"] == 3:
        raise KeyboardInterrupt
    return original(self, *args)


runner_mod.BenchRun._one = stop_third
code = run_app(app, [*common, "-p", "128,256", "-r", "2", "--warmup", "0", "--seed", "9"])
print("interrupted run", code, file=sys.stderr)
server.stop()
db = tmp / "home" / "data" / "qwenchat.db"
con = sqlite3.connect(db)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.execute("PRAGMA journal_mode=DELETE")
con.execute("VACUUM")
con.close()
print(db)
