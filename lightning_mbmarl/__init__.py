"""Model-based multi-agent RL with PyTorch Lightning."""

__version__ = "0.1.0"
