"""Shared test set-up: make tests/ importable (reference_impl) from any test folder."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
