"""Stand-ins for cloud APIs that cannot run here (only Datadog), faithful to their documentation."""
