"""Operate a deployed stack (or the one `make run` serves) as Azure ML v1's `Webservice` methods did.

`python -m aks_serving --help` lists the verbs: logs, status, keys, regen-key, token. Each works on a
*target*: the deployed stack (its Pulumi outputs and the Kubernetes API) or, with `--local`, the stack
`make run` serves on this machine. The verbs only ever talk to a target (target.py), never to either side
directly, so a verb is written once.
"""
