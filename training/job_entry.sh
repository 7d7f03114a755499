#!/bin/sh
# Every SageMaker job in the training image starts here: `train` (Training) and
# `python -m pipeline step ...` (Processing) are both run through this script.
#
# SageMaker mounts /opt/ml/model, /opt/ml/output and /opt/ml/processing/<name> at run
# time, owned by root, so a chown in the Dockerfile does not survive and a job that starts
# as UID 10001 cannot write its outputs. The image therefore starts as root, gives exactly
# those mount points to the job user, and drops to it (no new privileges) before any job
# code runs. Started as a non-root user (Kubernetes runAsUser), it runs the command as is.
set -eu
JOB_UID=10001
if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi
for dir in /opt/ml/model /opt/ml/output /opt/ml/checkpoints; do
  if [ -d "$dir" ]; then chown -R "$JOB_UID:$JOB_UID" "$dir"; fi
done
# Processing mounts: each writable folder at depth 1-2 (the outputs, and inputs SageMaker
# mounts writable); the files inside the inputs are only read. Read-only mounts are left.
if [ -d /opt/ml/processing ]; then
  find /opt/ml/processing -mindepth 1 -maxdepth 2 -type d | while IFS= read -r dir; do
    if [ -w "$dir" ]; then chown "$JOB_UID:$JOB_UID" "$dir"; fi
  done
fi
export HOME=/tmp
exec setpriv --reuid="$JOB_UID" --regid="$JOB_UID" --clear-groups --no-new-privs "$@"
