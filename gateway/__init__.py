"""Edge telemetry gateway: sources -> decode -> store -> forward, with monitors on the side."""

__version__ = "0.1.0"
