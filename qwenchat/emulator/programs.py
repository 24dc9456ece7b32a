"""The emulator's own programs in the phone's /system/bin: small mksh scripts.

``getprop``/``setprop`` read /system/build.prop (the properties the emulator wrote at start);
``settings``, ``cmd power`` and ``dumpsys battery`` read the /sys files the emulator keeps
current (``sysfiles``); ``qwenchat-genie-sim`` is the launcher the synthetic SDK's
genie-t2t-run stub execs (``qwenchat-genie-app-sim`` the one its genie-app stub execs); ``qwenchat-fault`` is what a ``fail-command`` fault puts in place of
a command. Every one says SIMULATED where it speaks for the phone.
"""

from __future__ import annotations

from qwenchat.emulator.hostlend import SIM_PYTHONPATH, Lending

GENIE_LAUNCHER = "qwenchat-genie-sim"
GENIE_APP_LAUNCHER = "qwenchat-genie-app-sim"  # what the SDK's genie-app stub execs
HASHSUM = "qwenchat-hashsum"  # md5sum, sha1sum, ... sha512sum link to it (emulator.hashsum)
SETTINGS_DIR = "/sys/qwenchat/settings"  # written by sysfiles: settings the phone reports

GETPROP = r"""#!/system/bin/sh
# getprop of the SIMULATED phone (qwenchat emulator): its properties are /system/build.prop,
# written by the emulator at start.
if [ $# -eq 0 ]; then
  while IFS= read -r line; do
    case $line in ''|'#'*) continue ;; esac
    print -r -- "[${line%%=*}]: [${line#*=}]"
  done </system/build.prop | sort
  exit 0
fi
while IFS= read -r line; do
  case $line in "$1="*) print -r -- "${line#*=}"; exit 0 ;; esac
done </system/build.prop
print -r -- "${2-}"
"""

SETPROP = r"""#!/system/bin/sh
# setprop of the SIMULATED phone: the shell user may not set properties, as on a phone.
if [ $# -ne 2 ]; then echo "usage: setprop NAME VALUE" >&2; exit 1; fi
echo "Failed to set property '$1' to '$2'." >&2
echo "See dmesg for error reason." >&2
exit 1
"""

SETTINGS = (
    r"""#!/system/bin/sh
# settings of the SIMULATED phone (read-only): values the emulator publishes under
# """
    + SETTINGS_DIR
    + r"""; anything else is "null", as for an unset setting.
if [ "$1" != get ] || [ $# -ne 3 ]; then
  echo "usage:  settings get NAMESPACE KEY (SIMULATED phone: get only)" >&2
  exit 1
fi
case $2/$3 in */*/*|*..*) echo null; exit 0 ;; esac
cat """
    + SETTINGS_DIR
    + r"""/$2/$3 2>/dev/null || echo null
"""
)

CMD = (
    r"""#!/system/bin/sh
# cmd of the SIMULATED phone: only `cmd power is-power-save-mode`.
if [ "$1 $2" = "power is-power-save-mode" ]; then
  if [ "$(cat """
    + SETTINGS_DIR
    + r"""/global/low_power 2>/dev/null)" = 1 ]; then
    echo true
  else
    echo false
  fi
  exit 0
fi
echo "cmd: Can't find service: $1 (SIMULATED phone)" >&2
exit 20
"""
)

DUMPSYS = r"""#!/system/bin/sh
# dumpsys of the SIMULATED phone: only `dumpsys battery`, from the emulator's /sys files.
if [ "$1" != battery ]; then
  echo "Can't find service: $1 (SIMULATED phone: only battery)" >&2
  exit 1
fi
ps=/sys/class/power_supply
read -r level <$ps/battery/capacity
read -r status <$ps/battery/status
read -r temp <$ps/battery/temp
read -r usb <$ps/usb/online
case $status in
  Charging) code=2 ;; Discharging) code=3 ;; "Not charging") code=4 ;; Full) code=5 ;; *) code=1 ;;
esac
if [ "$usb" = 1 ]; then usb=true; else usb=false; fi
echo "Current Battery Service state:"
echo "  AC powered: false"
echo "  USB powered: $usb"
echo "  Wireless powered: false"
echo "  status: $code"
echo "  health: 2"
echo "  present: true"
echo "  level: $level"
echo "  scale: 100"
echo "  temperature: $temp"
echo "  technology: Li-ion (SIMULATED)"
"""

FAULT = r"""#!/system/bin/sh
# qwenchat emulator: a SIMULATED fault (`qwenchat emulator fault fail-command`) stands in
# for this command; it fails without doing anything.
echo "${0##*/}: SIMULATED failure (qwenchat emulator fault fail-command)" >&2
exit 1
"""

MKSHRC = r"""# /system/etc/mkshrc of the SIMULATED phone (interactive shells)
: ${HOSTNAME:=$(getprop ro.product.device)}
PS1='${HOSTNAME}:${PWD:-?} $ '
"""


def genie_launcher(lent: Lending, entry: str = "genie_sim", name: str = "genie-t2t-run") -> str:
    """Runs the simulation in the caller's process: every step is an exec, so the pid the
    phone's shell printed (``$$`` before ``exec genie-t2t-run``) is the simulation's pid.

    The host's loader is started directly with its own library path: the phone's
    LD_LIBRARY_PATH stays in the environment (the simulation reads and checks it, as
    Genie's linker would) but never steers the host's loader. ``exec -a`` keeps argv[0]
    the name the shell used, so ``pidof genie-t2t-run`` finds it from its first instant.
    """
    libdir = lent.loader.rsplit("/", 1)[0]
    boot = (
        f"import sys; sys.path.insert(0, {SIM_PYTHONPATH!r}); "
        f"from qwenchat.emulator.{entry}.__main__ import run; run()"
    )
    return f"""#!/system/bin/sh
# qwenchat emulator: launcher of the SIMULATED {name} (not Qualcomm's binary).
# The synthetic SDK's {name} execs this with the path it was run by, then its args.
argv0=$1
shift
unset LD_PRELOAD LD_AUDIT
exec -a "$argv0" {lent.loader} --library-path {libdir} {lent.python} -S -E -s -B -c "{boot}" "$@"
"""


def hashsum(lent: Lending) -> str:
    """md5sum/sha*sum with toybox's output at OpenSSL's speed (see ``emulator.hashsum``)."""
    return f"""#!{lent.python} -SEsB
# qwenchat emulator: toybox's md5sum/sha*sum output at the speed of Android's (BoringSSL) toybox.
import sys
sys.path.insert(0, {SIM_PYTHONPATH!r})
from qwenchat.emulator.hashsum import main
sys.exit(main(sys.argv))
"""


def programs(lent: Lending) -> dict[str, str]:
    return {
        "getprop": GETPROP,
        "setprop": SETPROP,
        "settings": SETTINGS,
        "cmd": CMD,
        "dumpsys": DUMPSYS,
        "qwenchat-fault": FAULT,
        GENIE_LAUNCHER: genie_launcher(lent),
        GENIE_APP_LAUNCHER: genie_launcher(lent, "genie_app_sim", "genie-app"),
        HASHSUM: hashsum(lent),
    }
