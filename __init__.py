"""m1bench: benchmark and evaluation harness for MiniMax-M1-class models."""
__version__ = "0.1.0"
