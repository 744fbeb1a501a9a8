"""The version of quests-hpc (one place; ``pyproject.toml`` states the same number).

Modules below the package facade import it from here, never from :mod:`quests_hpc`.
"""

__version__ = "0.1.0"
