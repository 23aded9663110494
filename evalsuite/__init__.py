"""evalsuite: evaluation harness and static leaderboards for multilingual and low-resource LMs."""

__version__ = "0.1.0"
