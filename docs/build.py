"""Build the documentation site from the notebooks: nbs/ -> _proc/ -> _proc/pages/ (Markdown) -> _docs/ (MkDocs).

1. nbdev's own notebook processors (those `nbdev_proc_nbs` applies) turn each notebook of nbs/ into `_proc/NAME.ipynb`:
   `#| export`/`#| hide` cells dropped, frontmatter collected, a `show_doc` cell added after each exported definition
   and rendered, names in backticks linked to their API entry. Not the `nbdev_proc_nbs` command itself: without
   Quarto it first runs `nbdev_install` (a Quarto download with sudo, then `pip install -e .[dev]` with whatever pip
   is first on PATH), and it rewrites nbs/_quarto.yml, nbs/sidebar.yml and archdal/_modidx.py. Here nothing outside
   _proc/ is written and no notebook code runs: nbdev executes every exported cell and every cell holding an import
   (tests included) in one process per worker, which re-registers models already registered by the previous
   notebook and runs 04b_pdarts' search; here each `show_doc(...)` cell alone is evaluated against the installed
   module named by the notebook's `#| default_exp`.
   The experiment (and report) page uses the executed copy in reports/ when there is one, so it shows its outputs.
2. Each processed notebook becomes one Markdown page: Quarto cell options honoured (`echo`, `output`, `include`),
   outputs written as Markdown, PNG files, HTML tables or text; live-widget outputs (progress bars) dropped;
   LaTeX turned into MathML (no MathJax, which would come from a CDN); nbdev's links to the hosted docs made relative.
3. MkDocs with the Material theme renders the pages into _docs/ (strict: a broken internal link fails the build);
   then every page is checked to load no script or stylesheet from the internet.

Usage: python docs/build.py   (or `make docs`). Only changed notebooks are processed again.
"""
from __future__ import annotations

import base64
import configparser
import html
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PROC = REPO / "_proc"
PAGES = PROC / "pages"
SITE = REPO / "_docs"
EXECUTED = {"experiment": REPO / "reports" / "experiment.ipynb", "report": REPO / "reports" / "report.ipynb"}
DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "settings.ini")
    return cfg["DEFAULT"]


def sources() -> dict[str, Path]:
    "Notebook stem -> file to render, in reading order (nbs/ sorted by name); executed copies replace their source."
    nbs = REPO / settings().get("nbs_path", "nbs")
    found = {p.stem: p for p in sorted(nbs.glob("*.ipynb")) if not p.name.startswith(("_", "."))}
    for stem, executed in EXECUTED.items():
        if stem in found and executed.exists(): found[stem] = executed
    return found


def default_exp(path: Path) -> str | None:
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code": continue
        m = re.search(r"^\s*#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M)
        if m: return m.group(1)
    return None


# ---------------------------------------------------------------------------------------------------------------------
# 1. nbdev processing
def _show_doc_processor():
    "nbdev's `exec_show_docs`, evaluating only `show_doc` cells, in the namespace of the notebook's module."
    from execnb.shell import CaptureShell
    from nbdev.process import Processor
    from nbdev.processors import _show_docs

    class show_docs_from_module(Processor):
        def begin(self):
            self.k = CaptureShell()
            self.k.run_cell("from nbdev.showdoc import show_doc")
            lib = settings().get("lib_name", "archdal")
            names = [lib] + [f"{lib}.{p.stem}" for p in sorted((REPO / lib).glob("*.py")) if not p.stem.startswith("_")]
            module = getattr(self.nb, "default_exp_", None)
            if module: names.append(f"{lib}.{module}")  # last, so the notebook's own module wins
            for name in names: self.k.user_ns.update(vars(importlib.import_module(name)))
            _fix_source_lines()

        def __call__(self, cell):
            if not getattr(self.nb, "has_docs_", None) or cell.cell_type != "code" or not cell.source: return
            if cell.directives_.keys() & {"export", "exports", "exporti", "hide"}: return
            try: trees = cell.parsed_()
            except SyntaxError: return
            if not trees or not _show_docs(trees) or len(_show_docs(trees)) != len(trees): return
            self.k.cell(cell)
            if self.k.exc:
                raise RuntimeError(f"show_doc failed in {self.nb.path_}, cell {cell.idx_}:\n{cell.source}") from self.k.exc

    return show_docs_from_module


def _fix_source_lines():
    """nbdev finds a definition's line for the [source] link by its short name; documented from the installed module
    the name is qualified (archdal.data.Pool.add), so look it up without the module prefix."""
    import nbdev.doclinks as dl
    if getattr(dl._lineno, "qualified_", False): return
    plain = dl._lineno

    def _lineno(sym, fname):
        mod = str(fname or "").removesuffix(".py").replace("/", ".") + "."
        return plain(sym.removeprefix(mod) if sym.startswith(mod) else sym, fname)
    _lineno.qualified_ = True
    dl._lineno = _lineno


def process(src: Path, dst: Path) -> None:
    "Run nbdev's documentation processors over one notebook (as `nbdev_proc_nbs` does) and write `dst`."
    from execnb.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults, exec_show_docs

    nb = read_nb(src)
    nb.default_exp_ = default_exp(src)
    shower = _show_doc_processor()
    procs = [shower if p is exec_show_docs else p for p in FilterDefaults().procs()]
    from nbdev.process import NBProcessor
    before = os.environ.get("IN_TEST")
    os.environ["IN_TEST"] = "1"  # what nbdev sets while processing
    try: NBProcessor(nb=nb, procs=procs).process()
    finally:
        if before is None: del os.environ["IN_TEST"]
        else: os.environ["IN_TEST"] = before
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dst)


