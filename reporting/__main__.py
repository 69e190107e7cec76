"""python -m reporting {report,inspect,funnel}"""

from __future__ import annotations

import argparse
import sys

from blending.stage_folder import InputError
from blending.user_errors import reports_bad_input

DESCRIPTION = """Reports over what the services wrote (files only: no Spark, no torch).

  report   index.html + report.md with PNG plots from what a run wrote: every stage's funnel, quality
           scores, duplicate clusters, the blend's Table-1 summary, training, evaluation
  inspect  a curation run's funnel and, per stage and drop reason, a sample of the dropped documents;
           --html adds the funnel plot and score histograms on one page
  funnel   the funnel table of stage folders given in pipeline order, and its plot (--png)
"""


def _report(args) -> int:
    from reporting.report import main

    return main(args.root, args.out)


def _inspect(args) -> int:
    from reporting.inspect import main

    return main(args.out_dir, args.stage, args.reason, args.sample, args.lines, args.html, args.pages)


def _funnel(args) -> int:
    from reporting.funnel import main

    return main(args.stages, args.png)


@reports_bad_input("python -m reporting", InputError)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reporting", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{report,inspect,funnel}")

    p = commands.add_parser("report", help="HTML + Markdown report of a run's stages, blend and training",
                            description="Write index.html (opens from disk) and report.md with PNG plots "
                                        "from what the runs under the ROOT folders wrote: stage folders (stats.json), the "
                                        "blend (manifest.json), training runs (metrics.csv, valid.csv, "
                                        "summary.json) and eval.json files. Stages are ordered by their lineage.")
    p.add_argument("root", nargs="+", help="folders holding the run's outputs, e.g. out/demo out/documents")
    p.add_argument("--out", metavar="DIR", help="report folder, or a URI (s3://...) it is uploaded to once written "
                                                "(default: the first ROOT's report/)")
    p.set_defaults(run=_report)

    from reporting import inspect as inspection  # its docstring is the command's help; imports nothing heavy

    p = commands.add_parser("inspect", help="a curation run's funnel and samples of its dropped documents",
                            description=inspection.__doc__.split("\n\n")[0],
                            epilog=inspection.__doc__.split("\n\n", 1)[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", metavar="OUT_DIR", help="a run folder (python -m dataprep run --out) or a stage folder")
    p.add_argument("--stage", help="only this stage")
    p.add_argument("--reason", help="only this drop reason")
    p.add_argument("--sample", type=int, default=5, metavar="N", help="dropped documents shown per reason (default 5)")
    p.add_argument("--lines", type=int, default=2, help="first lines of each text (default 2)")
    p.add_argument("--html", metavar="FILE", help="also write one HTML page with funnel, samples and score histograms")
    p.add_argument("--pages", action="store_true", help="re-read each sampled WARC record without text from its "
                                                        "file (local, s3://, https://) and show its page")
    p.set_defaults(run=_inspect)

    p = commands.add_parser("funnel", help="the funnel table of stage folders, and its plot",
                            description="Print the funnel of the stage folders (their stats.json) in the order "
                                        "given, and with --png draw it: per stage its rows kept and dropped by "
                                        "reason, and the text it wrote. A run's folder stands for its stage "
                                        "folders, in pipeline order.")
    p.add_argument("stages", nargs="+", metavar="STAGE_FOLDER", help="stage output folders, in pipeline order, "
                                                                     "or a run's folder")
    p.add_argument("--png", metavar="FILE", help="write the funnel plot here")
    p.set_defaults(run=_funnel)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
