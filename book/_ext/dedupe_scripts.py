"""Sphinx extension: drop repeated identical <script> entries from every page.

Jupyter Book 1.x registers sphinx-thebe's inline configuration twice, so each page declared
``const THEBE_JS_URL`` twice and the browser reported a SyntaxError; identical scripts are kept once.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = (
            str(getattr(js, "filename", js) or ""),
            tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
