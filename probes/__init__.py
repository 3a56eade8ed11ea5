"""What tests and benchmarks use to look at broadcaster from outside, as people would.

- :mod:`probes.speech`: a speaker's voice, synthesized by Debian's flite;
- :mod:`probes.viewer`: a LiveKit participant that watches and listens, handing every
  decoded frame to its subclass (tests and benchmarks record what they need).

Shared by ``tests/`` and ``bench/`` (neither imports the other's helpers); not part of
the broadcaster package.
"""
