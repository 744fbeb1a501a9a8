"""The HDF5 record of a monitored run: one row per monitored step (rank 0 writes).

Layout (``h5py.File(path)``): datasets ``step``, ``n_atoms``, ``n_novel``,
``novel_fraction``, ``max_dh``, ``max_dh_id`` (one value per monitored step), the novel
atoms' ids of every step concatenated in ``novel_ids`` with ``novel_offsets`` (step ``i``:
``novel_ids[novel_offsets[i]:novel_offsets[i + 1]]``, sorted), and attributes
``k``, ``cutoff``, ``bandwidth``, ``threshold``, ``every``, ``input``, ``reference``,
``stopped_at_step`` (-1: not stopped).  Written aside and published at the end, never
over an existing file (:func:`quests_hpc.results.new_file.write_new`).
"""

import numpy as np

from ..parallel import comm as pcomm


class MonitorRecord:
    """Rows of the monitored steps, gathered on rank 0 as the run goes."""

    def __init__(self, comm, path, attrs):
        self.comm, self.path, self.attrs = comm, path, dict(attrs)
        self.rows, self.novel = [], []

    def add(self, state, threshold):
        """Add one monitored step (collective: the novel ids meet on rank 0)."""
        dh, ids = state["dh"], state["ids"]
        novel = pcomm.gather_rows(np.ascontiguousarray(ids[dh > threshold]), self.comm, root=0)
        if self.comm.rank == 0:
            self.rows.append((state["step"], state["n_atoms"], state["n_novel"],
                              state["novel_fraction"], state["max_dh"], state["max_id"]))
            self.novel.append(np.sort(novel))

    def write(self, stopped):
        """Write the file (rank 0) and share any failure (collective)."""
        err = None
        if self.comm.rank == 0 and self.path is not None:
            try:
                from ..results.new_file import write_new

                write_new(self.path, lambda tmp: self._write(tmp, stopped))
            except Exception as exc:  # noqa: BLE001 (reaches every rank, then re-raised)
                err = exc
        pcomm.raise_if_any(err, self.comm, prefix=False, root=0)

    def _write(self, tmp, stopped):
        import h5py

        cols = list(zip(*self.rows)) if self.rows else [()] * 6
        names = ["step", "n_atoms", "n_novel", "novel_fraction", "max_dh", "max_dh_id"]
        types = [np.int64, np.int64, np.int64, np.float64, np.float64, np.int64]
        with h5py.File(tmp, "w") as f:
            for name, col, t in zip(names, cols, types):
                f[name] = np.asarray(col, dtype=t)
            lens = [len(n) for n in self.novel]
            f["novel_offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            f["novel_ids"] = (np.concatenate(self.novel) if self.novel
                              else np.empty(0)).astype(np.int64)
            for k, v in self.attrs.items():
                f.attrs[k] = v
            f.attrs["stopped_at_step"] = -1 if stopped is None else int(stopped)
