"""Schedulers that keep or stop whole configurations (all their seeds), with their decisions apart
from the Tune plumbing; used by the space file (validation) and by the sweep (Tune)."""
