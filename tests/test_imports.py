"""Every module imports on its own, first (catches circular imports that depend on order)."""

import subprocess
import sys

SCRIPT = r"""
import importlib, pkgutil, sys
import quests_hpc
names = sorted(m.name for m in pkgutil.walk_packages(quests_hpc.__path__, "quests_hpc.")
               if not m.name.endswith("__main__"))
failures = []
for name in names:
    for mod in [m for m in sys.modules if m == "quests_hpc" or m.startswith("quests_hpc.")]:
        del sys.modules[mod]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names), "modules")
print("\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_every_module_imports_first():
    # In a child process: re-importing the package here would leave the other tests
    # holding classes (e.g. QuestsInputError) from an older copy of the modules.
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(r.stdout.split()[0]) > 30


def test_the_version_lives_in_one_module():
    import pathlib
    import re

    import quests_hpc
    from quests_hpc._version import __version__

    toml = (pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert quests_hpc.__version__ is __version__
    assert re.search(r'^version = "([^"]+)"', toml, re.M).group(1) == __version__
