"""`azmlinfsrv` exactly as its console script runs it, but bound to 127.0.0.1: the server has no host flag and
binds DEFAULT_HOST = "0.0.0.0", so set that constant before the server module reads it."""
import sys
import azureml_inference_server_http.constants as constants
constants.DEFAULT_HOST = "127.0.0.1"
from azureml_inference_server_http.amlserver import run
sys.argv[0] = "azmlinfsrv"
sys.exit(run())
