"""The pipeline's steps, one module each: pure, typed functions that say what they need,
give and raise. Wiring (which step feeds which) lives apart from them, so the same
functions run in the local runner and inside SageMaker steps.
"""
