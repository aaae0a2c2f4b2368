"""`make status`: the table drawn from the router's /status document."""
from local.status import render

STATUS = {
    "sentiment": {"replicas": {"current": 3, "ready": 2, "desired": 3, "min": 1, "max": 3}, "utilization": 214.3,
                  "inFlight": 3, "queued": 3,
                  "lastScale": {"at": 1000.0, "from": 1, "to": 3, "reason": "up", "utilization": 600.0}},
    "diabetes": {"replicas": {"current": 1, "ready": 1, "desired": None, "min": None, "max": None},
                 "utilization": None, "inFlight": 0, "queued": 0, "lastScale": None},
}


def test_one_row_per_service_with_replicas_load_and_last_decision():
    header, diabetes, sentiment = render(STATUS, now=1012.0).splitlines()
    assert header.split() == ["SERVICE", "REPLICAS", "DESIRED", "MIN-MAX", "UTIL", "%", "IN", "FLIGHT", "QUEUED",
                              "LAST", "SCALING"]
    assert sentiment.split()[:9] == ["sentiment", "2/3", "ready", "3", "1-3", "214.3", "3", "3", "1"]
    assert sentiment.endswith("1 -> 3 (up, 600 %) 12 s ago")
    assert diabetes.split() == ["diabetes", "1/1", "ready", "-", "fixed", "-", "0", "0", "-"]
