#!/bin/bash
# serve_sample.sh SAMPLE PORT MODEL_DIR_REL BODY_FILE CONTENT_TYPE [extra curl args...]
#
# How the samples here were checked: the app root /tmp/v1w/app/SAMPLE holds `azureml-models/<name>/<version>/...`
# as v1's /var/azureml-app did; cwd and AML_APP_ROOT are that root (azureml-core's Model.get_model_path reads
# $AML_APP_ROOT/azureml-models), AZUREML_MODEL_DIR is ROOT/MODEL_DIR_REL. The server is the sample's own
# (/tmp/v1s-SAMPLE venv), started through azmlinfsrv_loopback.py so it listens on 127.0.0.1 only; it is
# stopped after one GET / and one POST /score.
N=$1; PORT=$2; MREL=$3; REQ=$(realpath "$4"); CT=$5; shift 5
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=/tmp/v1w/app/$N; PY=/tmp/v1s-$N/bin/python; L=/tmp/v1w/logs/serve-$N.log
mkdir -p /tmp/v1w/logs; cd "$ROOT" || exit 1
export AML_APP_ROOT=$ROOT AZUREML_MODEL_DIR=$ROOT/$MREL
echo "+ cd $ROOT; AML_APP_ROOT=$ROOT AZUREML_MODEL_DIR=$AZUREML_MODEL_DIR $PY $HERE/azmlinfsrv_loopback.py --entry_script $HERE/$N/score.py --port $PORT" > "$L"
timeout 300 "$PY" "$HERE/azmlinfsrv_loopback.py" --entry_script "$HERE/$N/score.py" --port "$PORT" >> "$L" 2>&1 &
SP=$!
for i in $(seq 1 90); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; kill -0 $SP 2>/dev/null || break; sleep 1; done
echo "== GET /"; curl -s -w '\nHTTP %{http_code}\n' "http://127.0.0.1:$PORT/"
echo "== POST /score"; curl -s -w '\nHTTP %{http_code}\n' -H "Content-Type: $CT" --data-binary @"$REQ" "$@" "http://127.0.0.1:$PORT/score"
kill $SP 2>/dev/null; wait $SP 2>/dev/null
