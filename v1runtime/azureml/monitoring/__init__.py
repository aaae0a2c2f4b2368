"""Azure ML v1's model data collection API (``from azureml.monitoring import ModelDataCollector``).

A drop-in for the azureml-monitoring 0.1.0a21 package, which needs a native library built against
OpenSSL 1.0: the same class, constructor and methods, writing v1's CSV layout to a local directory or to the
workspace storage account's ``modeldata`` container. See ``modeldatacollector`` for v1's behaviour and
``_settings`` for the environment variables that say where the data goes.
"""
from .modeldatacollector import ModelDataCollector

__all__ = ["ModelDataCollector"]
