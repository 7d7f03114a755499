"""Model training: the SageMaker training-container entry point (``training/train.py``)
and the model definition it fits (``training/model.py``). The pipeline's train step calls
the same function in-process, so a laptop run and a SageMaker training job fit the same
model from the same code.
"""
