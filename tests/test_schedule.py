"""training.schedule: nightly fine-tuning only with new data, an idle machine and mains power."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from training import schedule


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("GHOSTLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(schedule, "_systemctl", lambda *a: False)  # never touch this machine's user manager
    return tmp_path


def test_install_writes_a_low_priority_nightly_timer_and_remove_deletes_it(home, capsys):
    assert schedule.main(["--db", str(home / "t.sqlite3"), "install", "--workspace", str(home / "ws"),
                          "--at", "4:30"]) == 0
    service = (schedule.systemd_dir() / "ghostline-train.service").read_text()
    timer = (schedule.systemd_dir() / "ghostline-train.timer").read_text()
    assert "Nice=19" in service and "IOSchedulingClass=idle" in service
    assert f"--db {home / 't.sqlite3'} run --workspace {home / 'ws'}" in service
    assert "OnCalendar=*-*-* 04:30:00" in timer and "Persistent=true" in timer
    assert "30 4 * * *" in capsys.readouterr().out  # no user manager here: the crontab line to add
    assert schedule.main(["remove"]) == 0
    assert not list(schedule.systemd_dir().iterdir())
    with pytest.raises(SystemExit):
        schedule.main(["install", "--workspace", "x", "--at", "25:00"])


@pytest.mark.parametrize("new,load,battery,why", [
    (10, 0.1, False, "10 new accepted completions"), (80, 1.5, False, "busy"), (80, 0.1, True, "battery"),
    (80, 0.1, False, None)])
def test_it_trains_only_with_new_data_an_idle_machine_and_mains_power(new, load, battery, why):
    got = schedule.why_not(new, load, 2, battery)
    assert (got is None) if why is None else (why in got)


def power(root: Path, **supplies: tuple[str, str]) -> Path:
    for name, (kind, online) in supplies.items():
        (root / name).mkdir(parents=True)
        (root / name / "type").write_text(kind + "\n")
        if online:
            (root / name / "online").write_text(online + "\n")
    return root


def test_battery_is_read_from_sysfs(tmp_path):
    assert not schedule.on_battery(tmp_path / "none")  # a desktop or server: no information, mains
    assert schedule.on_battery(power(tmp_path / "a", BAT0=("Battery", ""), AC=("Mains", "0")))
    assert not schedule.on_battery(power(tmp_path / "b", BAT0=("Battery", ""), AC=("Mains", "1")))


def test_run_skips_without_new_data_and_trains_at_low_priority_when_forced(home, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(schedule.subprocess, "run",
                        lambda cmd, **kw: calls.append((cmd, kw)) or subprocess.CompletedProcess(cmd, 0))
    db = str(home / "missing.sqlite3")
    assert schedule.main(["--db", db, "run", "--workspace", str(home)]) == 0
    assert "not training: 0 new accepted completions" in capsys.readouterr().err and not calls
    assert schedule.read_state()["last_skip"].startswith("0 new")
    assert schedule.main(["--db", db, "run", "--workspace", str(home), "--force"]) == 0
    (cmd, kw), = calls
    assert cmd[1:4] == ["-m", "training.finetune", "--workspace"] and "--promote" in cmd
    assert cmd[cmd.index("--threads") + 1] == str(schedule.THREADS) and kw["preexec_fn"] is not None
    state = schedule.read_state()
    assert state["last_result"] == 0 and state["last_run"] > 0
    assert schedule.main(["--db", db, "status"]) == 0
    assert "last training run: 2" in capsys.readouterr().out
