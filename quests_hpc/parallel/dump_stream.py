"""A compressed dump's atom lines dealt to the ranks (collective).

Decompression is serial: rank 0 decompresses the frame's atom block and deals chunks of
whole lines round-robin to all ranks (itself included), which parse them with a
:class:`quests_hpc.io.atoms_block.RowParser`.  No rank holds more than one chunk of text
(a chunk grows only to hold one line longer than it).
"""

import numpy as np
from mpi4py import MPI

from ..errors import QuestsInputError
from ..io.atoms_block import RowParser
from . import comm as pcomm

__all__ = ["stream_parse"]

_TAG = 7301


def stream_parse(src, d0, d1, plan, rows, natoms, comm, chunk_bytes):
    """Compressed file, several ranks: rank 0 decompresses and deals chunks round-robin.

    Returns ``(lines, error)`` like :func:`quests_hpc.io.atoms_block.parse_range`, line numbers
    counted from ``d0`` (absolute within the atom block).
    """
    rank, size = pcomm.rank_size(comm)
    parser = RowParser(plan, rows, natoms, growable=True)
    if rank != 0:
        buf = np.empty(0, dtype=np.uint8)
        status = MPI.Status()
        while True:
            line0 = comm.recv(source=0, tag=_TAG)
            if line0 is None:
                break
            comm.Probe(source=0, tag=_TAG + 1, status=status)
            nb = status.Get_count(MPI.BYTE)
            if len(buf) < nb:
                buf = np.empty(nb, dtype=np.uint8)
            comm.Recv([buf, nb, MPI.BYTE], source=0, tag=_TAG + 1)
            parser.feed(buf, 0, nb, True, line0=line0)
        return parser.lines, parser.error
    err = None
    buf = np.empty(max(chunk_bytes, 1 << 12), dtype=np.uint8)
    carry, off, line, k = 0, d0, 0, 0
    try:
        while True:
            want = min(len(buf) - carry, d1 - off)
            got = src.readinto_at(off, buf[carry:carry + want]) if want > 0 else 0
            off += got
            end = carry + got
            final = off >= d1 or got < want
            cut = end
            if not final:
                nl = np.flatnonzero(buf[:end] == 10)
                if len(nl) == 0:
                    nb = np.empty(2 * len(buf), dtype=np.uint8)
                    nb[:end] = buf[:end]
                    buf, carry = nb, end
                    continue
                cut = int(nl[-1]) + 1
            if cut > 0:
                target = k % size
                k += 1
                if target == 0:
                    parser.feed(buf, 0, cut, True, line0=line)
                else:
                    comm.send(line, dest=target, tag=_TAG)
                    comm.Send([buf, cut, MPI.BYTE], dest=target, tag=_TAG + 1)
                line += int(np.count_nonzero(buf[:cut] == 10))
            if final:
                break
            rem = end - cut
            buf[:rem] = buf[cut:end]
            carry = rem
    except QuestsInputError as exc:
        err = exc
    for r in range(1, size):
        comm.send(None, dest=r, tag=_TAG)
    if err is not None:
        return parser.lines, (None, str(err))
    return parser.lines, parser.error
