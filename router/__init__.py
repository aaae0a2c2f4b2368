"""aks-serving request router: authenticate, route, queue and autoscale scoring requests (azureml-fe's job)."""
