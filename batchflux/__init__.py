"""batchflux: run thousands of FLUX.1 Kontext [max] edits through Segmind's async v2 queue.

No job lost, no job paid twice, the account's rate quota used to the full, and a clear
answer for every failure. See README.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
