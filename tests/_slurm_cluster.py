"""A throw-away single-node Slurm cluster in a folder (used by tests/test_slurm.py and benchmarks/sweep_overhead.py).

munged runs in the foreground with a generated key (mode 0400) and its own socket;
slurmctld and one slurmd run from a generated slurm.conf (proctrack/linuxproc,
task/none, no accounting, no cgroup.conf, no GPUs, the node's resources as
``slurmd -C`` reports them, free ports, state and spool in the folder). Leaving the
context cancels every job and stops the three daemons; SLURM_CONF is restored.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


class SlurmUnavailable(Exception):
    """Why a cluster cannot be started here."""


def _exe(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float, step: float = 0.3) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def check() -> None:
    missing = [d for d in DAEMONS if _exe(d) is None]
    if missing:
        raise SlurmUnavailable(f"Slurm/munge are not installed (missing: {', '.join(missing)}; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        raise SlurmUnavailable("slurmd must run as root to start jobs")


@contextmanager
def single_node_slurm(tmp: Path) -> Iterator[Path]:
    """Start the cluster with its files in ``tmp``; yields the slurm.conf path (also exported as SLURM_CONF)."""
    check()
    tmp.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o700)
    procs: list[subprocess.Popen] = []
    old_conf = os.environ.get("SLURM_CONF")
    try:
        key = tmp / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = tmp / "munge.socket"
        procs.append(subprocess.Popen([_exe("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={sock}",  # type: ignore[list-item]
                                       f"--pid-file={tmp / 'munged.pid'}", f"--log-file={tmp / 'munged.log'}",
                                       f"--seed-file={tmp / 'munged.seed'}"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        if not _wait(sock.exists, 20):
            raise SlurmUnavailable("munged did not create its socket")
        host = socket.gethostname().split(".")[0]
        probe = subprocess.run([_exe("slurmd"), "-C"], capture_output=True, text=True, check=True)  # type: ignore[list-item]
        node = [w for w in probe.stdout.splitlines()[0].split() if not w.startswith(("NodeName=", "UpTime="))]
        for d in ("state", "spool"):
            (tmp / d).mkdir(exist_ok=True)
        conf = tmp / "slurm.conf"
        conf.write_text("\n".join([
            "ClusterName=evalsuitetest", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
            f"StateSaveLocation={tmp / 'state'}", f"SlurmdSpoolDir={tmp / 'spool'}",
            f"SlurmctldPidFile={tmp / 'slurmctld.pid'}", f"SlurmdPidFile={tmp / 'slurmd.pid'}",
            f"SlurmctldLogFile={tmp / 'slurmctld.log'}", f"SlurmdLogFile={tmp / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
            "ReturnToService=2", "MinJobAge=600", "KillWait=2", "SlurmdTimeout=60", "InactiveLimit=0",
            f"NodeName={host} NodeAddr=127.0.0.1 {' '.join(node)} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]), encoding="utf-8")
        os.environ["SLURM_CONF"] = str(conf)
        for daemon in ("slurmctld", "slurmd"):
            args = [_exe(daemon), "-D", "-f", str(conf)] + (["-i"] if daemon == "slurmctld" else [])
            with open(tmp / f"{daemon}.out", "wb") as log:
                procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))  # type: ignore[arg-type]
            time.sleep(1.0)

        def idle() -> bool:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
            return r.returncode == 0 and r.stdout.strip() == "idle"

        if not _wait(idle, 60, 0.5):
            tails = {f.name: f.read_text(errors="replace")[-1500:] for f in list(tmp.glob("*.log")) + list(tmp.glob("*.out"))}
            raise RuntimeError(f"Slurm did not come up: {tails}")
        yield conf
    finally:
        if "SLURM_CONF" in os.environ and procs:
            subprocess.run(["scancel", "--quiet", "--user=root"], capture_output=True, check=False)
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
