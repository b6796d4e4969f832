"""Reliability suite: the gateway under crashes, outages, full disks and damaged files."""
