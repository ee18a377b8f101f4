"""Readers and writers at the edge of the engine: SUMO networks, counts tables, plan exports."""
