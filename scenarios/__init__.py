"""Scenarios: the pilot grid generator, demand profiles, RESCO scenarios and user .sumocfg files."""

from scenarios.registry import ScenarioSpec, list_scenarios, resolve_scenario

__all__ = ["ScenarioSpec", "list_scenarios", "resolve_scenario"]
