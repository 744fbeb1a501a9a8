"""Make the frame builders of this folder importable (``import mpi_frames``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
