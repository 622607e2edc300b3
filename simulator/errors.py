"""The simulator's exceptions, under one root.

SimulatorError
├── ProfileError      a charging profile the simulated charger refuses (-> Rejected)
└── ConfigError       bad fleet or station settings (also a ValueError)
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of every error the simulator raises on purpose."""


class ProfileError(SimulatorError):
    """A charging profile that cannot be installed; the charger answers Rejected."""


class ConfigError(SimulatorError, ValueError):
    """Fleet or station settings that cannot work; fix the arguments."""
