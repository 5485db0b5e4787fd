"""Load test: concurrent visitors against one local app, through ``gradio_client``.

Starts ``app.py`` on a free loopback port (default settings, so the default gallery), warms it with
one request, then runs ``--visitors`` sessions at once: most press "Forget me" with a different
LFW person's portrait and two extra photos, every ``--audit-every``-th runs a small audit. Prints a
table: requests, errors, cross-session leaks (a session's stored portrait hash or model hash seen
in another session), p50/p95 wait, and the server's peak resident memory (VmHWM). Loopback only.

    python tools/load_test.py --visitors 8
"""
from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("SCIKIT_LEARN_DATA", ROOT.parent / "shared" / "sklearn_data")) / "lfw_home" / "lfw_funneled"
PEOPLE = ("Tony_Blair", "Colin_Powell", "Gerhard_Schroeder", "Ariel_Sharon", "Jean_Chretien", "John_Ashcroft",
          "Hugo_Chavez", "Junichiro_Koizumi", "Jacques_Chirac", "Serena_Williams")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def visit(url: str, k: int, audit_every: int) -> dict:
    client = Client(url, verbose=False)
    started = time.perf_counter()
    if audit_every and k % audit_every == audit_every - 1:
        out = client.predict("LFW", None, "", 2, 8, 0, 0, ["projection"], 10, "", False, False, [], api_name="/audit")
        kind, portrait = "audit", None
    else:
        person = PEOPLE[k % len(PEOPLE)]
        photos = [LFW / person / f"{person}_{i:04d}.jpg" for i in (1, 2, 3)]
        out = client.predict(handle_file(str(photos[0])), [handle_file(str(p)) for p in photos[1:]], "projection", 3, True, "",
                             api_name="/forget_me")
        kind, portrait = "forget_me", hashlib.sha256(photos[0].read_bytes()).hexdigest()
    wait = time.perf_counter() - started
    info = client.predict(api_name="/session_info")
    return {"kind": kind, "wait": wait, "ok": str(out[0]).startswith("✅"), "status": str(out[0])[:160], "portrait": portrait, "info": info}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--audit-every", type=int, default=4, help="every N-th visitor runs an audit (0: none)")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(1)
        warm = visit(url, 0, 0)
        print(f"warm-up request: {warm['wait']:.1f} s ({'ok' if warm['ok'] else warm['status']})", file=sys.stderr)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.visitors) as pool:
            results = list(pool.map(lambda k: visit(url, k, args.audit_every), range(args.visitors)))
        wall = time.perf_counter() - started
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = [r for r in results if not r["ok"]]
    visitors = [r for r in results if r["kind"] == "forget_me"]
    leaks = sum(r["info"].get("portrait_sha256") != r["portrait"] for r in visitors)
    models = [r["info"].get("model_sha256") for r in visitors]
    leaks += len(models) - len(set(models))
    waits = np.array([r["wait"] for r in results])
    print("| visitors | forget me | audits | errors | leaks | p50 wait s | p95 wait s | max wait s | all done s | server peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(results)} | {len(visitors)} | {len(results) - len(visitors)} | {len(errors)} | {leaks} | {np.percentile(waits, 50):.1f} | "
          f"{np.percentile(waits, 95):.1f} | {waits.max():.1f} | {wall:.1f} | {peak:.0f} |")
    for r in errors:
        print(f"error ({r['kind']}): {r['status']}", file=sys.stderr)
    return 1 if errors or leaks else 0


if __name__ == "__main__":
    sys.exit(main())
