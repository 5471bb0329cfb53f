"""The Confiance platform's tooling for job repos and the shared CI."""

__version__ = "0.3.0"
