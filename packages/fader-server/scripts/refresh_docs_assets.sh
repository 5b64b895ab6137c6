#!/usr/bin/env bash
# Refresh the vendored assets of the API documentation pages (/docs: Swagger UI, /redoc: ReDoc)
# from the npm registry, at the pinned versions below.
#
# Why vendored: FastAPI's default pages load these files from a CDN, so /docs was blank on a
# machine without internet access, and every visit told a third party who reads Fader's API
# documentation. Fader serves them itself from fader_server/web/static/vendor/.
#
# To upgrade: change a version, run this script from anywhere, check /docs and /redoc (the
# browser test tests/web/test_docs_offline.py does), and commit the changed files together.
# `npm pack` checks each tarball against the registry's integrity hash; the SHA-256 of every
# copied file is written to vendor/VERSIONS so a review sees exactly what changed.
set -euo pipefail

SWAGGER_UI_DIST_VERSION=5.35.0   # Apache-2.0
REDOC_VERSION=2.5.4              # MIT; 3.x bundles are ES modules, which FastAPI's page cannot load

here=$(cd "$(dirname "$0")" && pwd)
vendor="$here/../src/fader_server/web/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "swagger-ui-dist@$SWAGGER_UI_DIST_VERSION" "redoc@$REDOC_VERSION" >/dev/null
mkdir swagger redoc
tar -xzf "swagger-ui-dist-$SWAGGER_UI_DIST_VERSION.tgz" -C swagger
tar -xzf "redoc-$REDOC_VERSION.tgz" -C redoc

rm -rf "$vendor"
mkdir -p "$vendor/swagger-ui" "$vendor/redoc"
for file in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE \
    swagger-ui-bundle.js.LICENSE.txt; do
    cp "swagger/package/$file" "$vendor/swagger-ui/$file"
done
cp redoc/package/bundles/redoc.standalone.js redoc/package/bundles/redoc.standalone.js.LICENSE.txt \
    redoc/package/LICENSE "$vendor/redoc/"

{
    echo "# Written by packages/fader-server/scripts/refresh_docs_assets.sh: do not edit."
    echo "swagger-ui-dist $SWAGGER_UI_DIST_VERSION"
    echo "redoc $REDOC_VERSION"
    (cd "$vendor" && find . -type f ! -name VERSIONS | sort | xargs sha256sum)
} >"$vendor/VERSIONS"
echo "vendored swagger-ui-dist $SWAGGER_UI_DIST_VERSION and redoc $REDOC_VERSION into $vendor"
