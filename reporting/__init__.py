"""Reports over what the services wrote: the run report, the inspection of a curation run, the funnel.

    python -m reporting report out/demo out/documents --out out/demo/report   # index.html, report.md, PNGs
    python -m reporting inspect out/documents --html report.html                # dropped documents per reason
    python -m reporting funnel out/documents/extract out/documents/cleanup --png funnel.png

It only reads files (stage folders, manifests, training runs, eval.json) and imports only blending's
Spark-free readers of them (blending.stages, blending.stage_folder, blending.stage_stats): no Spark, no
torch, neither service, so it runs in either image.
"""
