"""A page as a list of blocks, written as HTML (one self-contained file, no script) and as Markdown
from the same calls."""

from __future__ import annotations

import html
from pathlib import Path

NUMERIC = ' class="n"'

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:14px}
th,td{border:1px solid #ddd;padding:3px 9px;text-align:left}th{background:#f3f5f8}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.reason td{color:#555;font-size:13px}tr.reason td:first-child{padding-left:2em}
tr.total td{font-weight:600}
img{max-width:100%;border:1px solid #eee}
p.note{color:#555;font-size:13px}
details{margin:.3em 0}summary{cursor:pointer}
nav a{margin-right:1em}
"""


def anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


class Page:
    def __init__(self):
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level} id=\"{anchor(text)}\">{html.escape(text)}</h{level}>")
        self.md.append(f"{'#' * level} {text}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def image(self, name: str, alt: str) -> None:
        self.html.append(f"<p><img src=\"{html.escape(name)}\" alt=\"{html.escape(alt)}\"></p>")
        self.md.append(f"![{alt}]({name})\n")

    def table(self, header: list[str], rows: list[list], numeric_from: int = 1, classes: list[str] | None = None) -> None:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = []
        for i, row in enumerate(rows):
            cls = f" class=\"{classes[i]}\"" if classes and classes[i] else ""
            tds = "".join(f"<td{NUMERIC if j >= numeric_from else ''}>{html.escape(str(c))}</td>"
                          for j, c in enumerate(row))
            body.append(f"<tr{cls}>{tds}</tr>")
        self.html.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        self.md.append("| " + " | ".join(header) + " |\n|" + "|".join(
            "---" if j < numeric_from else "---:" for j in range(len(header))) + "|\n" +
            "".join("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |\n" for row in rows))

    def details(self, summary: str, lines: list[str]) -> None:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.html.append(f"<details><summary>{html.escape(summary)}</summary><ul>{items}</ul></details>")
        self.md.append(f"{summary}:\n\n" + "".join(f"- {line}\n" for line in lines))

    def headings(self) -> list[str]:
        return [line.split(" ", 1)[1].strip() for line in self.md if line.startswith("## ")]

    def write(self, out: Path, title: str, note_html: str) -> Path:
        """out/index.html (with a link to every section) and out/report.md."""
        nav = " ".join(f"<a href=\"#{anchor(h)}\">{html.escape(h)}</a>" for h in self.headings())
        document = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                    f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
                    f"<p class=\"note\">{note_html}</p>\n<nav>{nav}</nav>\n" + "\n".join(self.html) + "\n</body></html>\n")
        (out / "index.html").write_text(document)
        (out / "report.md").write_text(f"# {title}\n\n" + "\n".join(self.md))
        return out / "index.html"
