"""Make `dvc plots show` work offline.

DVC's page loads Vega, Vega-Lite and Vega-Embed from a CDN, so with no network the charts stay
blank. DVC accepts an HTML template (`plots.html_template`, a path relative to `.dvc/`) with a
`{plot_divs}` placeholder; each plot div then calls `vegaEmbed(...)` inline as the page parses.
This module writes such a template with the three libraries inlined as one classic script that
defines `window.vegaEmbed` before the divs, taken at run time from the `vl-convert-python`
package (the Vega project's own bundle), so no third-party JavaScript is committed.

Run `equiseg plots-template` (or let the report stage do it) once per checkout.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from equiseg.errors import EquisegError
from equiseg.io import write_text

TEMPLATE_NAME = "plots_offline.html"
CONFIG_KEY = "html_template"

# DVC's default page (dvc_render.html.PAGE_HTML) with `{scripts}`, the CDN tags, replaced by
# the inlined bundle. `{refresh_tag}` and `{plot_divs}` stay placeholders that DVC fills in.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {marker}
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script type="text/javascript">
(function () {{
{bundle}
}}).call(window);
    </script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def _marker() -> str:
    """A comment naming the bundle's version, so a stale template is rebuilt after an upgrade."""
    version = metadata.version("vl-convert-python")
    return f"<!-- equiseg offline plots template, vl-convert-python {version} -->"


def offline_plots_html() -> str:
    """The template text: DVC's page with Vega, Vega-Lite and Vega-Embed inlined."""
    try:
        import vl_convert
    except ImportError:
        raise EquisegError("vl-convert-python is not installed; `pip install -r requirements.txt` "
                           "to build the offline `dvc plots show` template") from None
    # The default snippet assigns vegaEmbed, vegaLite and vega to `window`.
    bundle = vl_convert.javascript_bundle()
    # Keep the HTML parser inside the script element whatever the bundle's strings contain.
    bundle = bundle.replace("</script", "<\\/script").replace("<!--", "<\\!--")
    return PAGE.format(marker=_marker(), bundle=bundle)


def _configured_template(dvc_dir: Path) -> str | None:
    from dvc.config import Config

    return Config(dvc_dir=str(dvc_dir), validate=False).get("plots", {}).get(CONFIG_KEY)


def _set_local_template(dvc_dir: Path) -> None:
    """`dvc config --local plots.html_template plots_offline.html` (git-ignored by DVC)."""
    from dvc.config import Config

    with Config(dvc_dir=str(dvc_dir), validate=False).edit("local") as conf:
        conf.setdefault("plots", {})[CONFIG_KEY] = TEMPLATE_NAME


def ensure_offline_plots_template(repo_root: str | Path = ".",
                                  configure: bool = True) -> Path | None:
    """Write `.dvc/plots_offline.html` if missing or stale; return its path (None: no `.dvc`).

    With `configure`, also point DVC at it in `.dvc/config.local`, unless some config level
    already names a template (a user's own choice, or a committed `.dvc/config` entry).
    """
    dvc_dir = Path(repo_root) / ".dvc"
    if not dvc_dir.is_dir():
        return None
    path = dvc_dir / TEMPLATE_NAME
    current = path.read_text(errors="replace")[:400] if path.is_file() else ""
    if _marker() not in current:
        write_text(path, offline_plots_html())
    if configure and not _configured_template(dvc_dir):
        _set_local_template(dvc_dir)
    return path
