"""SUMO side of signalopt: backends, virtual detectors, controllers, ground truth and metrics.

Only this package talks to SUMO. It imports ``signalopt``; ``signalopt`` never imports it.
"""
