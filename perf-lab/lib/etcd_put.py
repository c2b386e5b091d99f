"""Put latency of an etcd v3 member through its JSON gateway, over one
persistent HTTP connection: etcd_put.py HOST:PORT VALUE_BYTES COUNT

Prints {"n", "value_bytes", "p50_ms", "p99_ms", "max_ms"} as JSON. For the
cluster benchmark's reference (etcd's own put of a same-sized value)."""
import base64
import http.client
import json
import sys
import time

hostport, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
host, port = hostport.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=30)
value = base64.b64encode(b"v" * size).decode()
lat = []
for i in range(count):
    body = json.dumps({"key": base64.b64encode(b"bench/%d" % (i % 16)).decode(), "value": value})
    t0 = time.perf_counter()
    conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    lat.append((time.perf_counter() - t0) * 1e3)
    if resp.status != 200:
        sys.exit(f"etcd put failed: {resp.status} {data[:200]!r}")
lat.sort()
at = lambda q: lat[round((len(lat) - 1) * q)]
print(json.dumps({"n": len(lat), "value_bytes": size, "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": lat[-1]}))
