"""Real programs (Mosquitto, VictoriaMetrics) run by the test fixtures on free loopback ports."""
