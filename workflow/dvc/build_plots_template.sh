#!/usr/bin/env bash
# Rebuild workflow/dvc/plots_template.html: DVC's plots page with vega, vega-lite and vega-embed
# inlined, so `dvc plots show` renders offline. npm installs into a temporary directory, never here.
# Versions: the majors DVC's own page loads from its CDN (vega 5, vega-lite 5, vega-embed 6).
set -euo pipefail
VEGA=${VEGA:-5.33.1}
VEGA_LITE=${VEGA_LITE:-5.23.0}
VEGA_EMBED=${VEGA_EMBED:-6.29.0}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent \
    "vega@$VEGA" "vega-lite@$VEGA_LITE" "vega-embed@$VEGA_EMBED")
python3 - "$tmp/node_modules" "$here/plots_template.html" <<'PY'
import json, re, sys
from pathlib import Path

mods, out = Path(sys.argv[1]), Path(sys.argv[2])
builds = [("vega", "vega.min.js"), ("vega-lite", "vega-lite.min.js"), ("vega-embed", "vega-embed.min.js")]
versions, scripts = [], []
for pkg, name in builds:
    meta = json.loads((mods / pkg / "package.json").read_text())
    version, license_ = meta["version"], meta.get("license", "see package")
    versions.append(f"{pkg}@{version}")
    js = (mods / pkg / "build" / name).read_text(encoding="utf8")
    js = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "\n", js)  # no map to fetch
    for bad in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}"):
        assert bad not in js, f"{name} contains {bad!r}"
    scripts.append(f"<script>/* {pkg}@{version} (npm, {license_}) */\n{js}</script>")
page = f"""<!DOCTYPE html>
<!-- DVC plots page for `dvc plots show` (offline): {', '.join(versions)} inlined from npm.
     Rebuild with workflow/dvc/build_plots_template.sh. Selected in .dvc/config (plots.html_template).
     No scripts placeholder on purpose: DVC would insert its CDN <script src> tags there. -->
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>vaepriors: DVC plots</title>
    {chr(10).join(scripts)}
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
out.write_text(page, encoding="utf8")
print(f"wrote {out} ({out.stat().st_size // 1024} KiB): {', '.join(versions)}")
PY
