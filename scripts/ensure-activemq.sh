#!/bin/sh
# Makes sure a real ActiveMQ broker is on this machine for the tests that sign in to one
# (test/support/activemq.ts starts a private broker per test file from Debian's `activemq` package).
# Runs as `pretest`, so `npm ci && npm test` on a fresh clone brings it: as root (CI) it installs the
# package from Debian's registry; otherwise it stops with the command to run.
set -eu

# libxstream-java and libjettison-java: libraries upstream ActiveMQ (and so Amazon MQ) ships and Debian only
# recommends; without them STOMP cannot hand out advisory messages.
jar="${ACTIVEMQ_HOME:-/usr/share/activemq}/bin/activemq.jar"
packages="activemq libxstream-java libjettison-java"
install_command="apt-get update && apt-get install -y --no-install-recommends $packages"

present() {
  [ -f "$jar" ] && command -v java >/dev/null 2>&1 && command -v keytool >/dev/null 2>&1 &&
    { [ -n "${ACTIVEMQ_HOME:-}" ] || { [ -f /usr/share/java/xstream.jar ] && [ -f /usr/share/java/jettison.jar ]; }; }
}

if present; then
  exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-activemq: ActiveMQ or its libraries are missing; installing Debian's $packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
  if present; then
    exit 0
  fi
  echo "ensure-activemq: installed $packages, but $jar, xstream.jar, jettison.jar, java or keytool is still missing" >&2
  exit 1
fi

echo "ensure-activemq: the tests need a real ActiveMQ broker (Debian's $packages, with Java 17 and keytool)," >&2
echo "but $jar, /usr/share/java/xstream.jar, /usr/share/java/jettison.jar, java or keytool is missing. Install them with:" >&2
echo "  sudo sh -c '$install_command'" >&2
echo "(or set ACTIVEMQ_HOME to an upstream ActiveMQ 5.17+ installation: bin/activemq.jar, XStream in lib/)" >&2
exit 1
