"""Results files: one self-describing HDF5 file per campaign.

Modules
-------
layout
    Names, shapes and attributes of the file (the structure plan).
writer
    :class:`~quests_hpc.results.writer.ResultsWriter`: collective writes with h5py's
    ``mpio`` driver when h5py has MPI, else slabs sent to rank 0 in bounded chunks.
reader
    Frames, summary tables, ``quests-hpc info`` text, file comparison.
restart
    Resume / refuse decisions, file identities and fingerprints.

The user-facing description of the layout is ``docs/results-layout.md``.
"""

from .layout import FORMAT, FORMAT_VERSION, FramePlan, StructurePlan, frame_name
from .reader import (
                     complete_frames,
                     describe,
                     diff_results,
                     frame_names,
                     load_descriptors,
                     open_results,
                     read_frame,
                     read_table,
)
from .restart import ExistingOutput, file_identity, inspect_output
from .writer import ResultsIOError, ResultsWriter, choose_backend, h5py_has_mpi

__all__ = [
    "FORMAT", "FORMAT_VERSION", "FramePlan", "StructurePlan", "frame_name",
    "complete_frames", "describe", "diff_results", "frame_names", "load_descriptors",
    "open_results", "read_frame", "read_table",
    "ExistingOutput", "file_identity", "inspect_output",
    "ResultsIOError", "ResultsWriter", "choose_backend", "h5py_has_mpi",
]
