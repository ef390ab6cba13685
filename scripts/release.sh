#!/usr/bin/env bash
# Publishes a release of cdk-mq-user, the way CDK construct libraries are published: the npm package with
# provenance, then jsii-pacmak's packages for Python, Java, .NET and Go, published by publib.
#
# A maintainer runs it (`npm run release`) in CI on the commit tagged v<version>, never from a laptop:
# - `npm publish --provenance` needs the CI's OIDC identity (GitHub Actions: `permissions: id-token: write`)
#   and NPM_TOKEN; publib needs TWINE_USERNAME/TWINE_PASSWORD (PyPI), MAVEN_* (Maven Central),
#   NUGET_API_KEY (NuGet) and GITHUB_TOKEN (the Go module repository). Names and repositories: `jsii.targets`
#   in package.json.
# - jsii-pacmak needs Python 3, Maven with a JDK, the .NET SDK and Go on the machine, and the network.
#
# DRY_RUN=1 checks, offline, what can be checked without publishing: the tarball (RELEASE_TARBALL, else a new
# `npm pack`) and `npm publish --dry-run --provenance` of it. test/package.test.ts runs that. jsii-pacmak is not
# part of the dry run: each of its targets fetches its toolchain's dependencies from the network.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p "require('./package.json').version")
out=dist-release

pack() {
  rm -rf "$out" && mkdir -p "$out"
  npm pack --pack-destination "$out" --loglevel=error >&2 # prepack: bundle, compile, jsii
  echo "$out/cdk-mq-user-$version.tgz"
}

if [ -n "${DRY_RUN:-}" ]; then
  tarball=${RELEASE_TARBALL:-$(pack)}
  echo "npm publish --dry-run --provenance --access public $tarball"
  npm publish --dry-run --provenance --access public --offline "$tarball"
  exit 0
fi

if [ "$(git describe --exact-match --tags HEAD 2>/dev/null)" != "v$version" ]; then
  echo "release: HEAD is not tagged v$version" >&2
  exit 1
fi
if [ -n "$(git status --porcelain)" ]; then
  echo "release: the checkout has uncommitted changes" >&2
  exit 1
fi
npm test
tarball=$(pack)
npx --yes jsii-pacmak@1 --targets python java dotnet go --outdir dist-jsii
npm publish --provenance --access public "$tarball"
npx --yes -p publib@0 publib-pypi dist-jsii/python
npx --yes -p publib@0 publib-maven dist-jsii/java
npx --yes -p publib@0 publib-nuget dist-jsii/dotnet
npx --yes -p publib@0 publib-golang dist-jsii/go
