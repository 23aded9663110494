"""Static HTML leaderboards: ``view`` computes everything, ``render`` only formats."""
