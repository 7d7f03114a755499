#!/bin/sh
# SageMaker starts a training container as `docker run IMAGE train`: this is `train`.
exec job-entry python -m training.train "$@"