def process_all(found: dict[str, Path]) -> dict[str, Path]:
    "Process the notebooks whose source, the library or this script changed since the last build."
    lib = REPO / settings().get("lib_name", "archdal")
    stamp = max([p.stat().st_mtime for p in lib.glob("*.py")] + [Path(__file__).stat().st_mtime,
                                                                  (REPO / "settings.ini").stat().st_mtime])
    manifest = PROC / "sources.json"  # which file each page was processed from (reports/ or nbs/)
    before = json.loads(manifest.read_text()) if manifest.exists() else {}
    done = {}
    for stem, src in found.items():
        dst = PROC / f"{stem}.ipynb"
        fresh = dst.exists() and dst.stat().st_mtime >= max(stamp, src.stat().st_mtime) and before.get(stem) == str(src)
        if not fresh: process(src, dst)
        done[stem] = dst
    for old in PROC.glob("*.ipynb"):
        if old.stem not in found: old.unlink()
    manifest.write_text(json.dumps({stem: str(src) for stem, src in found.items()}, indent=1))
    return done


# ---------------------------------------------------------------------------------------------------------------------
# 2. processed notebook -> Markdown page
def _text(v) -> str: return "".join(v) if isinstance(v, list) else (v or "")


def _fence(body: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in body: ticks += "`"
    return f"{ticks}{lang}\n{body.rstrip()}\n{ticks}"


def _math(md: str) -> str:
    "LaTeX between $...$ or $$...$$ -> MathML, outside code spans and fences."
    from latex2mathml.converter import convert

    def one(m):
        block, tex = m.group(1) is not None, (m.group(1) or m.group(2)).strip()
        try: out = convert(tex, display="block" if block else "inline")
        except Exception: return m.group(0)  # leave what it cannot read as typed
        return f'<span class="math-{"block" if block else "inline"}">{out}</span>'

    parts = re.split(r"(```.*?```|`[^`\n]*`)", md, flags=re.S)
    pattern = re.compile(r"\$\$(.+?)\$\$|(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])", re.S)
    return "".join(p if i % 2 else pattern.sub(one, p) for i, p in enumerate(parts))


class Linker:
    "nbdev links API names to the hosted docs (doc_host + doc_baseurl); point them at the pages of this site."

    def __init__(self, anchors: dict[str, set[str]]):
        cfg = settings()
        base = cfg.get("doc_host", "").rstrip("/") + "/" + cfg.get("doc_baseurl", "").strip("/")
        self.anchors = anchors
        self.pattern = re.compile(re.escape(base.rstrip("/")) + r"/([\w.-]+)\.html(?:#([\w.\-]+))?")

    def __call__(self, text: str) -> str:
        def one(m):
            page, anchor = m.group(1), m.group(2)
            if page not in self.anchors: return m.group(0)
            while anchor and anchor not in self.anchors[page]:  # Pool.label without its own entry -> Pool
                anchor = anchor.rpartition(".")[0] or None
            return f"{page}.md" + (f"#{anchor}" if anchor else "")
        return self.pattern.sub(one, text)


SD_HEADING = re.compile(r"^(#{2,4}) +(\S+?) *$", re.M)
AUTOGEN = re.compile(r"<!-- WARNING: THIS FILE WAS AUTOGENERATED!.*?-->\s*")
SD_FENCE = re.compile(r"(```python)\n\s*\n(.*?)\n\s*\n(```)", re.S)
SD_SOURCE = re.compile(r"\[source\]\(([^)]+)\)\{[^}]*\}")


def _show_doc_md(md: str) -> str:
    "An API entry rendered by show_doc: explicit anchors as nbdev names them, the source link styled without Quarto."
    md = SD_FENCE.sub(lambda m: f"{m.group(1)}\n{m.group(2).strip(chr(10))}\n{m.group(3)}", md)
    md = SD_SOURCE.sub(r'[source](\1){ .sd-source target="_blank" rel="noopener" }', md)
    return SD_HEADING.sub(lambda m: f"{m.group(1)} {m.group(2)} {{ #{m.group(2).lower()} .sd-name }}", md)


def _directives(source: str) -> tuple[dict[str, str], str]:
    opts, lines = {}, source.splitlines()
    while lines and (m := DIRECTIVE.match(lines[0])):
        opts[m.group(1)] = m.group(2).lower()
        lines.pop(0)
    return opts, "\n".join(lines).strip("\n")


MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


class Page:
    def __init__(self, stem: str, nb_path: Path, source: Path):
        self.stem, self.nb, self.source = stem, json.loads(nb_path.read_text(encoding="utf-8")), source
        self.fm, self.cells = {}, []
        for cell in self.nb["cells"]:
            if cell["cell_type"] == "raw" and _text(cell["source"]).strip().startswith("---"):
                self.fm.update(yaml.safe_load(_text(cell["source"]).strip().strip("-")) or {})
            else: self.cells.append(cell)
        self.name = Path(self.fm.get("output-file", f"{stem}.html")).stem
        self.title = str(self.fm.get("title", self.name))
        self.module = default_exp(source)
        self.n_images = 0

    def anchors(self) -> set[str]:
        found = set()
        for cell in self.cells:
            for out in cell.get("outputs", []):
                found |= {m.group(2).lower() for m in SD_HEADING.finditer(_text(out.get("data", {}).get("text/markdown")))}
        return found

    def image(self, data: str, ext: str) -> str:
        self.n_images += 1
        rel = f"{self.name}_files/output_{self.n_images}.{ext}"
        (PAGES / rel).parent.mkdir(parents=True, exist_ok=True)
        (PAGES / rel).write_bytes(base64.b64decode(data) if ext == "png" else data.encode())
        return rel

    def local_images(self, md: str) -> str:
        "Copy the repository images a markdown cell shows (`![alt](../reports/x.png)`) next to the page, links rewritten."
        def copy(match):
            target = (self.source.parent / match.group(2)).resolve()
            if match.group(2).startswith(("http:", "https:", "data:")) or not target.is_file(): return match.group(0)
            rel = f"{self.name}_files/{target.name}"
            (PAGES / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(target, PAGES / rel)
            return f"![{match.group(1)}]({rel})"
        return MD_IMAGE.sub(copy, md)

    def output(self, out: dict, link) -> str | None:
        kind = out.get("output_type")
        if kind == "stream": return None  # merged by the caller
        if kind == "error":
            return _fence(ANSI.sub("", "\n".join(out.get("traceback", []))), "text")
        data = out.get("data", {})
        if "application/vnd.jupyter.widget-view+json" in data: return None  # a live widget: nothing to show statically
        if "text/markdown" in data:
            md = link(_text(data["text/markdown"]))
            return _math(_show_doc_md(md) if SD_HEADING.search(md) else md)
        if "image/png" in data:
            alt = _text(data.get("text/plain", "")).strip()
            if not alt or alt.startswith("<"): alt = f"{self.title}, figure {self.n_images + 1}"  # a repr says nothing
            alt = html.escape(alt, quote=True).replace("[", "(").replace("]", ")")
            size = out.get("metadata", {}).get("image/png", {})  # IPython's Image(width=...)
            attrs = "".join(f' {k}="{int(size[k])}"' for k in ("width", "height") if str(size.get(k, "")).isdigit())
            return f'![{alt}]({self.image(_text(data["image/png"]).strip(), "png")}){{ .nb-image{attrs} }}'
        if "image/svg+xml" in data: return f'![output]({self.image(_text(data["image/svg+xml"]), "svg")})'
        if "text/html" in data:
            body = "\n".join(line for line in _text(data["text/html"]).splitlines() if line.strip())
            body = re.sub(r"<script.*?</script>", "", body, flags=re.S | re.I)
            return f'<div class="nb-output nb-html" markdown="0">\n{body}\n</div>'
        if "text/plain" in data: return _fence(_text(data["text/plain"]), "text")
        return None

    def markdown(self, link) -> str:
        out = [f"# {self.title}"]
        desc = self.fm.get("description")
        first_md = next((AUTOGEN.sub("", _text(c["source"])) for c in self.cells
                         if c["cell_type"] == "markdown" and AUTOGEN.sub("", _text(c["source"])).strip()), "")
        if first_md.lstrip().startswith("# "):
            out = []  # the notebook opens with its own title: keep it as the page heading
        if desc: out.append(f"{desc}\n{{ .nb-lead }}")
        if self.module: out.append(f'<p class="nb-module">Module <code>{settings().get("lib_name")}.{self.module}</code></p>')
        for cell in self.cells:
            src = _text(cell.get("source"))
            if cell["cell_type"] == "markdown":
                src = AUTOGEN.sub("", src)
                if src.strip(): out.append(_math(link(self.local_images(src))))
                continue
            if cell["cell_type"] != "code": continue
            opts, code = _directives(src)
            tags = set(cell.get("metadata", {}).get("tags", []))
            if opts.get("include") == "false" or "remove-cell" in tags or "remove_cell" in tags: continue
            if code.strip() and opts.get("echo") != "false" and not tags & {"remove-input", "remove_input"}:
                if tags & {"parameters", "injected-parameters"}:
                    label = "Parameters" if "parameters" in tags else "Parameters given to this run"
                    out.append(f'<p class="nb-cell-label">{label}</p>')
                out.append(_fence(code, "python"))
            if opts.get("output") == "false" or tags & {"remove-output", "remove_output"}: continue
            stream: list[str] = []
            outputs = [o for o in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
            for o in outputs + [None]:
                if o is not None and o.get("output_type") == "stream":
                    stream.append(ANSI.sub("", _text(o.get("text"))))
                    continue
                if stream and "".join(stream).strip():
                    out.append('<div class="nb-stream" markdown>\n\n' + _fence("".join(stream), "text") + "\n\n</div>")
                stream = []
                if o is not None and (rendered := self.output(o, link)): out.append(rendered)
        return "\n\n".join(out) + "\n"


def write_pages(processed: dict[str, Path], found: dict[str, Path]) -> list[Page]:
    if PAGES.exists(): shutil.rmtree(PAGES)
    PAGES.mkdir(parents=True)
    pages = [Page(stem, path, found[stem]) for stem, path in processed.items()]
    link = Linker({p.name: p.anchors() for p in pages})
    for page in pages: (PAGES / f"{page.name}.md").write_text(page.markdown(link), encoding="utf-8")
    assets = PAGES / "assets"
    assets.mkdir()
    shutil.copy(DOCS / "extra.css", assets / "extra.css")
    return pages


# ---------------------------------------------------------------------------------------------------------------------
# 3. MkDocs
def nav(pages: list[Page]) -> list:
    home = [p for p in pages if p.name == "index"]
    modules = [p for p in pages if p.module]
    others = [p for p in pages if p not in home and p not in modules]
    entries = [{"Home": "index.md"}] if home else []
    if modules: entries.append({"Library": [{f"{p.title}": f"{p.name}.md"} for p in modules]})
    if others: entries.append({"Notebooks": [{p.title: f"{p.name}.md"} for p in others]})
    return entries


EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)


def offline_problems(site: Path) -> list[str]:
    "Pages or stylesheets that would fetch anything from the internet."
    problems = []
    for f in sorted(site.rglob("*.html")):
        for m in EXTERNAL.finditer(f.read_text(encoding="utf-8")):
            problems.append(f"{f.relative_to(site)}: {m.group(0)}")
    for f in sorted(site.rglob("*.css")):
        if re.search(r"@import\s+(url\()?[\"']?(https?:)?//", f.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{f.relative_to(site)}: @import from the internet")
    return problems


def build() -> Path:
    t0 = time.perf_counter()
    os.chdir(REPO)
    found = sources()
    pages = write_pages(process_all(found), found)
    config = {"INHERIT": "../docs/mkdocs.yml", "docs_dir": "pages", "site_dir": "../_docs", "nav": nav(pages)}
    (PROC / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(PROC / "mkdocs.yml")]
    run = subprocess.run(mkdocs, cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    if run.returncode:  # strict: a warning (a link to a missing page or anchor) fails the build
        raise SystemExit(f"mkdocs build failed:\n{run.stdout}{run.stderr}")
    problems = offline_problems(SITE)
    if problems: raise SystemExit("pages load files from the internet:\n" + "\n".join(problems))
    print(f"docs: {len(pages)} pages in {SITE.relative_to(REPO)}/ ({time.perf_counter() - t0:.1f} s)")
    return SITE


if __name__ == "__main__":
    build()
