"""dreamvid: DeepDream zoom videos from a YAML schedule."""

__version__ = "0.1.0"
