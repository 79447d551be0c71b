#!/bin/sh
# Entrypoint of the Lambda base image: `docker run IMAGE app.handler` serves the handler through the Runtime
# Interface Emulator when there is no Runtime API (SAM CLI mounts its own emulator and bypasses this script).
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
