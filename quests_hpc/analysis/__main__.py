"""``python -m quests_hpc.analysis``: a campaign with its ``analysis`` section, or pictures.

    mpiexec -n 2 python -m quests_hpc.analysis CAMPAIGN.yaml [--analysis-only] [--overwrite]
    python -m quests_hpc.analysis --plot RESULTS.h5 [--formats png pdf]

The first form runs the campaign (:func:`quests_hpc.campaign.runner.run_campaign`) and
then its ``analysis`` section (:func:`quests_hpc.analysis.campaign_hooks.run_analyses`):
what ``quests-hpc run`` does once the campaign schema knows the ``analysis`` section.
User errors print one line and exit with status 2.
"""

import argparse
import os
import sys

from ..errors import QuestsInputError


def _load(path):
    """The normalised campaign and its analysis section (validated separately if needed)."""
    import yaml

    from ..campaign import schema
    from .schema import check_analysis

    base = os.path.dirname(os.path.abspath(path))
    if "analysis" in schema.SCHEMA:
        c = schema.load_campaign(path)
        return c, check_analysis(c.get("analysis"), base)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        raw = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise QuestsInputError(f"{path}: cannot read the campaign: {exc}") from None
    analysis = raw.pop("analysis", None) if isinstance(raw, dict) else None
    c = schema.validate(raw, base, source=path)
    c["yaml"] = text
    return c, check_analysis(analysis, base)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m quests_hpc.analysis", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("target", help="campaign YAML, or a results file with --plot")
    p.add_argument("--plot", action="store_true", help="only draw the pictures of RESULTS.h5")
    p.add_argument("--formats", nargs="+", default=["png"], help="picture formats (png)")
    p.add_argument("--analysis-only", action="store_true",
                   help="skip the campaign run (its results file must exist)")
    p.add_argument("--overwrite", action="store_true", help="replace another campaign's output")
    args = p.parse_args(argv)
    from mpi4py import MPI

    from ..parallel.runtime import abort_on_error

    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a: None)
    err = None
    with abort_on_error(comm):  # unexpected failures end every rank, never a hang
        try:
            if args.plot:
                if comm.rank == 0:
                    from ..plotting import plot_results

                    for f in plot_results(args.target, formats=args.formats):
                        print(f"picture: {f}")
                return 0
            c, analysis = _load(args.target)
            if not args.analysis_only:
                from ..campaign.runner import run_campaign

                run_campaign(c, comm, overwrite=args.overwrite, out=say)
            from .campaign_hooks import run_analyses

            run_analyses(c["output"]["path"], analysis, comm, out=say)
        except QuestsInputError as exc:  # raised on every rank by the collective checks
            err = exc
    if err is not None:
        if comm.rank == 0:
            print(f"quests_hpc.analysis: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
