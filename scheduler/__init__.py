"""Timed work: deals that open or close (scheduler/deals.py). The scheduling issue runs these
functions periodically; they are safe to run twice at once and after a restart."""
