"""Simulated device firmware: publishes exactly what real devices publish.

See firmware-sim/README.md. The command is `gateway-sim` (firmware_sim.cli).
"""
