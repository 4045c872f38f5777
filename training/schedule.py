"""Nightly fine-tuning, only when it is worth it and costs the user nothing.

    python -m training.schedule install --workspace ~/src/app [--at 03:00]   # a systemd user timer
    python -m training.schedule status                                      # installed? last run? would it train?
    python -m training.schedule run [--force]                               # what the timer runs
    python -m training.schedule remove

`run` trains only with enough new data (MIN_NEW completions accepted at the training telemetry level since
the last run), an idle machine (1-minute load below LOAD_PER_CORE per core) and mains power; then
`training.finetune --promote` at nice 19 with at most THREADS threads, so the adapter serves only if it
beat the base model on held-out examples. Where systemd's user manager is not running, `install` prints the
crontab line to add instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from server.dirs import data_dir, replace_text
from server.telemetry import default_db_path, open_snapshot, suggestions

# --- config ---------------------------------------------------------------------------------------
MIN_NEW = 50
LOAD_PER_CORE = 0.3
THREADS = 2
UNIT = "ghostline-train"


def systemd_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def state_path() -> Path:
    return data_dir() / "finetune" / "schedule.json"


def command(workspace: str, db: Path) -> list[str]:
    return [sys.executable, "-m", "training.schedule", "--db", str(db), "run", "--workspace", workspace]


def units(workspace: str, db: Path, at: str) -> dict[str, str]:
    """The service (what runs) and the timer (when), as systemd user units."""
    root = Path(__file__).resolve().parent.parent
    return {
        f"{UNIT}.service": "[Unit]\nDescription=Ghostline: fine-tune on your code when idle\n\n[Service]\n"
                           f"Type=oneshot\nWorkingDirectory={root}\nNice=19\nIOSchedulingClass=idle\n"
                           f"ExecStart={' '.join(command(workspace, db))}\n",
        f"{UNIT}.timer": f"[Unit]\nDescription=Ghostline: nightly fine-tuning\n\n[Timer]\nOnCalendar=*-*-* {at}:00\n"
                         "Persistent=true\nRandomizedDelaySec=900\n\n[Install]\nWantedBy=timers.target\n",
    }


def _systemctl(*args: str) -> bool:
    exe = shutil.which("systemctl")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "--user", *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# --- the checks ------------------------------------------------------------------------------------
def new_accepted(db: Path, since: float) -> int:
    if not db.exists():
        return 0
    with open_snapshot(db, include_code=True) as conn:
        return sum(1 for r in suggestions(conn, since=since, include_code=True)
                   if r.get("accepted") and r.get("completion"))


def on_battery(power: Path = Path("/sys/class/power_supply")) -> bool:
    """True when a battery is present and no mains supply is online (no information: mains)."""
    kinds = {}
    for d in power.glob("*"):
        try:
            kinds[d.name] = ((d / "type").read_text().strip(), (d / "online").read_text().strip()
                             if (d / "online").exists() else "")
        except OSError:
            continue
    has_battery = any(t == "Battery" for t, _ in kinds.values())
    mains_online = any(t == "Mains" and o == "1" for t, o in kinds.values())
    return has_battery and not mains_online


def why_not(new: int, load: float, cores: int, battery: bool) -> str | None:
    """Why tonight's run should not train, or None."""
    if new < MIN_NEW:
        return f"{new} new accepted completions since the last run (needs {MIN_NEW})"
    if load > LOAD_PER_CORE * cores:
        return f"the machine is busy (load {load:.2f} on {cores} cores)"
    if battery:
        return "on battery"
    return None


def read_state() -> dict:
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}


def write_state(d: dict) -> None:
    replace_text(state_path(), json.dumps(d, indent=1) + "\n")


# --- commands --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    state = read_state()
    reason = None if args.force else why_not(new_accepted(Path(args.db), state.get("last_run", 0.0)),
                                               os.getloadavg()[0], os.cpu_count() or 1, on_battery())
    if reason:
        print(f"not training: {reason}", file=sys.stderr)
        write_state({**state, "last_check": time.time(), "last_skip": reason})
        return 0
    started = time.time()
    cmd = [sys.executable, "-m", "training.finetune", "--workspace", args.workspace, "--db", args.db,
           "--threads", str(THREADS), "--promote"]
    rc = subprocess.run(cmd, preexec_fn=lambda: os.nice(19)).returncode
    write_state({**state, "last_run": started, "last_check": time.time(), "last_result": rc, "last_skip": None})
    return 0 if rc in (0, 1) else rc  # 1: trained, not promoted (it did not beat the base)


def cmd_install(args: argparse.Namespace) -> int:
    d = systemd_dir()
    d.mkdir(parents=True, exist_ok=True)
    for name, text in units(str(Path(args.workspace).expanduser()), Path(args.db), args.at).items():
        (d / name).write_text(text)
    if _systemctl("daemon-reload") and _systemctl("enable", "--now", f"{UNIT}.timer"):
        print(f"installed: {d / (UNIT + '.timer')} runs nightly at {args.at}")
    else:
        hh, mm = args.at.split(":")
        line = f"{int(mm)} {int(hh)} * * * cd {Path(__file__).resolve().parent.parent} && nice -n 19 " + \
               " ".join(command(str(Path(args.workspace).expanduser()), Path(args.db)))
        print(f"wrote {d}, but systemd's user manager is not running here; add this line with `crontab -e`:\n{line}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    _systemctl("disable", "--now", f"{UNIT}.timer")
    for name in (f"{UNIT}.service", f"{UNIT}.timer"):
        (systemd_dir() / name).unlink(missing_ok=True)
    _systemctl("daemon-reload")
    print("removed (a crontab line added by hand stays: `crontab -e`)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    installed = (systemd_dir() / f"{UNIT}.timer").exists()
    state = read_state()
    new = new_accepted(Path(args.db), state.get("last_run", 0.0))
    reason = why_not(new, os.getloadavg()[0], os.cpu_count() or 1, on_battery())
    last = time.strftime("%Y-%m-%d %H:%M", time.localtime(state["last_run"])) if state.get("last_run") else "never"
    print(f"timer: {'installed' if installed else 'not installed'} ({systemd_dir()})\nlast training run: {last}"
          f"{'' if state.get('last_result') is None else ' (exit ' + str(state['last_result']) + ')'}\n"
          f"now: {'would train' if reason is None else 'would not train: ' + reason}")
    return 0


def _hhmm(text: str) -> str:
    hh, _, mm = text.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise argparse.ArgumentTypeError(f"expected HH:MM, got {text!r}")
    return f"{int(hh):02d}:{int(mm):02d}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.schedule", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=str(default_db_path()), help="the telemetry database")
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("install")
    i.add_argument("--workspace", required=True, help="the code to learn from")
    i.add_argument("--at", default="03:00", type=_hhmm, help="HH:MM, local time")
    sub.add_parser("remove")
    sub.add_parser("status")
    r = sub.add_parser("run")
    r.add_argument("--workspace", required=True)
    r.add_argument("--force", action="store_true", help="train whatever the checks say")
    args = ap.parse_args(argv)
    return {"install": cmd_install, "remove": cmd_remove, "status": cmd_status, "run": cmd_run}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
