#!/bin/sh
# SageMaker starts a training container as `docker run IMAGE train`: this is `train`.
exec python -m training.train "$@"
