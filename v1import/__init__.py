"""`python -m v1import`: an Azure ML v1 AKS deployment (`az ml model deploy -dc deploymentconfig.json
-ic inferenceconfig.json -m name:version`, and the AKS compute's provisioning or attach settings) turned
into a stack config that `make run` serves and `pulumi up` deploys.

One idea per module: `documents` reads a v1 file and refuses unknown keys; `deployment_config`,
`inference_config`, `docker_steps`, `model_args` and `compute` read one v1 input each and map it onto this
project's keys; `tree` holds the values with where each came from; `stack_file` writes, merges and
validates the stack file; `report` says what could not be carried over, and the secret commands.
"""
