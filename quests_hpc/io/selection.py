"""Frame selections: ``all``, ``-1``, ``0:100:5``, ``3,5,8``, by index or by timestep.

Grammar of a selection string (whitespace ignored)::

    selection := ["t=" | "timestep="] item ("," item)*   |  "all"  |  ""
    item      := INT  |  [INT] ":" [INT] [":" [INT]]

* **By index** (default): Python semantics.  ``-1`` is the last frame, ``0:100:5`` a
  slice (clipped to the frames present, like a Python slice); a single index out of
  range is an error.
* **By timestep** (``by="timestep"``, or the prefix ``t=`` / ``timestep=``): ``1000``
  selects the frame(s) with timestep 1000 (an error if there is none); ``a:b:c``
  selects the frames whose timestep ``t`` satisfies ``a <= t <= b`` -- *both ends
  included* -- and ``(t - a) % c == 0`` (``t % c == 0`` when ``a`` is omitted).
  Missing ``a`` / ``b`` mean no lower / upper bound.

Items are concatenated in the order given (duplicates are kept).  Python objects work
too: an int, a ``slice``, a sequence of ints, or None (all frames).
"""

import numpy as np

from ..errors import QuestsInputError

_PREFIXES = ("timestep=", "t=")


def _int(text, spec):
    try:
        return int(text)
    except ValueError:
        raise QuestsInputError(f"bad frame selection {spec!r}: {text!r} is not an integer") from None


def parse_selection(spec):
    """Split a selection into ``(by, items)``; items are ints and slices.

    Parameters
    ----------
    spec : str, int, slice, sequence of int or None

    Returns
    -------
    by : {"index", "timestep", None}
        Set by a ``t=`` / ``timestep=`` prefix, else None.
    items : list of int or slice
    """
    if spec is None:
        return None, [slice(None)]
    if isinstance(spec, (bool, np.bool_)):
        raise QuestsInputError(f"bad frame selection {spec!r}")
    if isinstance(spec, (int, np.integer)):
        return None, [int(spec)]
    if isinstance(spec, slice):
        return None, [spec]
    if not isinstance(spec, str):
        try:
            return None, [int(_int(v, spec)) if not isinstance(v, slice) else v for v in spec]
        except TypeError:
            raise QuestsInputError(f"bad frame selection {spec!r}") from None
    text = "".join(spec.split())
    by = None
    for p in _PREFIXES:
        if text.lower().startswith(p):
            by, text = "timestep", text[len(p):]
            break
    if text.lower() in ("all", "", ":"):
        return by, [slice(None)]
    items = []
    for part in text.split(","):
        if not part:
            raise QuestsInputError(f"bad frame selection {spec!r}: empty item")
        if ":" in part:
            fields = part.split(":")
            if len(fields) > 3:
                raise QuestsInputError(f"bad frame selection {spec!r}: {part!r} has too many ':'")
            vals = [None if f == "" else _int(f, spec) for f in fields]
            vals += [None] * (3 - len(vals))
            if vals[2] == 0:
                raise QuestsInputError(f"bad frame selection {spec!r}: step 0")
            items.append(slice(*vals))
        else:
            items.append(_int(part, spec))
    return by, items


def select_frames(spec, n, timesteps=None, by="index", where=""):
    """Frame numbers selected by ``spec`` among ``n`` frames.

    Parameters
    ----------
    spec : str, int, slice, sequence of int or None
        See the module docstring.
    n : int
        Number of frames available.
    timesteps : array_like of int, optional
        Timestep of every frame (needed for ``by="timestep"``).
    by : {"index", "timestep"}
        How to read the numbers (a ``t=`` prefix in ``spec`` overrides it).
    where : str
        File name for error messages.

    Returns
    -------
    ndarray of int64
        Frame numbers (0-based), in selection order.
    """
    pby, items = parse_selection(spec)
    by = pby or by
    if by not in ("index", "timestep"):
        raise QuestsInputError(f"frame selection 'by' must be 'index' or 'timestep', got {by!r}")
    loc = f"{where}: " if where else ""
    out = []
    if by == "index":
        for it in items:
            if isinstance(it, slice):
                out.extend(range(n)[it])
            else:
                if not -n <= it < n:
                    raise QuestsInputError(f"{loc}frame index {it} out of range ({n} frames)")
                out.append(it % n)
        return np.asarray(out, dtype=np.int64)
    if timesteps is None:
        raise QuestsInputError("selection by timestep needs the frames' timesteps")
    ts = np.asarray(timesteps, dtype=np.int64)[:n]
    for it in items:
        if isinstance(it, slice):
            a, b, c = it.start, it.stop, it.step
            if c is not None and c < 0:
                raise QuestsInputError(f"{loc}a timestep range cannot have a negative step ({c})")
            mask = np.ones(n, dtype=bool)
            if a is not None:
                mask &= ts >= a
            if b is not None:
                mask &= ts <= b
            if c is not None:
                mask &= ((ts - (a if a is not None else 0)) % c) == 0
            out.extend(np.nonzero(mask)[0].tolist())
        else:
            hits = np.nonzero(ts == it)[0]
            if len(hits) == 0:
                rng = f"{int(ts.min())}..{int(ts.max())}" if n else "none"
                raise QuestsInputError(f"{loc}no frame with timestep {it} (timesteps {rng}, "
                                       f"{n} frames)")
            out.extend(hits.tolist())
    return np.asarray(out, dtype=np.int64)


def is_single(spec):
    """True when ``spec`` names one frame (an int, or a string holding one integer)."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, (bool, np.bool_)):
        return True
    if isinstance(spec, str):
        _, items = parse_selection(spec)
        return len(items) == 1 and not isinstance(items[0], slice)
    return False
