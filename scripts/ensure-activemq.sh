#!/bin/sh
# Makes sure a real ActiveMQ broker is on this machine for the tests that sign in to one
# (test/support/activemq.ts starts a private broker per test file from Debian's `activemq` package).
# Runs as `pretest`, so `npm ci && npm test` on a fresh clone brings it: as root (CI) it installs the
# package from Debian's registry; otherwise it stops with the command to run.
set -eu

jar="${ACTIVEMQ_HOME:-/usr/share/activemq}/bin/activemq.jar"
install_command="apt-get update && apt-get install -y --no-install-recommends activemq"

if [ -f "$jar" ] && command -v java >/dev/null 2>&1 && command -v keytool >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-activemq: ActiveMQ is missing ($jar); installing Debian's activemq package" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends activemq >/dev/null
  if [ -f "$jar" ] && command -v java >/dev/null 2>&1 && command -v keytool >/dev/null 2>&1; then
    exit 0
  fi
  echo "ensure-activemq: installed the activemq package, but $jar, java or keytool is still missing" >&2
  exit 1
fi

echo "ensure-activemq: the tests need a real ActiveMQ broker (Debian's activemq package, with Java 17 and keytool)," >&2
echo "but $jar, java or keytool is missing. Install it with:" >&2
echo "  sudo sh -c '$install_command'" >&2
echo "(or set ACTIVEMQ_HOME to an ActiveMQ 5.17+ installation that has bin/activemq.jar)" >&2
exit 1
