"""The connected van: its physics (`vehicle`), the roads it drives (`routes`), and the two
serial devices a telematics gateway reads in it, an ELM327 OBD-II adapter (`elm327`, answering
for the engine ECU in `ecu`) and a GPS receiver (`gps`, writing `nmea` sentences), each on a
pseudo-terminal (`pty`)."""
