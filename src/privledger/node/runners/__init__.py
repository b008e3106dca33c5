"""Protocol runners: each module turns a :class:`Run` into this party's output and declares
the components (:mod:`privledger.node.components`) that run its protocols."""

from privledger.node.runners.base import InputForm, Run, RunOutput, TaskRefused, Withheld

__all__ = ["InputForm", "Run", "RunOutput", "TaskRefused", "Withheld"]
