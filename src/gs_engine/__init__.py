"""GS-Engine: run AI services on edge nodes with very low latency."""

__version__ = "0.1.0"
