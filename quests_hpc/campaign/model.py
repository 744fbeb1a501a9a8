"""The validated campaign as typed, frozen objects (built once by :mod:`.schema`).

:func:`quests_hpc.campaign.schema.load_campaign` and ``validate`` check the YAML (every
problem listed) into the normalised dict of the schema table, then :func:`build` turns it
into a :class:`Campaign`; everything downstream reads attributes.  Sequences are tuples.

:meth:`Campaign.as_dict` gives the normalised dict back (lists, plain dicts) exactly as
validation produced it: the campaign fingerprint (:func:`quests_hpc.campaign.plan.
campaign_fingerprint`) is computed over it, so results written before these classes
existed are still recognised at resume.  :meth:`Campaign.frame_request` gives the
frame pipeline's typed request (:class:`~quests_hpc.parallel.frame_pipeline.FrameRequest`).
"""

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType


def _frozen(v):
    """Lists -> tuples, dicts -> read-only mappings (recursively)."""
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return MappingProxyType({k: _frozen(x) for k, x in v.items()})
    return v


def _plain(v):
    """Inverse of :func:`_frozen`; dataclasses become their field dicts."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, (dict, MappingProxyType)):
        return {k: _plain(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class Source:
    """An input or reference entry.

    ``path`` is one path (str) or a tuple of them, as given; ``frames`` the selection
    text; ``type_map`` a tuple of element symbols, a read-only ``{type: symbol}`` mapping
    or None.
    """

    name: str
    path: object
    frames: str = "all"
    format: str = "auto"
    ase_format: object = None
    type_map: object = None

    @property
    def paths(self):
        """The path entries as a tuple (files or glob patterns)."""
        return self.path if isinstance(self.path, tuple) else (self.path,)

    def type_map_plain(self):
        """``type_map`` as the readers take it: a dict, a list or None."""
        return _plain(self.type_map)


@dataclass(frozen=True)
class Input(Source):
    """An entry of ``inputs``."""


@dataclass(frozen=True)
class Reference(Source):
    """An entry of ``references``."""


@dataclass(frozen=True)
class Parameters:
    """Descriptor and kernel parameters (``parameters``)."""

    k: int = 32
    cutoff: float = 5.0
    bandwidth: tuple = (0.015,)
    threshold: float = 0.0
    precision: str = "float64"
    species: object = None  # tuple of symbols, "ignore" or None

    def species_tuple(self):
        """The species list (sorted) of a multi- or one-element run, else None."""
        return None if self.species in (None, "ignore") else tuple(self.species)

    def request(self, balance="uniform"):
        """The frame pipeline's request with these parameters (dH against the references;
        what else to compute is set with ``dataclasses.replace``)."""
        from ..parallel.frame_pipeline import FrameRequest

        return FrameRequest(k=int(self.k), cutoff=float(self.cutoff),
                            bandwidths=tuple(float(h) for h in self.bandwidth),
                            threshold=float(self.threshold), balance=balance,
                            precision=str(self.precision), species=self.species_tuple(),
                            ignore_species=self.species == "ignore")


@dataclass(frozen=True)
class LearningCurve:
    """``measures.learning_curve``."""

    dataset: str
    sizes: object = None
    num: int = 12
    min_size: int = 16
    repeats: int = 3
    seed: int = 0
    fit: bool = True
    drop: tuple = (3, 3)


@dataclass(frozen=True)
class Measures:
    """``measures``: what to compute and store."""

    delta_entropy: bool = False
    descriptors: bool = False
    positions: bool = False
    entropy: bool = False
    diversity: bool = False
    overlap: bool = False
    learning_curve: object = None  # LearningCurve or None

    def wants_overlap(self, n_references):
        """The overlap table needs per-frame dH against a reference."""
        return bool(self.overlap and self.delta_entropy and n_references)


@dataclass(frozen=True)
class Output:
    """``output``: where the results go."""

    path: str
    overwrite: bool = False
    backend: str = "auto"
    chunk_mb: float = 64.0
    fsync: bool = True


@dataclass(frozen=True)
class Compress:
    """An entry of ``compress``: one compression of a data set (paths absolute; ``report``
    and ``plot`` None for their defaults beside ``output``, ``"none"`` for no file)."""

    name: str
    dataset: object
    size: object
    output: str
    method: str = "msc"
    reference: object = None
    report: object = None
    plot: object = None
    seed: int = 0
    start: object = None

    @property
    def paths(self):
        """The dataset entries as a tuple (files or glob patterns)."""
        return self.dataset if isinstance(self.dataset, tuple) else (self.dataset,)


@dataclass(frozen=True)
class Run:
    """``run``: execution settings (may change between restarts)."""

    threads: object = None
    reference_layout: str = "auto"
    reference_memory_gb: object = None
    balance: str = "uniform"
    progress: str = "auto"


@dataclass(frozen=True)
class Campaign:
    """A validated campaign.

    ``analysis`` is the ``analysis`` section as :mod:`quests_hpc.analysis.schema`
    normalises it (its own object, passed on as is); ``compress`` a tuple of
    :class:`Compress`; ``output.path`` is None for a campaign without inputs (it only
    compresses, and writes no results file); ``source`` the YAML file (or a label
    for a campaign built by a command), ``base_dir`` what relative paths were resolved
    against, ``yaml`` the text stored with the results.
    """

    name: str
    description: str
    parameters: Parameters
    references: tuple
    inputs: tuple
    measures: Measures
    output: Output
    run: Run
    analysis: object = None
    compress: tuple = ()
    source: str = "campaign"
    base_dir: str = "."
    yaml: str = ""

    def as_dict(self):
        """The normalised campaign dict, as validation produced it."""
        return _plain(self)

    def frame_request(self):
        """The frame pipeline's request: the parameters and ``run.balance``."""
        return self.parameters.request(balance=self.run.balance)


def build(c):
    """A :class:`Campaign` from the normalised dict of a campaign without problems."""
    m = dict(c["measures"])
    lc = m.pop("learning_curve")
    return Campaign(
        name=c["name"], description=c["description"],
        parameters=parameters_from(c["parameters"]),
        references=tuple(source_from(Reference, r) for r in c["references"]),
        inputs=tuple(source_from(Input, r) for r in c["inputs"]),
        measures=Measures(**m, learning_curve=None if lc is None else LearningCurve(
            **{k: _frozen(v) for k, v in lc.items()})),
        output=Output(**c["output"]) if c["output"] else Output(path=None),
        run=Run(**c["run"]), analysis=c.get("analysis"),
        compress=tuple(Compress(**{k: _frozen(v) for k, v in e.items()})
                       for e in c.get("compress") or ()),
        source=c["source"], base_dir=c["base_dir"], yaml=c.get("yaml", ""))


def source_from(cls, d):
    """An :class:`Input` or :class:`Reference` from a normalised entry dict."""
    return cls(**{k: _frozen(v) for k, v in d.items()})


def parameters_from(d):
    """:class:`Parameters` from a normalised ``parameters`` dict."""
    return Parameters(**{k: _frozen(v) for k, v in d.items()})
