"""``blockmon doctor``: blockmon's settings x processes set against what the servers
allow, read from the servers themselves (docs/doctor.md)."""
