"""evalsuite: evaluation harness and static leaderboards for multilingual and low-resource LMs."""

__version__ = "0.1.0"

SCORING_VERSION = "1"
"""Version of how responses become scores. Bump it whenever scoring changes numbers: results with
another scoring version are not reused (``track``) and never share a samples file."""
