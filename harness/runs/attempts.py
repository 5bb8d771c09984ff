"""How many times a run's worker started, and their time together, kept in ``status.json``.

A run can take several attempts: resumed after Ctrl-C, retried by Ray when its node died,
requeued by Slurm after preemption. ``seconds`` in ``status.json`` is the last attempt;
``attempts`` and ``total_seconds`` count all of them since the run was last cleared
(``--rerun`` or a re-plan removes ``status.json`` and starts the count again).

An attempt killed without a word (SIGKILL, a lost node) wrote no end time: its time is
taken up to the newest file it wrote in the run folder (history, checkpoint, status), a
lower bound that leaves out the time it ran after its last write.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.rundir.folder import RunFolder


@dataclass(frozen=True)
class Attempt:
    number: int
    #: Seconds of the earlier attempts together.
    earlier: float
    started: float
    #: Where a scheduler ran it (``slurm job 1234``), kept from the submission.
    job: str = ""

    def fields(self, now: float) -> dict[str, float | int | str]:
        """What ``status.json`` records for this attempt at ``now``."""
        return {"attempts": self.number, "job": self.job,
                "total_seconds": round(self.earlier + now - self.started, 3)}


def last_write(folder: RunFolder) -> float:
    """The newest modification time of the run folder's files (0 when none)."""
    if not folder.path.is_dir():
        return 0.0
    times = [p.stat().st_mtime for p in folder.path.rglob("*") if p.is_file()]
    return max(times, default=0.0)


def carried(folder: RunFolder) -> dict[str, float | int]:
    """The count and time of the attempts so far (``{}`` without a status)."""
    if not folder.status_path.exists():
        return {}
    status = folder.status()
    # A status written before attempts were counted stands for one attempt.
    number = status.attempts or (0 if status.state == "pending" else 1)
    if status.state == "running":  # killed: only its start and its last write are known
        ran = last_write(folder) - status.started if status.started else 0.0
        total = status.total_seconds + max(0.0, ran)
    elif status.state == "pending":  # submitted: carries the count of the attempts before
        total = status.total_seconds
    else:
        total = status.total_seconds or status.seconds
    return {"attempts": number, "total_seconds": round(total, 3)}


def begin(folder: RunFolder, started: float) -> Attempt:
    """The attempt starting now, from what the run folder says of the earlier ones."""
    before = carried(folder)
    job = folder.status().job if before else ""
    return Attempt(before.get("attempts", 0) + 1, before.get("total_seconds", 0.0), started, job)
