"""Make the helpers of this folder importable (``import cluster_reference``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
