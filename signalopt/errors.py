"""Exception tree for signalopt.

    SignaloptError
    ├── InputError (ValueError)
    │   ├── CountsError          malformed/unknown/out-of-order detector counts
    │   ├── NetworkError         broken or inconsistent network description
    │   └── ScenarioError        unknown scenario, missing or malformed .sumocfg
    ├── PlanInvariantError       a timing plan violates a safety invariant
    └── StoreError               the plan store cannot read or write
"""

from __future__ import annotations


def problem_list(head: str, problems: list[str], most: int = 20) -> str:
    """``head`` and the first ``most`` problems, then how many more there are: one message
    that names every kind of fault without drowning in a broken file's thousand copies."""
    msg = head + "; ".join(problems[:most])
    if len(problems) > most:
        msg += f"; ... and {len(problems) - most} more"
    return msg


class SignaloptError(Exception):
    """Base class of every error raised by signalopt."""


class InputError(SignaloptError, ValueError):
    """Input data was rejected; the message names the offending row/field."""


class CountsError(InputError):
    """Detector counts were malformed, unknown or out of order."""


class NetworkError(InputError):
    """A network description is broken or inconsistent."""


class ScenarioError(InputError):
    """A scenario name, path or configuration is unknown or broken."""


class PlanInvariantError(SignaloptError):
    """A timing plan violates an invariant; it must never be applied or published."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class StoreError(SignaloptError):
    """The plan store failed to read or write."""
