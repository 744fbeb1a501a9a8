"""Options shared by the data-set commands (not a command: no ``ORDER``)."""

from .. import cli
from ..campaign import fields as F


def descriptor_options(p):
    """``-k`` and ``--cutoff``, checked by the campaign schema's rules."""
    p.add_argument("-k", type=cli._checked(int, lambda v: F.int_field(1, F.MAX_K)(v, {})),
                   default=32, metavar="K",
                   help=f"neighbours per environment, 1 to {F.MAX_K} (default: 32)")
    p.add_argument("--cutoff", type=cli._checked(float, lambda v: F.cutoff_field(v, {})),
                   default=5.0, metavar="RC",
                   help=f"cutoff radius in A, 0 < RC <= {F.MAX_CUTOFF:g} (default: 5.0)")
    cli._species_options(p)


def species_arg(args):
    """``--species`` as the data-set functions take it: a list, ``"ignore"`` or None,
    every symbol checked (an unknown element is a usage error)."""
    from ..species import species_list

    sp = cli._species_value(args)
    return sp if sp in (None, "ignore") else list(species_list(sp, "--species"))
